//! The Maildir store: delivery (tmp -> new with shared fsyncs), flags in
//! file names, Maildir++ folders, `dovecot-uidlist` UIDs, a per-folder index
//! with MODSEQs, and `maildirsize` quota, all in the on-disk formats of
//! Dovecot 2.3 so that Dovecot and yubin can share one Maildir.
//! It must not speak a protocol (IMAP/SMTP) or know the queue: callers
//! pass names, bytes and flags and get paths, UIDs and errors back.
//!
//! Map: `deliver` + `sync` (MTA delivery, group fsync), `folder` (the
//! user's folders: `Store`, `FolderName`, subscriptions), `mailbox` (one
//! open folder: `Mailbox`), with the file formats in `name`, `uidlist`,
//! `keywords`, `index`, `quota`, `mutf7`, the locks in `dotlock`, and change
//! notification in `watch`.

pub mod deliver;
pub mod dotlock;
pub mod folder;
pub mod index;
pub mod keywords;
pub mod mailbox;
pub mod mutf7;
pub mod name;
pub mod quota;
pub mod sync;
pub mod uidlist;
pub mod uidvalidity;
pub mod watch;

pub use deliver::{deliver, delivery_tag, ensure_maildir, find_existing, DeliverError, Delivery};
pub use folder::{FolderError, FolderInfo, FolderName, NameError, SpecialUse, Store};
pub use keywords::{KeywordError, Keywords};
pub use mailbox::{Changes, Error, FlagOp, Mailbox, Message, StoreResult};
pub use name::{FileName, Flags, SystemFlag};
pub use sync::DirSync;
pub use uidlist::UidList;
pub use watch::{FolderStamp, Watcher};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `data` durably: write `path.yubin-tmp.PID`, fsync,
/// rename over `path`, fsync the directory.
pub(crate) fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".yubin-tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let r = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_data()?;
        fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => File::open(p)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}
