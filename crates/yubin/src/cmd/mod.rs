//! One module per subcommand.

pub mod dkim;
pub mod links;
pub mod log;
pub mod passwd;
pub mod postconf;
pub mod postmap;
pub mod queue;
pub mod sendmail;
pub mod trace;
