//! The mail address type every other crate shares: RFC 5321 path syntax
//! and the internal/external forms. It must not look anything up: no
//! configuration, tables or DNS here, so that the protocol cores (`smtp`,
//! `imap`) can depend on it and on nothing else of the server.

pub mod address;

pub use address::{parse_address, AddrError, Address, MAX_PATH};
