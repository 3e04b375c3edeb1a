//! Everything guard remembers between runs, in `WORK_DIR/guard-state.json`
//! (written atomically: temp file, fsync, rename).
//!
//! DenyHosts keeps the same facts in a dozen `ADDR:COUNT:asctime` files that
//! split on `:` (so IPv6 breaks them) and are rewritten non-atomically; yubin
//! keeps one JSON document and, for people and scripts used to DenyHosts,
//! also writes the DenyHosts counter files (`hosts`, `hosts-valid`,
//! `hosts-root`, `hosts-restricted`) on every save.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// DenyHosts' four counter categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
pub enum Category {
    Invalid,
    Valid,
    Root,
    Restricted,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Invalid,
        Category::Valid,
        Category::Root,
        Category::Restricted,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Category::Invalid => "invalid",
            Category::Valid => "valid",
            Category::Root => "root",
            Category::Restricted => "restricted",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// One counter: value and time of the last increment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub count: u32,
    pub last: i64,
}

/// What guard knows about one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStats {
    pub counters: [Counter; 4],
    pub first_seen: i64,
    pub last_seen: i64,
    /// User names tried (capped at [`MAX_USERS`]) with counts.
    pub users: BTreeMap<String, u32>,
    /// Services the failures came from, as `Service::bit` flags.
    pub services: u8,
}

/// Most distinct user names remembered per host.
pub const MAX_USERS: usize = 20;

impl HostStats {
    pub fn counter(&self, c: Category) -> Counter {
        self.counters[c.index()]
    }
    pub fn counter_mut(&mut self, c: Category) -> &mut Counter {
        &mut self.counters[c.index()]
    }
    pub fn total(&self) -> u32 {
        self.counters.iter().map(|c| c.count).sum()
    }
}

/// A block guard placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub since: i64,
    /// When `--purge` may lift it (`PURGE_DENY`); None = never.
    pub until: Option<i64>,
    /// The counter that tripped, e.g. `invalid 6 > 5`.
    pub reason: String,
    pub count: u32,
    pub users: Vec<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// How many times this host has been blocked (this one included).
    pub times: u32,
}

/// One line of a pending digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestItem {
    pub host: String,
    pub count: u32,
    pub users: Vec<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub reason: String,
}

/// Resume point of one log file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offset {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    /// The file's first line (DenyHosts' rotation check when the inode is
    /// unchanged but the content was replaced, e.g. copytruncate).
    pub first_line: String,
}

/// The whole persistent state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Counters per host (a hash map: looked up once per counted failure;
    /// std's keyed hasher, since IPv6 lets an attacker choose many keys).
    pub hosts: HashMap<String, HostStats>,
    pub blocks: BTreeMap<String, Block>,
    /// Blocks per host so far (for PURGE_THRESHOLD), kept across purges.
    pub block_history: BTreeMap<String, u32>,
    pub offsets: BTreeMap<String, Offset>,
    pub journal_cursor: Option<String>,
    pub digest: Vec<DigestItem>,
    pub suspicious: Vec<String>,
    pub last_report: i64,
    pub warned_allowed: BTreeSet<String>,
}

/// Most hosts remembered; beyond it the quietest are forgotten.
pub const MAX_HOSTS: usize = 1_000_000;

impl State {
    pub fn path(work_dir: &Path) -> PathBuf {
        work_dir.join("guard-state.json")
    }

    /// Loads the state; a missing file is a fresh state.
    pub fn load(work_dir: &Path) -> anyhow::Result<State> {
        let p = State::path(work_dir);
        match std::fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", p.display())),
        }
    }

    /// Saves atomically, plus the DenyHosts-format counter files.
    pub fn save(&mut self, work_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(work_dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", work_dir.display()))?;
        if self.hosts.len() > MAX_HOSTS {
            let mut by_time: Vec<(i64, String)> = self
                .hosts
                .iter()
                .map(|(h, s)| (s.last_seen, h.clone()))
                .collect();
            by_time.sort();
            for (_, h) in by_time.into_iter().take(self.hosts.len() - MAX_HOSTS) {
                self.hosts.remove(&h);
            }
        }
        let json = serde_json::to_vec(self)?;
        write_atomic(&State::path(work_dir), &json)?;
        use std::fmt::Write as _;
        // Sorted once for the four files.
        let mut hosts: Vec<(&String, &HostStats)> = self.hosts.iter().collect();
        hosts.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (cat, name) in [
            (Category::Invalid, "hosts"),
            (Category::Valid, "hosts-valid"),
            (Category::Root, "hosts-root"),
            (Category::Restricted, "hosts-restricted"),
        ] {
            let mut out = String::new();
            for (h, s) in &hosts {
                let c = s.counter(cat);
                if c.count > 0 {
                    let _ = writeln!(out, "{h}:{}:{}", c.count, crate::timeutil::asctime(c.last));
                }
            }
            write_atomic(&work_dir.join(name), out.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes `data` to `path` via a temp file in the same directory, fsync and
/// rename, so a reader never sees a half-written file.
pub fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.yubin-guard.{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("{}: {e}", path.display());
    }
    Ok(())
}

/// An exclusive advisory lock on `WORK_DIR/guard.lock`, held while a command
/// reads, changes and saves the state (daemon pass, --once, unblock, purge).
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    pub fn acquire(work_dir: &Path) -> anyhow::Result<StateLock> {
        std::fs::create_dir_all(work_dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", work_dir.display()))?;
        let p = work_dir.join("guard.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        flock(&f)?;
        Ok(StateLock { _file: f })
    }
}

/// `flock(LOCK_EX)`, waiting.
pub fn flock(f: &std::fs::File) -> anyhow::Result<()> {
    loop {
        let Err(e) = yubin_sys::lock_exclusive(f, true) else {
            return Ok(());
        };
        if e.kind() != std::io::ErrorKind::Interrupted {
            anyhow::bail!("flock: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_denyhosts_files() {
        let d = tempfile::tempdir().unwrap();
        let mut s = State::default();
        let mut h = HostStats::default();
        h.counter_mut(Category::Invalid).count = 6;
        h.counter_mut(Category::Invalid).last = 1_704_132_245;
        s.hosts.insert("2001:db8::1".into(), h);
        s.save(d.path()).unwrap();
        assert_eq!(State::load(d.path()).unwrap(), s);
        let hosts = std::fs::read_to_string(d.path().join("hosts")).unwrap();
        assert!(hosts.starts_with("2001:db8::1:6:"), "{hosts}");
    }
}
