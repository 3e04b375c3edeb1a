//! `yubin guard`: a DenyHosts-compatible brute-force blocker.
//!
//! Pipeline: `follow` reads new log bytes → `parse` classifies each line →
//! `engine` resolves per-connection state into hits → `decide` counts hits per
//! host against DenyHosts' thresholds → `block` writes hosts.deny / nftables →
//! `report` mails what was added. `cli` wires it to the command line.

pub mod allowed;
pub mod block;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod engine;
pub mod follow;
pub mod journal;
pub mod parse;
pub mod report;
pub mod run;
pub mod state;
pub mod sync;
pub mod timeutil;

use std::ffi::OsString;
use std::path::Path;

/// Entry point used by the `yubin` binary: `args` are the words after `guard`.
/// Returns the process exit code.
pub fn main(config_dir: &Path, args: Vec<OsString>) -> i32 {
    cli::run(config_dir, args)
}
