//! End-of-message modifications and their effect on a queued message
//! (Postfix cleanup_milter.c: header changes count instances of a name from
//! 1, insertion positions count all headers from 0, an empty value deletes).

/// One modification a milter asked for at the end of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    AddHeader {
        name: String,
        value: String,
    },
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// A recipient and its ESMTP parameters (ADDRCPT_PAR), usually none.
    AddRcpt(String, String),
    DelRcpt(String),
    /// The new body, CRLF line ends as the milter sent it.
    ReplaceBody(Vec<u8>),
    ChangeFrom(String, String),
}

/// A message split into headers and body, with LF line ends as the queue
/// file keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// (name, value after the colon with folded lines joined by `\n`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The empty line between headers and body was there (or headers were).
    pub separator: bool,
}

impl Message {
    /// Splits at the first empty line. A line that is neither a header nor
    /// a continuation starts the body (RFC 5322 section 2.1), as cleanup(8)
    /// does with a malformed header block.
    pub fn parse(bytes: &[u8]) -> Message {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut pos = 0;
        let mut separator = false;
        while pos < bytes.len() {
            let end = bytes[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| pos + i + 1);
            let line = &bytes[pos..end];
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.is_empty() {
                pos = end;
                separator = true;
                break;
            }
            if (text[0] == b' ' || text[0] == b'\t') && !headers.is_empty() {
                let last = headers.last_mut().expect("checked non-empty");
                last.1.push('\n');
                last.1.push_str(&String::from_utf8_lossy(text));
                pos = end;
                continue;
            }
            let colon = text.iter().position(|&b| b == b':');
            let is_header = colon.is_some_and(|c| {
                c > 0 && text[..c].iter().all(|&b| b.is_ascii_graphic() && b != b':')
            });
            if !is_header {
                break;
            }
            let c = colon.expect("checked");
            headers.push((
                String::from_utf8_lossy(&text[..c]).into_owned(),
                String::from_utf8_lossy(&text[c + 1..]).into_owned(),
            ));
            pos = end;
        }
        Message {
            headers,
            body: bytes[pos.min(bytes.len())..].to_vec(),
            separator,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64 * self.headers.len() + 1);
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.push(b':');
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
        if self.separator || !self.headers.is_empty() {
            out.push(b'\n');
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// Applies the header and body edits; envelope edits (recipients,
    /// sender) are the caller's. `leadspc`: the milter negotiated
    /// HDR_LEADSPC, so values carry their own leading space.
    pub fn apply(&mut self, edit: &Edit, leadspc: bool) {
        let fix = |v: &str| -> String {
            let v = v.replace("\r\n", "\n");
            if leadspc {
                v
            } else {
                format!(" {v}")
            }
        };
        match edit {
            Edit::AddHeader { name, value } => self.headers.push((name.clone(), fix(value))),
            Edit::InsertHeader { index, name, value } => {
                let at = (*index as usize).min(self.headers.len());
                self.headers.insert(at, (name.clone(), fix(value)));
            }
            Edit::ChangeHeader { index, name, value } => {
                // Sendmail compatibility (milter8.c): index 0 means 1.
                let want = (*index).max(1) as usize;
                let found = self
                    .headers
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| n.eq_ignore_ascii_case(name))
                    .nth(want - 1)
                    .map(|(i, _)| i);
                match (found, value.is_empty()) {
                    (Some(i), true) => {
                        self.headers.remove(i);
                    }
                    (Some(i), false) => self.headers[i].1 = fix(value),
                    // Changing a header that is not there adds it (Sendmail's
                    // and Postfix's behaviour); deleting it does nothing.
                    (None, false) => self.headers.push((name.clone(), fix(value))),
                    (None, true) => {}
                }
            }
            Edit::ReplaceBody(b) => {
                let mut body = Vec::with_capacity(b.len());
                let mut i = 0;
                while i < b.len() {
                    if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
                        i += 1;
                        continue;
                    }
                    body.push(b[i]);
                    i += 1;
                }
                self.body = body;
            }
            Edit::AddRcpt(..) | Edit::DelRcpt(_) | Edit::ChangeFrom(..) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"Received: from x\n\tby y\nSubject: hi\nX-Spam: no\nSubject: two\n\nbody\n";

    #[test]
    fn parse_and_render_round_trip() {
        let m = Message::parse(MSG);
        assert_eq!(m.headers.len(), 4);
        assert_eq!(m.headers[0].1, " from x\n\tby y");
        assert_eq!(m.body, b"body\n");
        assert_eq!(m.to_bytes(), MSG);
    }

    #[test]
    fn header_edits_follow_postfix_indexing() {
        let mut m = Message::parse(MSG);
        m.apply(
            &Edit::ChangeHeader {
                index: 2,
                name: "subject".into(),
                value: "changed".into(),
            },
            false,
        );
        assert_eq!(m.headers[3], ("Subject".into(), " changed".into()));
        m.apply(
            &Edit::ChangeHeader {
                index: 1,
                name: "X-Spam".into(),
                value: String::new(),
            },
            false,
        );
        assert!(!m.headers.iter().any(|h| h.0 == "X-Spam"));
        m.apply(
            &Edit::InsertHeader {
                index: 0,
                name: "X-First".into(),
                value: " v".into(),
            },
            true,
        );
        assert_eq!(m.headers[0], ("X-First".into(), " v".into()));
        m.apply(
            &Edit::AddHeader {
                name: "X-Last".into(),
                value: "a\r\n\tb".into(),
            },
            false,
        );
        assert_eq!(m.headers.last().unwrap().1, " a\n\tb");
        m.apply(&Edit::ReplaceBody(b"new\r\nbody\r\n".to_vec()), false);
        assert_eq!(m.body, b"new\nbody\n");
        let out = m.to_bytes();
        assert!(out.starts_with(b"X-First: v\nReceived: from x\n\tby y\nSubject: hi\n"));
        assert!(out.ends_with(b"X-Last: a\n\tb\n\nnew\nbody\n"));
    }

    #[test]
    fn no_header_block() {
        let m = Message::parse(b"just text\n");
        assert!(m.headers.is_empty());
        assert_eq!(m.to_bytes(), b"just text\n");
    }
}
