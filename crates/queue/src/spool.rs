//! The queue directory: state subdirectories, the instance lock, and the
//! moves between states (rename within one file system, so a message is
//! always in exactly one place).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::file::QueueFile;
use crate::status::Status;

/// A message's place in the queue (Postfix's queue names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Incoming,
    Active,
    Deferred,
    Hold,
    Corrupt,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Incoming,
        State::Active,
        State::Deferred,
        State::Hold,
        State::Corrupt,
    ];

    pub fn dir_name(self) -> &'static str {
        match self {
            State::Incoming => "incoming",
            State::Active => "active",
            State::Deferred => "deferred",
            State::Hold => "hold",
            State::Corrupt => "corrupt",
        }
    }

    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.dir_name() == name)
    }
}

#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

impl Spool {
    /// Opens (creating when needed) the queue directory tree.
    pub fn open(root: &Path) -> io::Result<Spool> {
        for s in State::ALL {
            std::fs::create_dir_all(root.join(s.dir_name()))?;
        }
        for d in ["status", "maildrop", "public", "pid"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(Spool {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, s: State) -> PathBuf {
        self.root.join(s.dir_name())
    }

    pub fn path(&self, s: State, id: &str) -> PathBuf {
        self.dir(s).join(id)
    }

    pub fn status_path(&self, id: &str) -> PathBuf {
        self.root.join("status").join(id)
    }

    /// The control socket the daemon listens on (`postqueue -f`, `reload`).
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("public").join("control")
    }

    /// Takes the instance lock (`pid/master.lock`, flock): two servers never
    /// share one queue. The returned file holds the lock while it lives.
    pub fn lock(&self) -> io::Result<File> {
        let path = self.root.join("pid").join("master.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        if yubin_sys::lock_exclusive(&f, false).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "the queue {} is in use by another yubin serve (lock {})",
                    self.root.display(),
                    path.display()
                ),
            ));
        }
        f.set_len(0)?;
        use std::io::Write;
        let mut w = &f;
        let _ = writeln!(w, "{}", std::process::id());
        Ok(f)
    }

    /// Where a message is now.
    pub fn find(&self, id: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| self.path(*s, id).exists())
    }

    pub fn move_to(&self, id: &str, from: State, to: State) -> io::Result<()> {
        std::fs::rename(self.path(from, id), self.path(to, id))
    }

    pub fn read(&self, s: State, id: &str) -> io::Result<Result<QueueFile, crate::file::Corrupt>> {
        let bytes = std::fs::read(self.path(s, id))?;
        Ok(QueueFile::decode(&bytes))
    }

    /// Removes a message and its status.
    pub fn remove(&self, s: State, id: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(s, id))?;
        let _ = std::fs::remove_file(self.status_path(id));
        Ok(())
    }

    /// Queue ids in a state directory (unsorted).
    pub fn list(&self, s: State) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.dir(s))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::id::is_valid(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    pub fn status(&self, id: &str) -> Status {
        Status::load(&self.status_path(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_moves_work() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let _l = s.lock().unwrap();
        let s2 = Spool::open(d.path()).unwrap();
        assert!(s2.lock().unwrap_err().to_string().contains("in use"));
        std::fs::write(s.path(State::Incoming, "ABC"), b"x").unwrap();
        s.move_to("ABC", State::Incoming, State::Active).unwrap();
        assert_eq!(s.find("ABC"), Some(State::Active));
        assert_eq!(s.list(State::Active).unwrap(), ["ABC"]);
        s.remove(State::Active, "ABC").unwrap();
        assert_eq!(s.find("ABC"), None);
    }
}
