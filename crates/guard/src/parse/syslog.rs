//! Splitting one log line into its syslog parts: time stamp, program, pid and
//! message. Every shape a guard meets in practice is accepted:
//!
//! * traditional BSD syslog (`Jan  2 03:04:05 host sshd[1]: msg`, also `Feb 7`
//!   unpadded and lines without the host field);
//! * rsyslog's RFC 3339 stamps (`2024-01-02T03:04:05.123456+09:00 host …`),
//!   Debian 12's default when rsyslog is installed;
//! * RFC 5424 (`<38>1 2019-07-08T17:40:16.95-04:00 host sshd 57915 - [sd] msg`);
//! * journald's `host sshd[pid]: msg` shape (no stamp) that fail2ban builds from
//!   `journalctl -o json` and that its `sshd-journal` corpus uses;
//! * `[sshd]:` / `[sshd]` tags (fail2ban corpus #5, #11) and TAI64N stamps
//!   (`@4000…`, daemontools/multilog).
//!
//! Nothing here allocates; all parts borrow from the line.

/// The time stamp exactly as written (possibly empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp<'a> {
    /// No stamp (journal-style line, or unknown shape).
    None,
    /// `Mmm d hh:mm:ss` without a year.
    Bsd(&'a [u8]),
    /// RFC 3339 / ISO 8601 with a year (and maybe fraction and zone).
    Iso(&'a [u8]),
}

/// One syslog record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub stamp: Stamp<'a>,
    /// Program name without `[pid]` (`sshd`, `sshd-session`, `postfix/smtpd`).
    pub program: &'a [u8],
    /// Process id, 0 when the tag has none.
    pub pid: u32,
    /// The message after `tag: `.
    pub message: &'a [u8],
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Month number 1..=12 of a three-letter English abbreviation.
pub fn month_number(m: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|x| &x[..] == m)
        .map(|i| i as u32 + 1)
}

fn skip_spaces(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i] == b' ' {
        i += 1;
    }
    i
}

fn token_end(s: &[u8], i: usize) -> usize {
    memchr::memchr(b' ', &s[i..]).map_or(s.len(), |p| i + p)
}

/// Length of a leading BSD stamp (`Jan  2 03:04:05`), or None.
fn bsd_stamp_len(s: &[u8]) -> Option<usize> {
    if s.len() < 14 || month_number(&s[..3]).is_none() || s[3] != b' ' {
        return None;
    }
    let mut i = skip_spaces(s, 4);
    let d0 = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    if i == d0 || i - d0 > 2 || s.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let t = s.get(i..i + 8)?;
    if !(t[2] == b':' && t[5] == b':' && t[0].is_ascii_digit() && t[7].is_ascii_digit()) {
        return None;
    }
    i += 8;
    // Optional fraction (`.123456`) some relays add.
    if s.get(i) == Some(&b'.') {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
    }
    Some(i)
}

/// Length of a leading ISO stamp (`2024-01-02T03:04:05…` or `2013-08-11 03:56:40`).
fn iso_stamp_len(s: &[u8]) -> Option<usize> {
    if s.len() < 19
        || !s[..4].iter().all(u8::is_ascii_digit)
        || s[4] != b'-'
        || s[7] != b'-'
        || !(s[10] == b'T' || s[10] == b' ')
        || s[13] != b':'
    {
        return None;
    }
    Some(token_end(s, 11))
}

/// Splits a whole line (without the trailing newline) into a [`Record`].
pub fn split(line: &[u8]) -> Option<Record<'_>> {
    let mut s = line;
    // <PRI>: RFC 5424 when followed by "1 ", otherwise an RFC 3164 prefix.
    if s.first() == Some(&b'<') {
        let close = memchr::memchr(b'>', &s[..s.len().min(6)])?;
        s = &s[close + 1..];
        if s.starts_with(b"1 ") {
            return split_rfc5424(&s[2..]);
        }
    }
    let (stamp, mut i) = if let Some(n) = bsd_stamp_len(s) {
        (Stamp::Bsd(&s[..n]), n)
    } else if let Some(n) = iso_stamp_len(s) {
        (Stamp::Iso(&s[..n]), n)
    } else if s.first() == Some(&b'@') {
        (Stamp::None, token_end(s, 0))
    } else {
        (Stamp::None, 0)
    };
    i = skip_spaces(s, i);
    // First token: either the tag itself or the host name.
    let t1_end = token_end(s, i);
    let t1 = &s[i..t1_end];
    let (tag, after) = if is_tag(t1) {
        (t1, t1_end)
    } else {
        let j = skip_spaces(s, t1_end);
        let t2_end = token_end(s, j);
        let t2 = &s[j..t2_end];
        if !is_tag(t2) {
            return None;
        }
        (t2, t2_end)
    };
    let (program, pid) = split_tag(tag);
    let message = s.get(after + 1..).unwrap_or(b"");
    Some(Record {
        stamp,
        program,
        pid,
        message,
    })
}

/// `prog:`, `prog[pid]:`, `[prog]:`, `[prog]`.
fn is_tag(t: &[u8]) -> bool {
    if t.len() < 2 {
        return false;
    }
    if t[0] == b'[' {
        return t.ends_with(b"]") || t.ends_with(b"]:");
    }
    t.ends_with(b":")
}

fn split_tag(tag: &[u8]) -> (&[u8], u32) {
    let t = tag.strip_suffix(b":").unwrap_or(tag);
    if let Some(inner) = t.strip_prefix(b"[") {
        let inner = inner.strip_suffix(b"]").unwrap_or(inner);
        return (inner, 0);
    }
    if let Some(open) = memchr::memrchr(b'[', t) {
        if t.ends_with(b"]") {
            let pid = parse_u32(&t[open + 1..t.len() - 1]).unwrap_or(0);
            return (&t[..open], pid);
        }
    }
    (t, 0)
}

/// Decimal u32, no sign, no overflow.
pub fn parse_u32(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 9 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// RFC 5424 section 6: `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.
/// Structured data may hold `]` inside quoted values (escaped as `\]` or not).
fn split_rfc5424(s: &[u8]) -> Option<Record<'_>> {
    let mut fields = [&b""[..]; 5];
    let mut i = 0;
    for f in &mut fields {
        let e = token_end(s, i);
        *f = &s[i..e];
        i = (e + 1).min(s.len());
    }
    // Structured data: "-" or one or more [ ... ] elements.
    if s.get(i) == Some(&b'-') {
        i += 1;
    } else {
        while s.get(i) == Some(&b'[') {
            let mut in_quotes = false;
            i += 1;
            while i < s.len() {
                match s[i] {
                    b'\\' => i += 1,
                    b'"' => in_quotes = !in_quotes,
                    b']' if !in_quotes => break,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
        }
    }
    let message = s.get(i + 1..).unwrap_or(b"");
    let pid = parse_u32(fields[3]).unwrap_or(0);
    Some(Record {
        stamp: Stamp::Iso(fields[0]),
        program: fields[2],
        pid,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(l: &str) -> Record<'_> {
        split(l.as_bytes()).expect(l)
    }

    #[test]
    fn bsd_with_host() {
        let r = rec("Jan  2 03:04:05 mail sshd[1234]: Invalid user x from 1.2.3.4");
        assert_eq!(r.stamp, Stamp::Bsd(b"Jan  2 03:04:05"));
        assert_eq!(r.program, b"sshd");
        assert_eq!(r.pid, 1234);
        assert_eq!(r.message, b"Invalid user x from 1.2.3.4");
    }

    #[test]
    fn shapes() {
        let r = rec("Feb 17 17:40:17 sshd[19725]: Connection from 192.0.2.10");
        assert_eq!((r.program, r.pid), (&b"sshd"[..], 19725));
        let r = rec("Mar  3 00:17:22 [sshd]: User root from 1.2.3.4 not allowed");
        assert_eq!(r.program, b"sshd");
        let r = rec("Jun 25 23:53:34 [sshd] User root from 1.2.3.4");
        assert_eq!(r.message, b"User root from 1.2.3.4");
        let r = rec("2024-01-02T03:04:05.123456+09:00 mail sshd-session[4242]: Failed x");
        assert_eq!(r.program, b"sshd-session");
        assert!(matches!(r.stamp, Stamp::Iso(_)));
        let r = rec("belka sshd[31602]: Failed password");
        assert_eq!(
            (r.program, r.pid, r.message),
            (&b"sshd"[..], 31602, &b"Failed password"[..])
        );
        let r = rec("Sep  6 00:44:56 trianon postfix/submission/smtpd[11538]: warning: x");
        assert_eq!(r.program, b"postfix/submission/smtpd");
        let r = rec(
            r#"<38>1 2019-07-08T17:40:17.954167-04:00 h sshd 55555 - [t a="1"][x@1 t="[b]"] Failed x"#,
        );
        assert_eq!(
            (r.program, r.pid, r.message),
            (&b"sshd"[..], 55555, &b"Failed x"[..])
        );
    }

    #[test]
    fn garbage_is_none_not_panic() {
        for l in [
            "",
            "x",
            "<",
            "<1>",
            "Jan",
            "Jan  2 03:04:05",
            "<99999999>1 a b c d e [",
            "a b c",
        ] {
            let _ = split(l.as_bytes());
        }
    }
}
