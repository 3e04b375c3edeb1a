//! Plain and salted digests: Dovecot `SHA`/`SHA1`, `SSHA`, `SHA256`,
//! `SSHA256`, `SHA512`, `SSHA512` (doc.dovecot.org "Password Schemes").
//! Salted forms store `digest(password || salt) || salt`; base64 by default.

use sha2::Digest;
use subtle::ConstantTimeEq;

use super::encoding::{self, Encoding};

/// Which digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    fn len(self) -> usize {
        match self {
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
            Algo::Sha512 => 64,
        }
    }

    fn digest(self, a: &[u8], b: &[u8]) -> Vec<u8> {
        fn run<D: Digest>(a: &[u8], b: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update(a);
            d.update(b);
            d.finalize().to_vec()
        }
        match self {
            Algo::Sha1 => run::<sha1::Sha1>(a, b),
            Algo::Sha256 => run::<sha2::Sha256>(a, b),
            Algo::Sha512 => run::<sha2::Sha512>(a, b),
        }
    }
}

/// `None` when the stored value does not decode or has the wrong length.
pub fn verify(algo: Algo, salted: bool, stored: &str, enc: Encoding, pw: &[u8]) -> Option<bool> {
    let raw = encoding::decode(stored, enc, (!salted).then_some(algo.len() * 2))?;
    let (want, salt) = if salted {
        if raw.len() < algo.len() {
            return None;
        }
        raw.split_at(algo.len())
    } else {
        if raw.len() != algo.len() {
            return None;
        }
        (&raw[..], &[][..])
    };
    Some(algo.digest(pw, salt).ct_eq(want).into())
}

/// Encoded digest (base64 unless `enc` is Hex); salted forms use 8 random bytes,
/// as Dovecot does.
pub fn hash(algo: Algo, salted: bool, enc: Encoding, pw: &[u8]) -> String {
    let mut salt = [0u8; 8];
    let salt: &[u8] = if salted {
        crate::random::fill(&mut salt);
        &salt
    } else {
        &[]
    };
    let mut raw = algo.digest(pw, salt);
    raw.extend_from_slice(salt);
    match enc {
        Encoding::Hex => encoding::hex(&raw),
        _ => encoding::b64(&raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `doveadm pw -s SCHEME -p pencil`, Dovecot 2.3.19.1.
    #[test]
    fn doveadm_vectors() {
        let d = Encoding::Default;
        let ssha = "VOuFAFe2olKkhsygRFgnisSMhvKUF5FZCfrWhf66xnbfnQmng9wnK88xsHy49clv3B1ogznlv6EzM/qdvp23r7cBQmQ=";
        assert_eq!(verify(Algo::Sha512, true, ssha, d, b"pencil"), Some(true));
        assert_eq!(verify(Algo::Sha512, true, ssha, d, b"pencik"), Some(false));
        let sha = "Gd8Bqrgo+NUINrp1cJcTrtInM1344YZDkYXAbJF6Kn03cat24wfPo7a4nvGmaC1mgd3xGISHDl3hPnk/uVXu6w==";
        assert_eq!(verify(Algo::Sha512, false, sha, d, b"pencil"), Some(true));
        let hex = "19df01aab828f8d50836ba75709713aed227335df8e186439185c06c917a2a7d3771ab76e307cfa3b6b89ef1a6682d6681ddf11884870e5de13e793fb955eeeb";
        assert_eq!(
            verify(Algo::Sha512, false, hex, Encoding::Hex, b"pencil"),
            Some(true)
        );
        assert_eq!(verify(Algo::Sha512, false, hex, d, b"pencil"), Some(true));
        let shex = "a4725a487487f5ea938fbf0214c20045da98f250ad103c980d9a31603bd44aada71a4046fe716cbd750d35b9b002d75655e055d8e97834ea82b15e93c9ab006fcbc740a1";
        assert_eq!(
            verify(Algo::Sha512, true, shex, Encoding::Hex, b"pencil"),
            Some(true)
        );
    }

    #[test]
    fn roundtrip_and_garbage() {
        for algo in [Algo::Sha1, Algo::Sha256, Algo::Sha512] {
            for salted in [false, true] {
                let h = hash(algo, salted, Encoding::Default, b"pw");
                assert_eq!(
                    verify(algo, salted, &h, Encoding::Default, b"pw"),
                    Some(true)
                );
            }
        }
        assert_eq!(
            verify(Algo::Sha512, false, "abc", Encoding::Default, b"pw"),
            None
        );
        assert_eq!(
            verify(Algo::Sha512, true, "!!", Encoding::Default, b"pw"),
            None
        );
    }
}
