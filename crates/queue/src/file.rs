//! The queue file format: a text header of envelope records, a blank line,
//! then the message (LF line ends). Header values are %-escaped so that no
//! value can forge a record. Reading is strict: anything unexpected makes
//! the file "corrupt" (it is moved aside, never half-delivered).

use std::fmt::Write as _;

const MAGIC: &str = "yubin-queue 1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecipient {
    /// Internal form, as accepted at RCPT.
    pub address: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// A message with its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueFile {
    pub id: String,
    /// Arrival time, Unix seconds.
    pub arrival: i64,
    /// Empty for the null sender.
    pub sender: String,
    /// `name[ip]`, or `local` for sendmail submissions.
    pub client: String,
    pub helo: String,
    pub protocol: String,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub smtputf8: bool,
    pub recipients: Vec<QueuedRecipient>,
    pub message: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt queue file: {0}")]
pub struct Corrupt(pub String);

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' | '\t' | '\n' | '\r' | ' ' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn unesc(s: &str) -> Result<String, Corrupt> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| Corrupt("bad escape".into()))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| Corrupt("bad escape".into()))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Corrupt("bad UTF-8".into()))
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map(esc).unwrap_or_else(|| "-".into())
}

fn unopt(v: &str) -> Result<Option<String>, Corrupt> {
    if v == "-" {
        Ok(None)
    } else {
        unesc(v).map(Some)
    }
}

impl QueueFile {
    pub fn encode(&self) -> Vec<u8> {
        let mut h = String::new();
        let _ = writeln!(h, "{MAGIC}");
        let _ = writeln!(h, "id {}", esc(&self.id));
        let _ = writeln!(h, "arrival {}", self.arrival);
        let _ = writeln!(
            h,
            "sender {}",
            if self.sender.is_empty() {
                "-".into()
            } else {
                esc(&self.sender)
            }
        );
        let _ = writeln!(h, "client {}", esc(&self.client));
        let _ = writeln!(
            h,
            "helo {}",
            if self.helo.is_empty() {
                "-".into()
            } else {
                esc(&self.helo)
            }
        );
        let _ = writeln!(h, "protocol {}", esc(&self.protocol));
        let _ = writeln!(h, "ret {}", opt(&self.ret));
        let _ = writeln!(h, "envid {}", opt(&self.envid));
        let _ = writeln!(h, "smtputf8 {}", self.smtputf8 as u8);
        for r in &self.recipients {
            let _ = writeln!(
                h,
                "rcpt {} {} {}",
                esc(&r.address),
                opt(&r.notify),
                opt(&r.orcpt)
            );
        }
        let _ = writeln!(h, "size {}", self.message.len());
        h.push('\n');
        let mut out = h.into_bytes();
        out.extend_from_slice(&self.message);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<QueueFile, Corrupt> {
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| Corrupt("no end of envelope".into()))?;
        let header = std::str::from_utf8(&bytes[..split])
            .map_err(|_| Corrupt("envelope is not UTF-8".into()))?;
        let message = &bytes[split + 2..];
        let mut lines = header.lines();
        if lines.next() != Some(MAGIC) {
            return Err(Corrupt("bad magic".into()));
        }
        let mut q = QueueFile::default();
        let mut size = None;
        for line in lines {
            let (key, value) = line
                .split_once(' ')
                .ok_or_else(|| Corrupt(format!("bad record {line:?}")))?;
            match key {
                "id" => q.id = unesc(value)?,
                "arrival" => {
                    q.arrival = value.parse().map_err(|_| Corrupt("bad arrival".into()))?
                }
                "sender" => {
                    q.sender = if value == "-" {
                        String::new()
                    } else {
                        unesc(value)?
                    }
                }
                "client" => q.client = unesc(value)?,
                "helo" => {
                    q.helo = if value == "-" {
                        String::new()
                    } else {
                        unesc(value)?
                    }
                }
                "protocol" => q.protocol = unesc(value)?,
                "ret" => q.ret = unopt(value)?,
                "envid" => q.envid = unopt(value)?,
                "smtputf8" => q.smtputf8 = value == "1",
                "rcpt" => {
                    let mut f = value.split(' ');
                    let (Some(a), Some(n), Some(o), None) =
                        (f.next(), f.next(), f.next(), f.next())
                    else {
                        return Err(Corrupt(format!("bad recipient record {line:?}")));
                    };
                    q.recipients.push(QueuedRecipient {
                        address: unesc(a)?,
                        notify: unopt(n)?,
                        orcpt: unopt(o)?,
                    });
                }
                "size" => {
                    size = Some(
                        value
                            .parse::<usize>()
                            .map_err(|_| Corrupt("bad size".into()))?,
                    )
                }
                other => return Err(Corrupt(format!("unknown record {other:?}"))),
            }
        }
        if size != Some(message.len()) {
            return Err(Corrupt(format!(
                "size {:?} but {} bytes of message (truncated file?)",
                size,
                message.len()
            )));
        }
        if q.id.is_empty() || q.recipients.is_empty() {
            return Err(Corrupt("no id or no recipients".into()));
        }
        q.message = message.to_vec();
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QueueFile {
        QueueFile {
            id: "A438C186C09".into(),
            arrival: 1611915875,
            sender: "hogehoge@onotherdomain.com".into(),
            client: "localhost[127.0.0.1]".into(),
            helo: "myhost.mydomain.com".into(),
            protocol: "ESMTP".into(),
            ret: None,
            envid: Some("x y".into()),
            smtputf8: false,
            recipients: vec![
                QueuedRecipient {
                    address: "root@localhost".into(),
                    notify: None,
                    orcpt: None,
                },
                QueuedRecipient {
                    address: "quoted local%\n@x".into(),
                    notify: Some("NEVER".into()),
                    orcpt: None,
                },
            ],
            message: b"Subject: t\n\nhello\n\nrcpt forged@x - -\n".to_vec(),
        }
    }

    #[test]
    fn round_trip_and_truncation() {
        let q = sample();
        let bytes = q.encode();
        assert_eq!(QueueFile::decode(&bytes).unwrap(), q);
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(QueueFile::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
