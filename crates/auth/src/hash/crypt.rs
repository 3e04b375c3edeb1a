//! crypt(3)-style hashes: SHA-crypt `$5$`/`$6$` (Ulrich Drepper's
//! "Unix crypt using SHA-256 and SHA-512"), bcrypt `$2y$`/`$2b$`/`$2a$`
//! (Dovecot `BLF-CRYPT`) and Argon2 PHC strings `$argon2id$`/`$argon2i$`
//! (Dovecot `ARGON2ID`/`ARGON2I`).
//!
//! Cost parameters come from the stored hash, so they are bounded here to
//! keep a hostile or mistyped passwd-file line from stalling the server.

use subtle::ConstantTimeEq;

use super::HashError;

/// SHA-crypt rounds beyond this are refused (crypt(3) allows 999,999,999).
const MAX_SHA_ROUNDS: usize = 10_000_000;
/// bcrypt costs beyond this (2^20 rounds) are refused.
const MAX_BCRYPT_COST: u32 = 20;
/// Argon2 memory beyond 1 GiB (in KiB), time beyond 64 passes, refused.
const MAX_ARGON2_M: u32 = 1 << 20;
const MAX_ARGON2_T: u32 = 64;
const MAX_ARGON2_P: u32 = 16;

const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn bad(scheme: &str, reason: &str) -> HashError {
    HashError::Malformed {
        scheme: scheme.to_string(),
        reason: reason.to_string(),
    }
}

/// Verify any crypt string yubin knows, chosen by its `$id$` prefix.
pub fn verify(scheme: &str, stored: &str, password: &[u8]) -> Result<bool, HashError> {
    if stored.starts_with("$6$") || stored.starts_with("$5$") {
        verify_sha(scheme, stored, password)
    } else if stored.starts_with("$2") {
        verify_bcrypt(scheme, stored, password)
    } else if stored.starts_with("$argon2") {
        verify_argon2(scheme, stored, password)
    } else {
        Err(bad(scheme, "unsupported crypt format"))
    }
}

/// `$6$[rounds=N$]salt$hash` (and `$5$`).
fn verify_sha(scheme: &str, stored: &str, password: &[u8]) -> Result<bool, HashError> {
    let sha512 = stored.starts_with("$6$");
    let mut rest = &stored[3..];
    let mut rounds = sha_crypt::ROUNDS_DEFAULT;
    if let Some(r) = rest.strip_prefix("rounds=") {
        let (n, after) = r.split_once('$').ok_or_else(|| bad(scheme, "no salt"))?;
        let n: usize = n.parse().map_err(|_| bad(scheme, "bad rounds"))?;
        if n > MAX_SHA_ROUNDS {
            return Err(bad(scheme, "too many rounds"));
        }
        rounds = n.max(sha_crypt::ROUNDS_MIN);
        rest = after;
    }
    let (salt, want) = rest.split_once('$').ok_or_else(|| bad(scheme, "no hash"))?;
    // crypt(3) uses at most 16 salt characters.
    let salt = &salt.as_bytes()[..salt.len().min(16)];
    let got = if sha512 {
        let p = sha_crypt::Sha512Params::new(rounds).map_err(|_| bad(scheme, "bad rounds"))?;
        sha_crypt::sha512_crypt_b64(password, salt, &p)
    } else {
        let p = sha_crypt::Sha256Params::new(rounds).map_err(|_| bad(scheme, "bad rounds"))?;
        sha_crypt::sha256_crypt_b64(password, salt, &p)
    }
    .map_err(|_| bad(scheme, "cannot compute"))?;
    Ok(got.as_bytes().ct_eq(want.as_bytes()).into())
}

fn verify_bcrypt(scheme: &str, stored: &str, password: &[u8]) -> Result<bool, HashError> {
    let cost: u32 = stored
        .get(4..6)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(scheme, "bad cost"))?;
    if cost > MAX_BCRYPT_COST {
        return Err(bad(scheme, "cost too high"));
    }
    // bcrypt uses at most 72 bytes of the password, as libxcrypt does.
    let pw = &password[..password.len().min(72)];
    bcrypt::verify(pw, stored).map_err(|e| bad(scheme, &e.to_string()))
}

fn verify_argon2(scheme: &str, stored: &str, password: &[u8]) -> Result<bool, HashError> {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let parsed = PasswordHash::new(stored).map_err(|e| bad(scheme, &e.to_string()))?;
    let param = |n: &str| parsed.params.get_decimal(n).unwrap_or(0);
    if param("m") > MAX_ARGON2_M || param("t") > MAX_ARGON2_T || param("p") > MAX_ARGON2_P {
        return Err(bad(scheme, "cost too high"));
    }
    match argon2::Argon2::default().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(bad(scheme, &e.to_string())),
    }
}

fn crypt_salt(len: usize) -> String {
    let mut raw = vec![0u8; len];
    crate::random::fill(&mut raw);
    raw.iter()
        .map(|b| CRYPT_ALPHABET[(b & 63) as usize] as char)
        .collect()
}

/// `$6$salt$hash` with 5000 rounds and a 16-character salt (doveadm's defaults).
pub fn hash_sha512(password: &[u8]) -> String {
    let salt = crypt_salt(16);
    let h = sha_crypt::sha512_crypt_b64(password, salt.as_bytes(), &Default::default())
        .expect("default SHA-crypt parameters are valid");
    format!("$6${salt}${h}")
}

/// `$5$salt$hash` with 5000 rounds.
pub fn hash_sha256(password: &[u8]) -> String {
    let salt = crypt_salt(16);
    let h = sha_crypt::sha256_crypt_b64(password, salt.as_bytes(), &Default::default())
        .expect("default SHA-crypt parameters are valid");
    format!("$5${salt}${h}")
}

/// `$2y$05$...` (doveadm's default cost is 5).
pub fn hash_bcrypt(password: &[u8]) -> String {
    let mut salt = [0u8; 16];
    crate::random::fill(&mut salt);
    let pw = &password[..password.len().min(72)];
    bcrypt::hash_with_salt(pw, 5, salt)
        .expect("cost 5 is valid")
        .format_for_version(bcrypt::Version::TwoY)
}

/// Argon2id m=65536,t=3,p=1 or Argon2i m=32768,t=4,p=1 (doveadm's defaults).
pub fn hash_argon2(password: &[u8], id: bool) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    crate::random::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    let (alg, params) = if id {
        (
            argon2::Algorithm::Argon2id,
            argon2::Params::new(65536, 3, 1, Some(32)),
        )
    } else {
        (
            argon2::Algorithm::Argon2i,
            argon2::Params::new(32768, 4, 1, Some(32)),
        )
    };
    let params = params.expect("fixed parameters are valid");
    argon2::Argon2::new(alg, argon2::Version::V0x13, params)
        .hash_password(password, &salt)
        .expect("fixed parameters are valid")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `doveadm pw -s SCHEME -p pencil`, Dovecot 2.3.19.1 (Debian 12).
    const SHA512: &str = "$6$UNJQih1960PXoH3X$tZS61Ho5qIQpwMS55Sw.UeoxBHy3kIACye.9yQT01eSCAizOLmEIle9Em.zOOOPCBAQ/43rAQ6OEJkMpCQHFN0";
    const SHA256: &str = "$5$tPa86HVwqoUwIJNP$XRkSWHhRpTGzsvFS2uP.J7SsUHz5wa3AHr8wp0xelS/";
    const BLF: &str = "$2y$05$4WzvUNg0gBCFZhAd28o79e9KUZvJaFB1yCXaNSrL20FH2bUz3F6vi";

    #[test]
    fn doveadm_sha_crypt() {
        assert!(verify("SHA512-CRYPT", SHA512, b"pencil").unwrap());
        assert!(!verify("SHA512-CRYPT", SHA512, b"pencils").unwrap());
        assert!(verify("SHA256-CRYPT", SHA256, b"pencil").unwrap());
        assert!(!verify("SHA256-CRYPT", SHA256, b"Pencil").unwrap());
    }

    #[test]
    fn explicit_rounds() {
        // `doveadm pw -s SHA512-CRYPT -p pencil -r 10000` (and SHA256 `-r 1000`).
        let s = "$6$rounds=10000$7JIgqe28HntAehtG$/HBnwWOiDJdWAgqs9WeCy6dWa7e.khlApQhOPGZy6f63mFY3A3cb9/dX73pzgP8Y9cLrjqchyec0quKVlJdlM/";
        assert!(verify("CRYPT", s, b"pencil").unwrap());
        let s = "$5$rounds=1000$9/rXiJopePm6eCdf$9NJ3gexaOcGMHAYJgz6Px9KjXqh5yJDw.KKFtx7irY7";
        assert!(verify("CRYPT", s, b"pencil").unwrap());
        // Drepper's reference vector: salt cut to 16 characters.
        let s = "$6$rounds=10000$saltstringsaltstring$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";
        assert!(verify("CRYPT", s, b"Hello world!").unwrap());
        assert!(verify("CRYPT", "$6$rounds=99999999999$a$b", b"x").is_err());
    }

    #[test]
    fn doveadm_bcrypt() {
        assert!(verify("BLF-CRYPT", BLF, b"pencil").unwrap());
        assert!(!verify("BLF-CRYPT", BLF, b"pen").unwrap());
        assert!(verify("BLF-CRYPT", "$2y$31$abc", b"x").is_err());
    }

    #[test]
    fn generated_verify() {
        for h in [
            hash_sha512(b"s3cret"),
            hash_sha256(b"s3cret"),
            hash_bcrypt(b"s3cret"),
        ] {
            assert!(verify("X", &h, b"s3cret").unwrap(), "{h}");
            assert!(!verify("X", &h, b"s3cre").unwrap(), "{h}");
        }
        assert!(hash_sha512(b"x").starts_with("$6$"));
        assert!(hash_bcrypt(b"x").starts_with("$2y$05$"));
    }

    #[test]
    fn malformed_is_error() {
        for s in [
            "$6$",
            "$6$salt",
            "$5$rounds=x$s$h",
            "$2y$",
            "$argon2id$",
            "$1$abc$def",
            "$9$",
        ] {
            assert!(verify("X", s, b"x").is_err(), "{s}");
        }
    }
}
