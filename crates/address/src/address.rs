//! RFC 5321 section 4.1.2 mailbox syntax, in Postfix's tolerant reading:
//! quoted local parts (kept unquoted internally, as Postfix's "internal
//! form"), domain literals (`[192.0.2.1]`), source routes (`@a,@b:user@d`,
//! accepted and discarded per RFC 5321 section 4.1.1.3), and UTF-8 local
//! parts and domains when SMTPUTF8 is in use (RFC 6531 section 3.3).

use std::fmt;

/// An address in internal form: local part unquoted, domain lower-cased.
/// An empty domain means "no domain given" (before canonicalisation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("empty address")]
    Empty,
    #[error("unbalanced quote")]
    Quote,
    #[error("bad character {0:?}")]
    BadChar(char),
    #[error("bad domain \"{0}\"")]
    BadDomain(String),
    #[error("8-bit characters need SMTPUTF8")]
    NeedUtf8,
    #[error("address too long")]
    TooLong,
}

/// RFC 5321 section 4.5.3.1.3: a path is at most 256 octets.
pub const MAX_PATH: usize = 256;

/// The longest address text accepted: Postfix's line_length_limit default.
pub const MAX_TEXT: usize = 2048;

impl Address {
    pub fn new(local: &str, domain: &str) -> Address {
        Address {
            local: local.to_string(),
            domain: domain.to_ascii_lowercase(),
        }
    }

    /// `local@domain` in internal form (no quoting), as Postfix prints it in
    /// replies like `<quoted local@mydomain.com>: Recipient address rejected`.
    pub fn internal(&self) -> String {
        if self.domain.is_empty() {
            self.local.clone()
        } else {
            format!("{}@{}", self.local, self.domain)
        }
    }

    /// The external (RFC 5321) form: the local part quoted when it needs it.
    pub fn external(&self) -> String {
        let local = if needs_quoting(&self.local) {
            let mut q = String::from("\"");
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            q
        } else {
            self.local.clone()
        };
        if self.domain.is_empty() {
            local
        } else {
            format!("{local}@{}", self.domain)
        }
    }

    /// The lookup key form: lower-cased `local@domain`.
    pub fn key(&self) -> String {
        self.internal().to_lowercase()
    }

    /// Splits the local part at the first `recipient_delimiter` character:
    /// (`user`, Some(`ext`)) for `user+ext` (postconf(5) recipient_delimiter).
    pub fn split_extension(&self, delimiters: &str) -> (String, Option<String>) {
        if delimiters.is_empty() || self.local.eq_ignore_ascii_case("postmaster") {
            return (self.local.clone(), None);
        }
        match self.local.find(|c| delimiters.contains(c)) {
            Some(0) | None => (self.local.clone(), None),
            Some(i) => (
                self.local[..i].to_string(),
                Some(self.local[i..].to_string()),
            ),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.external())
    }
}

/// RFC 5322 atext, plus UTF-8 non-ASCII under RFC 6531 (UTF8-non-ascii),
/// excluding control characters such as U+0080..U+009F (found by cargo fuzz).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

fn needs_quoting(local: &str) -> bool {
    local.is_empty()
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || local.chars().any(|c| !(is_atext(c) || c == '.'))
}

/// Parses the text inside `<...>` (or a bare address). `utf8` allows 8-bit
/// characters (the client said SMTPUTF8). An empty string is the null path
/// and is reported as `Err(Empty)`; the caller decides whether it is allowed.
pub fn parse_address(text: &str, utf8: bool) -> Result<Address, AddrError> {
    // Postfix bounds an address only by line_length_limit (2048): a MAIL
    // command of 1,100 bytes with a long local part is accepted there.
    if text.len() > MAX_TEXT {
        return Err(AddrError::TooLong);
    }
    let mut s = text.trim();
    if s.is_empty() {
        return Err(AddrError::Empty);
    }
    if !utf8 && !s.is_ascii() {
        return Err(AddrError::NeedUtf8);
    }
    // Source route: "@a,@b:user@domain" (RFC 5321 4.1.1.3: MUST accept, SHOULD ignore).
    if s.starts_with('@') {
        match s.find(':') {
            Some(i) => s = &s[i + 1..],
            None => return Err(AddrError::BadChar('@')),
        }
    }
    let (local, rest) = if let Some(q) = s.strip_prefix('"') {
        let mut local = String::new();
        let mut chars = q.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                // RFC 5321 4.1.2: quoted-pairSMTP = %d92 %d32-126.
                '\\' => match chars.next() {
                    Some((_, e)) if (' '..='~').contains(&e) => local.push(e),
                    Some((_, e)) => return Err(AddrError::BadChar(e)),
                    None => return Err(AddrError::Quote),
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                // qtextSMTP excludes control characters (found by cargo fuzz:
                // an escaped CR made an address whose quoted form did not parse).
                c if c.is_control() => return Err(AddrError::BadChar(c)),
                c => local.push(c),
            }
        }
        let end = end.ok_or(AddrError::Quote)?;
        (local, &q[end..])
    } else {
        let at = s.rfind('@').unwrap_or(s.len());
        let local = &s[..at];
        if let Some(c) = local.chars().find(|&c| !(is_atext(c) || c == '.')) {
            return Err(AddrError::BadChar(c));
        }
        (local.to_string(), &s[at..])
    };
    let domain = match rest.strip_prefix('@') {
        Some(d) => d,
        None if rest.is_empty() => "",
        None => return Err(AddrError::BadChar(rest.chars().next().unwrap_or('?'))),
    };
    // The domain is checked in the form it is kept in: lower-casing can
    // lengthen non-ASCII text ("İ" is 2 bytes, its lower case 3), so a check
    // before it let through domains whose kept form fails the same check.
    let domain = domain.to_lowercase();
    if !domain.is_empty() {
        check_domain(&domain)?;
    } else if rest == "@" {
        return Err(AddrError::BadDomain(String::new()));
    }
    let a = Address { local, domain };
    // Invariant: whatever is accepted prints (external form) as text that is
    // accepted again as the same address. Quoting ("a..b" needs quotes) and
    // lower-casing can make the printed form longer than the input, so the
    // length limit applies to the printed form (found by cargo fuzz,
    // fuzz/regressions/addr_parse-utf8-lowercase-too-long.bin).
    if a.external().len() > MAX_TEXT {
        return Err(AddrError::TooLong);
    }
    Ok(a)
}

impl Address {
    /// The address as the queue file keeps it (internal form, split at its
    /// last `@`), without the SMTP syntax check: it was checked when it was
    /// accepted, and a message once acknowledged must stay deliverable even
    /// when the check changes between versions (Postfix's qmgr likewise
    /// reads the internal form back without re-parsing it).
    pub fn from_internal(s: &str) -> Address {
        match s.rfind('@') {
            Some(i) => Address {
                local: s[..i].to_string(),
                domain: s[i + 1..].to_string(),
            },
            None => Address {
                local: s.to_string(),
                domain: String::new(),
            },
        }
    }
}

/// A domain name (labels of letters, digits, hyphens, and UTF-8 under
/// SMTPUTF8) or an address literal `[IPv4]` / `[IPv6:...]`.
fn check_domain(d: &str) -> Result<(), AddrError> {
    if let Some(lit) = d.strip_prefix('[') {
        let inner = lit
            .strip_suffix(']')
            .ok_or_else(|| AddrError::BadDomain(d.into()))?;
        let ok = match inner.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("ipv6:") => {
                inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        return if ok {
            Ok(())
        } else {
            Err(AddrError::BadDomain(d.into()))
        };
    }
    let d = d.strip_suffix('.').unwrap_or(d);
    if d.is_empty() || d.len() > 255 {
        return Err(AddrError::BadDomain(d.into()));
    }
    for label in d.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        {
            return Err(AddrError::BadDomain(d.into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = parse_address("Root@LocalHost", false).unwrap();
        assert_eq!((a.local.as_str(), a.domain.as_str()), ("Root", "localhost"));
        let a = parse_address("\"quoted local\"@mydomain.com", false).unwrap();
        assert_eq!(a.internal(), "quoted local@mydomain.com");
        assert_eq!(a.external(), "\"quoted local\"@mydomain.com");
        let a = parse_address("@route.example,@b.example:hoge@mydomain.com", false).unwrap();
        assert_eq!(a.internal(), "hoge@mydomain.com");
        assert_eq!(parse_address("root", false).unwrap().domain, "");
        assert_eq!(
            parse_address("root@[127.0.0.1]", false).unwrap().domain,
            "[127.0.0.1]"
        );
        assert!(parse_address("x@[IPv6:::1]", false).is_ok());
    }

    #[test]
    fn rejects() {
        assert_eq!(parse_address("", false), Err(AddrError::Empty));
        assert!(parse_address("bad address", false).is_err());
        assert!(parse_address("a@b..c", false).is_err());
        assert!(parse_address("a@", false).is_err());
        assert!(parse_address("\"open@x", false).is_err());
        assert!(parse_address("a@[300.1.1.1]", false).is_err());
        assert!(parse_address("\"a\\\rb\"@x", false).is_err());
        assert!(parse_address("\"a\tb\"@x", false).is_err());
        assert!(parse_address("+$\u{8e}..x@y", true).is_err());
        assert_eq!(
            parse_address("用户@例子.测试", false),
            Err(AddrError::NeedUtf8)
        );
        assert!(parse_address("用户@例子.测试", true).is_ok());
        assert_eq!(
            parse_address(&"a".repeat(5000), false),
            Err(AddrError::TooLong)
        );
    }

    /// Every accepted address round-trips through its external form; the
    /// two inputs cargo fuzz found (lower-casing and quoting lengthen the
    /// printed form past the limit) are refused instead.
    #[test]
    fn external_form_round_trips() {
        let reg =
            include_bytes!("../../../fuzz/regressions/addr_parse-utf8-lowercase-too-long.bin");
        let text = std::str::from_utf8(reg).unwrap();
        // Under the 2,048-byte limit this input fits: accepted, it must
        // round-trip; refused, only as too long.
        match parse_address(text, true) {
            Ok(a) => assert_eq!(parse_address(&a.external(), true), Ok(a)),
            Err(e) => assert_eq!(e, AddrError::TooLong),
        }
        let dots = format!("{}..x@y", "a".repeat(MAX_TEXT - 5));
        assert_eq!(dots.len(), MAX_TEXT);
        assert_eq!(parse_address(&dots, false), Err(AddrError::TooLong));
        for text in [
            "\"quoted local\"@mydomain.com",
            "a..b@x",
            "用户@例子.测试",
            "x@İ.İ.example",
            &format!("{}@{}", "a".repeat(900), "İ.".repeat(30) + "x"),
        ] {
            let a = parse_address(text, true).unwrap();
            let back = parse_address(&a.external(), true).unwrap();
            assert_eq!(back, a, "{text}");
            assert_eq!(Address::from_internal(&a.internal()), a, "{text}");
        }
    }

    #[test]
    fn extensions() {
        let a = Address::new("hoge+ext", "mydomain.com");
        assert_eq!(a.split_extension("+"), ("hoge".into(), Some("+ext".into())));
        assert_eq!(a.split_extension(""), ("hoge+ext".into(), None));
        assert_eq!(
            Address::new("+x", "d").split_extension("+"),
            ("+x".into(), None)
        );
    }
}
