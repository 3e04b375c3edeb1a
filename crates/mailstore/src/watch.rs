//! "Has this folder changed?" for IMAP IDLE and NOOP.
//!
//! Two ways: `FolderStamp`, a handful of `stat`s that a server can poll
//! (directory mtimes of `new/` and `cur/`, and the size and inode of
//! `yubin-index`, which grows with every other session's flag change), and
//! `Watcher`, one inotify instance for the whole process (the kernel allows
//! only 128 instances per user by default, so not one per session) with
//! three watches per folder, whose fd a server can register with its event
//! loop (e.g. tokio's `AsyncFd`).

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::inotify;

/// A cheap fingerprint of a folder's state; compare two for equality.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderStamp {
    new_mtime: (i64, i64),
    cur_mtime: (i64, i64),
    index: (u64, u64),
    uidlist: (u64, u64),
}

fn mtime(p: &Path) -> (i64, i64) {
    std::fs::metadata(p).map_or((0, 0), |m| (m.mtime(), m.mtime_nsec()))
}

fn ino_size(p: &Path) -> (u64, u64) {
    std::fs::metadata(p).map_or((0, 0), |m| (m.ino(), m.len()))
}

impl FolderStamp {
    /// Four `stat` calls; missing files count as empty.
    pub fn read(folder: &Path) -> FolderStamp {
        FolderStamp {
            new_mtime: mtime(&folder.join("new")),
            cur_mtime: mtime(&folder.join("cur")),
            index: ino_size(&folder.join(crate::index::FILE)),
            uidlist: ino_size(&folder.join(crate::uidlist::FILE)),
        }
    }
}

/// One inotify instance watching any number of folders.
#[derive(Debug)]
pub struct Watcher {
    fd: OwnedFd,
    /// watch descriptor -> folder
    wds: HashMap<i32, PathBuf>,
    /// folder -> (its watch descriptors, users)
    folders: HashMap<PathBuf, (Vec<i32>, usize)>,
}

impl Watcher {
    /// A non-blocking inotify instance.
    pub fn new() -> io::Result<Watcher> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        Ok(Watcher {
            fd,
            wds: HashMap::new(),
            folders: HashMap::new(),
        })
    }

    /// Starts watching `folder` (counted: each `watch` needs an `unwatch`).
    pub fn watch(&mut self, folder: &Path) -> io::Result<()> {
        if let Some(f) = self.folders.get_mut(folder) {
            f.1 += 1;
            return Ok(());
        }
        use inotify::WatchFlags as W;
        let entries = W::CREATE | W::DELETE | W::MOVED_FROM | W::MOVED_TO;
        let mut wds = Vec::new();
        for (p, mask) in [
            (folder.join("new"), entries),
            (folder.join("cur"), entries),
            // yubin-index appends and dovecot-uidlist/keywords renames.
            (folder.to_path_buf(), W::MODIFY | W::MOVED_TO),
        ] {
            match inotify::add_watch(&self.fd, &p, mask | W::ONLYDIR) {
                Ok(wd) => wds.push(wd),
                Err(e) => {
                    for wd in wds {
                        let _ = inotify::remove_watch(&self.fd, wd);
                    }
                    return Err(e.into());
                }
            }
        }
        for wd in &wds {
            self.wds.insert(*wd, folder.to_path_buf());
        }
        self.folders.insert(folder.to_path_buf(), (wds, 1));
        Ok(())
    }

    pub fn unwatch(&mut self, folder: &Path) {
        let Some(f) = self.folders.get_mut(folder) else {
            return;
        };
        f.1 -= 1;
        if f.1 > 0 {
            return;
        }
        if let Some((wds, _)) = self.folders.remove(folder) {
            for wd in wds {
                self.wds.remove(&wd);
                let _ = inotify::remove_watch(&self.fd, wd);
            }
        }
    }

    /// Reads every pending event without blocking; returns the folders
    /// that changed (each once).
    pub fn changed(&mut self) -> io::Result<Vec<PathBuf>> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut out: Vec<PathBuf> = Vec::new();
        let mut r = inotify::Reader::new(&self.fd, &mut buf);
        loop {
            match r.next() {
                Ok(ev) => {
                    if let Some(f) = self.wds.get(&ev.wd()) {
                        if !out.contains(f) {
                            out.push(f.clone());
                        }
                    }
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}

impl AsFd for Watcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_and_inotify_see_a_delivery() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        crate::deliver::ensure_maildir(&a).unwrap();
        crate::deliver::ensure_maildir(&b).unwrap();
        let before = FolderStamp::read(&a);
        let mut w = Watcher::new().unwrap();
        w.watch(&a).unwrap();
        w.watch(&b).unwrap();
        w.watch(&b).unwrap();
        assert!(w.changed().unwrap().is_empty());
        let parts: &[&[u8]] = &[b"x"];
        crate::deliver(
            &a,
            &crate::Delivery {
                tag: "T",
                host: "h",
                parts,
                check_existing: false,
                size_limit: 0,
                now: 1,
            },
            &crate::DirSync::new(),
        )
        .unwrap();
        assert_eq!(w.changed().unwrap(), std::slice::from_ref(&a));
        assert_ne!(FolderStamp::read(&a), before);
        assert_eq!(FolderStamp::read(&a), FolderStamp::read(&a));
        w.unwatch(&b);
        std::fs::write(b.join("new/1.x.h"), b"y").unwrap();
        assert_eq!(w.changed().unwrap(), std::slice::from_ref(&b)); // still one user left
        w.unwatch(&b);
        std::fs::write(b.join("new/2.x.h"), b"y").unwrap();
        assert!(w.changed().unwrap().is_empty());
    }
}
