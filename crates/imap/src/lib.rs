//! yubin-imap: the IMAP4rev1 (RFC 3501) server session as a state machine:
//! bytes in, actions out (responses to write, credentials to verify, store
//! requests to answer, TLS to start). It must do no I/O, read no clock and
//! touch no file: the driver in `yubin serve` does, and tests and the fuzzer
//! drive it with byte strings.
//!
//! Commands are parsed with `imap-codec`; responses are written here, since
//! the FETCH data a server sends (raw sections, BODYSTRUCTURE from a parsed
//! message) is simpler to write straight than to build as imap-types values.

pub mod compress;
mod esearch;
mod framing;
mod listext;
pub mod memory;
mod mime;
mod names;
mod search;
mod session;
pub mod store;
mod wire;

pub use names::{validate as validate_mailbox_name, BadName};
pub use session::{Action, AuthMethod, AuthOutcome, Config, Credentials, Session};
