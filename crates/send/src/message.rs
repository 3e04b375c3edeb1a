//! Builds the DATA that `yubin send` transmits, exactly as swaks builds it
//! (swaks(1), "DATA OPTIONS"): a template with `%TOKEN%`s, the body inserted,
//! `--header` replacing existing headers, `--add-header` appended, leading
//! dots doubled (RFC 5321 section 4.5.2), CRLF line ends, and the final dot.
//! Attachments make a MIME message (RFC 2045/2046), built with `mail-builder`.

use mail_builder::mime::MimePart;

/// swaks' default DATA, with yubin in the X-Mailer line. `\n` here is the two
/// characters backslash and n: swaks' template is written that way and they
/// become line breaks during the fix-up.
pub const DEFAULT_TEMPLATE: &str = "Date: %DATE%\\nTo: %TO_ADDRESS%\\nFrom: %FROM_ADDRESS%\\nSubject: test %DATE%\\nMessage-Id: <%MESSAGEID%>\\nX-Mailer: yubin send v%SWAKS_VERSION% (swaks-compatible)\\n";

/// swaks' default body.
pub const DEFAULT_BODY: &str = "This is a test mailing";

/// One `--attach*` option, in command-line order (their order matters:
/// `--attach-type` and `--attach-name` apply to the next part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachOpt {
    Type(String),
    /// `None`: `--attach-name` without a value, i.e. no file name at all.
    Name(Option<String>),
    Body(Vec<u8>),
    /// Contents, and the file name they came from, if any.
    Attach(Vec<u8>, Option<String>),
}

/// Everything the DATA is made of.
#[derive(Debug, Clone, Default)]
pub struct MessageSpec {
    pub from: String,
    /// `%TO_ADDRESS%`: the recipients as given (comma-separated).
    pub to: String,
    /// `--data`, or `None` for the default template.
    pub data: Option<String>,
    pub body: Option<String>,
    pub attach: Vec<AttachOpt>,
    pub add_headers: Vec<String>,
    pub headers: Vec<String>,
    pub no_data_fixup: bool,
    pub no_strip_from: bool,
    pub date: String,
    pub message_id: String,
    pub version: String,
}

struct Part {
    body: Vec<u8>,
    ctype: String,
    name: Option<String>,
}

fn mime_part(p: Part) -> MimePart<'static> {
    let part = match String::from_utf8(p.body) {
        Ok(text) if p.ctype.starts_with("text/") => MimePart::new(p.ctype, text),
        Ok(text) => MimePart::new(p.ctype, text.into_bytes()),
        Err(e) => MimePart::new(p.ctype, e.into_bytes()),
    };
    match p.name {
        Some(n) => part.attachment(n),
        None => part,
    }
}

/// Builds the MIME body for `--attach*`: returns the top-level MIME header
/// lines and the body. swaks' structure: body parts alone make
/// multipart/alternative (one part: multipart/mixed); with attachments,
/// multipart/mixed holding the body (or an alternative of bodies) first.
fn mime(spec: &MessageSpec, body: &str) -> Option<(Vec<String>, String)> {
    if spec.attach.is_empty() {
        return None;
    }
    let default_type = "application/octet-stream";
    let (mut bodies, mut rest) = (Vec::new(), Vec::new());
    let mut ctype: Option<String> = None;
    let mut name: Option<Option<String>> = None;
    for opt in &spec.attach {
        match opt {
            AttachOpt::Type(t) => ctype = Some(t.clone()),
            AttachOpt::Name(n) => name = Some(n.clone()),
            AttachOpt::Body(b) => {
                let t = ctype.take().unwrap_or_else(|| "text/plain".into());
                bodies.push(Part {
                    body: b.clone(),
                    ctype: t,
                    name: None,
                });
                name = None;
            }
            AttachOpt::Attach(b, from_file) => {
                let t = ctype.clone().unwrap_or_else(|| default_type.into());
                let n = match name.take() {
                    Some(n) => n.filter(|n| !n.is_empty()),
                    None => from_file
                        .as_ref()
                        .map(|f| f.rsplit('/').next().unwrap_or(f).to_string()),
                };
                rest.push(Part {
                    body: b.clone(),
                    ctype: t,
                    name: n,
                });
            }
        }
    }
    if bodies.is_empty() {
        bodies.push(Part {
            body: body.as_bytes().to_vec(),
            ctype: "text/plain".into(),
            name: None,
        });
    }
    let root = if rest.is_empty() {
        let kind = if bodies.len() > 1 {
            "multipart/alternative"
        } else {
            "multipart/mixed"
        };
        MimePart::new(kind, bodies.into_iter().map(mime_part).collect::<Vec<_>>())
    } else {
        let mut parts = Vec::new();
        if bodies.len() > 1 {
            let alt: Vec<_> = bodies.into_iter().map(mime_part).collect();
            parts.push(MimePart::new("multipart/alternative", alt));
        } else {
            parts.extend(bodies.into_iter().map(mime_part));
        }
        parts.extend(rest.into_iter().map(mime_part));
        MimePart::new("multipart/mixed", parts)
    };
    let mut out = Vec::new();
    root.write_part(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut headers = vec!["MIME-Version: 1.0".to_string()];
    headers.extend(head.split("\r\n").map(str::to_string));
    Some((headers, body.to_string()))
}

/// Replaces every `%NAME%` token swaks knows, except %NEW_HEADERS%/%BODY%.
fn tokens(data: &str, spec: &MessageSpec) -> String {
    data.replace("\\n", "\r\n")
        .replace("%NEWLINE%", "\r\n")
        .replace("%FROM_ADDRESS%", &spec.from)
        .replace("%TO_ADDRESS%", &spec.to)
        .replace("%MESSAGEID%", &spec.message_id)
        .replace("%SWAKS_VERSION%", &spec.version)
        .replace("%DATE%", &spec.date)
}

/// The name a header line defines, by swaks' rule `^(\S[^:]+):`.
fn header_name(line: &str) -> Option<&str> {
    let colon = line.find(':')?;
    let name = &line[..colon];
    let first = name.chars().next()?;
    (!first.is_whitespace() && name.chars().count() >= 2).then_some(name)
}

/// Builds the DATA as sent, CRLF line ends and final `.` included (unless
/// `--no-data-fixup`, which sends `--data` verbatim, as swaks does).
pub fn build(spec: &MessageSpec) -> String {
    if spec.no_data_fixup {
        return spec.data.clone().unwrap_or_default();
    }
    let body = spec
        .body
        .clone()
        .unwrap_or_else(|| DEFAULT_BODY.to_string());
    let (mime_headers, body) = match mime(spec, &body) {
        Some((h, b)) => (h, b),
        None => (Vec::new(), body),
    };
    let template = match &spec.data {
        Some(d) => d.clone(),
        None => {
            let mut t = DEFAULT_TEMPLATE.to_string();
            for h in &mime_headers {
                t.push_str(h);
                t.push_str("\\n");
            }
            t.push_str("%NEW_HEADERS%\\n%BODY%\\n");
            t
        }
    };
    let data = template.replace("%BODY%", &body).replace("\\n", "\r\n");

    // Split off the header block at the first empty line (swaks:
    // s/\A(.*?)\r?\n\r?\n//s); without one, everything counts as header.
    let (header, rest) = match find_blank_line(&data) {
        Some((end, after)) => (data[..end].to_string(), data[after..].to_string()),
        None => (data.clone(), String::new()),
    };
    // Header lines grouped with their continuation lines.
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut lines: Vec<&str> = header
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    // Perl's split drops trailing empty fields.
    while lines.last() == Some(&"") {
        lines.pop();
    }
    for line in lines {
        match groups.last_mut() {
            Some(g) if line.starts_with(|c: char| c.is_whitespace()) => g.push(line.to_string()),
            _ => groups.push(vec![line.to_string()]),
        }
    }
    let mut added: Vec<String> = spec.add_headers.clone();
    for line in spec.headers.iter().flat_map(|h| h.split("\\n")) {
        let name = line.find(':').map(|c| &line[..c]).filter(|n| !n.is_empty());
        // The last header of that name is the one replaced (swaks' %headers
        // hash keeps the last).
        let existing = name.and_then(|n| {
            groups
                .iter()
                .rposition(|g| header_name(&g[0]).unwrap_or(&g[0]) == n)
        });
        match existing {
            Some(i) => groups[i] = vec![line.to_string()],
            None => added.push(line.to_string()),
        }
    }
    let mut new_header: String = groups
        .iter()
        .flatten()
        .map(|l| format!("{l}\r\n"))
        .collect();
    if new_header.contains("%NEW_HEADERS%") {
        let add = if added.is_empty() {
            String::new()
        } else {
            added.join("\r\n") + "\r\n"
        };
        new_header = new_header.replace("%NEW_HEADERS%", &add);
    } else {
        for line in &added {
            new_header.push_str(line);
            new_header.push_str("\r\n");
        }
    }
    let mut data = tokens(&format!("{new_header}\r\n{rest}"), spec);
    if !spec.no_strip_from && data.starts_with("From ") {
        data = match data.find('\n') {
            Some(nl) => data[nl + 1..].to_string(),
            None => String::new(),
        };
    }
    // A closing dot the user wrote is dropped; one is added below.
    for end in ["\r\n.\r\n", "\n.\r\n", "\r\n.\n", "\n.\n", "\r\n.", "\n."] {
        if let Some(stripped) = data.strip_suffix(end) {
            data = stripped.to_string();
            break;
        }
    }
    let mut out = String::with_capacity(data.len() + 16);
    if data.starts_with('.') {
        out.push('.');
    }
    let mut prev = '\0';
    for c in data.chars() {
        if c == '\n' && prev != '\r' {
            out.push('\r');
        }
        out.push(c);
        if c == '.' && prev == '\n' {
            out.push('.');
        }
        prev = c;
    }
    out.push_str("\r\n.");
    out
}

/// The first `\r?\n\r?\n`: (end of the header text, start of the rest).
fn find_blank_line(data: &str) -> Option<(usize, usize)> {
    let b = data.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            let mut j = i + 1;
            if b.get(j) == Some(&b'\r') {
                j += 1;
            }
            if b.get(j) == Some(&b'\n') {
                let end = if i > 0 && b[i - 1] == b'\r' { i - 1 } else { i };
                return Some((end, j + 1));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MessageSpec {
        MessageSpec {
            from: "hogehoge@onotherdomain.com".into(),
            to: "root@localhost".into(),
            date: "Fri, 29 Jan 2021 19:24:35 +0900".into(),
            message_id: "20210129192435.023880@myhost.mydomain.com".into(),
            version: "0.1.0".into(),
            ..MessageSpec::default()
        }
    }

    #[test]
    fn seed_message() {
        let mut s = spec();
        s.body = Some("hello world\n".into());
        s.headers = vec!["subject: Test Message".into()];
        assert_eq!(
            build(&s),
            "Date: Fri, 29 Jan 2021 19:24:35 +0900\r\nTo: root@localhost\r\n\
             From: hogehoge@onotherdomain.com\r\nSubject: test Fri, 29 Jan 2021 19:24:35 +0900\r\n\
             Message-Id: <20210129192435.023880@myhost.mydomain.com>\r\n\
             X-Mailer: yubin send v0.1.0 (swaks-compatible)\r\nsubject: Test Message\r\n\r\n\
             hello world\r\n\r\n\r\n."
        );
    }

    #[test]
    fn header_replaces_same_name_and_default_body() {
        let mut s = spec();
        s.headers = vec!["Subject: hi".into()];
        s.add_headers = vec!["X-A: 1\\nX-B: 2".into()];
        let d = build(&s);
        assert!(d.contains("\r\nSubject: hi\r\n"), "{d}");
        assert!(!d.contains("Subject: test"));
        assert!(
            d.ends_with("X-A: 1\r\nX-B: 2\r\n\r\nThis is a test mailing\r\n\r\n\r\n."),
            "{d}"
        );
    }

    #[test]
    fn data_tokens_dots_and_closing_dot() {
        let mut s = spec();
        s.data = Some("From x@y Mon\nSubject: %FROM_ADDRESS%\n\n.dot\n%NEWLINE%end\n.\n".into());
        assert_eq!(
            build(&s),
            "Subject: hogehoge@onotherdomain.com\r\n\r\n..dot\r\n\r\nend\r\n."
        );
        s.no_data_fixup = true;
        assert_eq!(build(&s), s.data.clone().unwrap());
    }

    #[test]
    fn attachment_makes_mime() {
        let mut s = spec();
        s.attach = vec![
            AttachOpt::Type("text/x-test".into()),
            AttachOpt::Attach(b"attached\n".to_vec(), Some("/tmp/a.txt".into())),
        ];
        let d = build(&s);
        assert!(
            d.contains("MIME-Version: 1.0\r\nContent-Type: multipart/mixed"),
            "{d}"
        );
        assert!(d.contains("This is a test mailing"));
        assert!(d.contains("filename=\"a.txt\""), "{d}");
        assert!(d.contains("Content-Type: text/x-test"), "{d}");
        let parsed = mail_parser::MessageParser::default()
            .parse(d.as_bytes())
            .unwrap();
        assert_eq!(parsed.attachment_count(), 1);
    }
}
