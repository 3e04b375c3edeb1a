//! Mailbox names: what a client may create and how a pattern matches.

use crate::store::DELIMITER;

/// Why a mailbox name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    Empty,
    /// `.` (Maildir++'s own level separator on disk), `\`, NUL or another
    /// control character: these would reach the file system or the log.
    ForbiddenChar,
    /// An empty hierarchy level (`a..b`, `.a`, `a.`): Maildir++ cannot name
    /// it, and `..` must never look like a path step.
    EmptyLevel,
    /// `&` not followed by valid modified base64 and `-` (RFC 3501
    /// section 5.1.3).
    InvalidUtf7,
    /// `*` and `%` are LIST wildcards and cannot be part of a name.
    Wildcard,
    TooLong,
}

impl BadName {
    pub fn text(self) -> &'static str {
        match self {
            BadName::Empty => "Empty mailbox name",
            BadName::ForbiddenChar => "Mailbox name contains a forbidden character",
            BadName::EmptyLevel => "Mailbox name has an empty hierarchy level",
            BadName::InvalidUtf7 => "Mailbox name is not valid modified UTF-7",
            BadName::Wildcard => "Mailbox name contains a wildcard",
            BadName::TooLong => "Mailbox name is too long",
        }
    }
}

/// Longest name accepted: a Maildir++ folder is one directory entry
/// (NAME_MAX 255 with the leading dot).
pub const MAX_NAME: usize = 200;

/// Checks a mailbox name as received (modified UTF-7).
pub fn validate(name: &str) -> Result<(), BadName> {
    if name.is_empty() {
        return Err(BadName::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(BadName::TooLong);
    }
    let b = name.as_bytes();
    if b.iter()
        .any(|&c| c < 0x20 || c == 0x7f || c == b'.' || c == b'\\' || c >= 0x80)
    {
        return Err(BadName::ForbiddenChar);
    }
    if b.iter().any(|&c| c == b'*' || c == b'%') {
        return Err(BadName::Wildcard);
    }
    if name.split(DELIMITER).any(str::is_empty) {
        return Err(BadName::EmptyLevel);
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'&' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'+' || b[j] == b',') {
                j += 1;
            }
            if j >= b.len() || b[j] != b'-' {
                return Err(BadName::InvalidUtf7);
            }
            // "&-" is "&"; otherwise the run must decode to UTF-16 (a
            // multiple of 16 bits, at most 5 spare zero bits).
            let n = j - start;
            if n > 0 && (n * 6) % 16 >= 6 {
                return Err(BadName::InvalidUtf7);
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// INBOX in any case is INBOX (RFC 3501 section 5.1).
pub fn canonical(name: &str) -> String {
    let inbox_prefix = name.len() >= 5 && name[..5].eq_ignore_ascii_case("INBOX");
    if inbox_prefix && (name.len() == 5 || name[5..].starts_with(DELIMITER)) {
        format!("INBOX{}", &name[5..])
    } else {
        name.to_string()
    }
}

/// RFC 3501 section 6.3.8: `*` matches anything, `%` anything but the
/// delimiter. Iterative with backtracking on the last `*`/`%` only... done
/// as a bounded dynamic programme so hostile patterns cost O(n*m).
pub fn matches(pattern: &str, name: &str) -> bool {
    let p = pattern.as_bytes();
    let n = name.as_bytes();
    if p.len() > 1024 {
        return false;
    }
    // dp[j] = pattern prefix of length i matches name prefix of length j.
    let mut dp = vec![false; n.len() + 1];
    dp[0] = true;
    for &pc in p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            b'*' => {
                let mut any = false;
                for j in 0..=n.len() {
                    any |= dp[j];
                    next[j] = any;
                }
            }
            b'%' => {
                for j in 0..=n.len() {
                    if dp[j] {
                        next[j] = true;
                        let mut k = j;
                        while k < n.len() && n[k] != DELIMITER as u8 {
                            k += 1;
                            next[k] = true;
                        }
                    }
                }
            }
            c => {
                for j in 0..n.len() {
                    if dp[j] && n[j] == c {
                        next[j + 1] = true;
                    }
                }
            }
        }
        dp = next;
    }
    dp[n.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate("Sent"), Ok(()));
        assert_eq!(validate("Work/Reports"), Ok(()));
        assert_eq!(validate("a//b"), Err(BadName::EmptyLevel));
        assert_eq!(validate("/a"), Err(BadName::EmptyLevel));
        assert_eq!(validate(".."), Err(BadName::ForbiddenChar));
        assert_eq!(validate("a.b"), Err(BadName::ForbiddenChar));
        assert_eq!(validate("a\0b"), Err(BadName::ForbiddenChar));
        assert_eq!(validate("&Jjo-"), Ok(()));
        assert_eq!(validate("&-"), Ok(()));
        assert_eq!(validate("&Jjo"), Err(BadName::InvalidUtf7));
        assert_eq!(validate("&J-"), Err(BadName::InvalidUtf7));
        assert_eq!(validate("caf\u{e9}"), Err(BadName::ForbiddenChar));
        assert_eq!(canonical("inbox"), "INBOX");
        assert_eq!(canonical("InBox/x"), "INBOX/x");
        assert_eq!(canonical("inboxes"), "inboxes");
    }

    #[test]
    fn patterns() {
        assert!(matches("*", "a/b"));
        assert!(!matches("%", "a/b"));
        assert!(matches("%", "a"));
        assert!(matches("a/%", "a/b"));
        assert!(matches("a*", "a/b/c"));
        assert!(!matches("b*", "a"));
        assert!(matches("INBOX", "INBOX"));
        assert!(matches("%/%", "a/b"));
    }
}
