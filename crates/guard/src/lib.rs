//! `yubin guard`: a DenyHosts-compatible brute-force blocker.

use std::ffi::OsString;
use std::path::Path;

/// Entry point used by the `yubin` binary: `args` are the words after `guard`.
/// Returns the process exit code.
pub fn main(config_dir: &Path, args: Vec<OsString>) -> i32 {
    let _ = (config_dir, args);
    eprintln!("yubin guard: under construction");
    2
}
