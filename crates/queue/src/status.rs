//! Per-message delivery status, kept beside the queue file as
//! `status/ID`: which recipients are done, how many attempts, when to try
//! again and why the last attempt failed. Lines are appended; the last
//! record of each kind wins. The file is a cache for the scheduler and
//! `mailq`: after a crash, delivery re-checks the mailbox for its own
//! earlier write (see the deliver crate), so the status file needs no fsync.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Recipient index -> final outcome (`sent`, `bounced`).
    pub done: BTreeMap<usize, String>,
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt: i64,
    /// Recipient index -> last temporary failure reason.
    pub reasons: BTreeMap<usize, String>,
    /// A delay warning was sent (delay_warning_time): only one per message.
    pub warned: bool,
}

impl Status {
    pub fn load(path: &Path) -> Status {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Status::default();
        };
        let mut s = Status::default();
        for line in text.lines() {
            let mut f = line.splitn(3, ' ');
            match (f.next(), f.next(), f.next()) {
                (Some("done"), Some(i), Some(what)) => {
                    if let Ok(i) = i.parse() {
                        s.done.insert(i, what.to_string());
                    }
                }
                (Some("attempt"), Some(n), Some(next)) => {
                    s.attempts = n.parse().unwrap_or(s.attempts);
                    s.next_attempt = next.parse().unwrap_or(s.next_attempt);
                }
                (Some("warned"), _, _) => s.warned = true,
                (Some("reason"), Some(i), Some(why)) => {
                    if let Ok(i) = i.parse() {
                        s.reasons.insert(i, why.to_string());
                    }
                }
                _ => {}
            }
        }
        s
    }

    fn append(path: &Path, line: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(line.as_bytes())
    }

    pub fn record_done(path: &Path, idx: usize, outcome: &str) -> std::io::Result<()> {
        Self::append(path, &format!("done {idx} {outcome}\n"))
    }

    pub fn record_attempt(path: &Path, attempts: u32, next: i64) -> std::io::Result<()> {
        Self::append(path, &format!("attempt {attempts} {next}\n"))
    }

    pub fn record_warned(path: &Path) -> std::io::Result<()> {
        Self::append(path, "warned\n")
    }

    pub fn record_reason(path: &Path, idx: usize, why: &str) -> std::io::Result<()> {
        Self::append(path, &format!("reason {idx} {}\n", why.replace('\n', " ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_record_wins() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        Status::record_done(&p, 1, "sent").unwrap();
        Status::record_attempt(&p, 1, 100).unwrap();
        Status::record_reason(&p, 0, "connect failed").unwrap();
        Status::record_attempt(&p, 2, 200).unwrap();
        let s = Status::load(&p);
        assert_eq!(s.done.get(&1).map(String::as_str), Some("sent"));
        assert_eq!((s.attempts, s.next_attempt), (2, 200));
        assert_eq!(
            s.reasons.get(&0).map(String::as_str),
            Some("connect failed")
        );
    }
}
