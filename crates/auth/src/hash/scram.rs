//! SCRAM-SHA-256 credentials (RFC 5802 section 3, RFC 7677) and Dovecot's
//! `{SCRAM-SHA-256}` stored form `ITERATIONS,SALT_B64,STOREDKEY_B64,SERVERKEY_B64`
//! (Dovecot `src/auth/password-scheme-scram.c`; default 4096 iterations).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::encoding;

/// Iteration counts beyond this are refused (bounded work per attempt).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Iterations for new credentials (Dovecot's default, RFC 7677's minimum).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// What the server needs to run SCRAM-SHA-256 for one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramKeys {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

impl ScramKeys {
    /// Derive from a plaintext: SaltedPassword = Hi(password, salt, i) etc.
    /// (RFC 5802 section 3). No SASLprep: the password is used as given.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ScramKeys {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        ScramKeys {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Parse Dovecot's stored form.
    pub fn parse(stored: &str) -> Result<ScramKeys, &'static str> {
        let mut p = stored.split(',');
        let (Some(i), Some(salt), Some(sk), Some(svk), None) =
            (p.next(), p.next(), p.next(), p.next(), p.next())
        else {
            return Err("expected iterations,salt,storedkey,serverkey");
        };
        let iterations: u32 = i.parse().map_err(|_| "bad iteration count")?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err("iteration count out of range");
        }
        let salt = encoding::unb64(salt).ok_or("bad salt")?;
        let key = |s: &str| -> Result<[u8; 32], &'static str> {
            encoding::unb64(s)
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or("bad key")
        };
        Ok(ScramKeys {
            iterations,
            salt,
            stored_key: key(sk)?,
            server_key: key(svk)?,
        })
    }

    /// Dovecot's stored form.
    pub fn encode(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            encoding::b64(&self.salt),
            encoding::b64(&self.stored_key),
            encoding::b64(&self.server_key)
        )
    }

    /// New credentials with a random 16-byte salt.
    pub fn generate(password: &[u8]) -> ScramKeys {
        let mut salt = [0u8; 16];
        crate::random::fill(&mut salt);
        ScramKeys::derive(password, &salt, DEFAULT_ITERATIONS)
    }

    /// Whether `password` produces these keys.
    pub fn matches(&self, password: &[u8]) -> bool {
        let d = ScramKeys::derive(password, &self.salt, self.iterations);
        d.stored_key.ct_eq(&self.stored_key).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doveadm_vector() {
        // `doveadm pw -s SCRAM-SHA-256 -p pencil`, Dovecot 2.3.19.1.
        let s = "4096,V8FxiyK3iGUrasOwp9VbZQ==,tzmPq5lkCewkAFkT6aav4IvNoO2ajk3ZR0gHFyG9O+k=,RPqTVCfNK4ayKEiwOY6+DebnFw/yRRNGgwqvmTSy59g=";
        let k = ScramKeys::parse(s).unwrap();
        assert!(k.matches(b"pencil"));
        assert!(!k.matches(b"pencil2"));
        assert_eq!(k.encode(), s);
    }

    #[test]
    fn garbage() {
        for s in [
            "",
            "1,2,3",
            "0,AA==,AA==,AA==",
            "x,a,b,c",
            "4096,!!,AA==,AA==",
            "1,AA==,AA==,AA==",
        ] {
            assert!(ScramKeys::parse(s).is_err(), "{s}");
        }
    }
}
