//! Maildir++ quota: the `maildirsize` file in the Maildir root
//! (Courier's maildirquota(7), read and written the same way by Dovecot's
//! `quota = maildir` backend).
//!
//! Line 1 is the limit, `<bytes>S,<count>C` (either part may be missing;
//! 0 or missing means no limit). Every further line is a change,
//! `<bytes> <count>`, possibly negative; usage is their sum. A deliverer
//! appends one line; the file is recalculated from the folders (and
//! replaced by tmp + rename) when it grows over 5120 bytes, or when it says
//! "over quota" and is older than 15 minutes (the spec's guard against drift).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::name::FileName;

pub const FILE: &str = "maildirsize";
/// maildirquota(7): recalculate once the file is larger than this.
pub const MAX_FILE_SIZE: u64 = 5120;
/// maildirquota(7): an "over quota" answer older than this is rechecked.
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    /// Bytes; `None` = no limit.
    pub bytes: Option<u64>,
    /// Messages; `None` = no limit.
    pub count: Option<u64>,
}

impl Limit {
    /// Parses line 1: `1000000S,1000C`, `1000000S`, `1000C`, or empty.
    pub fn parse(line: &str) -> Option<Limit> {
        let mut l = Limit::default();
        for part in line.trim().split(',').filter(|p| !p.is_empty()) {
            let value = |num: &str| num.parse::<u64>().ok().map(|n| (n > 0).then_some(n));
            if let Some(num) = part.strip_suffix('S') {
                l.bytes = value(num)?;
            } else if let Some(num) = part.strip_suffix('C') {
                l.count = value(num)?;
            } else {
                return None;
            }
        }
        Some(l)
    }
    pub fn to_line(self) -> String {
        let mut parts = vec![format!("{}S", self.bytes.unwrap_or(0))];
        if let Some(c) = self.count {
            parts.push(format!("{c}C"));
        }
        parts.join(",")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub limit: Limit,
    pub bytes: u64,
    pub count: u64,
    /// Bytes of the `maildirsize` file itself.
    pub file_size: u64,
}

impl Usage {
    /// Would `bytes` more in one more message exceed the limit?
    pub fn would_exceed(&self, bytes: u64) -> bool {
        self.limit
            .bytes
            .is_some_and(|l| self.bytes.saturating_add(bytes) > l)
            || self.limit.count.is_some_and(|l| self.count + 1 > l)
    }
}

/// Parses a `maildirsize` text. Lines that are not two numbers are an
/// error: the caller recalculates.
pub fn parse(text: &str) -> Result<Usage, String> {
    let mut lines = text.lines();
    let first = lines.next().ok_or("empty maildirsize")?;
    let limit = Limit::parse(first).ok_or_else(|| format!("bad quota line {first:?}"))?;
    let (mut bytes, mut count) = (0i64, 0i64);
    for l in lines {
        if l.trim().is_empty() {
            continue;
        }
        let mut it = l.split_ascii_whitespace();
        let (Some(b), Some(c), None) = (it.next(), it.next(), it.next()) else {
            return Err(format!("bad maildirsize line {l:?}"));
        };
        let (Ok(b), Ok(c)) = (b.parse::<i64>(), c.parse::<i64>()) else {
            return Err(format!("bad maildirsize line {l:?}"));
        };
        bytes = bytes.saturating_add(b);
        count = count.saturating_add(c);
    }
    Ok(Usage {
        limit,
        bytes: bytes.max(0) as u64,
        count: count.max(0) as u64,
        file_size: text.len() as u64,
    })
}

/// Current usage, or `None` when the Maildir has no quota (no file).
/// Recalculates when the file is too big, unreadable as numbers, or stale.
pub fn read(root: &Path) -> io::Result<Option<Usage>> {
    let path = root.join(FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let limit_line = text.lines().next().unwrap_or("");
    let Some(limit) = Limit::parse(limit_line) else {
        // No valid limit: Dovecot then treats the file as absent.
        return Ok(None);
    };
    match parse(&text) {
        Ok(u) if u.file_size <= MAX_FILE_SIZE && !(u.would_exceed(0) && stale(&path)) => {
            Ok(Some(u))
        }
        _ => recalculate(root, limit).map(Some),
    }
}

fn stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_AFTER)
}

/// Sums the messages in `new/` and `cur/` of the root and of every
/// Maildir++ folder (`.NAME`), and rewrites `maildirsize` atomically.
pub fn recalculate(root: &Path, limit: Limit) -> io::Result<Usage> {
    let (mut bytes, mut count) = (0u64, 0u64);
    let mut dirs = vec![root.to_path_buf()];
    for e in fs::read_dir(root)?.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with('.') && n != "." && n != ".." && e.path().join("cur").is_dir() {
            dirs.push(e.path());
        }
    }
    for d in dirs {
        for sub in ["new", "cur"] {
            let Ok(rd) = fs::read_dir(d.join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                let size = match FileName::parse(&name).size {
                    Some(s) => s,
                    None => match e.metadata() {
                        Ok(m) => m.len(),
                        Err(_) => continue, // expunged meanwhile
                    },
                };
                bytes += size;
                count += 1;
            }
        }
    }
    let text = format!("{}\n{bytes} {count}\n", limit.to_line());
    crate::atomic_write(&root.join(FILE), text.as_bytes())?;
    Ok(Usage {
        limit,
        bytes,
        count,
        file_size: text.len() as u64,
    })
}

/// Sets the limit (creating the file), recalculating usage.
pub fn set_limit(root: &Path, limit: Limit) -> io::Result<Usage> {
    recalculate(root, limit)
}

/// Records a change (a delivery: `(size, 1)`, an expunge: `(-size, -1)`)
/// by appending one line, if the Maildir has a quota file. One `write` of
/// a short line with O_APPEND, as maildirquota(7) asks.
pub fn record(root: &Path, bytes: i64, count: i64) -> io::Result<()> {
    let mut f = match OpenOptions::new().append(true).open(root.join(FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    f.write_all(format!("{bytes} {count}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sums() {
        let u = parse("1000S,10C\n500 2\n-100 -1\n").unwrap();
        assert_eq!(
            u.limit,
            Limit {
                bytes: Some(1000),
                count: Some(10)
            }
        );
        assert_eq!((u.bytes, u.count), (400, 1));
        assert!(!u.would_exceed(600));
        assert!(u.would_exceed(601));
        assert_eq!(Limit::parse("0S").unwrap(), Limit::default());
        assert_eq!(Limit::parse("5C").unwrap().count, Some(5));
        assert!(Limit::parse("5X").is_none());
        assert!(Limit::parse("5é").is_none());
        assert!(parse("1S\nfoo\n").is_err());
        assert!(parse("").is_err());
        assert_eq!(
            Limit {
                bytes: Some(7),
                count: Some(2)
            }
            .to_line(),
            "7S,2C"
        );
    }

    #[test]
    fn recalculates_big_or_broken_files() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert_eq!(read(r).unwrap(), None);
        for sub in ["new", "cur", "tmp", ".Sent/cur", ".Sent/new"] {
            fs::create_dir_all(r.join(sub)).unwrap();
        }
        fs::write(r.join("new/1.a.h,S=100"), b"x").unwrap();
        fs::write(r.join("cur/2.a.h:2,S"), b"12345").unwrap();
        fs::write(r.join(".Sent/cur/3.a.h,S=50:2,S"), b"").unwrap();
        let limit = Limit {
            bytes: Some(1000),
            count: None,
        };
        let u = set_limit(r, limit).unwrap();
        assert_eq!((u.bytes, u.count), (155, 3));
        record(r, 10, 1).unwrap();
        assert_eq!(read(r).unwrap().unwrap().bytes, 165);
        // Over 5120 bytes: recalculated from the folders.
        let mut big = String::from("1000S\n");
        while big.len() <= 5120 {
            big.push_str("1 1\n");
        }
        fs::write(r.join(FILE), big).unwrap();
        let u = read(r).unwrap().unwrap();
        assert_eq!((u.bytes, u.count, u.limit.bytes), (155, 3, Some(1000)));
        assert!(fs::read_to_string(r.join(FILE)).unwrap().len() < 100);
    }
}
