//! One folder opened for reading and changing: UIDs from `dovecot-uidlist`,
//! MODSEQs and sizes from `yubin-index`, flags from file names.
//!
//! Concurrency: every change to the folder's metadata happens under an
//! exclusive `flock` of `yubin-index.lock` (between yubin processes and
//! sessions), and UID assignment additionally under Dovecot's
//! `dovecot-uidlist.lock` (between yubin and Dovecot). A session first
//! replays what other sessions appended to `yubin-index`, so all sessions
//! agree on every MODSEQ. Changes made by Dovecot or by hand (renames,
//! deletions, new files) are found by the directory scan that a changed
//! directory mtime triggers, and get fresh MODSEQs then.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dotlock::{self, DotLock};
use crate::index::{self, Entry, Index, Stamp};
use crate::keywords::{KeywordError, Keywords};
use crate::name::{self, FileName, Flags};
use crate::quota;
use crate::uidlist::{self, Record, UidList};
use crate::DirSync;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Keyword(#[from] KeywordError),
    #[error("mailbox is full (Maildir++ quota)")]
    OverQuota,
}

/// One message as the folder holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub uid: u32,
    /// RFC 7162 MODSEQ: raised on every flag change.
    pub modseq: u64,
    /// File size in bytes.
    pub size: u64,
    /// Size with CRLF line ends (IMAP RFC822.SIZE).
    pub vsize: u64,
    pub flags: Flags,
    /// Still in `new/` (delivered, not yet seen by any IMAP session).
    pub in_new: bool,
    /// File name in `new/` or `cur/`.
    pub name: String,
}

impl Message {
    fn from_entry(e: &Entry) -> Message {
        Message {
            uid: e.uid,
            modseq: e.modseq,
            size: e.size,
            vsize: e.vsize,
            flags: FileName::parse(&e.name).flags,
            in_new: e.in_new,
            name: e.name.clone(),
        }
    }
}

/// What changed since the caller last looked (UIDs, ascending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<u32>,
    pub expunged: Vec<u32>,
    /// Messages whose flags (and MODSEQ) changed.
    pub flags: Vec<u32>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.expunged.is_empty() && self.flags.is_empty()
    }
}

/// How STORE combines the given flags with a message's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// Result of `Mailbox::store`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreResult {
    /// `(uid, new modseq, new flags)` of the messages that changed.
    pub changed: Vec<(u32, u64, Flags)>,
    /// UIDs skipped because their MODSEQ was above UNCHANGEDSINCE
    /// (RFC 7162 3.1.3 MODIFIED).
    pub modified: Vec<u32>,
    /// UIDs that are gone (expunged by someone else).
    pub missing: Vec<u32>,
}

fn ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn now_ns() -> i128 {
    ns(SystemTime::now())
}

fn mtime_ns(p: &Path) -> io::Result<i128> {
    fs::metadata(p).and_then(|m| m.modified()).map(ns)
}

fn current_stamp(dir: &Path) -> io::Result<Stamp> {
    let (uidlist_mtime, uidlist_size, uidlist_ino) = match fs::metadata(dir.join(uidlist::FILE)) {
        Ok(m) => (ns(m.modified()?), m.len(), m.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (0, 0, 0),
        Err(e) => return Err(e),
    };
    Ok(Stamp {
        new_mtime: mtime_ns(&dir.join("new"))?,
        cur_mtime: mtime_ns(&dir.join("cur"))?,
        uidlist_mtime,
        uidlist_size,
        uidlist_ino,
        scanned_at: 0,
    })
}

fn diff(old: &BTreeMap<u32, Entry>, new: &BTreeMap<u32, Entry>) -> Changes {
    let mut c = Changes::default();
    for (uid, e) in new {
        match old.get(uid) {
            None => c.added.push(*uid),
            Some(o) if o.modseq != e.modseq => c.flags.push(*uid),
            Some(_) => {}
        }
    }
    c.expunged = old
        .keys()
        .filter(|u| !new.contains_key(u))
        .copied()
        .collect();
    c
}

/// The Maildir++ root whose `maildirsize` counts `dir`.
fn quota_root(dir: &Path) -> PathBuf {
    if dir.join(crate::folder::MAILDIRFOLDER).exists() {
        if let Some(p) = dir.parent() {
            return p.to_path_buf();
        }
    }
    dir.to_path_buf()
}

/// An open folder.
#[derive(Debug)]
pub struct Mailbox {
    dir: PathBuf,
    host: String,
    idx: Index,
    keywords: Keywords,
    keywords_mtime: i128,
    /// Inode of `yubin-index` and how many bytes of it are applied.
    index_ino: u64,
    index_off: u64,
    index_file: Option<File>,
}

/// Holds the folder's `flock` until dropped.
struct Locked(#[allow(dead_code)] File);

impl Mailbox {
    /// Opens the Maildir `dir`, which must exist (it has `cur/`; a missing
    /// `new/` or `tmp/` is recreated, as Dovecot does). With an index whose
    /// directory mtimes still match, nothing else is read.
    pub fn open(dir: &Path) -> Result<Mailbox, Error> {
        if !dir.join("cur").is_dir() {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such mailbox: {}", dir.display()),
            )));
        }
        crate::deliver::ensure_maildir(dir)?;
        let mut mb = Mailbox {
            dir: dir.to_path_buf(),
            host: hostname(),
            idx: Index::default(),
            keywords: Keywords::default(),
            keywords_mtime: -1,
            index_ino: 0,
            index_off: 0,
            index_file: None,
        };
        mb.replay()?;
        mb.reload_keywords()?;
        let now = current_stamp(dir)?;
        if mb.idx.header.uidvalidity == 0 || !mb.idx.header.stamp.proves_unchanged(&now) {
            let _l = mb.lock()?;
            mb.scan_locked()?;
        }
        Ok(mb)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn uidvalidity(&self) -> u32 {
        self.idx.header.uidvalidity
    }
    /// The UID the next message will get (IMAP UIDNEXT).
    pub fn next_uid(&self) -> u32 {
        self.idx.header.next_uid
    }
    /// RFC 7162 HIGHESTMODSEQ.
    pub fn highest_modseq(&self) -> u64 {
        self.idx.header.highest_modseq
    }
    /// The mailbox GUID of `dovecot-uidlist`.
    pub fn guid(&self) -> &str {
        &self.idx.header.guid
    }
    pub fn len(&self) -> usize {
        self.idx.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.idx.entries.is_empty()
    }
    /// All UIDs, ascending (sequence number = position + 1).
    pub fn uids(&self) -> Vec<u32> {
        self.idx.entries.keys().copied().collect()
    }
    pub fn message(&self, uid: u32) -> Option<Message> {
        self.idx.entries.get(&uid).map(Message::from_entry)
    }
    pub fn messages(&self) -> impl Iterator<Item = Message> + '_ {
        self.idx.entries.values().map(Message::from_entry)
    }
    pub fn keywords(&self) -> &Keywords {
        &self.keywords
    }

    /// The message file's current path.
    pub fn path(&self, uid: u32) -> Option<PathBuf> {
        self.idx.entries.get(&uid).map(|e| self.entry_path(e))
    }

    fn entry_path(&self, e: &Entry) -> PathBuf {
        self.dir
            .join(if e.in_new { "new" } else { "cur" })
            .join(&e.name)
    }

    /// Opens the message file, following a rename by another session or
    /// by Dovecot (a rescan finds it by its UID). `Ok(None)`: expunged.
    pub fn open_message(&mut self, uid: u32) -> Result<Option<File>, Error> {
        for attempt in 0..2 {
            let Some(p) = self.path(uid) else {
                return Ok(None);
            };
            match File::open(&p) {
                Ok(f) => return Ok(Some(f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => {
                    let _l = self.lock()?;
                    self.scan_locked()?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// IMAP INTERNALDATE: the file's mtime (Dovecot keeps the received
    /// date there; APPEND sets it).
    pub fn internal_date(&mut self, uid: u32) -> Result<Option<SystemTime>, Error> {
        Ok(match self.open_message(uid)? {
            Some(f) => Some(f.metadata()?.modified()?),
            None => None,
        })
    }

    /// Brings the view up to date: other sessions' changes (cheap: the
    /// appended part of `yubin-index`), then, if a directory mtime moved,
    /// a scan.
    pub fn refresh(&mut self) -> Result<Changes, Error> {
        let before = self.idx.entries.clone();
        self.replay()?;
        self.reload_keywords()?;
        let now = current_stamp(&self.dir)?;
        if !self.idx.header.stamp.proves_unchanged(&now) {
            let _l = self.lock()?;
            self.scan_locked()?;
        }
        Ok(diff(&before, &self.idx.entries))
    }

    /// Forces a full scan (`doveadm force-resync`-like).
    pub fn rescan(&mut self) -> Result<Changes, Error> {
        let before = self.idx.entries.clone();
        let _l = self.lock()?;
        self.scan_locked()?;
        Ok(diff(&before, &self.idx.entries))
    }

    fn lock(&self) -> io::Result<Locked> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.dir.join(index::LOCK))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Locked(f))
    }

    fn reload_keywords(&mut self) -> io::Result<()> {
        let m = match mtime_ns(&self.dir.join(crate::keywords::FILE)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if m != self.keywords_mtime {
            self.keywords = Keywords::read(&self.dir)?;
            self.keywords_mtime = m;
        }
        Ok(())
    }

    /// Applies what was appended to `yubin-index` since we last read it,
    /// or reloads it when another session replaced it. The version we have
    /// applied stays open, so its inode number cannot be reused by a newer
    /// file: a different inode at the path always means "replaced".
    fn replay(&mut self) -> io::Result<()> {
        let path = self.dir.join(index::FILE);
        let path_ino = match fs::metadata(&path) {
            Ok(m) => m.ino(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let held = self
            .index_file
            .as_ref()
            .filter(|_| self.index_ino == path_ino);
        let len = match held {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        if held.is_none() || len < self.index_off {
            let mut f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            let ino = f.metadata()?.ino();
            let mut text = String::new();
            if f.read_to_string(&mut text).is_err() {
                self.idx.header.stamp = Stamp::default();
                return Ok(()); // not text: rebuilt by the next scan
            }
            match Index::parse(&text) {
                Some(i) => {
                    let complete = text.rfind('\n').map_or(0, |p| p + 1);
                    self.idx = i;
                    self.index_ino = ino;
                    self.index_off = complete as u64;
                    self.index_file = Some(f);
                }
                None => {
                    // Broken: keep what we know; the next scan rewrites it.
                    self.idx.header.stamp = Stamp::default();
                }
            }
            return Ok(());
        }
        if len == self.index_off {
            return Ok(());
        }
        let Some(f) = self.index_file.as_ref() else {
            return Ok(());
        };
        let mut buf = vec![0u8; (len - self.index_off) as usize];
        f.read_exact_at(&mut buf, self.index_off)?;
        let Ok(text) = String::from_utf8(buf) else {
            self.idx.header.stamp = Stamp::default();
            return Ok(());
        };
        let mut have_header = true;
        match self.idx.apply(&text, &mut have_header) {
            Some(used) => self.index_off += used as u64,
            None => self.idx.header.stamp = Stamp::default(),
        }
        Ok(())
    }

    /// Appends change lines (we hold the lock and have replayed, so the
    /// file ends where our offset is).
    fn append_log(&mut self, text: &str) -> io::Result<()> {
        if self.index_file.is_none() {
            return self.write_snapshot();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.dir.join(index::FILE))?;
        f.write_all(text.as_bytes())?;
        self.index_off += text.len() as u64;
        let mut have_header = true;
        self.idx.apply(text, &mut have_header);
        if self.idx.lines > 2 * self.idx.entries.len() + 1000 {
            self.write_snapshot()?;
        }
        Ok(())
    }

    fn write_snapshot(&mut self) -> io::Result<()> {
        let text = self.idx.snapshot();
        let path = self.dir.join(index::FILE);
        crate::atomic_write(&path, text.as_bytes())?;
        // We hold the lock: nobody replaced it since our rename.
        let f = File::open(&path)?;
        self.index_ino = f.metadata()?.ino();
        self.index_file = Some(f);
        self.index_off = text.len() as u64;
        self.idx.lines = 1 + self.idx.entries.len();
        Ok(())
    }

    fn bump(&mut self) -> u64 {
        self.idx.header.highest_modseq += 1;
        self.idx.header.highest_modseq
    }

    /// The full synchronisation: list new/ and cur/, take UIDs from
    /// `dovecot-uidlist`, give new files the next UIDs, and rewrite the
    /// index. Call with the lock held.
    fn scan_locked(&mut self) -> Result<(), Error> {
        self.replay()?;
        let scanned_at = now_ns();
        let stamp0 = current_stamp(&self.dir)?;
        // base -> (file name, in new/)
        let mut files: HashMap<String, (String, bool)> = HashMap::new();
        for (sub, in_new) in [("new", true), ("cur", false)] {
            for e in fs::read_dir(self.dir.join(sub))? {
                let e = e?;
                let Ok(n) = e.file_name().into_string() else {
                    continue; // not UTF-8: not a name we or Dovecot write
                };
                if n.starts_with('.') || n.contains('\n') || n.contains('\r') {
                    continue;
                }
                let base = name::base_of(&n).to_string();
                // A message in both (a rename caught halfway): cur/ wins.
                if in_new && files.contains_key(&base) {
                    continue;
                }
                files.insert(base, (n, in_new));
            }
        }
        let mut list = self.read_uidlist()?;
        // Without a dovecot-uidlist, write one now even for an empty folder,
        // so that Dovecot adopts our UIDVALIDITY instead of making its own.
        let missing = !self.dir.join(uidlist::FILE).exists();
        let unknown = |list: &UidList| {
            let known: std::collections::HashSet<&str> =
                list.records.iter().map(|r| r.base.as_str()).collect();
            files.keys().filter(|b| !known.contains(b.as_str())).count()
        };
        if missing || unknown(&list) > 0 {
            // Assign UIDs under Dovecot's lock, re-reading first: Dovecot
            // may have numbered some of them meanwhile.
            let lock = DotLock::acquire(
                &self.dir.join(uidlist::FILE),
                dotlock::UIDLIST_STALE,
                dotlock::WAIT,
            )?;
            list = self.read_uidlist()?;
            let known: std::collections::HashSet<String> =
                list.records.iter().map(|r| r.base.clone()).collect();
            let mut fresh: Vec<&String> = files.keys().filter(|b| !known.contains(*b)).collect();
            // Oldest first: names start with the delivery time, and within a
            // second the `M<usec>` part orders them (Dovecot's
            // `SECS.M<usec>P<pid>…` and Postfix's `SECS.V…I…M<usec>.host`;
            // not zero-padded, so compared as numbers, not as text).
            fresh.sort_by_key(|name| (delivery_time(name), *name));
            // Records of vanished files are dropped while we rewrite anyway.
            list.records.retain(|r| files.contains_key(&r.base));
            for b in fresh {
                list.records.push(Record {
                    uid: list.next_uid,
                    ext: Vec::new(),
                    base: b.clone(),
                });
                list.next_uid += 1;
            }
            list.write(&self.dir)?;
            lock.release()?;
        }
        let mut header = self.idx.header.clone();
        let mut old = std::mem::take(&mut self.idx.entries);
        if header.uidvalidity != list.uidvalidity {
            // A new UID space: nothing of the old index applies.
            old.clear();
            header.highest_modseq = header.highest_modseq.max(initial_modseq());
        }
        header.uidvalidity = list.uidvalidity;
        header.next_uid = list.next_uid;
        header.guid = list.guid.clone();
        self.idx.header = header;
        let mut entries = BTreeMap::new();
        for r in &list.records {
            let Some((fname, in_new)) = files.get(&r.base) else {
                continue;
            };
            let prev = old.get(&r.uid).filter(|o| name::base_of(&o.name) == r.base);
            let parsed = FileName::parse(fname);
            let path = self
                .dir
                .join(if *in_new { "new" } else { "cur" })
                .join(fname);
            let size = match (parsed.size, prev) {
                (Some(s), _) => s,
                (None, Some(p)) => p.size,
                (None, None) => match fs::metadata(&path) {
                    Ok(m) => m.len(),
                    Err(_) => continue, // gone since the listing
                },
            };
            let vsize = match (parsed.vsize, prev) {
                (Some(v), _) => v,
                (None, Some(p)) => p.vsize,
                (None, None) => match fs::read(&path) {
                    Ok(b) => name::virtual_size(&[&b]),
                    Err(_) => continue,
                },
            };
            let modseq = match prev {
                Some(p) if FileName::parse(&p.name).flags == parsed.flags => p.modseq,
                _ => self.bump(),
            };
            entries.insert(
                r.uid,
                Entry {
                    uid: r.uid,
                    modseq,
                    size,
                    vsize,
                    in_new: *in_new,
                    name: fname.clone(),
                },
            );
        }
        if old.keys().any(|u| !entries.contains_key(u)) {
            self.bump(); // expunges raise HIGHESTMODSEQ too (RFC 7162 3.2.10)
        }
        self.idx.entries = entries;
        let after = current_stamp(&self.dir)?;
        self.idx.header.stamp = Stamp {
            new_mtime: stamp0.new_mtime,
            cur_mtime: stamp0.cur_mtime,
            uidlist_mtime: after.uidlist_mtime,
            uidlist_size: after.uidlist_size,
            uidlist_ino: after.uidlist_ino,
            scanned_at,
        };
        self.write_snapshot()?;
        self.reload_keywords()?;
        Ok(())
    }

    /// `dovecot-uidlist`, or one rebuilt from our index when it is missing
    /// or broken (so the UIDs clients know survive), or a new one.
    fn read_uidlist(&self) -> io::Result<UidList> {
        match UidList::read(&self.dir) {
            Ok(Some(l)) => return Ok(l),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {}
            Err(e) => return Err(e),
        }
        let h = &self.idx.header;
        if h.uidvalidity != 0 {
            return Ok(UidList {
                uidvalidity: h.uidvalidity,
                next_uid: h.next_uid,
                guid: if h.guid.len() == 32 {
                    h.guid.clone()
                } else {
                    uidlist::new_guid()
                },
                hdr_ext: Vec::new(),
                records: self
                    .idx
                    .entries
                    .values()
                    .map(|e| Record {
                        uid: e.uid,
                        ext: Vec::new(),
                        base: name::base_of(&e.name).to_string(),
                    })
                    .collect(),
            });
        }
        // Dovecot's allocation: the clock, but never a value handed out
        // before in this Maildir++ root (crate::uidvalidity).
        Ok(UidList::new(crate::uidvalidity::next(&quota_root(
            &self.dir,
        ))?))
    }

    /// The letter index of keyword `name`; with `create`, adds it to
    /// `dovecot-keywords` (under the uidlist lock, as Dovecot requires).
    pub fn keyword_index(&mut self, name: &str, create: bool) -> Result<Option<usize>, Error> {
        self.reload_keywords()?;
        if let Some(i) = self.keywords.index_of(name) {
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let lock = DotLock::acquire(
            &self.dir.join(uidlist::FILE),
            dotlock::UIDLIST_STALE,
            dotlock::WAIT,
        )?;
        let mut k = Keywords::read(&self.dir)?;
        let (i, added) = k.get_or_add(name)?;
        if added {
            k.write(&self.dir)?;
        }
        lock.release()?;
        self.keywords = k;
        self.keywords_mtime = -1;
        Ok(Some(i))
    }

    /// IMAP STORE: changes flags by renaming the files into `cur/` with
    /// the new `:2,` letters; each changed message gets a new MODSEQ.
    pub fn store(
        &mut self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> Result<StoreResult, Error> {
        let _l = self.lock()?;
        self.replay()?;
        let mut res = StoreResult::default();
        let mut log = String::new();
        let mut retry = Vec::new();
        for pass in 0..2 {
            let todo: Vec<u32> = if pass == 0 {
                uids.to_vec()
            } else {
                std::mem::take(&mut retry)
            };
            if pass == 1 {
                if todo.is_empty() {
                    break;
                }
                self.scan_locked()?;
            }
            for uid in todo {
                let Some(e) = self.idx.entries.get(&uid).cloned() else {
                    res.missing.push(uid);
                    continue;
                };
                if unchanged_since.is_some_and(|u| e.modseq > u) {
                    res.modified.push(uid);
                    continue;
                }
                let old = FileName::parse(&e.name).flags;
                let new = match op {
                    FlagOp::Add => old.union(flags),
                    FlagOp::Remove => old.minus(flags),
                    FlagOp::Replace => flags,
                };
                if new == old {
                    continue;
                }
                let new_name = name::with_flags(name::base_of(&e.name), new);
                match fs::rename(self.entry_path(&e), self.dir.join("cur").join(&new_name)) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        if pass == 0 {
                            retry.push(uid);
                        } else {
                            res.missing.push(uid);
                        }
                        continue;
                    }
                    Err(err) => return Err(err.into()),
                }
                let modseq = self.bump();
                let ne = Entry {
                    modseq,
                    in_new: false,
                    name: new_name,
                    ..e
                };
                log.push_str(&index::entry_line(&ne));
                self.idx.entries.insert(uid, ne);
                res.changed.push((uid, modseq, new));
            }
        }
        if !log.is_empty() {
            log.push_str(&index::header_line(&self.idx.header));
            self.append_log(&log)?;
        }
        Ok(res)
    }

    /// Moves the messages still in `new/` to `cur/` (what a read-write
    /// SELECT does in Dovecot); returns their UIDs, the session's
    /// `\Recent` messages. Flags and MODSEQs do not change.
    pub fn take_new(&mut self) -> Result<Vec<u32>, Error> {
        let _l = self.lock()?;
        self.replay()?;
        let mut log = String::new();
        let mut taken = Vec::new();
        let new: Vec<Entry> = self
            .idx
            .entries
            .values()
            .filter(|e| e.in_new)
            .cloned()
            .collect();
        for e in new {
            let new_name = name::with_flags(name::base_of(&e.name), FileName::parse(&e.name).flags);
            match fs::rename(self.entry_path(&e), self.dir.join("cur").join(&new_name)) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err.into()),
            }
            let ne = Entry {
                in_new: false,
                name: new_name,
                ..e
            };
            log.push_str(&index::entry_line(&ne));
            taken.push(ne.uid);
            self.idx.entries.insert(ne.uid, ne);
        }
        if !log.is_empty() {
            self.append_log(&log)?;
        }
        Ok(taken)
    }

    /// Removes messages (IMAP EXPUNGE); returns the UIDs that were there.
    pub fn expunge(&mut self, uids: &[u32]) -> Result<Vec<u32>, Error> {
        let _l = self.lock()?;
        self.replay()?;
        let mut log = String::new();
        let mut gone = Vec::new();
        let (mut bytes, mut count) = (0i64, 0i64);
        for &uid in uids {
            let Some(e) = self.idx.entries.get(&uid).cloned() else {
                continue;
            };
            match fs::remove_file(self.entry_path(&e)) {
                Ok(()) => {
                    bytes += e.size as i64;
                    count += 1;
                }
                // Renamed by another writer: find it by a scan, then retry.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    self.scan_locked()?;
                    if let Some(e2) = self.idx.entries.get(&uid).cloned() {
                        match fs::remove_file(self.entry_path(&e2)) {
                            Ok(()) => {
                                bytes += e2.size as i64;
                                count += 1;
                            }
                            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                            Err(err) => return Err(err.into()),
                        }
                    }
                }
                Err(err) => return Err(err.into()),
            }
            let modseq = self.bump();
            self.idx.entries.remove(&uid);
            log.push_str(&index::expunge_line(uid, modseq));
            gone.push(uid);
        }
        if !log.is_empty() {
            log.push_str(&index::header_line(&self.idx.header));
            self.append_log(&log)?;
            let _ = quota::record(&quota_root(&self.dir), -bytes, -count);
        }
        Ok(gone)
    }

    /// IMAP APPEND: stores a message with `flags` and INTERNALDATE `date`;
    /// returns its UID (for UIDPLUS APPENDUID with `uidvalidity()`).
    pub fn append(
        &mut self,
        parts: &[&[u8]],
        flags: Flags,
        date: Option<SystemTime>,
    ) -> Result<u32, Error> {
        let size: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let vsize = name::virtual_size(parts);
        let base = name::unique_base(&self.host, size, vsize);
        let tmp = self.dir.join("tmp").join(&base);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            for p in parts {
                f.write_all(p)?;
            }
            if let Some(d) = date {
                f.set_modified(d)?;
            }
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        let uids = self.import(vec![(tmp, base, flags, size, vsize)])?;
        Ok(uids[0])
    }

    /// IMAP COPY: hard links (or copies) the messages into `dest` with
    /// their flags; returns `(source uid, new uid)` pairs (UIDPLUS COPYUID).
    pub fn copy_to(&mut self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>, Error> {
        let mut staged = Vec::new();
        let mut from = Vec::new();
        for &uid in uids {
            let Some(mut src) = self.open_message(uid)? else {
                continue;
            };
            let Some(m) = self.message(uid) else { continue };
            let base = name::unique_base(&dest.host, m.size, m.vsize);
            let tmp = dest.dir.join("tmp").join(&base);
            let date = src.metadata()?.modified().ok();
            let linked = self
                .path(uid)
                .is_some_and(|p| fs::hard_link(&p, &tmp).is_ok());
            if !linked {
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                io::copy(&mut src, &mut out)?;
                if let Some(d) = date {
                    out.set_modified(d)?;
                }
                out.sync_all()?;
            }
            staged.push((tmp, base, m.flags, m.size, m.vsize));
            from.push(uid);
        }
        let new = dest.import(staged)?;
        Ok(from.into_iter().zip(new).collect())
    }

    /// Moves staged files from tmp/ into cur/ and numbers them.
    fn import(
        &mut self,
        staged: Vec<(PathBuf, String, Flags, u64, u64)>,
    ) -> Result<Vec<u32>, Error> {
        if staged.is_empty() {
            return Ok(Vec::new());
        }
        let root = quota_root(&self.dir);
        let total: u64 = staged.iter().map(|s| s.3).sum();
        if let Some(u) = quota::read(&root)? {
            let over = u.limit.bytes.is_some_and(|l| u.bytes + total > l)
                || u.limit
                    .count
                    .is_some_and(|l| u.count + staged.len() as u64 > l);
            if over {
                for s in &staged {
                    let _ = fs::remove_file(&s.0);
                }
                return Err(Error::OverQuota);
            }
        }
        let mut placed = Vec::new();
        for (tmp, base, flags, size, vsize) in staged {
            let fname = name::with_flags(&base, flags);
            if let Err(e) = fs::rename(&tmp, self.dir.join("cur").join(&fname)) {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
            placed.push((base, fname, size, vsize));
        }
        DirSync::global().sync(&self.dir.join("cur"))?;
        let _l = self.lock()?;
        self.replay()?;
        let lock = DotLock::acquire(
            &self.dir.join(uidlist::FILE),
            dotlock::UIDLIST_STALE,
            dotlock::WAIT,
        )?;
        let mut list = self.read_uidlist()?;
        if list.uidvalidity != self.idx.header.uidvalidity && self.idx.header.uidvalidity != 0 {
            // Someone reset the folder: number these with a full scan.
            drop(lock);
            self.scan_locked()?;
            return Ok(placed
                .iter()
                .filter_map(|(b, ..)| {
                    self.idx
                        .entries
                        .values()
                        .find(|e| name::base_of(&e.name) == b)
                        .map(|e| e.uid)
                })
                .collect());
        }
        let mut log = String::new();
        let mut uids = Vec::new();
        for (base, fname, size, vsize) in placed.iter() {
            let uid = list.next_uid;
            list.next_uid += 1;
            list.records.push(Record {
                uid,
                ext: Vec::new(),
                base: base.clone(),
            });
            let modseq = self.bump();
            let e = Entry {
                uid,
                modseq,
                size: *size,
                vsize: *vsize,
                in_new: false,
                name: fname.clone(),
            };
            log.push_str(&index::entry_line(&e));
            self.idx.entries.insert(uid, e);
            uids.push(uid);
        }
        list.write(&self.dir)?;
        lock.release()?;
        self.idx.header.uidvalidity = list.uidvalidity;
        self.idx.header.next_uid = list.next_uid;
        self.idx.header.guid = list.guid.clone();
        log.push_str(&index::header_line(&self.idx.header));
        self.append_log(&log)?;
        let _ = quota::record(
            &root,
            placed.iter().map(|p| p.2 as i64).sum(),
            placed.len() as i64,
        );
        Ok(uids)
    }
}

/// MODSEQs of a folder whose index is new start from the clock (ms), so
/// that a lost index never makes them go backwards for a client that
/// remembers an old HIGHESTMODSEQ (RFC 7162 3.1.2: they only grow).
fn initial_modseq() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// (seconds, microseconds) of a Maildir name's delivery time, (0, 0) for
/// a name that does not follow the convention (it sorts first).
fn delivery_time(name: &str) -> (u64, u64) {
    let mut parts = name.split('.');
    let secs = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    let usec = parts
        .next()
        .and_then(|p| p.find('M').map(|i| &p[i + 1..]))
        .map(|d| {
            d.bytes().take_while(u8::is_ascii_digit).fold(0u64, |n, b| {
                n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
            })
        })
        .unwrap_or(0);
    (secs, usec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::SystemFlag;

    #[test]
    fn delivery_time_orders_microseconds_as_numbers() {
        let a = "1700000000.M99999P7Q1.host,S=1,W=1";
        let b = "1700000000.M123456P7Q2.host,S=1,W=1";
        assert!(a > b, "as text the later one sorts first");
        assert!(delivery_time(a) < delivery_time(b));
        assert_eq!(delivery_time("1700000000.V801I2M5.mail"), (1700000000, 5));
        assert_eq!(delivery_time("garbage"), (0, 0));
    }

    fn deliver(dir: &Path, tag: &str, body: &[u8]) -> PathBuf {
        let parts: &[&[u8]] = &[body];
        crate::deliver(
            dir,
            &crate::Delivery {
                tag,
                host: "h",
                parts,
                check_existing: false,
                size_limit: 0,
                now: 1_700_000_000,
            },
            &DirSync::new(),
        )
        .unwrap()
    }

    /// Sets a directory's mtime into the past, as if it had not changed
    /// for a minute.
    fn age(dir: &Path) {
        let t = SystemTime::now() - std::time::Duration::from_secs(60);
        File::open(dir).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn numbers_messages_and_keeps_uids_across_restarts() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        deliver(dir, "A", b"a\n");
        deliver(dir, "B", b"bb\n");
        let mut mb = Mailbox::open(dir).unwrap();
        assert_eq!(mb.uids(), [1, 2]);
        let m = mb.message(1).unwrap();
        assert_eq!((m.size, m.vsize, m.in_new), (2, 3, true));
        let v = mb.uidvalidity();
        let text = fs::read_to_string(dir.join(uidlist::FILE)).unwrap();
        assert!(text.starts_with(&format!("3 V{v} N3 G")), "{text}");
        assert!(text.ends_with("1 :1700000000.A.h,S=2,W=3\n2 :1700000000.B.h,S=3,W=4\n"));
        deliver(dir, "C", b"c");
        let c = mb.refresh().unwrap();
        assert_eq!(c.added, [3]);
        drop(mb);
        let mb = Mailbox::open(dir).unwrap();
        assert_eq!(
            (mb.uidvalidity(), mb.uids(), mb.next_uid()),
            (v, vec![1, 2, 3], 4)
        );
    }

    #[test]
    fn flags_modseqs_and_expunges_are_shared_between_sessions() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        deliver(dir, "A", b"a");
        deliver(dir, "B", b"b");
        let mut s1 = Mailbox::open(dir).unwrap();
        let mut s2 = Mailbox::open(dir).unwrap();
        assert_eq!(s1.take_new().unwrap(), [1, 2]);
        let h0 = s1.highest_modseq();
        let seen = Flags::EMPTY.with(SystemFlag::Seen);
        let r = s1.store(&[1, 9], FlagOp::Add, seen, None).unwrap();
        assert_eq!(r.changed, [(1, h0 + 1, seen)]);
        assert_eq!(r.missing, [9]);
        assert!(dir.join("cur/1700000000.A.h,S=1,W=1:2,S").exists());
        // UNCHANGEDSINCE older than the message's MODSEQ: refused.
        let r = s1.store(&[1], FlagOp::Remove, seen, Some(h0)).unwrap();
        assert_eq!(r.modified, [1]);
        // The other session sees the same MODSEQ.
        let c = s2.refresh().unwrap();
        assert_eq!(c.flags, [1]);
        assert_eq!(s2.message(1).unwrap().modseq, h0 + 1);
        assert_eq!(s2.message(1).unwrap().flags, seen);
        assert_eq!(s2.highest_modseq(), h0 + 1);
        // A keyword letter through dovecot-keywords.
        let k = s2.keyword_index("$Forwarded", true).unwrap().unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("dovecot-keywords")).unwrap(),
            "0 $Forwarded\n"
        );
        let r = s2
            .store(&[2], FlagOp::Replace, Flags::EMPTY.with_keyword(k), None)
            .unwrap();
        assert_eq!(r.changed[0].2.letters(), "a");
        assert_eq!(s2.expunge(&[1]).unwrap(), [1]);
        let c = s1.refresh().unwrap();
        assert_eq!((c.expunged, c.flags), (vec![1], vec![2]));
        assert!(s1.highest_modseq() > h0 + 2);
        assert_eq!(s1.keyword_index("$forwarded", false).unwrap(), Some(0));
    }

    #[test]
    fn concurrent_sessions_never_lose_or_reuse_a_modseq() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        for i in 0..8 {
            deliver(&dir, &format!("M{i}"), b"x");
        }
        let h0 = Mailbox::open(&dir).unwrap().highest_modseq();
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let mut mb = Mailbox::open(&dir).unwrap();
                    let uids = [2 * t + 1, 2 * t + 2];
                    for round in 0..10 {
                        let op = if round % 2 == 0 {
                            FlagOp::Add
                        } else {
                            FlagOp::Remove
                        };
                        let f = Flags::EMPTY.with(SystemFlag::Seen);
                        let r = mb.store(&uids, op, f, None).unwrap();
                        assert_eq!(r.changed.len(), 2);
                        mb.refresh().unwrap();
                    }
                    mb.store(
                        &uids,
                        FlagOp::Add,
                        Flags::EMPTY.with(SystemFlag::Flagged),
                        None,
                    )
                    .unwrap()
                })
            })
            .collect();
        let mut finals = Vec::new();
        for t in threads {
            finals.extend(t.join().unwrap().changed);
        }
        let mb = Mailbox::open(&dir).unwrap();
        // 4 sessions x 2 messages x 11 changes, each with its own MODSEQ.
        assert_eq!(mb.highest_modseq(), h0 + 88);
        for (uid, modseq, flags) in finals {
            let m = mb.message(uid).unwrap();
            assert_eq!((m.modseq, m.flags), (modseq, flags));
            assert!(flags.has(SystemFlag::Flagged) && !flags.has(SystemFlag::Seen));
        }
    }

    #[test]
    fn follows_renames_by_other_programs() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let p = deliver(dir, "A", b"a");
        let mut mb = Mailbox::open(dir).unwrap();
        let m0 = mb.message(1).unwrap().modseq;
        // Dovecot (or a user) marks it \Seen and \Flagged.
        fs::rename(&p, dir.join("cur/1700000000.A.h,S=1,W=1:2,FS")).unwrap();
        let c = mb.refresh().unwrap();
        assert_eq!(c.flags, [1]);
        let m = mb.message(1).unwrap();
        assert!(m.modseq > m0 && m.flags.has(SystemFlag::Flagged));
        assert!(mb.open_message(1).unwrap().is_some());
    }

    #[test]
    fn uses_dovecot_uids() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        crate::deliver::ensure_maildir(dir).unwrap();
        fs::write(dir.join("cur/100.M1P1.dove,S=1,W=1:2,S"), b"x").unwrap();
        fs::write(dir.join("new/200.M2P2.dove,S=1,W=1"), b"y").unwrap();
        fs::write(
            dir.join(uidlist::FILE),
            "3 V1234 N43 G0123456789abcdef0123456789abcdef\n41 :100.M1P1.dove,S=1,W=1\n",
        )
        .unwrap();
        let mb = Mailbox::open(dir).unwrap();
        assert_eq!(mb.uidvalidity(), 1234);
        assert_eq!(mb.uids(), [41, 43]);
        assert_eq!(mb.guid(), "0123456789abcdef0123456789abcdef");
        let l = UidList::read(dir).unwrap().unwrap();
        assert_eq!(l.next_uid, 44);
        assert_eq!(l.find("200.M2P2.dove,S=1,W=1").unwrap().uid, 43);
    }

    #[test]
    fn append_and_copy_with_uidplus_answers() {
        let d = tempfile::tempdir().unwrap();
        let store = crate::folder::Store::new(d.path());
        let sent = crate::folder::FolderName::parse("Sent", '/').unwrap();
        store.create(&sent).unwrap();
        let mut inbox = Mailbox::open(d.path()).unwrap();
        let date = UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        let seen = Flags::EMPTY.with(SystemFlag::Seen);
        let uid = inbox
            .append(&[b"Subject: x\n\nhi\n"], seen, Some(date))
            .unwrap();
        assert_eq!(uid, 1);
        assert_eq!(inbox.internal_date(1).unwrap(), Some(date));
        let m = inbox.message(1).unwrap();
        assert_eq!((m.size, m.vsize, m.flags), (15, 18, seen));
        let mut out = Mailbox::open(&store.path(&sent)).unwrap();
        assert_eq!(inbox.copy_to(&[1, 7], &mut out).unwrap(), [(1, 1)]);
        assert_eq!(out.message(1).unwrap().flags, seen);
        assert_eq!(out.internal_date(1).unwrap(), Some(date));
        // A fresh session of the target sees the copy under the same UID.
        let again = Mailbox::open(&store.path(&sent)).unwrap();
        assert_eq!(again.uids(), [1]);
    }

    #[test]
    fn trusts_an_index_older_than_the_directories() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let p = deliver(dir, "A", b"a");
        deliver(dir, "B", b"b");
        age(&dir.join("new"));
        age(&dir.join("cur"));
        drop(Mailbox::open(dir).unwrap()); // scans once, writes the index
                                           // Remove a file behind the index's back and restore the mtime:
                                           // an open that trusts the index still lists it...
        let t = fs::metadata(dir.join("new")).unwrap().modified().unwrap();
        fs::remove_file(&p).unwrap();
        File::open(dir.join("new"))
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert_eq!(Mailbox::open(dir).unwrap().len(), 2);
        // ...and one that sees the directory change does not.
        age(&dir.join("new"));
        let mut mb = Mailbox::open(dir).unwrap();
        assert_eq!(mb.uids(), [2]);
        assert_eq!(mb.open_message(1).unwrap().map(|_| ()), None);
    }

    #[test]
    fn missing_folder_is_an_error_and_empty_one_gets_a_uidlist() {
        let d = tempfile::tempdir().unwrap();
        let e = Mailbox::open(&d.path().join(".Nope")).unwrap_err();
        assert!(matches!(e, Error::Io(ref e) if e.kind() == io::ErrorKind::NotFound));
        assert!(!d.path().join(".Nope").exists());
        fs::create_dir(d.path().join("cur")).unwrap();
        let mb = Mailbox::open(d.path()).unwrap();
        let l = UidList::read(d.path()).unwrap().unwrap();
        assert_eq!((l.uidvalidity, l.next_uid), (mb.uidvalidity(), 1));
        assert!(d.path().join("new").is_dir() && d.path().join("tmp").is_dir());
    }

    #[test]
    fn over_quota_append_is_refused() {
        let d = tempfile::tempdir().unwrap();
        crate::deliver::ensure_maildir(d.path()).unwrap();
        quota::set_limit(
            d.path(),
            quota::Limit {
                bytes: Some(4),
                count: None,
            },
        )
        .unwrap();
        let mut mb = Mailbox::open(d.path()).unwrap();
        mb.append(&[b"abc"], Flags::EMPTY, None).unwrap();
        assert!(matches!(
            mb.append(&[b"de"], Flags::EMPTY, None),
            Err(Error::OverQuota)
        ));
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }
}
