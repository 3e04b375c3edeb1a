//! A value loaded from a file and reloaded when the file changes: how every
//! file-backed table picks up edits without a server restart. The file's
//! modification time is checked at most once a second, so the hot path of a
//! lookup is an atomic load and an `Arc` clone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::TableError;

type Loader<T> = Box<dyn Fn(&Path) -> Result<T, TableError> + Send + Sync>;

pub struct Reloading<T> {
    path: PathBuf,
    loader: Loader<T>,
    current: RwLock<Arc<(T, SystemTime)>>,
    checked_at_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(UNIX_EPOCH)
}

impl<T> Reloading<T> {
    /// Loads `path` now; an error here is a configuration error.
    pub fn open(
        path: &Path,
        loader: impl Fn(&Path) -> Result<T, TableError> + Send + Sync + 'static,
    ) -> Result<Self, TableError> {
        let stamp = mtime(path);
        let value = loader(path)?;
        Ok(Reloading {
            path: path.to_path_buf(),
            loader: Box::new(loader),
            current: RwLock::new(Arc::new((value, stamp))),
            checked_at_ms: AtomicU64::new(now_ms()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current value, reloaded first if the file changed. A reload that
    /// fails keeps the previous value and logs why.
    pub fn get(&self) -> Arc<(T, SystemTime)> {
        let cur = match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let now = now_ms();
        let last = self.checked_at_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1000
            || self
                .checked_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return cur;
        }
        let stamp = mtime(&self.path);
        if stamp == cur.1 {
            return cur;
        }
        match (self.loader)(&self.path) {
            Ok(v) => {
                let fresh = Arc::new((v, stamp));
                if let Ok(mut g) = self.current.write() {
                    *g = fresh.clone();
                }
                tracing::info!("reloaded table {}", self.path.display());
                fresh
            }
            Err(e) => {
                tracing::warn!("keeping the previous {}: {e}", self.path.display());
                cur
            }
        }
    }
}
