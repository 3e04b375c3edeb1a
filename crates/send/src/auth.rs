//! SMTP AUTH client mechanisms (RFC 4954): PLAIN (RFC 4616), LOGIN
//! (draft-murchison-sasl-login) and CRAM-MD5 (RFC 2195).
//!
//! When `--auth` names no mechanism, swaks tries every type it supports in
//! the sorted order of its auth map, skipping those the server does not
//! advertise: CRAM-MD5, then LOGIN, then PLAIN. So against the seed's server
//! (`AUTH CRAM-MD5 PLAIN LOGIN`) swaks picks CRAM-MD5, and against
//! `smtp-sink` (`AUTH PLAIN LOGIN`) it picks LOGIN. We keep that order.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::Md5;

/// The mechanisms, in swaks' default order.
pub const DEFAULT_ORDER: &[&str] = &["CRAM-MD5", "LOGIN", "PLAIN"];

/// Whether we implement `mech` (upper-case name).
pub fn supported(mech: &str) -> bool {
    DEFAULT_ORDER.contains(&mech)
}

pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

pub fn unb64(text: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(text.trim())
        .map_err(|e| format!("bad base64 from server: {e}"))
}

/// PLAIN's initial response: `\0user\0password`, base64.
pub fn plain(user: &str, pass: &str) -> String {
    b64(format!("\0{user}\0{pass}").as_bytes())
}

/// CRAM-MD5's response to `challenge` (base64 as the server sent it):
/// `user SP hex(HMAC-MD5(password, challenge))`, base64 (RFC 2195 section 2).
/// Also returns the unencoded response, for `--auth-plaintext`.
pub fn cram_md5(user: &str, pass: &str, challenge: &str) -> Result<(String, String), String> {
    let challenge = unb64(challenge)?;
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(pass.as_bytes())
        .map_err(|e| format!("HMAC key: {e}"))?;
    mac.update(&challenge);
    let digest: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let clear = format!("{user} {digest}");
    Ok((b64(clear.as_bytes()), clear))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2195_example() {
        // RFC 2195 section 2: user tim, password tanstaaftanstaaf.
        let challenge = b64(b"<1896.697170952@postoffice.reston.mci.net>");
        let (encoded, clear) = cram_md5("tim", "tanstaaftanstaaf", &challenge).unwrap();
        assert_eq!(clear, "tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(encoded, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    }

    #[test]
    fn plain_and_bad_base64() {
        assert_eq!(plain("u", "p"), "AHUAcA==");
        assert!(cram_md5("u", "p", "!!!").is_err());
        assert!(supported("LOGIN") && !supported("NTLM"));
    }
}
