//! Group commit of directory fsyncs.
//!
//! A delivery is durable once its file is fsynced and the rename that put
//! it into `new/` is on disk, which takes an fsync of `new/`. Concurrent
//! deliveries into one Maildir share that directory fsync: the first
//! caller becomes the leader and fsyncs; callers that arrive meanwhile wait,
//! and the next leader's single fsync covers all of them. A caller returns
//! only after an fsync that *started after* its own rename has finished, so
//! durability is the same as one fsync per message (the queue's committer in
//! crates/queue/src/commit.rs batches the same way).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Shared by every delivery of a process (or of a test); clone-free, use
/// one per process (`DirSync::global()`).
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
    /// Tickets handed out: one per caller.
    requested: u64,
    /// Every ticket up to this one is covered by a finished fsync.
    done: u64,
    running: bool,
    /// Ticket ranges whose fsync failed, newest last (bounded).
    failed: VecDeque<(u64, u64, io::ErrorKind, String)>,
    /// Number of fsync calls made (for tests and figures).
    fsyncs: u64,
}

const MAX_FAILURES_KEPT: usize = 64;

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
            if !st.running && st.done == st.requested {
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
            if st.done >= ticket {
                return match st.failed.iter().find(|f| f.0 <= ticket && ticket <= f.1) {
                    Some(f) => Err(io::Error::new(f.2, f.3.clone())),
                    None => Ok(()),
                };
            }
            if st.running {
                st = d.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.running = true;
            let from = st.done + 1;
            let target = st.requested;
            drop(st);
            let r = File::open(dir).and_then(|f| f.sync_all());
            st = lock(&d.state);
            st.running = false;
            st.fsyncs += 1;
            if let Err(e) = r {
                if st.failed.len() == MAX_FAILURES_KEPT {
                    st.failed.pop_front();
                }
                st.failed.push_back((from, target, e.kind(), e.to_string()));
            }
            st.done = target;
            d.cv.notify_all();
        }
    }

    /// How many directory fsyncs ran for `dir` while it was in use (0 once
    /// idle: the counter goes with the idle entry).
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
        assert_eq!(st.done, n as u64);
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
