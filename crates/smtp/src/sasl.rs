//! SMTP AUTH (RFC 4954) as the session sees it: a mechanism list and an
//! exchange that turns client responses into challenges, success or
//! failure. The server plugs in the user database (the `auth` crate); the
//! session only frames the exchange in `334`/`235`/`535` replies.

/// One step of a SASL exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send `334 base64(challenge)` and read another response.
    Challenge(Vec<u8>),
    /// Authenticated as this user.
    Success(String),
    /// Refused; the text goes to the log (`SASL PLAIN authentication failed: TEXT`).
    Failure(String),
    /// The authentication server could not decide (Dovecot down, its user
    /// database down): `454 4.7.0 Temporary authentication failure: TEXT`
    /// (RFC 4954 section 6; Postfix's XSASL_AUTH_TEMP).
    TempFailure(String),
}

/// Where an AUTH comes from, for authentication servers that want it
/// (Dovecot's `rip=`, `lip=` and `secured`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslContext {
    pub remote: std::net::IpAddr,
    pub local: Option<std::net::IpAddr>,
    /// The session runs over TLS.
    pub tls: bool,
}

/// An exchange in progress.
pub trait SaslExchange: Send + Sync {
    fn step(&mut self, response: &[u8]) -> SaslStep;
}

/// The server's SASL provider.
pub trait Authenticator: Send + Sync {
    /// Mechanism names to advertise without TLS, e.g. `["PLAIN", "LOGIN"]`.
    fn mechanisms(&self) -> Vec<String>;
    /// Mechanism names to advertise after STARTTLS
    /// (smtpd_sasl_tls_security_options); by default the same.
    fn mechanisms_tls(&self) -> Vec<String> {
        self.mechanisms()
    }
    /// The lists come from another server and may change (Dovecot): the
    /// daemon asks for them per session, after [`Authenticator::refresh`].
    fn live(&self) -> bool {
        false
    }
    /// Where blocking is allowed: learn the mechanisms again if unknown.
    fn refresh(&self) {}
    /// Starts `mechanism` with an optional initial response; `None` when the
    /// mechanism is not offered.
    fn start(
        &self,
        mechanism: &str,
        initial: Option<&[u8]>,
        context: &SaslContext,
    ) -> Option<(Box<dyn SaslExchange>, SaslStep)>;
}

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Base64 (RFC 4648) encoding for `334` challenges.
pub fn b64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Strict base64 decoding of a client response; `None` on any error.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in [&b""[..], b"f", b"fo", b"foo", b"\0user\0pass", b"Password:"] {
            assert_eq!(b64_decode(&b64_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(b64_encode(b"Password:"), "UGFzc3dvcmQ6");
        assert_eq!(
            b64_decode("AHVzZXIAcGFzcw=="),
            Some(b"\0user\0pass".to_vec())
        );
        assert!(b64_decode("abc").is_none());
        assert!(b64_decode("a=bc").is_none());
        assert!(b64_decode("!!!!").is_none());
    }
}
