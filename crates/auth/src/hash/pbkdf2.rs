//! Dovecot's `{PBKDF2}` scheme: `$1$SALT$ROUNDS$HEXKEY`, PBKDF2-HMAC-SHA1
//! (RFC 8018 section 5.2) with the salt text used as bytes and a 20-byte key
//! (Dovecot `src/auth/password-scheme-pbkdf2.c`; default 5000 rounds, 16-char salt).

use subtle::ConstantTimeEq;

use super::encoding;

const MAX_ROUNDS: u32 = 10_000_000;
const SALT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn key(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 20] {
    let mut out = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, &mut out);
    out
}

/// `Err` with a reason when the stored value is malformed.
pub fn verify(stored: &str, password: &[u8]) -> Result<bool, &'static str> {
    let rest = stored.strip_prefix("$1$").ok_or("missing $1$")?;
    let mut parts = rest.split('$');
    let (Some(salt), Some(rounds), Some(hex), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected $1$salt$rounds$key");
    };
    let rounds: u32 = rounds.parse().map_err(|_| "bad rounds")?;
    if rounds == 0 || rounds > MAX_ROUNDS {
        return Err("rounds out of range");
    }
    let want = encoding::unhex(hex).ok_or("bad hex key")?;
    if want.len() != 20 {
        return Err("key is not 20 bytes");
    }
    Ok(key(password, salt.as_bytes(), rounds)
        .ct_eq(&want[..])
        .into())
}

pub fn hash(password: &[u8]) -> String {
    let mut raw = [0u8; 16];
    crate::random::fill(&mut raw);
    let salt: String = raw
        .iter()
        .map(|b| SALT_ALPHABET[(b & 63) as usize] as char)
        .collect();
    let k = key(password, salt.as_bytes(), 5000);
    format!("$1${salt}$5000${}", encoding::hex(&k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doveadm_vectors() {
        // `doveadm pw -s PBKDF2 -p pencil [-r 1000]`, Dovecot 2.3.19.1.
        let a = "$1$WRbEoe/.nlSvhTag$5000$ca941e2b9e390c6ba8eea9ef7ee449d77e048eb1";
        let b = "$1$RlV0VqpxCpKNwp7c$1000$95f762d61f3829ca21bb347eafa75a0cb10a47d8";
        assert_eq!(verify(a, b"pencil"), Ok(true));
        assert_eq!(verify(b, b"pencil"), Ok(true));
        assert_eq!(verify(b, b"pencim"), Ok(false));
    }

    #[test]
    fn roundtrip_and_garbage() {
        assert_eq!(verify(&hash(b"x"), b"x"), Ok(true));
        for s in [
            "",
            "$1$",
            "$1$s$0$aa",
            "$1$s$10$zz",
            "$1$s$10$aa",
            "$1$s$x$aa",
            "$1$a$1$b$c",
        ] {
            assert!(verify(s, b"x").is_err(), "{s}");
        }
    }
}
