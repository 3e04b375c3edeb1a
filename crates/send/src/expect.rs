//! `--expect-delivery`: after the server said `250 ... queued as ID`, follow
//! the yubin server's mail log (Postfix's format) until ID is delivered,
//! bounced or deferred, and say where the message landed or why not.
//!
//! Contracts with the rest of yubin (see docs/send.md):
//! - the log's path: `yubin -c DIR postconf -h maillog_file` (or `--maillog`);
//! - delivery lines: `... postfix/virtual[123]: ID: to=<a@b>, orig_to=<c@d>,
//!   relay=virtual, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (...)`;
//! - mailboxes: `yubin -c DIR trace --json ADDRESS` prints
//!   `{"deliveries":[{"recipient":..,"transport":..,"mailbox":".../"}]}`; a
//!   mailbox ending in `/` is a Maildir whose delivered file is
//!   `new/{secs}.{ID}_{n}.{host}` (or in `cur/` with a `:2,` suffix).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::config::Expect;
use crate::reply::{queue_id, Reply};
use crate::transcript::Transcript;

/// Exit codes beyond swaks' (which end at 36).
pub mod code {
    /// The message bounced, was deferred or expired.
    pub const NOT_DELIVERED: i32 = 40;
    /// Nothing about the queue id was logged in time.
    pub const TIMEOUT: i32 = 41;
    /// The server's reply named no queue id.
    pub const NO_QUEUE_ID: i32 = 42;
    /// The log could not be found or read.
    pub const LOG: i32 = 43;
}

/// Longest log line considered; longer ones are skipped.
const MAX_LOG_LINE: usize = 64 * 1024;
/// How far back in an existing log to start looking.
const MAX_BACKLOG: u64 = 16 * 1024 * 1024;

/// One delivery attempt for the queue id, from one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub to: String,
    pub orig_to: Option<String>,
    pub relay: String,
    /// `sent`, `bounced`, `deferred`, `expired`...
    pub status: String,
    /// The parenthesised text after the status.
    pub detail: String,
}

/// What one log line says about `id`, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    Delivery(Outcome),
    /// `ID: removed`: the queue manager is done with the message.
    Removed,
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = if text.starts_with(name) {
        0
    } else {
        text.find(&format!(", {name}"))? + 2
    };
    let rest = &text[start + name.len()..];
    if let Some(inner) = rest.strip_prefix('<') {
        return inner.split_once('>').map(|(v, _)| v);
    }
    Some(rest.split(',').next().unwrap_or(rest).trim())
}

/// Parses a Postfix log line for queue id `id`.
pub fn parse_line(line: &str, id: &str) -> Option<LogEvent> {
    let marker = format!(": {id}: ");
    let at = line.find(&marker)?;
    let rest = &line[at + marker.len()..];
    if rest.trim_end() == "removed" {
        return Some(LogEvent::Removed);
    }
    let status_at = rest.find("status=")?;
    let status_text = &rest[status_at + 7..];
    let (status, detail) = match status_text.split_once(' ') {
        Some((s, d)) => (s, d.trim()),
        None => (status_text.trim(), ""),
    };
    let detail = detail
        .strip_prefix('(')
        .and_then(|d| d.strip_suffix(')'))
        .unwrap_or(detail);
    Some(LogEvent::Delivery(Outcome {
        to: field(rest, "to=")?.to_string(),
        orig_to: field(rest, "orig_to=").map(str::to_string),
        relay: field(rest, "relay=").unwrap_or("").to_string(),
        status: status.to_string(),
        detail: detail.to_string(),
    }))
}

/// Reads lines appended to a log file since the last call.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LogTail {
    fn open(path: &Path) -> std::io::Result<LogTail> {
        let len = std::fs::metadata(path)?.len();
        Ok(LogTail {
            path: path.to_path_buf(),
            offset: len.saturating_sub(MAX_BACKLOG),
            partial: Vec::new(),
        })
    }

    fn new_lines(&mut self) -> std::io::Result<Vec<String>> {
        let mut f = std::fs::File::open(&self.path)?;
        let len = f.metadata()?.len();
        if len < self.offset {
            // Rotated or truncated: start over.
            self.offset = 0;
            self.partial.clear();
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.take(8 * 1024 * 1024).read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            if line.len() <= MAX_LOG_LINE {
                lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
            }
        }
        if self.partial.len() > MAX_LOG_LINE {
            self.partial.clear();
        }
        Ok(lines)
    }
}

fn yubin_output(yubin: &Path, config_dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(yubin)
        .arg("-c")
        .arg(config_dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", yubin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`{} -c {} {}` failed: {}",
            yubin.display(),
            config_dir.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The mailbox of `address` from `yubin trace --json`.
fn mailbox(yubin: &Path, config_dir: &Path, address: &str) -> Result<String, String> {
    let out = yubin_output(yubin, config_dir, &["trace", "--json", address])?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("trace --json printed no JSON: {e}"))?;
    let deliveries = v["deliveries"]
        .as_array()
        .ok_or("trace --json: no \"deliveries\" list")?;
    let pick = deliveries
        .iter()
        .find(|d| {
            d["recipient"]
                .as_str()
                .is_some_and(|r| r.eq_ignore_ascii_case(address))
        })
        .or_else(|| deliveries.first())
        .ok_or_else(|| format!("trace --json: no delivery for {address}"))?;
    pick["mailbox"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "trace --json: delivery without \"mailbox\"".into())
}

/// The file yubin wrote for queue id `id` in Maildir `dir`.
pub fn maildir_file(dir: &Path, id: &str) -> Option<PathBuf> {
    let needle = format!(".{id}_");
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut hits: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(&needle))
            .map(|e| e.path())
            .collect();
        hits.sort();
        if let Some(first) = hits.into_iter().next() {
            return Some(first);
        }
    }
    None
}

fn describe_sent(o: &Outcome, id: &str, yubin: &Path, config_dir: &Path) -> String {
    let orig = o
        .orig_to
        .as_ref()
        .map(|a| format!(" (for {a})"))
        .unwrap_or_default();
    match mailbox(yubin, config_dir, &o.to) {
        Ok(mb) if mb.ends_with('/') => match maildir_file(Path::new(&mb), id) {
            Some(file) => format!("delivered to {}{orig}, Maildir {}", o.to, file.display()),
            None => format!(
                "delivered to {}{orig}, Maildir {mb} (no file for {id} in new/ or cur/)",
                o.to
            ),
        },
        Ok(mb) => format!("delivered to {}{orig}, mailbox {mb}", o.to),
        Err(why) => format!(
            "delivered to {}{orig} (relay={}, {}); mailbox unknown: {why}",
            o.to, o.relay, o.detail
        ),
    }
}

/// Waits for the delivery of the message the server queued (`reply`) and
/// reports it; returns the exit code.
pub fn run(
    config_dir: &Path,
    expect: &Expect,
    reply: &Reply,
    accepted: &[String],
    t: &mut Transcript,
) -> i32 {
    let Some(id) = queue_id(reply) else {
        t.error(&format!(
            "--expect-delivery: no queue id in the reply {:?}",
            reply.raw()
        ));
        return code::NO_QUEUE_ID;
    };
    let yubin = match &expect.yubin {
        Some(y) => y.clone(),
        None => match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => {
                t.error(&format!(
                    "--expect-delivery: cannot find the yubin executable: {e}"
                ));
                return code::LOG;
            }
        },
    };
    let log = match &expect.maillog {
        Some(l) => l.clone(),
        None => match yubin_output(
            &yubin,
            config_dir,
            &["postconf", "-x", "-h", "maillog_file"],
        ) {
            Ok(p) if !p.trim().is_empty() => PathBuf::from(p.trim()),
            Ok(_) => {
                t.error("--expect-delivery: maillog_file is empty; give --maillog FILE");
                return code::LOG;
            }
            Err(why) => {
                t.error(&format!("--expect-delivery: {why}; give --maillog FILE"));
                return code::LOG;
            }
        },
    };
    let mut tail = match LogTail::open(&log) {
        Ok(tail) => tail,
        Err(e) => {
            t.error(&format!(
                "--expect-delivery: cannot read {}: {e}",
                log.display()
            ));
            return code::LOG;
        }
    };
    t.info(&format!(
        "Waiting up to {}s for {id} in {}",
        expect.wait.as_secs(),
        log.display()
    ));
    let deadline = Instant::now() + expect.wait;
    let wanted = accepted.len().max(1);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut removed = false;
    loop {
        match tail.new_lines() {
            Ok(lines) => {
                for line in lines {
                    match parse_line(&line, &id) {
                        Some(LogEvent::Delivery(o)) => outcomes.push(o),
                        Some(LogEvent::Removed) => removed = true,
                        None => {}
                    }
                }
            }
            Err(e) => {
                t.error(&format!(
                    "--expect-delivery: cannot read {}: {e}",
                    log.display()
                ));
                return code::LOG;
            }
        }
        let finals = outcomes.iter().filter(|o| o.status != "deferred").count();
        if removed || finals >= wanted || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if outcomes.is_empty() {
        t.error(&format!(
            "{id}: no delivery logged in {} within {}s",
            log.display(),
            expect.wait.as_secs()
        ));
        return code::TIMEOUT;
    }
    let mut all_sent = true;
    for o in &outcomes {
        if o.status == "sent" {
            t.info(&format!(
                "{id}: {}",
                describe_sent(o, &id, &yubin, config_dir)
            ));
        } else {
            all_sent = false;
            t.error(&format!("{id}: {} for {}: {}", o.status, o.to, o.detail));
        }
    }
    if all_sent {
        crate::session::code::OK
    } else {
        code::NOT_DELIVERED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_lines() {
        let line = "Nov 29 02:41:02 host postfix/virtual[123]: 4F2A1B3C9D: to=<hoge@mydomain.com>, orig_to=<root@localhost>, relay=virtual, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to maildir)";
        assert_eq!(
            parse_line(line, "4F2A1B3C9D"),
            Some(LogEvent::Delivery(Outcome {
                to: "hoge@mydomain.com".into(),
                orig_to: Some("root@localhost".into()),
                relay: "virtual".into(),
                status: "sent".into(),
                detail: "delivered to maildir".into(),
            }))
        );
        assert_eq!(parse_line(line, "AAAA"), None);
        let bounce = "Nov 29 02:41:02 host postfix/virtual[9]: AB12: to=<x@mydomain.com>, relay=virtual, delay=0, delays=0/0/0/0, dsn=5.1.1, status=bounced (unknown user: \"x@mydomain.com\")";
        match parse_line(bounce, "AB12") {
            Some(LogEvent::Delivery(o)) => {
                assert_eq!(o.status, "bounced");
                assert_eq!(o.detail, "unknown user: \"x@mydomain.com\"");
                assert_eq!(o.orig_to, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_line("Nov 29 host postfix/qmgr[1]: AB12: removed", "AB12"),
            Some(LogEvent::Removed)
        );
        assert_eq!(
            parse_line(
                "Nov 29 host postfix/qmgr[1]: AB12: from=<a@b>, size=3, nrcpt=1 (queue active)",
                "AB12"
            ),
            None
        );
    }
}
