//! A passwd-file that follows changes on disk: at most once a second a
//! lookup stats the file and, when its modification time, size or inode
//! changed, parses it again. A file that fails to load keeps the previous
//! users in service and the error is kept for the caller to log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{DbError, User, UserDb};

/// How often the file is stat()ed at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        mtime: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
    })
}

struct State {
    db: Arc<UserDb>,
    stamp: Option<Stamp>,
    checked: Instant,
    error: Option<String>,
}

/// A user database kept elsewhere (PostgreSQL: `yubin_pgsql::users`), asked
/// user by user. `Err`: it cannot answer now.
pub trait UserSource: Send + Sync {
    fn user(&self, name: &str) -> Result<Option<User>, String>;
}

/// A [`UserDb`] shared between sessions and reloaded when the file changes,
/// or a [`UserSource`] asked at each login.
pub struct SharedUserDb {
    path: PathBuf,
    state: Mutex<State>,
    remote: Option<Box<dyn UserSource>>,
}

impl SharedUserDb {
    /// Load `path` now; fails when it cannot be loaded at start.
    pub fn open(path: &Path) -> Result<SharedUserDb, DbError> {
        let st = stamp(path);
        let db = UserDb::load(path)?;
        Ok(SharedUserDb {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                db: Arc::new(db),
                stamp: st,
                checked: Instant::now(),
                error: None,
            }),
            remote: None,
        })
    }

    /// Users from `source` (named `name` in messages); nothing is cached,
    /// so a user added on another host can log in at once. Lookups block:
    /// call from a blocking thread.
    pub fn remote(name: &Path, source: Box<dyn UserSource>) -> SharedUserDb {
        SharedUserDb {
            path: name.to_path_buf(),
            state: Mutex::new(State {
                db: Arc::new(UserDb::default()),
                stamp: None,
                checked: Instant::now(),
                error: None,
            }),
            remote: Some(source),
        }
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current database, reloaded first if the file changed (checked at
    /// most once per [`CHECK_INTERVAL`]).
    /// For a remote source: empty (ask [`SharedUserDb::get`]).
    pub fn current(&self) -> Arc<UserDb> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.checked.elapsed() >= CHECK_INTERVAL {
            Self::refresh(&self.path, &mut st);
        }
        st.db.clone()
    }

    /// Check the file now, ignoring the once-a-second limit. `Ok(true)` when
    /// it was reloaded; `Err` when it changed but failed to load (the old users
    /// stay in service).
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        if self.remote.is_some() {
            return Ok(false);
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = Arc::as_ptr(&st.db);
        Self::refresh(&self.path, &mut st);
        match &st.error {
            Some(e) => Err(e.clone()),
            None => Ok(!std::ptr::eq(before, Arc::as_ptr(&st.db))),
        }
    }

    /// The error of the last failed reload, if the file is currently bad.
    pub fn last_error(&self) -> Option<String> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.error.clone()
    }

    /// The user called `name` (case-insensitive). A remote source that
    /// cannot answer reads as "no such user" (the login fails and may be
    /// retried); the error is kept in [`SharedUserDb::last_error`].
    pub fn get(&self, name: &str) -> Option<User> {
        if let Some(src) = &self.remote {
            let r = src.user(name);
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            return match r {
                Ok(u) => {
                    st.error = None;
                    u
                }
                Err(e) => {
                    st.error = Some(e);
                    None
                }
            };
        }
        self.current().get(name).cloned()
    }

    fn refresh(path: &Path, st: &mut State) {
        st.checked = Instant::now();
        let now = stamp(path);
        if now == st.stamp {
            return;
        }
        match UserDb::load(path) {
            Ok(db) => {
                st.db = Arc::new(db);
                st.stamp = now;
                st.error = None;
            }
            Err(e) => {
                // Remember the stamp so a bad file is not re-parsed every second.
                st.stamp = now;
                st.error = Some(e.to_string());
            }
        }
    }
}

impl crate::sasl::PasswordLookup for SharedUserDb {
    fn password(&self, user: &str) -> Option<String> {
        self.get(user).map(|u| u.password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_on_change_and_keeps_old_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, "a:{PLAIN}1\n").unwrap();
        let db = SharedUserDb::open(&p).unwrap();
        assert_eq!(db.get("a").unwrap().password, "{PLAIN}1");
        assert_eq!(db.reload_if_changed(), Ok(false));

        crate::passwd_file::set_password(&p, "b", "{PLAIN}2").unwrap();
        assert_eq!(db.reload_if_changed(), Ok(true));
        assert_eq!(db.get("B").unwrap().password, "{PLAIN}2");

        std::fs::write(&p, "a:{PLAIN}1\n:broken\n").unwrap();
        let e = db.reload_if_changed().unwrap_err();
        assert!(e.ends_with("users:2: empty user name"), "{e}");
        assert!(db.get("b").is_some(), "old users stay");
        assert!(db.last_error().is_some());

        std::fs::write(&p, "c:{PLAIN}3\n").unwrap();
        assert_eq!(db.reload_if_changed(), Ok(true));
        assert!(db.get("a").is_none());
        assert!(db.last_error().is_none());
    }

    #[test]
    fn rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, "a:{PLAIN}1\n").unwrap();
        let db = SharedUserDb::open(&p).unwrap();
        std::fs::write(&p, "bb:{PLAIN}22\n").unwrap();
        // Within the first second the old content is served.
        assert!(db.get("a").is_some());
        std::thread::sleep(CHECK_INTERVAL + Duration::from_millis(50));
        assert!(db.get("bb").is_some());
    }
}
