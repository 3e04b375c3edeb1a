//! SCRAM-SHA-256 (RFC 5802 section 5 and 7, RFC 7677) without channel
//! binding: the gs2 header must be `n,` or `y,` (never `p=`), optionally
//! with `a=authzid` equal to the user. User names are compared as sent after
//! `=2C`/`=3D` unescaping; no SASLprep is applied.
//!
//! With a `{PLAIN}`/`{CLEAR}` stored password the keys are derived on the fly
//! with a random salt and 4096 iterations; `{SCRAM-SHA-256}` values are used
//! as stored. For unknown users the exchange continues with made-up keys and
//! fails at the proof, so the first step does not reveal who exists.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{FailureReason, PasswordLookup};
use crate::hash::{self, encoding, scram::hmac, ScramKeys};

/// State between server-first and client-final.
#[derive(Debug)]
pub struct Pending {
    pub authcid: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    keys: ScramKeys,
    known: bool,
}

fn malformed(why: &'static str) -> FailureReason {
    FailureReason::Malformed(why)
}

/// RFC 5802 section 5.1 saslname: `=2C` is `,` and `=3D` is `=`.
pub(crate) fn unescape(s: &str) -> Result<String, FailureReason> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest
            .get(i..i + 3)
            .ok_or(malformed("bad = escape in name"))?;
        out.push(match esc {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(malformed("bad = escape in name")),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Handle client-first-message; returns the pending state and server-first-message.
pub fn first(
    msg: &[u8],
    db: &dyn PasswordLookup,
    fixed_nonce: Option<String>,
    fixed_salt: Option<Vec<u8>>,
) -> Result<(Pending, String), FailureReason> {
    let msg = std::str::from_utf8(msg).map_err(|_| malformed("not UTF-8"))?;
    let mut it = msg.splitn(3, ',');
    let (Some(cbind), Some(authzid), Some(bare)) = (it.next(), it.next(), it.next()) else {
        return Err(malformed("expected gs2 header"));
    };
    match cbind {
        "n" | "y" => {}
        c if c.starts_with("p=") => return Err(FailureReason::ChannelBindingUnsupported),
        _ => return Err(malformed("bad channel binding flag")),
    }
    let authzid = match authzid {
        "" => None,
        a => Some(unescape(
            a.strip_prefix("a=").ok_or(malformed("bad authzid"))?,
        )?),
    };
    let gs2_header = format!("{cbind},{},", msg.split(',').nth(1).unwrap_or(""));
    if bare.starts_with("m=") {
        return Err(malformed("mandatory extension not supported"));
    }
    let mut attrs = bare.split(',');
    let user = attrs
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or(malformed("expected n=username"))?;
    let user = unescape(user)?;
    let cnonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| valid_nonce(n))
        .ok_or(malformed("expected r=nonce"))?;
    if user.is_empty() {
        return Err(malformed("empty user name"));
    }
    if let Some(a) = authzid {
        if a.to_lowercase() != user.to_lowercase() {
            return Err(FailureReason::AuthzidMismatch);
        }
    }
    let authcid = user.to_lowercase();
    let salt = fixed_salt.unwrap_or_else(|| {
        let mut s = vec![0u8; 16];
        crate::random::fill(&mut s);
        s
    });
    let (keys, known) = match db.password(&user) {
        Some(stored) => match hash::scram_sha256_keys(&stored, &salt) {
            Some(k) => (k, true),
            None => return Err(FailureReason::MechanismUnavailable(authcid)),
        },
        None => {
            let mut k = [0u8; 64];
            crate::random::fill(&mut k);
            let keys = ScramKeys {
                iterations: hash::scram::DEFAULT_ITERATIONS,
                salt: salt.clone(),
                stored_key: k[..32].try_into().unwrap_or_default(),
                server_key: k[32..].try_into().unwrap_or_default(),
            };
            (keys, false)
        }
    };
    let snonce = fixed_nonce.unwrap_or_else(|| {
        let mut n = [0u8; 18];
        crate::random::fill(&mut n);
        encoding::b64(&n)
    });
    let nonce = format!("{cnonce}{snonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        encoding::b64(&keys.salt),
        keys.iterations
    );
    Ok((
        Pending {
            authcid,
            gs2_header,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            keys,
            known,
        },
        server_first,
    ))
}

/// Handle client-final-message; returns server-final-message (`v=...`).
pub fn last(p: &Pending, msg: &[u8]) -> Result<String, FailureReason> {
    let msg = std::str::from_utf8(msg).map_err(|_| malformed("not UTF-8"))?;
    let (without_proof, proof) = msg
        .rsplit_once(",p=")
        .ok_or(malformed("expected p=proof last"))?;
    let mut attrs = without_proof.split(',');
    let cbind = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(malformed("expected c=channel binding"))?;
    let cbind = encoding::unb64(cbind).ok_or(FailureReason::BadBase64)?;
    if cbind != p.gs2_header.as_bytes() {
        return Err(malformed("channel binding does not match gs2 header"));
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(malformed("expected r=nonce"))?;
    if !bool::from(nonce.as_bytes().ct_eq(p.nonce.as_bytes())) {
        return Err(malformed("nonce mismatch"));
    }
    let proof = encoding::unb64(proof)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or(malformed("proof is not 32 bytes of base64"))?;
    let auth_message = format!(
        "{},{},{}",
        p.client_first_bare, p.server_first, without_proof
    );
    let client_signature = hmac(&p.keys.stored_key, auth_message.as_bytes());
    let mut client_key = [0u8; 32];
    for i in 0..32 {
        client_key[i] = proof[i] ^ client_signature[i];
    }
    let stored: [u8; 32] = Sha256::digest(client_key).into();
    let ok: bool = stored.ct_eq(&p.keys.stored_key).into();
    if !p.known {
        return Err(FailureReason::UnknownUser(p.authcid.clone()));
    }
    if !ok {
        return Err(FailureReason::WrongPassword(p.authcid.clone()));
    }
    let server_signature = hmac(&p.keys.server_key, auth_message.as_bytes());
    Ok(format!("v={}", encoding::b64(&server_signature)))
}
