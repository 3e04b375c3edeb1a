//! The SMTP server protocol (RFC 5321) as a sans-I/O state machine: bytes in,
//! replies and events out. Nothing here touches a socket, a clock or a file,
//! so tests and fuzzers drive it with byte strings.
//!
//! Command parsing is our own rather than a general SMTP parser because
//! every reply, including each syntax error, must be the one Postfix 3.7's
//! smtpd gives (recorded in tests/dialogs/*.expected).

pub mod client;
pub mod command;
pub mod envelope;
pub mod params;
pub mod reply;
pub mod sasl;
pub mod session;
pub mod stats;

pub use envelope::{Envelope, Recipient};
pub use reply::{parse_reply, Enhanced, Reply, ReplyError};
pub use sasl::{Authenticator, SaslContext, SaslExchange, SaslStep};
pub use session::{
    Action, Answer, AuthRequest, ClientInfo, HeloQuery, MailQuery, Notice, PolicyVerdict,
    RecipientQuery, Request, Session, SessionConfig,
};
