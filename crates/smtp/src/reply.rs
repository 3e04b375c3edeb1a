//! SMTP replies (RFC 5321 section 4.2) as a type, and the one reply parser
//! every client side uses (`yubin send`, the outbound smtp client core). Free
//! of I/O so that it can be fuzzed (`fuzz/fuzz_targets/send_reply.rs`).
//!
//! swaks reads lines until one matches `^\d\d\d ` and shows every line it
//! read, well-formed or not; the parser does the same (`raw`), but bounds
//! both the length of a line and the number of lines so that a hostile
//! server cannot make us allocate without limit.

use std::fmt;

/// Longest reply line we accept, CRLF included. RFC 5321 section 4.5.3.1.5
/// allows 512 octets; real servers exceed that a little, so allow slack.
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply (a long EHLO answer has ~20).
pub const MAX_LINES: usize = 512;

/// An RFC 3463 enhanced status code, `class.subject.detail` (`5.1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Enhanced {
    /// 2 (success), 4 (persistent transient) or 5 (permanent).
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Enhanced {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Enhanced {
        Enhanced {
            class,
            subject,
            detail,
        }
    }

    /// Parses `X.Y.Z` (RFC 3463 section 2: class 2, 4 or 5; subject and
    /// detail 1-3 digits).
    pub fn parse(s: &str) -> Option<Enhanced> {
        let mut it = s.split('.');
        let class: u8 = it.next()?.parse().ok()?;
        let num = |p: Option<&str>| -> Option<u16> {
            let p = p?;
            (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        let subject = num(it.next())?;
        let detail = num(it.next())?;
        (it.next().is_none() && matches!(class, 2 | 4 | 5)).then_some(Enhanced {
            class,
            subject,
            detail,
        })
    }
}

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One reply: the code, the enhanced status code of its first line if it
/// has one, and the text of each line (after the code, the separator and
/// the enhanced code). `raw` keeps the lines exactly as a peer sent them
/// (empty for replies we build ourselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<Enhanced>,
    pub text: Vec<String>,
    pub raw: Vec<String>,
}

impl Reply {
    /// A one-line reply; `enhanced` may be `""` for replies without one
    /// (Postfix's `250 mail.example.com` to HELO, `354 End data ...`).
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Enhanced::parse(enhanced),
            text: vec![text.into()],
            raw: Vec::new(),
        }
    }

    /// A multi-line reply (EHLO's keyword list): every line gets the code.
    pub fn lines(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            text: lines,
            raw: Vec::new(),
        }
    }

    /// The wire form, each line ended by CRLF (RFC 5321 section 4.2.1:
    /// `code-text` on all lines but the last, `code text` on the last).
    pub fn to_wire(&self) -> Vec<u8> {
        // Written straight into one buffer: smtpd sends a reply per command.
        let mut out = String::new();
        self.each_line(|line| {
            out.push_str(line);
            out.push_str("\r\n");
        });
        out.into_bytes()
    }

    /// Calls `f` with each line as sent or received, without its line end.
    fn each_line(&self, mut f: impl FnMut(&str)) {
        if !self.raw.is_empty() {
            self.raw.iter().for_each(|l| f(l));
            return;
        }
        let n = self.text.len().max(1);
        let mut line = String::new();
        for i in 0..n {
            use std::fmt::Write;
            line.clear();
            let sep = if i + 1 == n { ' ' } else { '-' };
            let text = self.text.get(i).map(String::as_str).unwrap_or("");
            let _ = match (i, &self.enhanced) {
                (0, Some(e)) => write!(line, "{}{sep}{e} {text}", self.code),
                _ => write!(line, "{}{sep}{text}", self.code),
            };
            f(&line);
        }
    }

    /// The lines without line ends, as sent or received.
    pub fn wire_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        self.each_line(|l| lines.push(l.to_string()));
        lines
    }

    /// The reply as swaks prints it: the lines joined with `\n`.
    pub fn raw(&self) -> String {
        self.wire_lines().join("\n")
    }

    /// The first line without its code: `5.1.1 <u@d>: Recipient address
    /// rejected: ...`, as Postfix quotes a remote reply in a bounce.
    pub fn first_line_text(&self) -> String {
        match (&self.enhanced, self.text.first()) {
            (Some(e), Some(t)) => format!("{e} {t}"),
            (None, Some(t)) => t.clone(),
            _ => String::new(),
        }
    }

    /// The text of the reply lines after the code and separator, joined
    /// with `\n` (the enhanced code, if any, included).
    pub fn text(&self) -> String {
        self.wire_lines()
            .iter()
            .map(|l| l.get(4..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// 2 for `2xx`, 4 for `4xx` ...
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The EHLO keywords (first word of each line after the first, upper-cased)
    /// with their parameters, RFC 5321 section 4.1.1.1.
    pub fn ehlo_keywords(&self) -> Vec<(String, String)> {
        self.wire_lines()
            .iter()
            .skip(1)
            .filter_map(|l| l.get(4..))
            .map(|t| {
                let t = t.trim();
                // `AUTH=PLAIN LOGIN` is an old form some servers still send.
                let (k, v) = match t.find([' ', '=']) {
                    Some(i) => (&t[..i], t[i + 1..].trim()),
                    None => (t, ""),
                };
                (k.to_ascii_uppercase(), v.to_string())
            })
            .collect()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw())
    }
}

/// Why bytes could not be parsed as a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line longer than [`MAX_LINE`] without a line end.
    LineTooLong,
    /// More than [`MAX_LINES`] lines without a final line.
    TooManyLines,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::LineTooLong => {
                write!(f, "reply line longer than {MAX_LINE} bytes")
            }
            ReplyError::TooManyLines => {
                write!(f, "reply of more than {MAX_LINES} lines")
            }
        }
    }
}

impl std::error::Error for ReplyError {}

/// Whether `line` ends a reply: three digits then a space or nothing
/// (RFC 5321 section 4.2: `Reply-code [ SP textstring ] CRLF`).
fn is_final(line: &[u8]) -> bool {
    line.len() >= 3
        && line[..3].iter().all(u8::is_ascii_digit)
        && (line.len() == 3 || line[3] == b' ')
}

/// Parses one reply from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds no complete reply yet, and
/// `Ok(Some((reply, used)))` with the number of bytes it took otherwise.
/// A line ends at LF; a CR before it is dropped (swaks strips every CR).
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut lines = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
            if rest.len() >= MAX_LINE {
                return Err(ReplyError::LineTooLong);
            }
            return Ok(None);
        };
        let line: Vec<u8> = rest[..nl].iter().copied().filter(|&b| b != b'\r').collect();
        pos += nl + 1;
        let last = is_final(&line);
        lines.push(String::from_utf8_lossy(&line).into_owned());
        if last {
            return Ok(Some((typed(lines), pos)));
        }
        if lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
    }
}

/// The typed view of received lines: the code of the last line, the
/// enhanced code of the first (when every line of a multi-line reply
/// carries one, RFC 2034 section 4), each line's text.
fn typed(raw: Vec<String>) -> Reply {
    let code = raw
        .last()
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let after = |l: &String| l.get(4..).unwrap_or("").to_string();
    let first = raw.first().map(after).unwrap_or_default();
    let enhanced = first.split(' ').next().and_then(Enhanced::parse);
    let text = raw
        .iter()
        .map(|l| {
            let t = after(l);
            match enhanced {
                Some(_) => match t.split_once(' ') {
                    Some((e, rest)) if Enhanced::parse(e).is_some() => rest.to_string(),
                    _ if Enhanced::parse(&t).is_some() => String::new(),
                    _ => t,
                },
                None => t,
            }
        })
        .collect();
    Reply {
        code,
        enhanced,
        text,
        raw,
    }
}

/// Finds the queue id in a reply to the final dot, as Postfix words it:
/// `250 2.0.0 Ok: queued as 4F2A1B3C9D`.
pub fn queue_id(reply: &Reply) -> Option<String> {
    let text = reply.text();
    let at = text.find("queued as ")?;
    let id: String = text[at + 10..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multiline() {
        let (r, n) = parse_reply(b"220 mail ESMTP\r\nrest").unwrap().unwrap();
        assert_eq!((r.code, n), (220, 16));
        assert_eq!(r.raw, vec!["220 mail ESMTP"]);
        let (r, _) = parse_reply(b"250-a\r\n250-PIPELINING\r\n250 SIZE 10\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.text(), "a\nPIPELINING\nSIZE 10");
        assert_eq!(
            r.ehlo_keywords(),
            vec![
                ("PIPELINING".into(), "".into()),
                ("SIZE".into(), "10".into())
            ]
        );
    }

    #[test]
    fn incomplete_and_bare_code() {
        assert_eq!(parse_reply(b"250-a\r\n250 b").unwrap(), None);
        let (r, _) = parse_reply(b"221\n").unwrap().unwrap();
        assert_eq!(r.code, 221);
    }

    #[test]
    fn garbage_lines_are_kept_until_a_final_line() {
        let (r, _) = parse_reply(b"hello\r\n550 no\r\n").unwrap().unwrap();
        assert_eq!(r.code, 550);
        assert_eq!(r.raw(), "hello\n550 no");
    }

    #[test]
    fn limits() {
        let long = vec![b'2'; MAX_LINE + 1];
        assert_eq!(parse_reply(&long), Err(ReplyError::LineTooLong));
        let many = b"250-x\n".repeat(MAX_LINES + 1);
        assert_eq!(parse_reply(&many), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn typed_fields() {
        let (r, _) = parse_reply(b"550-5.1.1 first\r\n550 5.1.1 second\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.enhanced, Some(Enhanced::new(5, 1, 1)));
        assert_eq!(r.text, vec!["first", "second"]);
        assert_eq!(r.first_line_text(), "5.1.1 first");
        assert!(r.is_permanent());
        let built = Reply::new(550, "5.1.1", "<a@b>: Recipient address rejected");
        assert_eq!(
            built.to_wire(),
            b"550 5.1.1 <a@b>: Recipient address rejected\r\n"
        );
        let ehlo = Reply::lines(250, vec!["mail".into(), "PIPELINING".into()]);
        assert_eq!(ehlo.to_wire(), b"250-mail\r\n250 PIPELINING\r\n");
        assert_eq!(
            Reply::new(354, "", "End data").to_wire(),
            b"354 End data\r\n"
        );
        assert_eq!(Enhanced::parse("4.7.1"), Some(Enhanced::new(4, 7, 1)));
        for bad in ["3.1.1", "5.1", "5.1.1.1", "5.1234.1", "x.1.1", "5..1"] {
            assert_eq!(Enhanced::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn queue_id_from_postfix_reply() {
        let (r, _) = parse_reply(b"250 2.0.0 Ok: queued as A438C186C09\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(queue_id(&r).as_deref(), Some("A438C186C09"));
        let (r, _) = parse_reply(b"250 2.0.0 Ok\r\n").unwrap().unwrap();
        assert_eq!(queue_id(&r), None);
    }
}
