//! Postfix-compatible configuration: `main.cf` (postconf(5)) and `master.cf`
//! (master(5)), `$name` expansion, typed accessors and Postfix's defaults for
//! every parameter yubin implements.

pub mod config;
pub mod error;
pub mod expand;
pub mod maincf;
pub mod mastercf;
pub mod params;
pub mod values;

pub use config::Config;
pub use error::ConfError;
pub use mastercf::{MasterCf, Service};
