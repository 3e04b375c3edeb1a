//! SASL server mechanisms (RFC 4422), sans-I/O: PLAIN (RFC 4616), LOGIN
//! (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195) and SCRAM-SHA-256
//! (RFC 5802, RFC 7677; no channel binding).
//!
//! # Driving it from SMTP AUTH (RFC 4954)
//!
//! ```text
//! AUTH <mech> [initial-response]
//!   -> Mechanism::from_name(mech)          unknown: 535 5.7.8 Error: authentication failed: Invalid authentication mechanism
//!   -> SaslServer::start_base64(mech, initial_response.map(str::as_bytes), myhostname, &db)
//! loop on the returned Step:
//!   Step::Challenge(bytes)   -> "334 " + encode_challenge(&bytes)   (empty: "334 ")
//!                               read one line (without CRLF), then server.step_base64(line, &db)
//!   Step::Success{authcid}   -> 235 2.7.0 Authentication successful
//!   Step::Failure(reason)    -> reason.smtp_reply():
//!       cancelled ("*")      -> 501 5.7.0 Authentication aborted
//!       anything else        -> 535 5.7.8 Error: authentication failed: authentication failure
//! ```
//!
//! These are Postfix's texts ([`REPLY_SUCCESS`], [`REPLY_FAILED`],
//! [`REPLY_ABORTED`]); the reason's `Display` is for the log only, never the
//! client (it would tell unknown users from wrong passwords). A line longer
//! than [`MAX_RESPONSE`] decoded bytes fails. Postfix advertises
//! `250-AUTH PLAIN LOGIN` (the seed's EHLO); offer CRAM-MD5 and SCRAM-SHA-256
//! only if wanted ([`Mechanism::ALL`] in that order). The unknown-mechanism
//! text is what Postfix's Dovecot SASL client answers (`xsasl_dovecot`).
//!
//! Verifying a password may take tens of milliseconds (SHA512-CRYPT, bcrypt)
//! or more (Argon2): an async caller should run `start`/`step` on a blocking
//! thread. For IMAP AUTHENTICATE (RFC 9051 section 6.2.2) the same steps apply
//! with `+ ` continuations.

mod cram;
mod login;
mod plain;
mod scram;

use std::fmt;
use std::str::FromStr;

use crate::hash::{self, encoding, Scheme};

/// Longest decoded client response accepted (16 KiB).
pub const MAX_RESPONSE: usize = 16 * 1024;

/// Postfix's reply after a successful AUTH.
pub const REPLY_SUCCESS: &str = "235 2.7.0 Authentication successful";
/// Postfix's reply when authentication fails for any reason but a cancel.
pub const REPLY_FAILED: &str = "535 5.7.8 Error: authentication failed: authentication failure";
/// Postfix's reply when the client cancels with `*`.
pub const REPLY_ABORTED: &str = "501 5.7.0 Authentication aborted";

/// Where the SASL mechanisms get stored passwords (`{SCHEME}data`).
pub trait PasswordLookup {
    /// The stored password of `user` (looked up case-insensitively), if any.
    fn password(&self, user: &str) -> Option<String>;
}

impl<T: PasswordLookup + ?Sized> PasswordLookup for &T {
    fn password(&self, user: &str) -> Option<String> {
        (**self).password(user)
    }
}

/// A SASL mechanism yubin serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
    ScramSha256,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::ScramSha256,
    ];

    /// The IANA name, as in `AUTH PLAIN`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// Case-insensitive lookup by name.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Whether the password travels in the clear (Postfix's
    /// `smtpd_tls_auth_only` / `noplaintext` concern).
    pub fn sends_plaintext(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }

    /// Whether a user whose password is stored with `stored` can use this
    /// mechanism: PLAIN and LOGIN work with any scheme; CRAM-MD5 needs
    /// `{PLAIN}`/`{CLEAR}` or `{CRAM-MD5}`; SCRAM-SHA-256 needs
    /// `{PLAIN}`/`{CLEAR}` or `{SCRAM-SHA-256}`.
    pub fn usable_with(self, stored: Scheme) -> bool {
        match self {
            Mechanism::Plain | Mechanism::Login => true,
            Mechanism::CramMd5 => stored.is_plaintext() || stored == Scheme::CramMd5,
            Mechanism::ScramSha256 => stored.is_plaintext() || stored == Scheme::ScramSha256,
        }
    }
}

impl FromStr for Mechanism {
    type Err = ();
    fn from_str(s: &str) -> Result<Mechanism, ()> {
        Mechanism::from_name(s).ok_or(())
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server says next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this (raw; the caller base64-encodes it) and wait for a response.
    Challenge(Vec<u8>),
    /// Authenticated as `authcid` (the user name lower-cased, as the
    /// database matches it).
    Success { authcid: String },
    /// Finished without authenticating.
    Failure(FailureReason),
}

/// Why authentication failed (for the log; the client gets [`REPLY_FAILED`]
/// or, for [`FailureReason::Cancelled`], [`REPLY_ABORTED`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The client sent `*`.
    Cancelled,
    /// The response is not valid base64.
    BadBase64,
    /// The response exceeds [`MAX_RESPONSE`].
    TooLong,
    /// The decoded response does not follow the mechanism's syntax.
    Malformed(&'static str),
    /// PLAIN/SCRAM authorization identity differs from the authentication identity.
    AuthzidMismatch,
    UnknownUser(String),
    WrongPassword(String),
    /// The user's stored scheme cannot serve this mechanism (CRAM-MD5/SCRAM
    /// with a hashed password).
    MechanismUnavailable(String),
    /// SCRAM channel binding (`p=`) was requested.
    ChannelBindingUnsupported,
    /// CRAM-MD5 does not allow an initial response.
    InitialResponseNotAllowed,
    /// The user's stored password is unusable (unknown scheme, malformed).
    StoredPassword(String),
    /// `step` called after the exchange ended.
    AlreadyFinished,
}

impl FailureReason {
    /// Whether this is the client's cancel (`*`).
    pub fn is_cancel(&self) -> bool {
        *self == FailureReason::Cancelled
    }

    /// The SMTP reply Postfix sends for this failure.
    pub fn smtp_reply(&self) -> &'static str {
        if self.is_cancel() {
            REPLY_ABORTED
        } else {
            REPLY_FAILED
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Cancelled => f.write_str("authentication aborted by client"),
            FailureReason::BadBase64 => f.write_str("invalid base64 data in response"),
            FailureReason::TooLong => write!(f, "response longer than {MAX_RESPONSE} bytes"),
            FailureReason::Malformed(why) => write!(f, "malformed response: {why}"),
            FailureReason::AuthzidMismatch => {
                f.write_str("authorization identity differs from authentication identity")
            }
            FailureReason::UnknownUser(u) => write!(f, "unknown user {u}"),
            FailureReason::WrongPassword(u) => write!(f, "password mismatch for {u}"),
            FailureReason::MechanismUnavailable(u) => {
                write!(
                    f,
                    "stored password scheme of {u} cannot serve this mechanism"
                )
            }
            FailureReason::ChannelBindingUnsupported => {
                f.write_str("channel binding not supported")
            }
            FailureReason::InitialResponseNotAllowed => {
                f.write_str("initial response not allowed for this mechanism")
            }
            FailureReason::StoredPassword(e) => write!(f, "stored password unusable: {e}"),
            FailureReason::AlreadyFinished => f.write_str("authentication already finished"),
        }
    }
}

/// Base64 of a challenge, for `334 ` / `+ ` lines.
pub fn encode_challenge(challenge: &[u8]) -> String {
    encoding::b64(challenge)
}

/// Decode one client line: `*` is a cancel, `=` an empty response
/// (RFC 4954 section 4), otherwise strict base64 of at most [`MAX_RESPONSE`]
/// bytes. Surrounding spaces are ignored.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, FailureReason> {
    use base64::Engine;
    let line = line.trim_ascii();
    match line {
        b"*" => return Err(FailureReason::Cancelled),
        b"=" => return Ok(Vec::new()),
        _ => {}
    }
    if line.len() > (MAX_RESPONSE / 3 + 1) * 4 {
        return Err(FailureReason::TooLong);
    }
    let v = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|_| FailureReason::BadBase64)?;
    if v.len() > MAX_RESPONSE {
        return Err(FailureReason::TooLong);
    }
    Ok(v)
}

#[derive(Debug)]
enum State {
    Plain,
    LoginUser,
    LoginPassword {
        user: String,
    },
    Cram {
        challenge: String,
    },
    ScramFirst {
        server_nonce: Option<String>,
        salt: Option<Vec<u8>>,
    },
    ScramFinal(Box<scram::Pending>),
    ScramVerified {
        authcid: String,
    },
    Done,
}

/// One authentication exchange.
#[derive(Debug)]
pub struct SaslServer {
    mech: Mechanism,
    state: State,
}

impl SaslServer {
    /// Begin `mech`. `initial_response` is the decoded initial response
    /// (`Some(b"")` for `=`); `hostname` goes into the CRAM-MD5 challenge;
    /// `db` is needed when the initial response completes the exchange (PLAIN).
    pub fn start(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        hostname: &str,
        db: &dyn PasswordLookup,
    ) -> (SaslServer, Step) {
        let state = match mech {
            Mechanism::Plain => State::Plain,
            Mechanism::Login => State::LoginUser,
            Mechanism::CramMd5 => State::Cram {
                challenge: cram::challenge(hostname),
            },
            Mechanism::ScramSha256 => State::ScramFirst {
                server_nonce: None,
                salt: None,
            },
        };
        Self::begin(mech, state, initial_response, db)
    }

    /// [`SaslServer::start`] with the initial response as sent on the wire
    /// (base64, `=` for empty, `*` to cancel).
    pub fn start_base64(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        hostname: &str,
        db: &dyn PasswordLookup,
    ) -> (SaslServer, Step) {
        match initial_response.map(decode_response) {
            Some(Err(reason)) => (
                SaslServer {
                    mech,
                    state: State::Done,
                },
                Step::Failure(reason),
            ),
            Some(Ok(ir)) => Self::start(mech, Some(&ir), hostname, db),
            None => Self::start(mech, None, hostname, db),
        }
    }

    fn begin(
        mech: Mechanism,
        state: State,
        initial_response: Option<&[u8]>,
        db: &dyn PasswordLookup,
    ) -> (SaslServer, Step) {
        let mut s = SaslServer { mech, state };
        let step = match (&s.state, initial_response) {
            (State::Cram { .. }, Some(_)) => s.fail(FailureReason::InitialResponseNotAllowed),
            (State::Cram { challenge }, None) => Step::Challenge(challenge.as_bytes().to_vec()),
            // RFC 4422 section 5: an empty initial response is a response;
            // for LOGIN the user name.
            (_, Some(ir)) => s.step(ir, db),
            (State::LoginUser, None) => Step::Challenge(b"Username:".to_vec()),
            (_, None) => Step::Challenge(Vec::new()),
        };
        (s, step)
    }

    /// The mechanism being run.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// Feed the client's decoded response.
    pub fn step(&mut self, response: &[u8], db: &dyn PasswordLookup) -> Step {
        if response.len() > MAX_RESPONSE {
            return self.fail(FailureReason::TooLong);
        }
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Done => Step::Failure(FailureReason::AlreadyFinished),
            State::Plain => plain::step(response, db),
            State::LoginUser => match login::user(response) {
                Ok(user) => {
                    self.state = State::LoginPassword { user };
                    Step::Challenge(b"Password:".to_vec())
                }
                Err(r) => Step::Failure(r),
            },
            State::LoginPassword { user } => check_password(&user, response, db),
            State::Cram { challenge } => cram::step(&challenge, response, db),
            State::ScramFirst { server_nonce, salt } => {
                match scram::first(response, db, server_nonce, salt) {
                    Ok((pending, server_first)) => {
                        self.state = State::ScramFinal(Box::new(pending));
                        Step::Challenge(server_first.into_bytes())
                    }
                    Err(r) => Step::Failure(r),
                }
            }
            State::ScramFinal(pending) => match scram::last(&pending, response) {
                Ok(server_final) => {
                    self.state = State::ScramVerified {
                        authcid: pending.authcid.clone(),
                    };
                    Step::Challenge(server_final.into_bytes())
                }
                Err(r) => Step::Failure(r),
            },
            State::ScramVerified { authcid } => {
                if response.is_empty() {
                    Step::Success { authcid }
                } else {
                    Step::Failure(FailureReason::Malformed("expected an empty response"))
                }
            }
        }
    }

    /// [`SaslServer::step`] with the line as sent on the wire (base64 or `*`).
    pub fn step_base64(&mut self, line: &[u8], db: &dyn PasswordLookup) -> Step {
        if matches!(self.state, State::Done) {
            return Step::Failure(FailureReason::AlreadyFinished);
        }
        match decode_response(line) {
            Ok(r) => self.step(&r, db),
            Err(reason) => self.fail(reason),
        }
    }

    fn fail(&mut self, reason: FailureReason) -> Step {
        self.state = State::Done;
        Step::Failure(reason)
    }

    #[cfg(test)]
    pub(crate) fn start_cram_with(challenge: &str) -> SaslServer {
        SaslServer {
            mech: Mechanism::CramMd5,
            state: State::Cram {
                challenge: challenge.to_string(),
            },
        }
    }

    #[cfg(test)]
    pub(crate) fn start_scram_with(server_nonce: &str, salt: &[u8]) -> SaslServer {
        SaslServer {
            mech: Mechanism::ScramSha256,
            state: State::ScramFirst {
                server_nonce: Some(server_nonce.to_string()),
                salt: Some(salt.to_vec()),
            },
        }
    }
}

/// Stored value checked for unknown users, so that they take as long as
/// known ones (SHA512-CRYPT of a random password, computed once).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = [0u8; 16];
        crate::random::fill(&mut pw);
        hash::hash(Scheme::Sha512Crypt, &pw)
    })
}

/// Verify `user`/`password` against the database (PLAIN and LOGIN).
fn check_password(user: &str, password: &[u8], db: &dyn PasswordLookup) -> Step {
    let authcid = user.to_lowercase();
    let Some(stored) = db.password(user) else {
        let _ = hash::verify(dummy_hash(), password);
        return Step::Failure(FailureReason::UnknownUser(authcid));
    };
    match hash::verify(&stored, password) {
        Ok(true) => Step::Success { authcid },
        Ok(false) => Step::Failure(FailureReason::WrongPassword(authcid)),
        Err(e) => Step::Failure(FailureReason::StoredPassword(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
