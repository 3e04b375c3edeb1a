//! Maildir delivery (the layout of cr.yp.to/proto/maildir.html that Postfix's
//! virtual(8) and Dovecot use): write `tmp/NAME`, fsync, rename into
//! `new/NAME`, fsync `new/`.
//!
//! NAME is `SECONDS.QUEUEID_KEY.HOST,S=SIZE`, where KEY is a hash of the
//! final recipient: a retry of the same message to the same mailbox (after
//! a crash between the rename and the queue update) finds its own earlier
//! file and does not deliver twice. `,S=` is Dovecot's size field.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::envelope_headers::{check_loops, prepend};
use crate::{Failure, Message};

/// FNV-1a, 32 bits: a stable short key for the recipient.
fn key(recipient: &str) -> u32 {
    recipient
        .to_ascii_lowercase()
        .bytes()
        .fold(0x811c9dc5u32, |h, b| {
            (h ^ b as u32).wrapping_mul(0x01000193)
        })
}

/// The part of the file name that identifies this delivery.
pub fn delivery_tag(queue_id: &str, recipient: &str) -> String {
    format!("{queue_id}_{:08x}", key(recipient))
}

/// An earlier delivery of the same message to this Maildir, if any.
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

fn sync_dir(p: &Path) -> std::io::Result<()> {
    File::open(p)?.sync_all()
}

/// Creates `dir/{tmp,new,cur}` as needed (mode 0700, like Postfix).
fn ensure(dir: &Path) -> Result<(), Failure> {
    for sub in ["tmp", "new", "cur"] {
        let p = dir.join(sub);
        if !p.is_dir() {
            fs::create_dir_all(&p)
                .map_err(|e| Failure::io(&format!("create maildir file {}", p.display()), &e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o700));
            }
        }
    }
    Ok(())
}

/// Delivers to the Maildir `dir`. `check_existing` is set on retries and
/// after a restart. `size_limit` is virtual_mailbox_limit (0 = none).
pub fn deliver(
    dir: &Path,
    m: &Message<'_>,
    check_existing: bool,
    size_limit: u64,
) -> Result<PathBuf, Failure> {
    check_loops(m)?;
    let tag = delivery_tag(m.queue_id, m.recipient);
    if check_existing {
        if let Some(p) = find_existing(dir, &tag) {
            return Ok(p);
        }
    }
    ensure(dir)?;
    let head = prepend(m);
    let size = head.len() + m.content.len();
    if size_limit > 0 && size as u64 > size_limit {
        return Err(Failure::perm(
            "5.2.2",
            format!(
                "cannot update mailbox {} for user {}. message file too big",
                dir.display(),
                m.recipient
            ),
        ));
    }
    let now = yubin_maillog::clock::now_secs();
    let host = m.hostname.replace(['/', ':'], "_");
    let name = format!("{now}.{tag}.{host},S={size}");
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let write = || -> std::io::Result<()> {
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
        };
        let mut f = match open() {
            // The name holds this queue id and recipient: a leftover of our
            // own attempt that a crash interrupted before the rename.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                open()?
            }
            r => r?,
        };
        f.write_all(head.as_bytes())?;
        f.write_all(m.content)?;
        f.sync_all()?;
        fs::rename(&tmp, &new)?;
        sync_dir(&dir.join("new"))
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(Failure::io(
            &format!("create maildir file {}", tmp.display()),
            &e,
        ));
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_once_per_queue_id_and_recipient() {
        let d = tempfile::tempdir().unwrap();
        let mbox = d.path().join("mydomain.com/hoge");
        let m = Message {
            queue_id: "A438C186C09",
            sender: "a@b",
            original_recipient: "root@localhost",
            recipient: "hoge@mydomain.com",
            content: b"Subject: t\n\nhello\n",
            hostname: "mail",
        };
        let p = deliver(&mbox, &m, false, 0).unwrap();
        assert!(p.starts_with(mbox.join("new")));
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("Return-Path: <a@b>\nX-Original-To: root@localhost\nDelivered-To: hoge@mydomain.com\nSubject: t\n"));
        let again = deliver(&mbox, &m, true, 0).unwrap();
        assert_eq!(again, p);
        assert_eq!(fs::read_dir(mbox.join("new")).unwrap().count(), 1);
        assert!(fs::read_dir(mbox.join("tmp")).unwrap().next().is_none());
        // A stale tmp file from a crashed attempt does not block the retry.
        let m2 = Message {
            queue_id: "C",
            ..m.clone()
        };
        let size = prepend(&m2).len() + m2.content.len();
        let now = yubin_maillog::clock::now_secs();
        for t in [now, now + 1] {
            let name = format!("{t}.{}.mail,S={size}", delivery_tag("C", m2.recipient));
            fs::write(mbox.join("tmp").join(name), b"partial").unwrap();
        }
        deliver(&mbox, &m2, true, 0).unwrap();
        let e = deliver(
            &mbox,
            &Message {
                queue_id: "B",
                ..m.clone()
            },
            false,
            10,
        )
        .unwrap_err();
        assert_eq!(e.dsn, "5.2.2");
    }
}
