//! The IMAP session's store requests answered from a user's Maildir++
//! through the `mailstore` crate (Dovecot's on-disk formats: folders,
//! flags in file names, `dovecot-uidlist`, `dovecot-keywords`), so Dovecot
//! and yubin can serve the same Maildir. Runs on a blocking thread.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use yubin_imap::store::{
    Flag, FlagOp as StoreOp, Flags, MailboxEntry, MessageData, MessageMeta, QuotaUsage, Reply,
    Request, Snapshot, SpecialUse, StoreError, DELIMITER,
};
use yubin_mailstore::folder::{self, FolderError, FolderName, Store};
use yubin_mailstore::mailbox::{self, FlagOp, Mailbox};
use yubin_mailstore::{mutf7, SystemFlag};

/// Messages larger than this are not read into memory for FETCH.
const MAX_READ: u64 = 1 << 30;

/// One logged-in user's mail.
pub struct MaildirStore {
    store: Store,
    /// The folder the session works in, kept open between requests (its
    /// view is refreshed on every use).
    open: Option<(String, Mailbox)>,
}

fn io_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn mb_err(e: mailbox::Error) -> StoreError {
    match e {
        mailbox::Error::OverQuota => StoreError::OverQuota,
        e => io_err(e),
    }
}

fn folder_err(e: FolderError) -> StoreError {
    match e {
        FolderError::Exists => StoreError::AlreadyExists,
        FolderError::NotFound => StoreError::NoSuchMailbox,
        FolderError::InboxDelete => StoreError::Refused("INBOX can't be deleted.".into()),
        FolderError::Name(n) => StoreError::Refused(n.to_string()),
        FolderError::Io(e) => io_err(e),
    }
}

/// The IMAP name (modified UTF-7, `.`-separated) as a folder name.
fn folder_name(imap: &str) -> Result<FolderName, StoreError> {
    let utf8 = mutf7::decode(imap).map_err(|e| StoreError::Refused(e.to_string()))?;
    FolderName::parse(&utf8, DELIMITER).map_err(|e| StoreError::Refused(e.to_string()))
}

fn imap_name(f: &FolderName) -> String {
    if f.is_inbox() {
        return "INBOX".into();
    }
    f.levels()
        .iter()
        .map(|l| mutf7::encode(l))
        .collect::<Vec<_>>()
        .join(&DELIMITER.to_string())
}

fn special(s: folder::SpecialUse) -> SpecialUse {
    match s {
        folder::SpecialUse::Sent => SpecialUse::Sent,
        folder::SpecialUse::Drafts => SpecialUse::Drafts,
        folder::SpecialUse::Trash => SpecialUse::Trash,
        folder::SpecialUse::Junk => SpecialUse::Junk,
        folder::SpecialUse::Archive => SpecialUse::Archive,
    }
}

const SYSTEM: [(SystemFlag, Flag); 5] = [
    (SystemFlag::Seen, Flag::Seen),
    (SystemFlag::Answered, Flag::Answered),
    (SystemFlag::Flagged, Flag::Flagged),
    (SystemFlag::Deleted, Flag::Deleted),
    (SystemFlag::Draft, Flag::Draft),
];

fn to_imap_flags(mb: &Mailbox, f: yubin_mailstore::Flags) -> Flags {
    let mut out = Flags::new();
    for (s, i) in SYSTEM.iter() {
        if f.has(*s) {
            out.insert(i.clone());
        }
    }
    for k in f.keywords() {
        if let Some(name) = mb.keywords().name(k) {
            out.insert(Flag::Keyword(name.to_string()));
        }
    }
    out
}

/// IMAP flags as Maildir letters, keywords created in `dovecot-keywords`
/// as needed. Letters IMAP cannot express (`P`, "passed") are kept from
/// `keep`.
fn to_maildir_flags(
    mb: &mut Mailbox,
    f: &Flags,
    keep: yubin_mailstore::Flags,
) -> Result<yubin_mailstore::Flags, StoreError> {
    let mut out = yubin_mailstore::Flags::default();
    if keep.has(SystemFlag::Passed) {
        out = out.with(SystemFlag::Passed);
    }
    for flag in f.iter() {
        out = match flag {
            Flag::Keyword(k) => match mb.keyword_index(k, true).map_err(mb_err)? {
                Some(i) => out.with_keyword(i),
                // dovecot-keywords holds 26 keywords (letters a-z); more
                // cannot be stored in a file name.
                None => {
                    return Err(StoreError::Refused(
                        "Too many keywords in this mailbox".into(),
                    ))
                }
            },
            other => match SYSTEM.iter().find(|(_, i)| i == other) {
                Some((s, _)) => out.with(*s),
                None => out,
            },
        };
    }
    Ok(out)
}

/// Maildir files may hold bare LF line ends; IMAP sends CRLF, and
/// RFC822.SIZE (the `W=` virtual size) counts CRLF.
fn crlf(data: Vec<u8>) -> Vec<u8> {
    if !data.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') && data.first() != Some(&b'\n') {
        return data;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut prev = 0u8;
    for &b in &data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

impl MaildirStore {
    /// Opens (and for a new user creates) the Maildir at `root` with INBOX
    /// and the special-use folders, subscribed.
    pub fn open(root: &Path) -> Result<MaildirStore, String> {
        // Several sessions of one user logging in at once would race to
        // create the same folders; this process creates them one at a time.
        static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let store = Store::new(root);
        {
            let _g = CREATE.lock().unwrap_or_else(|p| p.into_inner());
            store.ensure_defaults().map_err(|e| e.to_string())?;
        }
        Ok(MaildirStore { store, open: None })
    }

    fn path(&self, name: &str) -> Result<std::path::PathBuf, StoreError> {
        let f = folder_name(name)?;
        if !f.is_inbox() && !self.store.exists(&f) {
            return Err(StoreError::NoSuchMailbox);
        }
        Ok(self.store.path(&f))
    }

    /// The folder `name`, opened or refreshed.
    fn mailbox(&mut self, name: &str) -> Result<&mut Mailbox, StoreError> {
        let reuse = matches!(&self.open, Some((n, _)) if n == name);
        if reuse {
            let p = self.path(name)?;
            let (_, mb) = self.open.as_mut().ok_or(StoreError::NoSuchMailbox)?;
            if !p.join("cur").exists() {
                self.open = None;
                return Err(StoreError::NoSuchMailbox);
            }
            mb.refresh().map_err(mb_err)?;
        } else {
            let p = self.path(name)?;
            let mb = Mailbox::open(&p).map_err(mb_err)?;
            self.open = Some((name.to_string(), mb));
        }
        match &mut self.open {
            Some((_, mb)) => Ok(mb),
            None => Err(StoreError::NoSuchMailbox),
        }
    }

    /// What IDLE polls: mailstore's folder fingerprint (a few `stat`s of
    /// `new/`, `cur/`, `yubin-index` and `dovecot-uidlist`; no directory
    /// read), which moves with deliveries, other sessions' flag changes and
    /// expunges, and Dovecot's changes.
    pub fn stamp(&self, name: &str) -> Option<yubin_mailstore::watch::FolderStamp> {
        let p = self.path(name).ok()?;
        Some(yubin_mailstore::watch::FolderStamp::read(&p))
    }

    pub fn execute(&mut self, req: Request) -> Reply {
        match self.run(req) {
            Ok(r) => r,
            Err(e) => Reply::Failed(e),
        }
    }

    fn run(&mut self, req: Request) -> Result<Reply, StoreError> {
        Ok(match req {
            Request::ListMailboxes => {
                let subs = self.store.subscriptions().map_err(io_err)?;
                let list = self.store.list().map_err(io_err)?;
                let mut out: Vec<MailboxEntry> = list
                    .iter()
                    .filter(|f| f.exists)
                    .map(|f| MailboxEntry {
                        name: imap_name(&f.name),
                        special_use: f.special_use.map(special),
                        subscribed: subs.contains(&f.name),
                        exists: true,
                    })
                    .collect();
                for s in &subs {
                    if !list.iter().any(|f| f.exists && f.name == *s) {
                        out.push(MailboxEntry {
                            name: imap_name(s),
                            special_use: None,
                            subscribed: true,
                            exists: false,
                        });
                    }
                }
                Reply::Mailboxes(out)
            }
            Request::Create { name } => {
                self.store
                    .create(&folder_name(&name)?)
                    .map_err(folder_err)?;
                Reply::Done
            }
            Request::Delete { name } => {
                let f = folder_name(&name)?;
                if matches!(&self.open, Some((n, _)) if *n == name) {
                    self.open = None;
                }
                self.store.delete(&f).map_err(folder_err)?;
                Reply::Done
            }
            Request::Rename { from, to } => {
                self.open = None;
                self.store
                    .rename(&folder_name(&from)?, &folder_name(&to)?)
                    .map_err(folder_err)?;
                Reply::Done
            }
            Request::Subscribe { name, subscribe } => {
                // RFC 3501 section 6.3.6: a name that does not exist may be
                // subscribed; it must still be a valid name.
                let f = folder_name(&name)?;
                self.store.set_subscribed(&f, subscribe).map_err(io_err)?;
                Reply::Done
            }
            Request::Open { name, claim_recent } => {
                let mb = self.mailbox(&name)?;
                if claim_recent {
                    // What a read-write SELECT does in Dovecot: new/ -> cur/.
                    mb.take_new().map_err(mb_err)?;
                }
                let last = mb.uids().last().copied().unwrap_or(0);
                let seen_up_to = recent::claim(mb.dir(), claim_recent, last).map_err(io_err)?;
                let messages = mb
                    .messages()
                    .map(|m| MessageMeta {
                        uid: m.uid,
                        flags: to_imap_flags(mb, m.flags),
                        recent: m.uid > seen_up_to,
                        modseq: m.modseq.max(1),
                    })
                    .collect();
                Reply::Snapshot(Snapshot {
                    uidvalidity: mb.uidvalidity(),
                    uidnext: mb.next_uid(),
                    highest_modseq: mb.highest_modseq().max(1),
                    messages,
                })
            }
            Request::Append {
                mailbox,
                flags,
                internal_date,
                message,
            } => {
                let mb = self.mailbox(&mailbox)?;
                let f = to_maildir_flags(mb, &flags, Default::default())?;
                let date = internal_date.and_then(|t| {
                    u64::try_from(t)
                        .ok()
                        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                });
                let uid = mb.append(&[&message], f, date).map_err(mb_err)?;
                Reply::Appended {
                    uidvalidity: mb.uidvalidity(),
                    uid,
                }
            }
            Request::Fetch {
                mailbox,
                uids,
                content,
            } => {
                let mb = self.mailbox(&mailbox)?;
                let mut out = Vec::with_capacity(uids.len());
                for uid in uids {
                    let Some(m) = mb.message(uid) else { continue };
                    let Some(mut file) = mb.open_message(uid).map_err(mb_err)? else {
                        continue;
                    };
                    let meta = file.metadata().map_err(io_err)?;
                    let internal_date = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    let data = if content {
                        let mut buf = Vec::with_capacity(meta.len().min(MAX_READ) as usize);
                        (&mut file)
                            .take(MAX_READ)
                            .read_to_end(&mut buf)
                            .map_err(io_err)?;
                        Some(crlf(buf))
                    } else {
                        None
                    };
                    out.push(MessageData {
                        uid,
                        internal_date,
                        size: data.as_ref().map(|d| d.len() as u64).unwrap_or(m.vsize),
                        content: data,
                    });
                }
                Reply::Messages(out)
            }
            Request::Store {
                mailbox,
                uids,
                op,
                flags,
                unchanged_since,
            } => {
                let mb = self.mailbox(&mailbox)?;
                let letters = to_maildir_flags(mb, &flags, Default::default())?;
                let op = match op {
                    StoreOp::Add => FlagOp::Add,
                    StoreOp::Remove => FlagOp::Remove,
                    StoreOp::Replace => FlagOp::Replace,
                };
                let res = mb
                    .store(&uids, op, letters, unchanged_since)
                    .map_err(mb_err)?;
                Reply::Flags {
                    flags: uids
                        .iter()
                        .filter_map(|&u| {
                            mb.message(u)
                                .map(|m| (u, to_imap_flags(mb, m.flags), m.modseq.max(1)))
                        })
                        .collect(),
                    modified: res.modified,
                }
            }
            Request::Copy {
                from,
                uids,
                to,
                remove_source,
            } => {
                let dest_path = self.path(&to)?;
                let mut dest = Mailbox::open(&dest_path).map_err(mb_err)?;
                let src = self.mailbox(&from)?;
                let map = src.copy_to(&uids, &mut dest).map_err(mb_err)?;
                if remove_source {
                    let moved: Vec<u32> = map.iter().map(|(s, _)| *s).collect();
                    src.expunge(&moved).map_err(mb_err)?;
                }
                Reply::Copied {
                    uidvalidity: dest.uidvalidity(),
                    map,
                }
            }
            Request::Expunge { mailbox, uids } => {
                let mb = self.mailbox(&mailbox)?;
                Reply::Expunged(mb.expunge(&uids).map_err(mb_err)?)
            }
            Request::Quota => {
                // The Maildir++ quota (maildirsize) of the user's root, as
                // deliveries and APPEND enforce it.
                let root = self.path("INBOX")?;
                let usage = yubin_mailstore::quota::read(&root).map_err(io_err)?;
                Reply::Quota(usage.map(|u| QuotaUsage {
                    bytes: u.bytes,
                    bytes_limit: u.limit.bytes.filter(|&b| b > 0),
                    messages: u.count,
                    messages_limit: u.limit.count.filter(|&c| c > 0),
                }))
            }
        })
    }
}

/// `\Recent` as Dovecot keeps it: a message is recent in exactly one
/// session, the first that selects the folder after it arrived. The
/// highest UID already claimed is kept in the folder's `yubin-recent`
/// file (Dovecot keeps the same number in its index and ignores this file).
mod recent {
    use std::io;
    use std::path::Path;
    use std::sync::Mutex;

    const FILE: &str = "yubin-recent";
    /// Sessions of this process claim one after the other.
    static CLAIM: Mutex<()> = Mutex::new(());

    /// The highest UID that is not recent for this session; with `claim`,
    /// UIDs up to `last` are claimed for it.
    pub fn claim(dir: &Path, claim: bool, last: u32) -> io::Result<u32> {
        let _g = CLAIM.lock().unwrap_or_else(|p| p.into_inner());
        let path = dir.join(FILE);
        let before = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if claim && last > before {
            let tmp = dir.join(format!("{FILE}.{}", std::process::id()));
            std::fs::write(&tmp, format!("{last}\n"))?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(before)
    }
}
