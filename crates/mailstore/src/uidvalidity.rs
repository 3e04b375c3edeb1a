//! UIDVALIDITY of new folders, as Dovecot allocates them
//! (src/lib-storage/mailbox-uidvalidity.c): the Maildir++ root keeps the
//! last value handed out in `dovecot-uidvalidity` (8 hex digits) and in the
//! name of one marker file `dovecot-uidvalidity.<hex>`; the next value is
//! the larger of that plus one and the clock. So a folder deleted and
//! created again within one second gets a new UIDVALIDITY (RFC 3501
//! section 2.3.1.1: a name's UIDVALIDITY must change when it is reused),
//! and Dovecot and yubin sharing the Maildir draw from one sequence.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub const FILE: &str = "dovecot-uidvalidity";
const MARKER_PREFIX: &str = "dovecot-uidvalidity.";

fn parse_hex(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok().filter(|&v| v != 0)
}

/// The next UIDVALIDITY for a folder under the Maildir++ root `root`.
/// Processes of this machine are serialised by an exclusive `flock` of
/// the main file; Dovecot's rename of the marker then sees our marker.
pub fn next(root: &Path) -> io::Result<u32> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().min(u32::MAX as u64) as u32);
    next_at(root, now)
}

fn next_at(root: &Path, now: u32) -> io::Result<u32> {
    let path = root.join(FILE);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
    let mut text = String::new();
    // A broken file (not hex) counts as absent: the markers still hold
    // the value, as in Dovecot's rescan.
    let _ = f.read_to_string(&mut text);
    let mut cur = parse_hex(&text).unwrap_or(0);
    let mut markers = Vec::new();
    for e in fs::read_dir(root)? {
        let e = e?;
        let name = e.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix(MARKER_PREFIX)) else {
            continue;
        };
        if let Some(v) = parse_hex(hex) {
            cur = cur.max(v);
            markers.push(e.path());
        }
    }
    let next = now.max(cur.saturating_add(1)).max(1);
    let hex = format!("{next:08x}");
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(root.join(format!("{MARKER_PREFIX}{hex}")))?;
    for m in markers {
        if m.file_name().and_then(|n| n.to_str()) != Some(&format!("{MARKER_PREFIX}{hex}")) {
            let _ = fs::remove_file(m);
        }
    }
    f.set_len(0)?;
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(0))?;
    f.write_all(hex.as_bytes())?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increases_within_one_second_and_follows_markers() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(next_at(d.path(), 1000).unwrap(), 1000);
        assert_eq!(next_at(d.path(), 1000).unwrap(), 1001);
        assert_eq!(next_at(d.path(), 1000).unwrap(), 1002);
        assert_eq!(next_at(d.path(), 5000).unwrap(), 5000);
        assert_eq!(fs::read_to_string(d.path().join(FILE)).unwrap(), "00001388");
        assert!(d.path().join("dovecot-uidvalidity.00001388").exists());
        assert!(!d.path().join("dovecot-uidvalidity.000003ea").exists());
        // Dovecot moved the marker on (and the main file is stale).
        fs::remove_file(d.path().join("dovecot-uidvalidity.00001388")).unwrap();
        fs::write(d.path().join("dovecot-uidvalidity.00002000"), "").unwrap();
        assert_eq!(next_at(d.path(), 10).unwrap(), 0x2001);
        fs::write(d.path().join(FILE), "garbage").unwrap();
        assert_eq!(next_at(d.path(), 10).unwrap(), 0x2002);
    }
}
