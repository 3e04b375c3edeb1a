//! mbox delivery (local(8), virtual(8) without a trailing `/`): a
//! `From sender date` line, `>From ` quoting of body lines that begin with
//! `From `, an empty line at the end; fcntl lock plus a `.lock` dot file as
//! Postfix's mailbox_delivery_lock = fcntl, dotlock; on any error the file
//! is truncated back so no half message is left.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::envelope_headers::{check_loops, prepend};
use crate::{Failure, Message};

/// Holds `path.lock` while it lives.
struct DotLock(std::path::PathBuf);

impl DotLock {
    fn take(path: &Path) -> Result<DotLock, Failure> {
        let lock = path.with_extension(match path.extension() {
            Some(e) => format!("{}.lock", e.to_string_lossy()),
            None => "lock".into(),
        });
        for _ in 0..50 {
            match OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(_) => return Ok(DotLock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // A lock older than 5 minutes is stale (Postfix's rule).
                    let stale = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(300))
                        .unwrap_or(false);
                    if stale {
                        let _ = std::fs::remove_file(&lock);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(Failure::io(
                        &format!("create lock file {}", lock.display()),
                        &e,
                    ))
                }
            }
        }
        Err(Failure::temp(
            "4.2.0",
            format!("unable to lock for exclusive access: {}", lock.display()),
        ))
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The mbox form of the message.
pub fn render(m: &Message<'_>, date: &str) -> Vec<u8> {
    let sender = if m.sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        m.sender
    };
    let mut out = format!("From {sender}  {date}\n{}", prepend(m)).into_bytes();
    for l in m.content.split_inclusive(|&b| b == b'\n') {
        let mut probe = l;
        while let Some(rest) = probe.strip_prefix(b">") {
            probe = rest;
        }
        if probe.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(l);
        if !l.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out.push(b'\n');
    out
}

/// asctime()-style date for the `From ` line.
fn from_date() -> String {
    let l = yubin_maillog::clock::local(yubin_maillog::clock::now_secs());
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const D: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        D[l.weekday], M[l.month], l.day, l.hour, l.min, l.sec, l.year
    )
}

pub fn deliver(path: &Path, m: &Message<'_>, size_limit: u64) -> Result<(), Failure> {
    check_loops(m)?;
    if let Some(parent) = path.parent() {
        if !parent.is_dir() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure::io(&format!("create directory {}", parent.display()), &e))?;
        }
    }
    let data = render(m, &from_date());
    let _dot = DotLock::take(path)?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Failure::io(&format!("open mailbox {}", path.display()), &e))?;
    // Released when f is closed.
    if yubin_sys::lock_exclusive(&f, true).is_err() {
        return Err(Failure::temp(
            "4.2.0",
            format!("unable to lock {}", path.display()),
        ));
    }
    let start = f
        .seek(SeekFrom::End(0))
        .map_err(|e| Failure::io("seek", &e))?;
    if size_limit > 0 && start + data.len() as u64 > size_limit {
        return Err(Failure::perm(
            "5.2.2",
            format!(
                "cannot update mailbox {} for user {}. File too large",
                path.display(),
                m.recipient
            ),
        ));
    }
    if let Err(e) = f.write_all(&data).and_then(|_| f.sync_all()) {
        let _ = f.set_len(start);
        return Err(Failure::io(
            &format!("write mailbox {}", path.display()),
            &e,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_quoting_and_append() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("root");
        let m = Message {
            queue_id: "Q",
            sender: "",
            original_recipient: "root@localhost",
            recipient: "root@localhost",
            content: b"Subject: x\n\nFrom here\n>From there\nend",
            hostname: "h",
        };
        deliver(&p, &m, 0).unwrap();
        deliver(&p, &m, 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("From MAILER-DAEMON  "));
        assert!(
            text.contains("\n>From here\n>>From there\nend\n\nFrom MAILER-DAEMON"),
            "{text}"
        );
        assert!(!d.path().join("root.lock").exists());
    }
}
