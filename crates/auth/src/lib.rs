//! yubin's authentication library: the user database (Dovecot's passwd-file
//! format), password schemes (Dovecot's `{SCHEME}` values) and SASL server
//! mechanisms (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256), shared by SMTP AUTH
//! and IMAP; and the client side of Dovecot's authentication protocol
//! (`smtpd_sasl_type = dovecot`).
//!
//! Sans-I/O: the SASL state machine takes and returns bytes; only
//! [`passwd_file`] touches the file system.

pub mod dovecot;
pub mod hash;
pub mod passwd_file;
pub mod random;
pub mod sasl;

pub use hash::{HashError, Scheme};
pub use passwd_file::{DbError, SharedUserDb, User, UserDb};
pub use sasl::{FailureReason, Mechanism, PasswordLookup, SaslServer, Step};
