//! Hex and base64 helpers, and Dovecot's `{SCHEME.ENCODING}` suffixes
//! (doc.dovecot.org "Password Schemes": "You can also use `.b64`,
//! `.base64` or `.hex` suffix to specify the encoding").

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// How a binary scheme's digest is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// No suffix: the scheme's default (for digests, Dovecot accepts either).
    Default,
    Base64,
    Hex,
}

impl Encoding {
    /// Parse the part after the dot in `{SHA512.b64}`.
    pub fn from_suffix(s: &str) -> Option<Encoding> {
        match s.to_ascii_lowercase().as_str() {
            "b64" | "base64" => Some(Encoding::Base64),
            "hex" => Some(Encoding::Hex),
            _ => None,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() & 1 == 1 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks_exact(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Standard base64 with padding; also accepts missing padding.
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s)
        .ok()
}

/// Decode a digest-like value: explicit encoding, or (Default) hex when it
/// has exactly `hex_len` hex digits, base64 otherwise — Dovecot's guess.
pub fn decode(s: &str, enc: Encoding, hex_len: Option<usize>) -> Option<Vec<u8>> {
    match enc {
        Encoding::Hex => unhex(s),
        Encoding::Base64 => unb64(s),
        Encoding::Default => {
            if hex_len == Some(s.len()) {
                if let Some(v) = unhex(s) {
                    return Some(v);
                }
            }
            unb64(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        assert_eq!(unhex(&hex(b"\x00\xffab")).unwrap(), b"\x00\xffab");
        assert_eq!(unb64(&b64(b"pencil")).unwrap(), b"pencil");
        assert_eq!(unb64("cGVuY2lsAA").unwrap(), b"pencil\0");
        assert!(unhex("zz").is_none());
        assert!(unhex("abc").is_none());
        assert!(unb64("!!").is_none());
    }
}
