//! Password schemes as Dovecot writes them: `{SCHEME}data`
//! (doc.dovecot.org "Password Schemes"; `doveadm pw`).
//!
//! * [`verify`] checks a password against a stored value.
//! * [`hash`] makes a stored value for a new password ([`Scheme::DEFAULT`] is
//!   SHA512-CRYPT, `doveadm pw`'s default).
//! * [`plaintext`], [`cram_md5_context`] and [`scram_sha256_keys`] extract what
//!   the challenge-response SASL mechanisms need.
//!
//! A value without `{SCHEME}` is taken as `CRYPT` (passwd-file's default
//! scheme): `$6$`, `$5$`, `$2y$`/`$2b$`/`$2a$` and `$argon2id$`/`$argon2i$` are
//! recognised by prefix. A scheme may carry an encoding suffix
//! (`{SHA512.hex}`, `{PLAIN.b64}`).

pub mod cram_md5;
mod crypt;
mod digest;
pub mod encoding;
pub mod md5_state;
mod pbkdf2;
pub mod scram;

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use encoding::Encoding;
pub use scram::ScramKeys;

/// Why a stored password could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("unknown password scheme {0:?}")]
    UnknownScheme(String),
    #[error("malformed {scheme} password: {reason}")]
    Malformed { scheme: String, reason: String },
}

/// The schemes yubin reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sha512Crypt,
    Sha256Crypt,
    BlfCrypt,
    Argon2id,
    Argon2i,
    /// `{CRYPT}`: any crypt(3) string yubin knows, by prefix.
    Crypt,
    Pbkdf2,
    Plain,
    Clear,
    CramMd5,
    ScramSha256,
    Ssha512,
    Sha512,
    Ssha256,
    Sha256,
    Ssha,
    Sha1,
}

const ALL: &[(Scheme, &str)] = &[
    (Scheme::Sha512Crypt, "SHA512-CRYPT"),
    (Scheme::Sha256Crypt, "SHA256-CRYPT"),
    (Scheme::BlfCrypt, "BLF-CRYPT"),
    (Scheme::Argon2id, "ARGON2ID"),
    (Scheme::Argon2i, "ARGON2I"),
    (Scheme::Crypt, "CRYPT"),
    (Scheme::Pbkdf2, "PBKDF2"),
    (Scheme::Plain, "PLAIN"),
    (Scheme::Clear, "CLEAR"),
    (Scheme::CramMd5, "CRAM-MD5"),
    (Scheme::ScramSha256, "SCRAM-SHA-256"),
    (Scheme::Ssha512, "SSHA512"),
    (Scheme::Sha512, "SHA512"),
    (Scheme::Ssha256, "SSHA256"),
    (Scheme::Sha256, "SHA256"),
    (Scheme::Ssha, "SSHA"),
    (Scheme::Sha1, "SHA"),
];

impl Scheme {
    /// What `doveadm pw` uses when no `-s` is given.
    pub const DEFAULT: Scheme = Scheme::Sha512Crypt;

    /// The canonical upper-case name, as written between braces.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(s, _)| *s == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }

    /// Every scheme, in a stable order (for help texts).
    pub fn all() -> impl Iterator<Item = Scheme> {
        ALL.iter().map(|(s, _)| *s)
    }

    /// Whether the plaintext can be recovered (CRAM-MD5 and SCRAM need one
    /// of these or their own precomputed form).
    pub fn is_plaintext(self) -> bool {
        matches!(self, Scheme::Plain | Scheme::Clear)
    }

    /// The scheme of a stored value: its `{SCHEME}` prefix, else CRYPT.
    pub fn of(stored: &str) -> Result<Scheme, HashError> {
        Ok(split(stored)?.0)
    }
}

impl FromStr for Scheme {
    type Err = HashError;

    /// Case-insensitive; accepts `CLEARTEXT` and `SHA1` as aliases.
    fn from_str(s: &str) -> Result<Scheme, HashError> {
        let up = s.to_ascii_uppercase();
        let up = match up.as_str() {
            "CLEARTEXT" => "CLEAR",
            "SHA1" => "SHA",
            other => other,
        };
        ALL.iter()
            .find(|(_, n)| *n == up)
            .map(|(s, _)| *s)
            .ok_or_else(|| HashError::UnknownScheme(s.to_string()))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Split `{SCHEME.enc}data` into its parts (no braces: CRYPT).
pub fn split(stored: &str) -> Result<(Scheme, Encoding, &str), HashError> {
    let Some(rest) = stored.strip_prefix('{') else {
        return Ok((Scheme::Crypt, Encoding::Default, stored));
    };
    let Some((name, data)) = rest.split_once('}') else {
        return Err(HashError::Malformed {
            scheme: "?".into(),
            reason: "missing '}' after scheme name".into(),
        });
    };
    let (name, enc) = match name.split_once('.') {
        Some((n, e)) => (
            n,
            Encoding::from_suffix(e).ok_or_else(|| HashError::UnknownScheme(name.to_string()))?,
        ),
        None => (name, Encoding::Default),
    };
    Ok((name.parse()?, enc, data))
}

fn malformed(scheme: Scheme, reason: &str) -> HashError {
    HashError::Malformed {
        scheme: scheme.name().to_string(),
        reason: reason.to_string(),
    }
}

/// Constant-time equality of two byte strings of any length (compares digests).
pub fn ct_eq_any(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.ct_eq(&y).into()
}

/// Check `password` against a stored `{SCHEME}data` value.
///
/// `Ok(false)` is a wrong password (an empty stored value never matches);
/// `Err` means the stored value is unusable (unknown scheme, malformed, or
/// cost parameters beyond yubin's bounds).
pub fn verify(stored: &str, password: &[u8]) -> Result<bool, HashError> {
    let (scheme, enc, data) = split(stored)?;
    if data.is_empty() {
        return Ok(false);
    }
    use digest::Algo;
    let dig = |algo, salted| {
        digest::verify(algo, salted, data, enc, password)
            .ok_or_else(|| malformed(scheme, "bad digest encoding or length"))
    };
    match scheme {
        Scheme::Sha512Crypt
        | Scheme::Sha256Crypt
        | Scheme::BlfCrypt
        | Scheme::Argon2id
        | Scheme::Argon2i
        | Scheme::Crypt => crypt::verify(scheme.name(), data, password),
        Scheme::Plain | Scheme::Clear => {
            let pt = plain_bytes(scheme, enc, data)?;
            Ok(ct_eq_any(&pt, password))
        }
        Scheme::CramMd5 => {
            let ctx = cram_context_bytes(enc, data)?;
            Ok(cram_md5::context(password).ct_eq(&ctx).into())
        }
        Scheme::ScramSha256 => ScramKeys::parse(data)
            .map(|k| k.matches(password))
            .map_err(|r| malformed(scheme, r)),
        Scheme::Pbkdf2 => pbkdf2::verify(data, password).map_err(|r| malformed(scheme, r)),
        Scheme::Ssha512 => dig(Algo::Sha512, true),
        Scheme::Sha512 => dig(Algo::Sha512, false),
        Scheme::Ssha256 => dig(Algo::Sha256, true),
        Scheme::Sha256 => dig(Algo::Sha256, false),
        Scheme::Ssha => dig(Algo::Sha1, true),
        Scheme::Sha1 => dig(Algo::Sha1, false),
    }
}

fn plain_bytes(scheme: Scheme, enc: Encoding, data: &str) -> Result<Vec<u8>, HashError> {
    match enc {
        Encoding::Default => Ok(data.as_bytes().to_vec()),
        _ => encoding::decode(data, enc, None).ok_or_else(|| malformed(scheme, "bad encoding")),
    }
}

fn cram_context_bytes(enc: Encoding, data: &str) -> Result<[u8; 32], HashError> {
    encoding::decode(data, enc, Some(64))
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| malformed(Scheme::CramMd5, "expected 32 bytes of hex"))
}

/// Make a stored value `{SCHEME}data` for `password`.
///
/// A `{PLAIN}`/`{CLEAR}` password that is not UTF-8 or contains `:` or a
/// line break (which passwd-file cannot hold) is written as `{PLAIN.b64}`.
/// `{CRYPT}` writes a SHA512-CRYPT string under the CRYPT label.
pub fn hash(scheme: Scheme, password: &[u8]) -> String {
    use digest::Algo;
    let d = Encoding::Default;
    let data = match scheme {
        Scheme::Sha512Crypt | Scheme::Crypt => crypt::hash_sha512(password),
        Scheme::Sha256Crypt => crypt::hash_sha256(password),
        Scheme::BlfCrypt => crypt::hash_bcrypt(password),
        Scheme::Argon2id => crypt::hash_argon2(password, true),
        Scheme::Argon2i => crypt::hash_argon2(password, false),
        Scheme::Pbkdf2 => pbkdf2::hash(password),
        Scheme::Plain | Scheme::Clear => match std::str::from_utf8(password) {
            Ok(s) if !s.contains([':', '\n', '\r']) && !s.is_empty() => s.to_string(),
            _ => return format!("{{{}.b64}}{}", scheme.name(), encoding::b64(password)),
        },
        Scheme::CramMd5 => encoding::hex(&cram_md5::context(password)),
        Scheme::ScramSha256 => ScramKeys::generate(password).encode(),
        Scheme::Ssha512 => digest::hash(Algo::Sha512, true, d, password),
        Scheme::Sha512 => digest::hash(Algo::Sha512, false, d, password),
        Scheme::Ssha256 => digest::hash(Algo::Sha256, true, d, password),
        Scheme::Sha256 => digest::hash(Algo::Sha256, false, d, password),
        Scheme::Ssha => digest::hash(Algo::Sha1, true, d, password),
        Scheme::Sha1 => digest::hash(Algo::Sha1, false, d, password),
    };
    format!("{{{}}}{}", scheme.name(), data)
}

/// The plaintext of a `{PLAIN}`/`{CLEAR}` value; `None` for other schemes.
pub fn plaintext(stored: &str) -> Option<Vec<u8>> {
    let (scheme, enc, data) = split(stored).ok()?;
    if !scheme.is_plaintext() {
        return None;
    }
    plain_bytes(scheme, enc, data).ok()
}

/// The HMAC-MD5 context for CRAM-MD5: from `{CRAM-MD5}` directly, or
/// computed from a plaintext; `None` for other schemes.
pub fn cram_md5_context(stored: &str) -> Option<[u8; 32]> {
    let (scheme, enc, data) = split(stored).ok()?;
    match scheme {
        Scheme::CramMd5 => cram_context_bytes(enc, data).ok(),
        s if s.is_plaintext() => Some(cram_md5::context(&plain_bytes(s, enc, data).ok()?)),
        _ => None,
    }
}

/// SCRAM-SHA-256 keys: from `{SCRAM-SHA-256}` directly, or derived from a
/// plaintext with `salt` (the server's choice); `None` for other schemes.
pub fn scram_sha256_keys(stored: &str, salt: &[u8]) -> Option<ScramKeys> {
    let (scheme, enc, data) = split(stored).ok()?;
    match scheme {
        Scheme::ScramSha256 => ScramKeys::parse(data).ok(),
        s if s.is_plaintext() => Some(ScramKeys::derive(
            &plain_bytes(s, enc, data).ok()?,
            salt,
            scram::DEFAULT_ITERATIONS,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
