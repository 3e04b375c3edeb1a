//! The swaks-compatible command line of `yubin send`.

use std::ffi::OsString;
use std::path::Path;

/// Entry point used by the `yubin` binary: `args` are the words after `send`.
/// Returns the process exit code (swaks' codes).
pub fn main(config_dir: &Path, args: Vec<OsString>) -> i32 {
    let _ = (config_dir, args);
    eprintln!("yubin send: under construction");
    2
}
