//! PLAIN (RFC 4616 section 2): `[authzid] NUL authcid NUL passwd`.
//! The authorization identity must be empty or the authentication identity
//! itself (yubin has no proxy authorization).

use super::{check_password, FailureReason, PasswordLookup, Step};

pub fn step(msg: &[u8], db: &dyn PasswordLookup) -> Step {
    let mut parts = msg.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd)) = (parts.next(), parts.next(), parts.next())
    else {
        return Step::Failure(FailureReason::Malformed(
            "expected authzid NUL authcid NUL passwd",
        ));
    };
    if passwd.contains(&0) {
        return Step::Failure(FailureReason::Malformed("NUL in password"));
    }
    let (Ok(authzid), Ok(authcid)) = (std::str::from_utf8(authzid), std::str::from_utf8(authcid))
    else {
        return Step::Failure(FailureReason::Malformed("identity is not UTF-8"));
    };
    if authcid.is_empty() || passwd.is_empty() {
        return Step::Failure(FailureReason::Malformed("empty user name or password"));
    }
    if !authzid.is_empty() && authzid.to_lowercase() != authcid.to_lowercase() {
        return Step::Failure(FailureReason::AuthzidMismatch);
    }
    check_password(authcid, passwd, db)
}
