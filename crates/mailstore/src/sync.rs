//! Shared directory fsyncs for concurrent deliveries.
//!
//! A delivery is durable once its file is fsynced and the rename that put
//! it into `new/` is on disk, which takes an fsync of `new/`. A caller
//! returns only after an fsync of the directory that *started after* its own
//! rename has finished successfully, so durability is that of one fsync per
//! message. When such an fsync is already running (another delivery renamed
//! after us and is syncing), the caller waits for it instead of issuing its
//! own; otherwise it fsyncs at once, never queueing behind an fsync that
//! cannot cover it. Measured on ext4 (examples/group_fsync.rs), a strict
//! leader/follower queue was no faster than one fsync each: the journal
//! (jbd2) already merges concurrent fsyncs into one commit, and waiting for
//! a running fsync to end before starting the next one only added latency.
//! This scheme is never slower than one fsync each and saves the calls it
//! can.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Shared by every delivery of a process (`DirSync::global()`) or of a test.
#[derive(Default)]
pub struct DirSync {
    dirs: Mutex<HashMap<PathBuf, Arc<Dir>>>,
}

#[derive(Default)]
struct Dir {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    /// Tickets handed out, one per caller, in rename order.
    requested: u64,
    /// Every ticket up to this one is covered by a successful fsync.
    covered: u64,
    /// Start tickets of the fsyncs running now: one that started at
    /// ticket `s` covers every caller with a ticket `<= s`.
    running: Vec<u64>,
    /// fsync calls made (tests).
    fsyncs: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DirSync {
    pub fn new() -> DirSync {
        DirSync::default()
    }

    /// The process-wide instance that delivery uses.
    pub fn global() -> &'static DirSync {
        static G: std::sync::OnceLock<DirSync> = std::sync::OnceLock::new();
        G.get_or_init(DirSync::new)
    }

    /// Returns once everything renamed into `dir` before this call is on
    /// disk (an fsync of `dir` that began after the call has completed).
    pub fn sync(&self, dir: &Path) -> io::Result<()> {
        let d = {
            let mut m = lock(&self.dirs);
            m.entry(dir.to_path_buf()).or_default().clone()
        };
        let r = self.sync_on(&d, dir);
        // Forget idle directories so the map stays as small as the set of
        // mailboxes being delivered to right now.
        let mut m = lock(&self.dirs);
        if Arc::strong_count(&d) == 2 {
            let st = lock(&d.state);
            // Nobody else holds it, so nobody waits on it.
            if st.running.is_empty() {
                drop(st);
                m.remove(dir);
            }
        }
        r
    }

    fn sync_on(&self, d: &Dir, dir: &Path) -> io::Result<()> {
        let mut st = lock(&d.state);
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if st.covered >= ticket {
                return Ok(());
            }
            if st.running.iter().any(|&s| s >= ticket) {
                // An fsync that started after our rename is running: it
                // covers us if it succeeds; if it fails we try ourselves.
                st = d.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let start = st.requested;
            st.running.push(start);
            st.fsyncs += 1;
            drop(st);
            let r = File::open(dir).and_then(|f| f.sync_all());
            st = lock(&d.state);
            if let Some(i) = st.running.iter().position(|&s| s == start) {
                st.running.swap_remove(i);
            }
            if r.is_ok() {
                st.covered = st.covered.max(start);
            }
            d.cv.notify_all();
            r?;
        }
    }

    /// How many directory fsyncs ran for `dir` while it was in use.
    #[cfg(test)]
    fn fsyncs(&self, dir: &Path) -> u64 {
        lock(&self.dirs)
            .get(dir)
            .map_or(0, |d| lock(&d.state).fsyncs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn concurrent_callers_share_fsyncs_and_all_return() {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(DirSync::new());
        // Keep the entry alive so the counter survives the callers.
        let keep = lock(&s.dirs)
            .entry(d.path().to_path_buf())
            .or_default()
            .clone();
        let n = 16;
        let b = Arc::new(Barrier::new(n));
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let (s, b, p) = (s.clone(), b.clone(), d.path().to_path_buf());
                std::thread::spawn(move || {
                    b.wait();
                    s.sync(&p).unwrap();
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let st = lock(&keep.state);
        assert_eq!(st.covered, n as u64);
        assert!(st.running.is_empty());
        assert!(st.fsyncs >= 1 && st.fsyncs <= n as u64);
        drop(st);
        assert!(s.fsyncs(d.path()) >= 1);
    }

    #[test]
    fn failure_reaches_the_callers_it_covered() {
        let s = DirSync::new();
        let e = s.sync(Path::new("/nonexistent/yubin-dir")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // The entry is gone once idle; a later call starts fresh.
        assert!(lock(&s.dirs).is_empty());
        let d = tempfile::tempdir().unwrap();
        s.sync(d.path()).unwrap();
    }
}
