//! What the session core asks of a mail store, and what it gets back.
//!
//! The core never touches a file: it emits a [`Request`] inside
//! [`crate::Action::Store`] and the driver answers with a [`Reply`]
//! (`yubin serve` answers from the `mailstore` crate's Maildirs). Mailbox
//! names are IMAP names as the client sent them (modified UTF-7, `.` as the
//! hierarchy delimiter, `INBOX` for the root), which is also how Dovecot names
//! Maildir++ folders on disk (`.Sent`, `.Work.Reports`).

use std::fmt;

/// The hierarchy delimiter, `/` as in the usual Dovecot configuration
/// (`namespace inbox { separator = / }`) and as imaptest expects. On disk
/// Maildir++ joins levels with `.`, so `.` cannot be part of a name (Dovecot
/// refuses it the same way with this layout and separator).
pub const DELIMITER: char = '/';

/// A message flag (RFC 3501 section 2.3.2). `\Recent` is not stored: it is
/// a session property, reported by the store as [`MessageMeta::recent`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// A keyword (RFC 3501 `flag-keyword`), an atom such as `$Junk`.
    Keyword(String),
}

impl Flag {
    /// The flag as IMAP writes it.
    pub fn imap_name(&self) -> &str {
        match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Keyword(k) => k,
        }
    }
}

/// A message's flags, kept sorted and without duplicates so that two sets
/// compare equal when they hold the same flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags(Vec<Flag>);

impl Flags {
    pub fn new() -> Self {
        Flags(Vec::new())
    }
    pub fn contains(&self, f: &Flag) -> bool {
        self.0.binary_search(f).is_ok()
    }
    pub fn insert(&mut self, f: Flag) {
        if let Err(i) = self.0.binary_search(&f) {
            self.0.insert(i, f);
        }
    }
    pub fn remove(&mut self, f: &Flag) {
        if let Ok(i) = self.0.binary_search(f) {
            self.0.remove(i);
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &Flag> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<T: IntoIterator<Item = Flag>>(iter: T) -> Self {
        let mut f = Flags::new();
        for x in iter {
            f.insert(x);
        }
        f
    }
}

/// How STORE combines the given flags with a message's (RFC 3501
/// section 6.4.6: FLAGS, +FLAGS, -FLAGS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Replace,
    Add,
    Remove,
}

impl Flags {
    /// The flags after applying `op` with `with`.
    pub fn apply(&self, op: FlagOp, with: &Flags) -> Flags {
        match op {
            FlagOp::Replace => with.clone(),
            FlagOp::Add => self.iter().chain(with.iter()).cloned().collect(),
            FlagOp::Remove => self.iter().filter(|f| !with.contains(f)).cloned().collect(),
        }
    }
}

/// What a SELECT needs to know of one message, cheap to list for a large
/// folder (from the Maildir file name and `dovecot-uidlist`, no file read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    /// New to this session (RFC 3501 `\Recent`): the store moved it from
    /// `new/` to `cur/` for this open.
    pub recent: bool,
    /// RFC 7162 mod-sequence of the message's last flag change (or its
    /// arrival): positive, and never lower after a change.
    pub modseq: u64,
}

/// The state of one mailbox: what SELECT, STATUS and every resync read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// RFC 7162 HIGHESTMODSEQ: the highest mod-sequence of any change
    /// (including expunges) in the mailbox.
    pub highest_modseq: u64,
    /// In ascending UID order: sequence number `n` is `messages[n - 1]`.
    pub messages: Vec<MessageMeta>,
}

/// RFC 6154 special-use roles of the folders created for new users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }
}

/// One mailbox, or a subscribed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEntry {
    /// IMAP name (`INBOX`, `Sent`, `Work.Reports`).
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
    /// False for a subscription to a name that does not exist (RFC 3501
    /// section 6.3.6 allows it); such entries only show in LSUB.
    pub exists: bool,
}

/// One message's data for FETCH and SEARCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageData {
    pub uid: u32,
    /// INTERNALDATE, seconds since the epoch (the file's mtime in Maildir).
    pub internal_date: i64,
    /// RFC822.SIZE: the size with CRLF line ends (Maildir `S=` field).
    pub size: u64,
    /// The message with CRLF line ends, when the request asked for content.
    pub content: Option<Vec<u8>>,
}

/// A request of the session core to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Every mailbox of the user -> [`Reply::Mailboxes`].
    ListMailboxes,
    Create {
        name: String,
    },
    Delete {
        name: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Subscribe {
        name: String,
        subscribe: bool,
    },
    /// The mailbox's state -> [`Reply::Snapshot`]. With `claim_recent`, mail
    /// in `new/` moves to `cur/` and is reported `recent` (SELECT, not EXAMINE
    /// or STATUS: RFC 3501 section 6.3.2).
    Open {
        name: String,
        claim_recent: bool,
    },
    /// -> [`Reply::Appended`].
    Append {
        mailbox: String,
        flags: Flags,
        internal_date: Option<i64>,
        message: Vec<u8>,
    },
    /// -> [`Reply::Messages`], in the order asked, missing UIDs left out.
    Fetch {
        mailbox: String,
        uids: Vec<u32>,
        content: bool,
    },
    /// STORE: change the flags of these messages as the store holds them
    /// now (so that two sessions' changes combine) -> [`Reply::Flags`] with
    /// the resulting flags of each message that still exists.
    Store {
        mailbox: String,
        uids: Vec<u32>,
        op: FlagOp,
        flags: Flags,
        /// RFC 7162 UNCHANGEDSINCE: leave messages whose mod-sequence is
        /// higher alone and report them in [`Reply::Flags`]'s `modified`.
        unchanged_since: Option<u64>,
    },
    /// COPY, or MOVE with `remove_source` -> [`Reply::Copied`].
    Copy {
        from: String,
        uids: Vec<u32>,
        to: String,
        remove_source: bool,
    },
    /// Remove these messages -> [`Reply::Expunged`] with the UIDs removed.
    Expunge {
        mailbox: String,
        uids: Vec<u32>,
    },
    /// The user's quota (one root, `""`, for all folders) ->
    /// [`Reply::Quota`].
    Quota,
}

/// RFC 9208 usage and limits of the user's quota root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    pub bytes: u64,
    pub bytes_limit: Option<u64>,
    pub messages: u64,
    pub messages_limit: Option<u64>,
}

/// Why a store request failed; the core turns it into a tagged NO with
/// the RFC 5530 response code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NoSuchMailbox,
    AlreadyExists,
    /// A forbidden operation (deleting INBOX, a name the store refuses).
    Refused(String),
    OverQuota,
    /// An I/O failure; the text goes to the log, not to the client.
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NoSuchMailbox => f.write_str("Mailbox doesn't exist"),
            StoreError::AlreadyExists => f.write_str("Mailbox already exists"),
            StoreError::Refused(s) => f.write_str(s),
            StoreError::OverQuota => f.write_str("Quota exceeded"),
            StoreError::Io(s) => write!(f, "I/O error: {s}"),
        }
    }
}

/// The store's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done,
    Mailboxes(Vec<MailboxEntry>),
    Snapshot(Snapshot),
    Appended {
        uidvalidity: u32,
        uid: u32,
    },
    Messages(Vec<MessageData>),
    /// After a [`Request::Store`]: UID, flags and mod-sequence of each
    /// message that still exists, and the UIDs left alone because of
    /// UNCHANGEDSINCE.
    Flags {
        flags: Vec<(u32, Flags, u64)>,
        modified: Vec<u32>,
    },
    /// Source and destination UIDs, pairwise.
    Copied {
        uidvalidity: u32,
        map: Vec<(u32, u32)>,
    },
    Expunged(Vec<u32>),
    /// `None` when the user has no quota.
    Quota(Option<QuotaUsage>),
    Failed(StoreError),
}
