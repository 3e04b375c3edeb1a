//! LOGIN (draft-murchison-sasl-login-00): the server asks `Username:` then
//! `Password:`; each response is the bare value. A user name sent as the
//! initial response skips the first question.

use super::FailureReason;

/// Validate the user name response.
pub fn user(response: &[u8]) -> Result<String, FailureReason> {
    let user = std::str::from_utf8(response)
        .map_err(|_| FailureReason::Malformed("user name is not UTF-8"))?;
    if user.is_empty() || user.contains('\0') {
        return Err(FailureReason::Malformed("empty user name"));
    }
    Ok(user.to_string())
}
