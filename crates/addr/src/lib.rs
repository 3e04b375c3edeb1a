//! Addresses and where they go: RFC 5321 path syntax, Postfix's
//! canonicalisation and address classes, virtual(5) and aliases(5)
//! expansion, the recipient-validation verdict smtpd gives, and routing as
//! trivial-rewrite(8) does it (class transports, relayhost, transport(5),
//! sender-dependent tables). It never opens a socket. One call,
//! [`Resolver::resolve`], returns a [`Resolution`] with the full trace that
//! `yubin trace` prints.

pub mod domains;
pub mod nexthop;
pub mod passwd;
pub mod resolution;
pub mod resolver;
pub mod routing;
pub mod transport;

pub use nexthop::{Host, LmtpNexthop, Nexthop, NexthopError};
pub use resolution::{
    Agent, Class, Delivery, Mailbox, MailboxKind, Resolution, SmtpService, Step, Verdict,
};
pub use resolver::Resolver;
pub use yubin_address::{address, parse_address, AddrError, Address};
