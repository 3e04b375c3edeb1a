//! SMTP reply parsing (RFC 5321 section 4.2), free of I/O so that it can be
//! fuzzed (`fuzz/fuzz_targets/send_reply.rs`) and driven by byte strings.
//!
//! swaks reads lines until one matches `^\d\d\d ` and shows every line it
//! read, well-formed or not; we do the same, but bound both the length of a
//! line and the number of lines so that a hostile server cannot make us
//! allocate without limit.

/// Longest reply line we accept, CRLF included. RFC 5321 section 4.5.3.1.5
/// allows 512 octets; real servers exceed that a little, so allow slack.
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply (a long EHLO answer has ~20).
pub const MAX_LINES: usize = 512;

/// One complete reply: the code of its last line and every line as received
/// (without the line end; invalid UTF-8 replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The reply as swaks prints it: the lines joined with `\n`.
    pub fn raw(&self) -> String {
        self.lines.join("\n")
    }

    /// The text of the reply lines after the code and separator, joined with `\n`.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.get(4..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the code is in `2xx`/`3xx` etc.: `class(2)` for success.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// The EHLO keywords (first word of each line after the first, upper-cased)
    /// with their parameters, RFC 5321 section 4.1.1.1.
    pub fn ehlo_keywords(&self) -> Vec<(String, String)> {
        self.lines
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
            let code = lines
                .last()
                .and_then(|l| l.get(..3))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            return Ok(Some((Reply { code, lines }, pos)));
        }
        if lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
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
        assert_eq!(r.lines, vec!["220 mail ESMTP"]);
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
    fn queue_id_from_postfix_reply() {
        let (r, _) = parse_reply(b"250 2.0.0 Ok: queued as A438C186C09\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(queue_id(&r).as_deref(), Some("A438C186C09"));
        let (r, _) = parse_reply(b"250 2.0.0 Ok\r\n").unwrap().unwrap();
        assert_eq!(queue_id(&r), None);
    }
}
