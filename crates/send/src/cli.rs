//! The swaks-compatible command line of `yubin send`.

use std::ffi::OsString;
use std::path::Path;

use crate::config::{self, Request};
use crate::session::{code, Session};
use crate::transcript::Transcript;

/// Entry point used by the `yubin` binary: `args` are the words after `send`.
/// Returns the process exit code (swaks' codes).
pub fn main(config_dir: &Path, args: Vec<OsString>) -> i32 {
    let words: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cfg = match config::from_args(&words) {
        Ok(Request::Help) => {
            print!("{}", crate::args::help());
            return code::OK;
        }
        Ok(Request::Version) => {
            println!(
                "yubin send version {} (swaks-compatible)",
                env!("CARGO_PKG_VERSION")
            );
            return code::OK;
        }
        Ok(Request::Run(cfg)) => cfg,
        Err(why) => {
            eprintln!("*** {why}");
            return code::OPTIONS;
        }
    };
    if let Some(load) = cfg.load {
        return crate::load::run(&cfg, load);
    }
    let data = crate::message::build(&cfg.message);
    if cfg.dump_mail {
        // swaks prints the message less its final "\n." (and no newline).
        print!("{}", data.strip_suffix("\n.").unwrap_or(&data));
        return code::OK;
    }
    let mut t = Transcript::stdio(cfg.filter.clone());
    let mut session = Session::new(&cfg, &mut t);
    let rc = session.run(&data);
    let dot = session.dot_reply.take();
    let accepted = std::mem::take(&mut session.accepted);
    drop(session);
    match (&cfg.expect, rc, dot) {
        (Some(expect), code::OK, Some(reply)) => {
            crate::expect::run(config_dir, expect, &reply, &accepted, &mut t)
        }
        (Some(_), code::OK, None) => {
            t.error("--expect-delivery: the session ended before a message was queued");
            crate::expect::code::NO_QUEUE_ID
        }
        _ => rc,
    }
}
