//! Delivery into a Maildir: write `tmp/NAME`, fsync it, rename it into
//! `new/NAME`, then wait for a (shared) fsync of `new/` — only then is the
//! delivery reported done (maildir.html; the order Postfix's virtual(8)
//! and Dovecot's LDA use).
//!
//! NAME is `SECONDS.TAG.HOST,S=SIZE,W=VSIZE`, where TAG identifies this
//! delivery (the MTA uses queue id + a hash of the recipient): a retry of
//! the same delivery after a crash between the rename and the queue update
//! finds its own earlier file instead of delivering twice.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::name::{host_part, virtual_size};
use crate::quota;
use crate::sync::DirSync;

/// FNV-1a, 32 bits: a stable short key for the recipient.
fn key(recipient: &str) -> u32 {
    recipient
        .to_ascii_lowercase()
        .bytes()
        .fold(0x811c9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x01000193)
        })
}

/// The part of the file name that identifies a delivery of queue file
/// `queue_id` to `recipient`.
pub fn delivery_tag(queue_id: &str, recipient: &str) -> String {
    format!("{queue_id}_{:08x}", key(recipient))
}

/// An earlier delivery with `tag` in this Maildir, if any.
pub fn find_existing(dir: &Path, tag: &str) -> Option<PathBuf> {
    let needle = format!(".{tag}.");
    for sub in ["new", "cur"] {
        let Ok(rd) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().contains(&needle) {
                return Some(e.path());
            }
        }
    }
    None
}

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// Identifies this delivery; see `delivery_tag`. Must not contain `/`,
    /// `:` or `.`.
    pub tag: &'a str,
    /// This host's name, for the file name.
    pub host: &'a str,
    /// The message, as pieces written one after the other (e.g. the
    /// prepended Delivered-To headers and the queued content).
    pub parts: &'a [&'a [u8]],
    /// Look for an earlier delivery with the same tag first (retries and
    /// the first attempt after a restart).
    pub check_existing: bool,
    /// Largest message accepted, 0 = none (virtual_mailbox_limit /
    /// mailbox_size_limit: for a Maildir, the size of one message file).
    pub size_limit: u64,
    /// Seconds since the epoch for the name.
    pub now: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("message file too big")]
    TooBig { size: u64, limit: u64 },
    #[error("mailbox is full (Maildir++ quota)")]
    QuotaExceeded { usage: quota::Usage, size: u64 },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl DeliverError {
    fn io(what: &'static str, path: &Path, source: io::Error) -> DeliverError {
        DeliverError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Creates `dir/{tmp,new,cur}` as needed (mode 0700, like Postfix).
pub fn ensure_maildir(dir: &Path) -> io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        let p = dir.join(sub);
        if !p.is_dir() {
            fs::create_dir_all(&p)?;
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o700));
        }
    }
    Ok(())
}

/// Delivers `d` into the Maildir `dir`; returns the path in `new/`.
/// `sync` batches the directory fsync with concurrent deliveries.
pub fn deliver(dir: &Path, d: &Delivery<'_>, sync: &DirSync) -> Result<PathBuf, DeliverError> {
    if d.check_existing {
        if let Some(p) = find_existing(dir, d.tag) {
            return Ok(p);
        }
    }
    ensure_maildir(dir).map_err(|e| DeliverError::io("create maildir file", dir, e))?;
    let size: u64 = d.parts.iter().map(|p| p.len() as u64).sum();
    if d.size_limit > 0 && size > d.size_limit {
        return Err(DeliverError::TooBig {
            size,
            limit: d.size_limit,
        });
    }
    // Maildir++ quota, when the Maildir has one (maildirquota(7)).
    let usage = quota::read(dir).map_err(|e| DeliverError::io("read quota", dir, e))?;
    if let Some(u) = usage {
        if u.would_exceed(size) {
            return Err(DeliverError::QuotaExceeded { usage: u, size });
        }
    }
    let vsize = virtual_size(d.parts);
    let name = format!(
        "{}.{}.{},S={size},W={vsize}",
        d.now,
        d.tag,
        host_part(d.host)
    );
    let tmp = dir.join("tmp").join(&name);
    let new_dir = dir.join("new");
    let new = new_dir.join(&name);
    let write = || -> io::Result<()> {
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
        };
        let mut f = match open() {
            // The name holds this delivery's tag: a leftover of our own
            // attempt that a crash interrupted before the rename.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                open()?
            }
            r => r?,
        };
        for p in d.parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &new)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(DeliverError::io("create maildir file", &tmp, e));
    }
    // The file is in new/; it counts once the directory is on disk. If
    // that fails the delivery is reported failed and retried later: the
    // retry finds this file by its tag.
    sync.sync(&new_dir)
        .map_err(|e| DeliverError::io("create maildir file", &tmp, e))?;
    if usage.is_some() {
        // Best effort, like Dovecot: a missed line is fixed by the next
        // recalculation.
        let _ = quota::record(dir, size as i64, 1);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery<'a>(tag: &'a str, parts: &'a [&'a [u8]]) -> Delivery<'a> {
        Delivery {
            tag,
            host: "mail",
            parts,
            check_existing: true,
            size_limit: 0,
            now: 1_700_000_000,
        }
    }

    #[test]
    fn delivers_with_sizes_and_finds_earlier_file() {
        let d = tempfile::tempdir().unwrap();
        let s = DirSync::new();
        let parts: &[&[u8]] = &[b"A: b\n", b"\nbody\n"];
        let p = deliver(d.path(), &delivery("Q1_0000abcd", parts), &s).unwrap();
        assert_eq!(
            p.file_name().unwrap().to_str().unwrap(),
            "1700000000.Q1_0000abcd.mail,S=11,W=14"
        );
        assert_eq!(fs::read(&p).unwrap(), b"A: b\n\nbody\n");
        let again = deliver(d.path(), &delivery("Q1_0000abcd", parts), &s).unwrap();
        assert_eq!(again, p);
        assert_eq!(fs::read_dir(d.path().join("new")).unwrap().count(), 1);
    }

    #[test]
    fn refuses_over_quota_and_records_usage() {
        let d = tempfile::tempdir().unwrap();
        let s = DirSync::new();
        ensure_maildir(d.path()).unwrap();
        quota::set_limit(
            d.path(),
            quota::Limit {
                bytes: Some(20),
                count: None,
            },
        )
        .unwrap();
        let parts: &[&[u8]] = &[b"0123456789"];
        deliver(d.path(), &delivery("A", parts), &s).unwrap();
        assert_eq!(quota::read(d.path()).unwrap().unwrap().bytes, 10);
        deliver(d.path(), &delivery("B", parts), &s).unwrap();
        let e = deliver(d.path(), &delivery("C", parts), &s).unwrap_err();
        assert!(matches!(e, DeliverError::QuotaExceeded { .. }), "{e}");
        let e = deliver(
            d.path(),
            &Delivery {
                size_limit: 5,
                ..delivery("D", parts)
            },
            &s,
        )
        .unwrap_err();
        assert!(matches!(e, DeliverError::TooBig { size: 10, limit: 5 }));
    }

    #[test]
    fn concurrent_deliveries_all_land() {
        let d = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(DirSync::new());
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let (s, p) = (s.clone(), d.path().to_path_buf());
                std::thread::spawn(move || {
                    let tag = format!("T{i}");
                    let parts: &[&[u8]] = &[b"x\n"];
                    deliver(&p, &delivery(&tag, parts), &s).unwrap()
                })
            })
            .collect();
        for h in hs {
            assert!(h.join().unwrap().exists());
        }
        assert_eq!(fs::read_dir(d.path().join("new")).unwrap().count(), 8);
    }
}
