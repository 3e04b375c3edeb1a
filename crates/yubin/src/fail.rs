//! How commands report failure: a message on stderr prefixed with the
//! program name (as Postfix's tools do: `postmap: fatal: ...`) and exit 2.

use std::fmt::Display;

/// Exit code for configuration and usage errors (issue: "exit code 2").
pub const EXIT_CONFIG: i32 = 2;

pub fn fatal(program: &str, msg: impl Display) -> i32 {
    eprintln!("{program}: fatal: {msg}");
    EXIT_CONFIG
}

pub fn warn(program: &str, msg: impl Display) {
    eprintln!("{program}: warning: {msg}");
}
