//! journald as a log source (`SECURE_LOG = journal`): runs
//! `journalctl -o json` and rebuilds each entry as the line
//! `HOST IDENT[PID]: MESSAGE` — the shape fail2ban builds from the same
//! fields and that its `sshd-journal` corpus uses — so the one parser serves
//! both. The cursor (`__CURSOR`) is kept in the state like a file offset.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Identifiers asked for: sshd before and after the 9.8 split, Postfix smtpd
/// and Dovecot (yubin logs under the same names).
pub const IDENTIFIERS: &[&str] = &[
    "sshd",
    "sshd-session",
    "sshd-auth",
    "postfix/smtpd",
    "postfix/submission/smtpd",
    "postfix/smtps/smtpd",
    "dovecot",
];

/// One journal entry as a syslog-shaped line, and its cursor.
pub fn entry_to_line(json: &[u8]) -> Option<(String, Option<String>)> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let o = v.as_object()?;
    let text = |k: &str| -> Option<String> {
        match o.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            // journalctl prints non-UTF-8 fields as arrays of bytes.
            serde_json::Value::Array(a) => Some(
                String::from_utf8_lossy(
                    &a.iter()
                        .filter_map(|b| b.as_u64().map(|x| x as u8))
                        .collect::<Vec<u8>>(),
                )
                .into_owned(),
            ),
            other => Some(other.to_string()),
        }
    };
    let cursor = text("__CURSOR");
    let msg = text("MESSAGE")?;
    let ident = text("SYSLOG_IDENTIFIER").or_else(|| text("_COMM"))?;
    let host = text("_HOSTNAME").unwrap_or_else(|| "localhost".into());
    let pid = text("SYSLOG_PID").or_else(|| text("_PID"));
    let msg = msg.replace(['\n', '\r'], " ");
    let line = match pid {
        Some(p) => format!("{host} {ident}[{p}]: {msg}"),
        None => format!("{host} {ident}: {msg}"),
    };
    Some((line, cursor))
}

/// The journalctl arguments: JSON output, our identifiers, after the cursor.
pub fn args(cursor: Option<&str>, follow: bool) -> Vec<String> {
    let mut a = vec![
        "-o".to_string(),
        "json".to_string(),
        "--no-pager".to_string(),
    ];
    if follow {
        a.push("-f".into());
    }
    match cursor {
        Some(c) => a.push(format!("--after-cursor={c}")),
        None => a.push("--lines=all".into()),
    }
    for (i, id) in IDENTIFIERS.iter().enumerate() {
        if i > 0 {
            a.push("+".into());
        }
        a.push(format!("SYSLOG_IDENTIFIER={id}"));
    }
    a
}

/// Reads entries until journalctl exits (without `-f`), feeding lines;
/// returns the last cursor.
pub fn read_once(
    journalctl: &str,
    cursor: Option<&str>,
    each: &mut dyn FnMut(&[u8]),
) -> anyhow::Result<Option<String>> {
    let mut child = Command::new(journalctl)
        .args(args(cursor, false))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {journalctl}: {e}"))?;
    let out = child.stdout.take().expect("piped");
    let mut last = cursor.map(str::to_string);
    for l in BufReader::new(out).split(b'\n') {
        let l = l?;
        if l.len() > crate::parse::MAX_LINE * 2 {
            continue;
        }
        if let Some((line, c)) = entry_to_line(&l) {
            each(line.as_bytes());
            if c.is_some() {
                last = c;
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        anyhow::bail!("{journalctl} failed ({status}): {}", err.trim());
    }
    Ok(last)
}

/// `journalctl -o json -f` running in a thread for the daemon: entries are
/// queued as they arrive and drained by each pass (so the cursor is saved
/// with the counters it produced). Restarted from the last cursor if
/// journalctl exits.
pub struct JournalFollow {
    rx: std::sync::mpsc::Receiver<(String, Option<String>)>,
    child: std::process::Child,
}

/// Most queued entries between two passes; beyond it the reader waits.
const FOLLOW_QUEUE: usize = 100_000;

impl JournalFollow {
    pub fn start(journalctl: &str, cursor: Option<&str>) -> anyhow::Result<JournalFollow> {
        let mut child = Command::new(journalctl)
            .args(args(cursor, true))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {journalctl}: {e}"))?;
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::sync_channel(FOLLOW_QUEUE);
        std::thread::spawn(move || {
            for l in BufReader::new(out).split(b'\n') {
                let Ok(l) = l else { break };
                if l.len() > crate::parse::MAX_LINE * 2 {
                    continue;
                }
                if let Some(e) = entry_to_line(&l) {
                    if tx.send(e).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(JournalFollow { rx, child })
    }

    /// Feeds everything queued so far; returns the last cursor seen (if any)
    /// and whether journalctl is still running.
    pub fn drain(&mut self, each: &mut dyn FnMut(&[u8])) -> (Option<String>, bool) {
        let mut last = None;
        loop {
            match self.rx.try_recv() {
                Ok((line, c)) => {
                    each(line.as_bytes());
                    if c.is_some() {
                        last = c;
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return (last, true),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return (last, false),
            }
        }
    }
}

impl Drop for JournalFollow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_entry_becomes_journal_line() {
        let j = br#"{"__CURSOR":"s=1;i=2","MESSAGE":"Invalid user admin from 203.0.113.7 port 4242","SYSLOG_IDENTIFIER":"sshd-session","_PID":"77","_HOSTNAME":"mail"}"#;
        let (line, cur) = entry_to_line(j).unwrap();
        assert_eq!(
            line,
            "mail sshd-session[77]: Invalid user admin from 203.0.113.7 port 4242"
        );
        assert_eq!(cur.as_deref(), Some("s=1;i=2"));
        let p = crate::parse::parse_line(line.as_bytes()).unwrap();
        assert_eq!(p.event.host.unwrap(), b"203.0.113.7");
        let bytes = br#"{"MESSAGE":[70,97,105,108],"SYSLOG_IDENTIFIER":"sshd"}"#;
        assert_eq!(entry_to_line(bytes).unwrap().0, "localhost sshd: Fail");
        assert!(entry_to_line(b"not json").is_none());
    }
}
