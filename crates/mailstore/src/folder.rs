//! Maildir++ folders in Dovecot's layout (`mail_location = maildir:~/Maildir`,
//! LAYOUT=maildir++): INBOX is the Maildir root; folder `a/b` (IMAP names
//! with any separator) is the directory `.a.b` beside `cur/`, named in
//! modified UTF-7, holding an empty `maildirfolder` file. Subscriptions are
//! in `subscriptions` as Dovecot 2.3 writes it (subscription-file.c):
//! the header `V\t2\n\n`, then one name per line with its hierarchy levels
//! separated by TAB (and `\001` escapes for TAB, CR, LF and `\001`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::dotlock::{self, DotLock};
use crate::mutf7;

/// The file that marks a Maildir++ folder (Dovecot: MAILDIR_SUBFOLDER_FILENAME).
pub const MAILDIRFOLDER: &str = "maildirfolder";
pub const SUBSCRIPTIONS: &str = "subscriptions";
const SUBS_HEADER: &str = "V\t2\n\n";
/// Longest directory name (NAME_MAX on Linux file systems).
const NAME_MAX: usize = 255;

/// A validated folder name: INBOX, or a list of hierarchy levels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolderName {
    /// Empty for INBOX.
    levels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("mailbox name is empty")]
    Empty,
    #[error("mailbox name has an empty hierarchy level")]
    EmptyLevel,
    #[error("mailbox name contains \"..\" or \".\" as a level")]
    DotLevel,
    #[error("mailbox name level starts with '.' or contains '.', the hierarchy separator on disk")]
    Dot,
    #[error("mailbox name contains '/'")]
    Slash,
    #[error("mailbox name contains NUL")]
    Nul,
    #[error("mailbox name contains a control character")]
    Control,
    #[error("mailbox name level starts with '~'")]
    Tilde,
    #[error("mailbox name is too long")]
    TooLong,
    #[error(transparent)]
    Mutf7(#[from] mutf7::Mutf7Error),
}

fn check_level(l: &str) -> Result<(), NameError> {
    if l.is_empty() {
        return Err(NameError::EmptyLevel);
    }
    if l == "." || l == ".." {
        return Err(NameError::DotLevel);
    }
    if l.contains('\0') {
        return Err(NameError::Nul);
    }
    if l.contains('/') {
        return Err(NameError::Slash);
    }
    if l.contains('.') {
        return Err(NameError::Dot);
    }
    if l.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    // Dovecot (mailbox_list_validate_fs_names) refuses `~` at the start of
    // a level: shells and some tools read it as a home directory.
    if l.starts_with('~') {
        return Err(NameError::Tilde);
    }
    Ok(())
}

impl FolderName {
    pub fn inbox() -> FolderName {
        FolderName { levels: Vec::new() }
    }

    /// Parses an IMAP name (UTF-8, already decoded from modified UTF-7)
    /// whose hierarchy separator is `sep`. `INBOX` in any case is INBOX.
    pub fn parse(name: &str, sep: char) -> Result<FolderName, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok(FolderName::inbox());
        }
        let levels: Vec<String> = name.split(sep).map(str::to_string).collect();
        FolderName::from_levels(levels)
    }

    /// Builds a name from its levels (UTF-8).
    pub fn from_levels(levels: Vec<String>) -> Result<FolderName, NameError> {
        if levels.is_empty() {
            return Err(NameError::Empty);
        }
        // A top-level "INBOX" in any case is INBOX (RFC 3501 5.1).
        if levels.len() == 1 && levels[0].eq_ignore_ascii_case("INBOX") {
            return Ok(FolderName::inbox());
        }
        for l in &levels {
            check_level(l)?;
        }
        let f = FolderName { levels };
        if f.dir_name().len() > NAME_MAX {
            return Err(NameError::TooLong);
        }
        Ok(f)
    }

    /// Parses an on-disk directory name `.a.b` (modified UTF-7 levels).
    pub fn from_dir_name(dir: &str) -> Result<FolderName, NameError> {
        let rest = dir.strip_prefix('.').ok_or(NameError::Dot)?;
        let levels = rest
            .split('.')
            .map(mutf7::decode)
            .collect::<Result<Vec<_>, _>>()?;
        let f = FolderName::from_levels(levels)?;
        // One spelling per name: refuse forms we would not write.
        if f.dir_name() != dir {
            return Err(NameError::Mutf7(mutf7::Mutf7Error("non-canonical")));
        }
        Ok(f)
    }

    pub fn is_inbox(&self) -> bool {
        self.levels.is_empty()
    }

    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    /// The IMAP name with separator `sep` (`INBOX` for INBOX).
    pub fn to_imap(&self, sep: char) -> String {
        if self.is_inbox() {
            return "INBOX".into();
        }
        self.levels.join(&sep.to_string())
    }

    /// The directory name under the root: `.` + levels in modified UTF-7
    /// joined by `.`; empty for INBOX.
    pub fn dir_name(&self) -> String {
        if self.is_inbox() {
            return String::new();
        }
        let enc: Vec<String> = self.levels.iter().map(|l| mutf7::encode(l)).collect();
        format!(".{}", enc.join("."))
    }

    /// The parent folder, if this is not a top-level folder.
    pub fn parent(&self) -> Option<FolderName> {
        (self.levels.len() > 1).then(|| FolderName {
            levels: self.levels[..self.levels.len() - 1].to_vec(),
        })
    }

    /// Is `self` below `other` in the hierarchy?
    pub fn is_below(&self, other: &FolderName) -> bool {
        !other.is_inbox()
            && self.levels.len() > other.levels.len()
            && self.levels[..other.levels.len()] == other.levels[..]
    }
}

/// RFC 6154 special-use folders created for new users, with Dovecot's
/// customary names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    pub const ALL: [SpecialUse; 5] = [
        SpecialUse::Sent,
        SpecialUse::Drafts,
        SpecialUse::Trash,
        SpecialUse::Junk,
        SpecialUse::Archive,
    ];
    /// The folder name (`Sent`, ...), also the IMAP attribute without `\`.
    pub fn name(self) -> &'static str {
        match self {
            SpecialUse::Sent => "Sent",
            SpecialUse::Drafts => "Drafts",
            SpecialUse::Trash => "Trash",
            SpecialUse::Junk => "Junk",
            SpecialUse::Archive => "Archive",
        }
    }
    /// The RFC 6154 attribute.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }
    /// The special use of a top-level folder by its name.
    pub fn of(name: &FolderName) -> Option<SpecialUse> {
        match name.levels() {
            [one] => SpecialUse::ALL.into_iter().find(|s| s.name() == one),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("mailbox already exists")]
    Exists,
    #[error("mailbox does not exist")]
    NotFound,
    #[error("INBOX cannot be deleted")]
    InboxDelete,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A user's Maildir root (INBOX) and its folders.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One entry of `Store::list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    pub name: FolderName,
    /// False for a level that only exists because of its children
    /// (`.a.b` without `.a`); IMAP shows it as `\NonExistent` (RFC 5258)
    /// with `\HasChildren`, as Dovecot does.
    pub exists: bool,
    pub has_children: bool,
    pub special_use: Option<SpecialUse>,
}

fn tab_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\x01' => o.push_str("\x011"),
            '\t' => o.push_str("\x01t"),
            '\r' => o.push_str("\x01r"),
            '\n' => o.push_str("\x01n"),
            c => o.push(c),
        }
    }
    o
}

fn tab_unescape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\x01' {
            o.push(c);
            continue;
        }
        match it.next() {
            Some('1') => o.push('\x01'),
            Some('t') => o.push('\t'),
            Some('r') => o.push('\r'),
            Some('n') => o.push('\n'),
            Some(x) => o.push(x),
            None => {}
        }
    }
    o
}

/// Parses a `subscriptions` file into folder names (bad entries skipped,
/// as Dovecot drops them).
pub fn parse_subscriptions(text: &str) -> Vec<FolderName> {
    let (v2, body) = match text.strip_prefix(SUBS_HEADER) {
        Some(b) => (true, b),
        None => (false, text),
    };
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        let name = if line.eq_ignore_ascii_case("INBOX") {
            Ok(FolderName::inbox())
        } else if v2 {
            line.split('\t')
                .map(|l| mutf7::decode(&tab_unescape(l)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(NameError::from)
                .and_then(FolderName::from_levels)
        } else {
            // Version 1: the storage name with the on-disk separator.
            line.trim_end_matches('.')
                .split('.')
                .map(mutf7::decode)
                .collect::<Result<Vec<_>, _>>()
                .map_err(NameError::from)
                .and_then(FolderName::from_levels)
        };
        if let Ok(n) = name {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The line for `name` in a version 2 `subscriptions` file.
pub fn subscription_line(name: &FolderName) -> String {
    if name.is_inbox() {
        return "INBOX".into();
    }
    name.levels()
        .iter()
        .map(|l| tab_escape(&mutf7::encode(l)))
        .collect::<Vec<_>>()
        .join("\t")
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Maildir directory of `name`.
    pub fn path(&self, name: &FolderName) -> PathBuf {
        if name.is_inbox() {
            self.root.clone()
        } else {
            self.root.join(name.dir_name())
        }
    }

    /// Opens folder `name` (see `Mailbox::open`); a folder that does not
    /// exist is an `io::ErrorKind::NotFound` error.
    pub fn mailbox(&self, name: &FolderName) -> Result<crate::Mailbox, crate::Error> {
        crate::Mailbox::open(&self.path(name))
    }

    pub fn exists(&self, name: &FolderName) -> bool {
        self.path(name).join("cur").is_dir()
    }

    /// Creates folder `name` (and INBOX's own tmp/new/cur if missing).
    pub fn create(&self, name: &FolderName) -> Result<(), FolderError> {
        crate::deliver::ensure_maildir(&self.root)?;
        if name.is_inbox() {
            return Err(FolderError::Exists);
        }
        let dir = self.path(name);
        // Build it under a temporary name and rename into place, so that a
        // half-created folder is never visible (Dovecot does the same).
        let tmp = self.root.join(format!(
            ".yubin-creating.{}.{}",
            std::process::id(),
            name.dir_name()
        ));
        let _ = fs::remove_dir_all(&tmp);
        crate::deliver::ensure_maildir(&tmp)?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp.join(MAILDIRFOLDER))?;
        // The folder's UIDVALIDITY is fixed now (Dovecot's allocation, which
        // changes even when a name is deleted and created again within a
        // second), in a `dovecot-uidlist` that Dovecot reads as well.
        crate::uidlist::UidList::new(crate::uidvalidity::next(&self.root)?).write(&tmp)?;
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &tmp,
            rustix::fs::CWD,
            &dir,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(
                    if e == rustix::io::Errno::EXIST || dir.join("cur").is_dir() {
                        FolderError::Exists
                    } else {
                        FolderError::Io(e.into())
                    },
                );
            }
        }
        crate::sync_parent(&dir)?;
        Ok(())
    }

    /// Deletes folder `name` and its messages (not its children, which are
    /// separate directories in Maildir++).
    pub fn delete(&self, name: &FolderName) -> Result<(), FolderError> {
        if name.is_inbox() {
            return Err(FolderError::InboxDelete);
        }
        let dir = self.path(name);
        if !dir.is_dir() {
            return Err(FolderError::NotFound);
        }
        // Rename out of sight first (one atomic step), as Dovecot does
        // with its `..DOVECOT-TRASH` directory, then remove.
        let trash = self.root.join(format!(
            "..yubin-trash.{}.{}",
            std::process::id(),
            name.dir_name()
        ));
        fs::rename(&dir, &trash)?;
        fs::remove_dir_all(&trash)?;
        // The subscription stays: RFC 3501 section 6.3.9, a server "MUST
        // NOT unilaterally remove an existing mailbox name from the
        // subscription list even if a mailbox by that name no longer
        // exists" (Dovecot keeps it too).
        Ok(())
    }

    /// Renames `from` and every folder below it to `to`.
    pub fn rename(&self, from: &FolderName, to: &FolderName) -> Result<(), FolderError> {
        if from.is_inbox() || to.is_inbox() {
            // RFC 3501 6.3.5's INBOX rename moves the messages; the IMAP
            // layer does that with Mailbox moves.
            return Err(FolderError::Exists);
        }
        if !self.path(from).is_dir() {
            return Err(FolderError::NotFound);
        }
        if self.path(to).exists() {
            return Err(FolderError::Exists);
        }
        let mut moves = vec![(from.clone(), to.clone())];
        for f in self.list()? {
            if f.exists && f.name.is_below(from) {
                let mut levels = to.levels().to_vec();
                levels.extend_from_slice(&f.name.levels()[from.levels().len()..]);
                moves.push((f.name.clone(), FolderName::from_levels(levels)?));
            }
        }
        if moves.iter().any(|(_, b)| self.path(b).exists()) {
            return Err(FolderError::Exists);
        }
        for (a, b) in moves {
            fs::rename(self.path(&a), self.path(&b))?;
        }
        crate::sync_parent(&self.path(to))?;
        Ok(())
    }

    /// INBOX and every folder, sorted by name, with parent levels that
    /// have no directory of their own.
    pub fn list(&self) -> io::Result<Vec<FolderInfo>> {
        let mut names = vec![FolderName::inbox()];
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        for e in rd.flatten() {
            let n = e.file_name();
            let Some(n) = n.to_str() else { continue };
            if !n.starts_with('.') || n.starts_with("..") || !e.path().join("cur").is_dir() {
                continue;
            }
            if let Ok(f) = FolderName::from_dir_name(n) {
                names.push(f);
            }
        }
        let mut all: Vec<FolderName> = names.clone();
        for n in &names {
            let mut p = n.parent();
            while let Some(q) = p {
                p = q.parent();
                if !all.contains(&q) {
                    all.push(q);
                }
            }
        }
        all.sort();
        Ok(all
            .iter()
            .map(|n| FolderInfo {
                name: n.clone(),
                exists: names.contains(n),
                has_children: all.iter().any(|c| c.is_below(n)),
                special_use: SpecialUse::of(n),
            })
            .collect())
    }

    /// The subscribed folders.
    pub fn subscriptions(&self) -> io::Result<Vec<FolderName>> {
        match fs::read_to_string(self.root.join(SUBSCRIPTIONS)) {
            Ok(t) => Ok(parse_subscriptions(&t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Subscribes or unsubscribes `name`: rewrites `subscriptions` under
    /// `subscriptions.lock`, writing into the lock file and renaming it over
    /// the file (Dovecot's file_dotlock_replace).
    pub fn set_subscribed(&self, name: &FolderName, on: bool) -> io::Result<()> {
        fs::create_dir_all(&self.root)?;
        let path = self.root.join(SUBSCRIPTIONS);
        let lock = DotLock::acquire(&path, dotlock::SUBSCRIPTIONS_STALE, dotlock::WAIT)?;
        let mut subs = match fs::read_to_string(&path) {
            Ok(t) => parse_subscriptions(&t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let had = subs.contains(name);
        if had == on {
            return lock.release();
        }
        if on {
            subs.push(name.clone());
        } else {
            subs.retain(|n| n != name);
        }
        let mut text = String::from(SUBS_HEADER);
        for n in &subs {
            text.push_str(&subscription_line(n));
            text.push('\n');
        }
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(lock.path())?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(lock.path(), &path)?;
        // The lock file is now the subscriptions file: nothing to remove.
        std::mem::forget(lock);
        Ok(())
    }

    /// Creates INBOX and the special-use folders that are missing, and
    /// subscribes them (what Dovecot's `auto = subscribe` mailboxes do).
    pub fn ensure_defaults(&self) -> Result<(), FolderError> {
        crate::deliver::ensure_maildir(&self.root)?;
        let subs = self.subscriptions()?;
        // A new user (no subscriptions yet) has INBOX subscribed as well,
        // so that clients listing only subscribed folders (Thunderbird's
        // LIST (SUBSCRIBED)) see it; later unsubscribing it sticks.
        if subs.is_empty() {
            if let Ok(inbox) = FolderName::parse("INBOX", '/') {
                self.set_subscribed(&inbox, true)?;
            }
        }
        for s in SpecialUse::ALL {
            let n = FolderName::from_levels(vec![s.name().to_string()])?;
            match self.create(&n) {
                Ok(()) | Err(FolderError::Exists) => {}
                Err(e) => return Err(e),
            }
            if !subs.contains(&n) {
                self.set_subscribed(&n, true)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> FolderName {
        FolderName::parse(s, '/').unwrap()
    }

    #[test]
    fn validates_names() {
        assert!(n("inbox").is_inbox());
        assert_eq!(n("a/b").dir_name(), ".a.b");
        assert_eq!(n("Entwürfe").dir_name(), ".Entw&APw-rfe");
        assert_eq!(
            FolderName::from_dir_name(".Entw&APw-rfe").unwrap(),
            n("Entwürfe")
        );
        use NameError::*;
        for (bad, e) in [
            ("", Empty),
            ("a//b", EmptyLevel),
            ("a/../b", DotLevel),
            ("..", DotLevel),
            (".hidden", Dot),
            ("a.b", Dot),
            ("a\0b", Nul),
            ("a\nb", Control),
            ("~x", Tilde),
        ] {
            assert_eq!(FolderName::parse(bad, '/').unwrap_err(), e, "{bad:?}");
        }
        assert_eq!(FolderName::parse("a/b", '.').unwrap_err(), Slash);
        assert_eq!(
            FolderName::parse(&"x".repeat(300), '/').unwrap_err(),
            TooLong
        );
        assert!(FolderName::from_dir_name(".a..b").is_err());
        assert!(FolderName::from_dir_name(".&AGE-").is_err());
        assert_eq!(n("a/b").parent(), Some(n("a")));
        assert!(n("a/b").is_below(&n("a")) && !n("ab").is_below(&n("a")));
        assert_eq!(n("a/b").to_imap('.'), "a.b");
    }

    #[test]
    fn recreated_folder_gets_a_new_uidvalidity_and_keeps_its_subscription() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path().join("Maildir"));
        s.ensure_defaults().unwrap();
        assert!(s.subscriptions().unwrap().contains(&n("INBOX")));
        let validity = |s: &Store| {
            crate::uidlist::UidList::read(&s.path(&n("Tmp")))
                .unwrap()
                .unwrap()
                .uidvalidity
        };
        s.create(&n("Tmp")).unwrap();
        s.set_subscribed(&n("Tmp"), true).unwrap();
        let first = validity(&s);
        s.delete(&n("Tmp")).unwrap();
        // RFC 3501 6.3.9: the subscription outlives the folder.
        assert!(s.subscriptions().unwrap().contains(&n("Tmp")));
        // Within the same second: still a new, larger UIDVALIDITY.
        s.create(&n("Tmp")).unwrap();
        assert!(validity(&s) > first);
    }

    #[test]
    fn creates_lists_renames_deletes() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path().join("Maildir"));
        s.ensure_defaults().unwrap();
        s.create(&n("Work/2024")).unwrap();
        assert!(matches!(
            s.create(&n("Work/2024")),
            Err(FolderError::Exists)
        ));
        assert!(d.path().join("Maildir/.Work.2024/maildirfolder").is_file());
        assert!(d.path().join("Maildir/.Sent/cur").is_dir());
        let l = s.list().unwrap();
        let names: Vec<String> = l.iter().map(|f| f.name.to_imap('/')).collect();
        assert_eq!(
            names,
            [
                "INBOX",
                "Archive",
                "Drafts",
                "Junk",
                "Sent",
                "Trash",
                "Work",
                "Work/2024"
            ]
        );
        let work = l.iter().find(|f| f.name == n("Work")).unwrap();
        assert!(!work.exists && work.has_children);
        assert_eq!(l[4].special_use, Some(SpecialUse::Sent));
        s.create(&n("Work")).unwrap();
        assert_eq!(s.mailbox(&n("Work")).unwrap().len(), 0);
        assert!(s.mailbox(&n("Nope")).is_err());
        s.rename(&n("Work"), &n("Old")).unwrap();
        assert!(s.exists(&n("Old/2024")) && !s.exists(&n("Work/2024")));
        s.delete(&n("Old")).unwrap();
        assert!(!s.exists(&n("Old")) && s.exists(&n("Old/2024")));
        assert!(matches!(
            s.delete(&n("INBOX")),
            Err(FolderError::InboxDelete)
        ));
        assert!(matches!(s.delete(&n("nope")), Err(FolderError::NotFound)));
    }

    #[test]
    fn subscriptions_in_dovecot_format() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        s.set_subscribed(&n("INBOX"), true).unwrap();
        s.set_subscribed(&n("a/Entwürfe"), true).unwrap();
        s.set_subscribed(&n("Sent"), true).unwrap();
        s.set_subscribed(&n("Sent"), false).unwrap();
        let text = fs::read_to_string(d.path().join(SUBSCRIPTIONS)).unwrap();
        assert_eq!(text, "V\t2\n\nINBOX\na\tEntw&APw-rfe\n");
        assert!(!d.path().join("subscriptions.lock").exists());
        assert_eq!(s.subscriptions().unwrap(), [n("INBOX"), n("a/Entwürfe")]);
        // Version 1 files (older Dovecot, Courier) list storage names.
        assert_eq!(parse_subscriptions("Sent\nx.y\n"), [n("Sent"), n("x/y")]);
        assert_eq!(parse_subscriptions("INBOX....\n"), [n("INBOX")]);
        assert!(FolderName::from_dir_name(".INBOX").is_err());
        assert_eq!(n("inbox/sub").levels(), ["inbox", "sub"]);
        assert_eq!(tab_unescape(&tab_escape("a\tb\x01c\n")), "a\tb\x01c\n");
    }
}
