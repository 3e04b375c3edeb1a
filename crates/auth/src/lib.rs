//! yubin's authentication library: the user database (Dovecot's passwd-file
//! format), password schemes (Dovecot's `{SCHEME}` values) and SASL server
//! mechanisms (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256), shared by SMTP AUTH
//! and IMAP.
//!
//! Sans-I/O: the SASL state machine takes and returns bytes; only
//! [`passwd_file`] touches the file system.

pub mod hash;
pub mod random;

pub use hash::{HashError, Scheme};
