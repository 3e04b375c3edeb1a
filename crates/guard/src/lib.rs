//! `yubin guard`: a DenyHosts-compatible brute-force blocker.
//!
//! Pipeline: `follow` reads new log bytes → `parse` classifies each line →
//! `engine` resolves per-connection state into hits → `decide` counts hits per
//! host against DenyHosts' thresholds → `block` writes hosts.deny / nftables →
//! `report` mails what was added. `cli` wires it to the command line.

pub mod engine;
pub mod parse;

use std::ffi::OsString;
use std::path::Path;

/// Entry point used by the `yubin` binary: `args` are the words after `guard`.
/// Returns the process exit code.
pub fn main(config_dir: &Path, args: Vec<OsString>) -> i32 {
    let _ = (config_dir, args);
    eprintln!("yubin guard: under construction");
    2
}
