//! Dovecot's `{CRAM-MD5}` scheme: the HMAC-MD5 (RFC 2104) key schedule
//! precomputed, so CRAM-MD5 (RFC 2195) works without storing the plaintext.
//!
//! Format (Dovecot `src/lib/hmac-cram-md5.c`, `hmac_md5_get_cram_context`):
//! 32 bytes, hex-encoded (64 characters): the outer MD5 state `a b c d`
//! (after absorbing `key ^ opad`) then the inner state (after `key ^ ipad`),
//! each word little-endian.

use super::md5_state;

/// The 32-byte context for `password`.
pub fn context(password: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 64];
    if password.len() > 64 {
        use md5::{Digest, Md5};
        let d: [u8; 16] = Md5::digest(password).into();
        key[..16].copy_from_slice(&d);
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let mut ipad = [0u8; 64];
    let mut opad = [0u8; 64];
    for i in 0..64 {
        ipad[i] = key[i] ^ 0x36;
        opad[i] = key[i] ^ 0x5c;
    }
    let mut inner = md5_state::IV;
    md5_state::compress(&mut inner, &ipad);
    let mut outer = md5_state::IV;
    md5_state::compress(&mut outer, &opad);
    let mut out = [0u8; 32];
    for (i, w) in outer.iter().chain(inner.iter()).enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// HMAC-MD5(key, `message`) computed from a stored context.
pub fn hmac_from_context(ctx: &[u8; 32], message: &[u8]) -> [u8; 16] {
    let word =
        |i: usize| u32::from_le_bytes([ctx[4 * i], ctx[4 * i + 1], ctx[4 * i + 2], ctx[4 * i + 3]]);
    let outer = [word(0), word(1), word(2), word(3)];
    let inner = [word(4), word(5), word(6), word(7)];
    let inner_digest = md5_state::finish(inner, 64, message);
    md5_state::finish(outer, 64, &inner_digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    #[test]
    fn dovecot_vector() {
        // `doveadm pw -s CRAM-MD5 -p tanstaaftanstaaf` (Dovecot 2.3.19.1).
        let ctx = context(b"tanstaaftanstaaf");
        let hex: String = ctx.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"
        );
    }

    #[test]
    fn rfc2195_example_from_context() {
        let ctx = context(b"tanstaaftanstaaf");
        let mac = hmac_from_context(&ctx, b"<1896.697170952@postoffice.reston.mci.net>");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn long_key_matches_hmac_crate() {
        let key = [b'k'; 100];
        let mut m = Hmac::<md5::Md5>::new_from_slice(&key).unwrap();
        m.update(b"challenge");
        let want: [u8; 16] = m.finalize().into_bytes().into();
        assert_eq!(hmac_from_context(&context(&key), b"challenge"), want);
    }
}
