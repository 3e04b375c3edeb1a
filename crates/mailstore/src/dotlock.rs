//! Dovecot's dotlock convention (lib/file-dotlock.c): a lock on FILE is the
//! existence of `FILE.lock`, created with O_EXCL. A lock whose mtime is
//! older than the stale timeout is taken over (Dovecot: 2 minutes for
//! `dovecot-uidlist`, 30 s for `subscriptions`).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// `dovecot-uidlist.lock` is stale after this (MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT).
pub const UIDLIST_STALE: Duration = Duration::from_secs(120);
/// `subscriptions.lock` is stale after this (SUBSCRIPTION_FILE_CHANGE_TIMEOUT).
pub const SUBSCRIPTIONS_STALE: Duration = Duration::from_secs(30);
/// How long yubin waits for a lock another process holds before failing
/// (the caller reports a temporary error).
pub const WAIT: Duration = Duration::from_secs(10);

/// A held dotlock; dropping it removes the lock file.
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
    released: bool,
}

impl DotLock {
    /// Locks `target` (creates `target.lock`), waiting up to `wait`.
    pub fn acquire(target: &Path, stale: Duration, wait: Duration) -> io::Result<DotLock> {
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let path = target.with_file_name(name);
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => {
                    return Ok(DotLock {
                        path,
                        released: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let age = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if age.is_some_and(|a| a > stale) {
                // Stale: its owner died. Remove and retry at once.
                let _ = fs::remove_file(&path);
                continue;
            }
            if start.elapsed() >= wait {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("timeout waiting for lock {}", path.display()),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the lock now, reporting an error.
    pub fn release(mut self) -> io::Result<()> {
        self.released = true;
        fs::remove_file(&self.path)
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_and_takes_over_stale() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("dovecot-uidlist");
        let l = DotLock::acquire(&t, UIDLIST_STALE, WAIT).unwrap();
        assert!(d.path().join("dovecot-uidlist.lock").exists());
        let e = DotLock::acquire(&t, UIDLIST_STALE, Duration::from_millis(20)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // With a zero stale timeout the lock counts as abandoned.
        std::thread::sleep(Duration::from_millis(5));
        let l2 = DotLock::acquire(&t, Duration::ZERO, WAIT).unwrap();
        std::mem::forget(l);
        l2.release().unwrap();
        assert!(!d.path().join("dovecot-uidlist.lock").exists());
    }
}
