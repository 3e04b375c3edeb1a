//! Addresses and where they go: RFC 5321 path syntax, Postfix's
//! canonicalisation and address classes, virtual(5) and aliases(5)
//! expansion, and the recipient-validation verdict smtpd gives. One call,
//! [`Resolver::resolve`], returns a [`Resolution`] with the full trace that
//! `yubin trace` prints.

pub mod domains;
pub mod passwd;
pub mod resolution;
pub mod resolver;

pub use resolution::{Agent, Class, Delivery, Mailbox, MailboxKind, Resolution, Step, Verdict};
pub use resolver::Resolver;
pub use yubin_address::{address, parse_address, AddrError, Address};
