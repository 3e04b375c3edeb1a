//! Maildir delivery (the layout of cr.yp.to/proto/maildir.html that Postfix's
//! virtual(8) and Dovecot use), through the `yubin-mailstore` crate: write
//! `tmp/NAME`, fsync, rename into `new/NAME`, fsync `new/` (shared with the
//! concurrent deliveries of this process, see `yubin_mailstore::DirSync`).
//!
//! NAME is `SECONDS.QUEUEID_KEY.HOST,S=SIZE,W=VSIZE`, where KEY is a hash of
//! the final recipient: a retry of the same message to the same mailbox
//! (after a crash between the rename and the queue update) finds its own
//! earlier file and does not deliver twice. `,S=` and `,W=` are Dovecot's
//! size fields.

use std::path::{Path, PathBuf};

use yubin_mailstore::{DeliverError, DirSync};

use crate::envelope_headers::{check_loops, prepend};
use crate::{Failure, Message};

pub use yubin_mailstore::{delivery_tag, find_existing};

/// Delivers to the Maildir `dir`. `check_existing` is set on retries and
/// after a restart. `size_limit` is virtual_mailbox_limit (0 = none): the
/// largest message file, as in Postfix's virtual(8). A `maildirsize` file
/// in the Maildir (Maildir++ quota) is honoured too.
pub fn deliver(
    dir: &Path,
    m: &Message<'_>,
    check_existing: bool,
    size_limit: u64,
) -> Result<PathBuf, Failure> {
    check_loops(m)?;
    // Two original recipients that lead to one mailbox are two deliveries
    // (enable_original_recipient): the crash-safe tag names the pair.
    let key = if m.original_recipient.eq_ignore_ascii_case(m.recipient)
        || m.original_recipient.is_empty()
    {
        m.recipient.to_string()
    } else {
        format!("{}\n{}", m.recipient, m.original_recipient)
    };
    let tag = delivery_tag(m.queue_id, &key);
    let head = prepend(m);
    let parts: [&[u8]; 2] = [head.as_bytes(), m.content];
    let d = yubin_mailstore::Delivery {
        tag: &tag,
        host: m.hostname,
        parts: &parts,
        check_existing,
        size_limit,
        now: yubin_maillog::clock::now_secs().max(0) as u64,
    };
    yubin_mailstore::deliver(dir, &d, DirSync::global()).map_err(|e| match e {
        DeliverError::TooBig { .. } => Failure::perm(
            "5.2.2",
            format!(
                "cannot update mailbox {} for user {}. message file too big",
                dir.display(),
                m.recipient
            ),
        ),
        DeliverError::QuotaExceeded { .. } => Failure::perm(
            "5.2.2",
            format!(
                "cannot update mailbox {} for user {}. mailbox is full (Maildir++ quota)",
                dir.display(),
                m.recipient
            ),
        ),
        DeliverError::Io { what, path, source } => {
            Failure::io(&format!("{what} {}", path.display()), &source)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
        let head = prepend(&m2);
        let size = head.len() + m2.content.len();
        let vsize = yubin_mailstore::name::virtual_size(&[head.as_bytes(), m2.content]);
        let now = yubin_maillog::clock::now_secs();
        for t in [now, now + 1] {
            let name = format!(
                "{t}.{}.mail,S={size},W={vsize}",
                delivery_tag("C", m2.recipient)
            );
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
