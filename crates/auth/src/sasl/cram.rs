//! CRAM-MD5 (RFC 2195): the server sends `<random.timestamp@hostname>`, the
//! client answers `user SP hex(HMAC-MD5(password, challenge))`. Needs a
//! `{PLAIN}`/`{CLEAR}` or `{CRAM-MD5}` stored password.

use subtle::ConstantTimeEq;

use super::{FailureReason, PasswordLookup, Step};
use crate::hash::{self, cram_md5, encoding};

/// A fresh challenge in RFC 2195's msg-id form.
pub fn challenge(hostname: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let host = if hostname.is_empty() {
        "localhost"
    } else {
        hostname
    };
    format!("<{}.{}@{}>", crate::random::u64(), now, host)
}

pub fn step(challenge: &str, response: &[u8], db: &dyn PasswordLookup) -> Step {
    let fail = |r| Step::Failure(r);
    let Ok(text) = std::str::from_utf8(response) else {
        return fail(FailureReason::Malformed("response is not UTF-8"));
    };
    let Some((user, digest)) = text.rsplit_once(' ') else {
        return fail(FailureReason::Malformed("expected user SP digest"));
    };
    if user.is_empty() {
        return fail(FailureReason::Malformed("empty user name"));
    }
    let Some(digest) = encoding::unhex(digest).filter(|d| d.len() == 16) else {
        return fail(FailureReason::Malformed("digest is not 32 hex digits"));
    };
    let authcid = user.to_lowercase();
    let Some(stored) = db.password(user) else {
        return fail(FailureReason::UnknownUser(authcid));
    };
    let Some(ctx) = hash::cram_md5_context(&stored) else {
        return fail(FailureReason::MechanismUnavailable(authcid));
    };
    let mac = cram_md5::hmac_from_context(&ctx, challenge.as_bytes());
    if bool::from(mac.ct_eq(&digest[..])) {
        Step::Success { authcid }
    } else {
        fail(FailureReason::WrongPassword(authcid))
    }
}
