//! Cuts the client's byte stream into complete commands, literals included
//! (RFC 3501 section 4.3, LITERAL+ of RFC 7888), refusing an oversized
//! literal from its announcement, before any of its bytes are read, and a
//! line over the limit without buffering it.

/// Size limits, from the session's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line: usize,
    /// Literals of commands other than APPEND (LOGIN passwords, SEARCH
    /// strings).
    pub max_literal: usize,
    /// An APPEND message (RFC 7889 APPENDLIMIT).
    pub append_limit: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete command, CRLF-terminated, literals inline.
    Command(Vec<u8>),
    /// A synchronising literal was accepted: send "+ ".
    Continue,
    /// A literal larger than the limit was announced. `sync`: the client
    /// waits for our answer; otherwise (LITERAL+) its bytes are already on
    /// the way and the connection must close (RFC 7888 section 4).
    LiteralTooBig {
        tag: String,
        append: bool,
        sync: bool,
    },
    /// A line longer than the limit; its bytes are being skipped.
    LineTooLong { tag: String },
}

#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
    cmd: Vec<u8>,
    literal_left: usize,
    discarding: bool,
}

/// The tag of a command line, or `*` when it has none we could echo.
pub fn tag_of(line: &[u8]) -> String {
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    let t = &line[..end.min(64)];
    let ok = !t.is_empty()
        && t.iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b));
    if ok {
        String::from_utf8_lossy(t).into_owned()
    } else {
        "*".into()
    }
}

/// The command name (after the tag, and after UID), upper-cased.
pub fn command_name(line: &[u8]) -> String {
    let mut words = line
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .filter(|w| !w.is_empty());
    words.next();
    let mut name = words.next().unwrap_or_default().to_ascii_uppercase();
    if name == b"UID" {
        name = words.next().unwrap_or_default().to_ascii_uppercase();
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// `{N}` or `{N+}` at the end of a line (without its CRLF).
fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let sync = match digits
        .strip_suffix(b"+")
        .or_else(|| digits.strip_suffix(b"-"))
    {
        Some(d) => {
            digits = d;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, sync))
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Drops everything buffered (after STARTTLS: RFC 3501 section 6.2.1,
    /// no plaintext injected before the handshake may count).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.cmd.clear();
        self.literal_left = 0;
        self.discarding = false;
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Skips the rest of an over-long line; true once its end was seen.
    fn skip_line(&mut self) -> bool {
        match self.pending().iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.start += i + 1;
                self.discarding = false;
                true
            }
            None => {
                self.start = self.buf.len();
                false
            }
        }
    }

    /// One raw line without its line end (SASL responses, IDLE's DONE).
    pub fn next_line(&mut self, max: usize) -> Option<Result<Vec<u8>, ()>> {
        if self.discarding && !self.skip_line() {
            return None;
        }
        match self.pending().iter().position(|&b| b == b'\n') {
            Some(i) => {
                let mut line = self.pending()[..i].to_vec();
                self.start += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > max {
                    return Some(Err(()));
                }
                Some(Ok(line))
            }
            None if self.pending().len() > max => {
                self.discarding = true;
                self.skip_line();
                Some(Err(()))
            }
            None => None,
        }
    }

    pub fn next_command(&mut self, limits: &Limits) -> Option<Frame> {
        loop {
            if self.discarding && !self.skip_line() {
                return None;
            }
            if self.literal_left > 0 {
                let take = self.literal_left.min(self.pending().len());
                if take == 0 {
                    return None;
                }
                let (a, b) = (self.start, self.start + take);
                self.cmd.extend_from_slice(&self.buf[a..b]);
                self.start = b;
                self.literal_left -= take;
                if self.literal_left > 0 {
                    return None;
                }
            }
            let Some(i) = self.pending().iter().position(|&b| b == b'\n') else {
                if self.pending().len() > limits.max_line {
                    let tag = tag_of(if self.cmd.is_empty() {
                        self.pending()
                    } else {
                        &self.cmd
                    });
                    self.cmd.clear();
                    self.discarding = true;
                    self.skip_line();
                    return Some(Frame::LineTooLong { tag });
                }
                return None;
            };
            let line_start = self.cmd.len();
            let (a, b) = (self.start, self.start + i);
            self.cmd.extend_from_slice(&self.buf[a..b]);
            self.start = b + 1;
            if self.cmd.last() == Some(&b'\r') {
                self.cmd.pop();
            }
            // A line is bounded, and so is a whole command's non-literal text.
            if self.cmd.len() - line_start > limits.max_line
                || self.cmd.len() > limits.append_limit.saturating_add(limits.max_line * 4)
            {
                let tag = tag_of(&self.cmd);
                self.cmd.clear();
                return Some(Frame::LineTooLong { tag });
            }
            let ann = literal_announcement(&self.cmd[line_start..]);
            self.cmd.extend_from_slice(b"\r\n");
            let Some((n, sync)) = ann else {
                return Some(Frame::Command(std::mem::take(&mut self.cmd)));
            };
            let append = command_name(&self.cmd) == "APPEND";
            let limit = if append {
                limits.append_limit
            } else {
                limits.max_literal
            };
            if n > limit as u64 {
                let tag = tag_of(&self.cmd);
                self.cmd.clear();
                return Some(Frame::LiteralTooBig { tag, append, sync });
            }
            self.literal_left = n as usize;
            if sync && n > 0 {
                return Some(Frame::Continue);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_line: 100,
        max_literal: 10,
        append_limit: 1000,
    };

    #[test]
    fn literal_commands() {
        let mut f = Framer::default();
        f.push(b"a LOGIN {3}\r\n");
        assert_eq!(f.next_command(&L), Some(Frame::Continue));
        assert_eq!(f.next_command(&L), None);
        f.push(b"bob {2+}\r\npw\r\nb NOOP\r\n");
        assert_eq!(
            f.next_command(&L),
            Some(Frame::Command(
                b"a LOGIN {3}\r\nbob {2+}\r\npw\r\n".to_vec()
            ))
        );
        assert_eq!(
            f.next_command(&L),
            Some(Frame::Command(b"b NOOP\r\n".to_vec()))
        );
    }

    #[test]
    fn big_literal_refused_before_read() {
        let mut f = Framer::default();
        f.push(b"a LOGIN {99999999999}\r\n");
        assert_eq!(
            f.next_command(&L),
            Some(Frame::LiteralTooBig {
                tag: "a".into(),
                append: false,
                sync: true
            })
        );
        f.push(b"x APPEND INBOX {500}\r\n");
        assert_eq!(f.next_command(&L), Some(Frame::Continue));
    }

    #[test]
    fn long_line_skipped() {
        let mut f = Framer::default();
        f.push(&[b'x'; 300]);
        assert!(matches!(
            f.next_command(&L),
            Some(Frame::LineTooLong { .. })
        ));
        f.push(b"yyy\r\nb NOOP\r\n");
        assert_eq!(
            f.next_command(&L),
            Some(Frame::Command(b"b NOOP\r\n".to_vec()))
        );
    }
}
