//! Maildir file names (cr.yp.to/proto/maildir.html, Dovecot's
//! maildir-filename.c): `BASE[:2,FLAGS]`, where BASE is unique and may carry
//! Dovecot's `,S=<size>` (file size) and `,W=<vsize>` (size with CRLF line
//! ends, the IMAP RFC822.SIZE) fields, and FLAGS are single letters in ASCII
//! order: the system flags `D F P R S T` and the keywords `a`..`z` whose
//! names `dovecot-keywords` holds.

use std::sync::atomic::{AtomicU32, Ordering};

/// The flag letters of one message, as a set of the 52 ASCII letters
/// (bit 0..26 = `A`..`Z`, bit 26..52 = `a`..`z`). Unknown uppercase letters
/// that another program set are kept, so a rename never loses them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u64);

/// The IMAP system flags and their Maildir letters (maildir.html "info").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemFlag {
    /// `\Draft`
    Draft,
    /// `\Flagged`
    Flagged,
    /// "passed" (resent or bounced); IMAP has no system flag for it, so it
    /// is only kept as it is.
    Passed,
    /// `\Answered`
    Answered,
    /// `\Seen`
    Seen,
    /// `\Deleted`
    Deleted,
}

impl SystemFlag {
    pub const ALL: [SystemFlag; 6] = [
        SystemFlag::Draft,
        SystemFlag::Flagged,
        SystemFlag::Passed,
        SystemFlag::Answered,
        SystemFlag::Seen,
        SystemFlag::Deleted,
    ];
    pub fn letter(self) -> u8 {
        match self {
            SystemFlag::Draft => b'D',
            SystemFlag::Flagged => b'F',
            SystemFlag::Passed => b'P',
            SystemFlag::Answered => b'R',
            SystemFlag::Seen => b'S',
            SystemFlag::Deleted => b'T',
        }
    }
    /// The IMAP spelling (RFC 3501 2.3.2); `None` for Passed.
    pub fn imap_name(self) -> Option<&'static str> {
        match self {
            SystemFlag::Draft => Some("\\Draft"),
            SystemFlag::Flagged => Some("\\Flagged"),
            SystemFlag::Passed => None,
            SystemFlag::Answered => Some("\\Answered"),
            SystemFlag::Seen => Some("\\Seen"),
            SystemFlag::Deleted => Some("\\Deleted"),
        }
    }
    pub fn from_imap(name: &str) -> Option<SystemFlag> {
        SystemFlag::ALL
            .into_iter()
            .find(|f| f.imap_name().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }
}

fn bit(letter: u8) -> Option<u64> {
    match letter {
        b'A'..=b'Z' => Some(1 << (letter - b'A')),
        b'a'..=b'z' => Some(1 << (26 + letter - b'a')),
        _ => None,
    }
}

impl Flags {
    pub const EMPTY: Flags = Flags(0);

    /// Parses the letters after `:2,`; other characters are ignored.
    pub fn from_letters(s: &str) -> Flags {
        Flags(s.bytes().filter_map(bit).fold(0, |a, b| a | b))
    }
    /// The letters in ASCII order, as Maildir requires.
    pub fn letters(self) -> String {
        (0..52u8)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| {
                if i < 26 {
                    (b'A' + i) as char
                } else {
                    (b'a' + i - 26) as char
                }
            })
            .collect()
    }
    pub fn has(self, f: SystemFlag) -> bool {
        self.0 & bit(f.letter()).unwrap_or(0) != 0
    }
    pub fn with(self, f: SystemFlag) -> Flags {
        Flags(self.0 | bit(f.letter()).unwrap_or(0))
    }
    pub fn without(self, f: SystemFlag) -> Flags {
        Flags(self.0 & !bit(f.letter()).unwrap_or(0))
    }
    /// Keyword `idx` (0..26) of `dovecot-keywords`, letter `a`+idx.
    pub fn has_keyword(self, idx: usize) -> bool {
        idx < 26 && self.0 & (1 << (26 + idx)) != 0
    }
    pub fn with_keyword(self, idx: usize) -> Flags {
        if idx < 26 {
            Flags(self.0 | 1 << (26 + idx))
        } else {
            self
        }
    }
    pub fn without_keyword(self, idx: usize) -> Flags {
        if idx < 26 {
            Flags(self.0 & !(1 << (26 + idx)))
        } else {
            self
        }
    }
    /// Indexes of the keyword letters set.
    pub fn keywords(self) -> impl Iterator<Item = usize> {
        (0..26).filter(move |i| self.has_keyword(*i))
    }
    pub fn union(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
    pub fn minus(self, o: Flags) -> Flags {
        Flags(self.0 & !o.0)
    }
    pub fn bits(self) -> u64 {
        self.0
    }
    pub fn from_bits(b: u64) -> Flags {
        Flags(b & ((1 << 52) - 1))
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Flags({})", self.letters())
    }
}

/// A parsed Maildir file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName<'a> {
    /// The unique part, before the `:` info separator; Dovecot keys
    /// `dovecot-uidlist` on it.
    pub base: &'a str,
    /// Flags from a `:2,` info suffix (empty without one).
    pub flags: Flags,
    /// `,S=` (file size in bytes), if present.
    pub size: Option<u64>,
    /// `,W=` (size with CRLF line ends), if present.
    pub vsize: Option<u64>,
}

impl<'a> FileName<'a> {
    pub fn parse(name: &'a str) -> FileName<'a> {
        let (base, info) = match name.split_once(':') {
            Some((b, i)) => (b, Some(i)),
            None => (name, None),
        };
        let flags = info
            .and_then(|i| i.strip_prefix("2,"))
            .map(Flags::from_letters)
            .unwrap_or_default();
        let (mut size, mut vsize) = (None, None);
        for field in base.split(',').skip(1) {
            if let Some(v) = field.strip_prefix("S=") {
                size = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("W=") {
                vsize = v.parse().ok();
            }
        }
        FileName {
            base,
            flags,
            size,
            vsize,
        }
    }
}

/// The base part of `name` (up to the info separator).
pub fn base_of(name: &str) -> &str {
    name.split_once(':').map_or(name, |(b, _)| b)
}

/// The file name in `cur/` for `base` with `flags`: `BASE:2,LETTERS`.
pub fn with_flags(base: &str, flags: Flags) -> String {
    format!("{base}:2,{}", flags.letters())
}

/// Host part of a unique name: `/` and `:` would break the name (maildir.html
/// asks for `\057` and `\072`; yubin has always written `_`), `,` would
/// start a field.
pub fn host_part(host: &str) -> String {
    host.replace(['/', ':', ','], "_")
}

/// The size of `parts` with every bare LF counted as CRLF: the message's
/// size as IMAP sends it (RFC 3501 RFC822.SIZE), Dovecot's `,W=`.
pub fn virtual_size(parts: &[&[u8]]) -> u64 {
    let mut size = 0u64;
    let mut prev = 0u8;
    for p in parts {
        for &b in p.iter() {
            if b == b'\n' && prev != b'\r' {
                size += 1;
            }
            size += 1;
            prev = b;
        }
    }
    size
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh unique base for a message that has no queue id (IMAP APPEND,
/// COPY): Dovecot's `SECONDS.M<usec>P<pid>Q<n>.HOST,S=<size>,W=<vsize>`.
pub fn unique_base(host: &str, size: u64, vsize: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{},S={size},W={vsize}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        host_part(host)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_sorted_and_unknown_kept() {
        let f = Flags::from_letters("TSbaRX");
        assert_eq!(f.letters(), "RSTXab");
        assert!(f.has(SystemFlag::Seen) && f.has(SystemFlag::Deleted));
        assert!(!f.has(SystemFlag::Draft));
        assert!(f.has_keyword(0) && f.has_keyword(1) && !f.has_keyword(2));
        let g = f
            .without(SystemFlag::Seen)
            .with(SystemFlag::Draft)
            .with_keyword(25);
        assert_eq!(g.letters(), "DRTXabz");
        assert_eq!(g.keywords().collect::<Vec<_>>(), [0, 1, 25]);
        assert_eq!(Flags::from_bits(g.bits()), g);
        assert_eq!(SystemFlag::from_imap("\\seen"), Some(SystemFlag::Seen));
        assert_eq!(SystemFlag::from_imap("\\Recent"), None);
    }

    #[test]
    fn parses_names() {
        let n = FileName::parse("1700000000.M1P2Q3.host,S=1234,W=1260:2,FS");
        assert_eq!(n.base, "1700000000.M1P2Q3.host,S=1234,W=1260");
        assert_eq!(n.size, Some(1234));
        assert_eq!(n.vsize, Some(1260));
        assert_eq!(n.flags.letters(), "FS");
        let n = FileName::parse("123.abc.host");
        assert_eq!((n.size, n.vsize, n.flags), (None, None, Flags::EMPTY));
        // An info part of another version is not flags.
        assert_eq!(FileName::parse("1.a.h:1,xyz").flags, Flags::EMPTY);
        assert_eq!(with_flags("1.a.h", Flags::from_letters("SR")), "1.a.h:2,RS");
        assert_eq!(base_of("1.a.h:2,S"), "1.a.h");
    }

    #[test]
    fn vsize_counts_bare_lf() {
        assert_eq!(virtual_size(&[b"a\nb\r\n", b"\nc"]), 9);
        assert_eq!(virtual_size(&[b"x\r", b"\n"]), 3);
        let b = unique_base("h/o:st", 3, 4);
        assert!(b.ends_with(".h_o_st,S=3,W=4"), "{b}");
        assert_ne!(unique_base("h", 1, 1), unique_base("h", 1, 1));
    }
}
