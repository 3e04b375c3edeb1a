//! One module per subcommand.

pub mod postconf;
pub mod postmap;
pub mod trace;
pub mod queue;
