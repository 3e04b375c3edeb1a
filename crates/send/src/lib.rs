//! `yubin send`: a swaks-compatible SMTP test client, and the small blocking
//! submission client other parts of yubin (guard reports, notices) use to hand
//! a finished message to an SMTP server.

pub mod args;
pub mod auth;
pub mod certname;
pub mod cli;
pub mod config;
pub mod conn;
pub mod expect;
pub mod load;
pub mod message;
/// The reply parser is the smtp crate's, shared with the outbound client.
pub use yubin_smtp::reply;
pub mod session;
pub mod submit;
pub mod sysinfo;
pub mod tls;
pub mod transcript;
