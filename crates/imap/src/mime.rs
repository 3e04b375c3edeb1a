//! The MIME view of a message for FETCH: ENVELOPE, BODYSTRUCTURE and
//! BODY[section] (RFC 3501 sections 6.4.5 and 7.4.2), built on mail-parser's
//! part tree and byte offsets so that every section is the exact raw bytes.

use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};

use crate::wire::{nstring, quoted_or_literal};

/// Nested message/rfc822 parts deeper than this are shown as opaque
/// parts: bounded work for hostile messages.
const MAX_NESTING: usize = 16;

/// One MIME part with its raw bytes.
#[derive(Debug)]
pub struct Node {
    /// Raw header block (with its blank line) and body.
    pub header: Vec<u8>,
    pub body: Vec<u8>,
    ctype: String,
    subtype: String,
    params: Vec<(String, String)>,
    id: Option<String>,
    description: Option<String>,
    encoding: Option<String>,
    disposition: Option<(String, Vec<(String, String)>)>,
    language: Option<String>,
    location: Option<String>,
    md5: Option<String>,
    children: Vec<Node>,
    /// For message/rfc822: the encapsulated message and its envelope.
    message: Option<Box<(Node, Vec<u8>)>>,
}

/// A parsed message: its root part and its ENVELOPE.
pub struct ParsedMessage {
    pub root: Node,
    pub envelope: Vec<u8>,
}

impl ParsedMessage {
    pub fn parse(raw: &[u8]) -> ParsedMessage {
        let (root, envelope) = parse_message(raw, 0);
        ParsedMessage { root, envelope }
    }
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn parse_message(raw: &[u8], depth: usize) -> (Node, Vec<u8>) {
    let Some(msg) = MessageParser::default().parse(raw) else {
        // Not even a header: one text/plain body, empty header.
        return (
            Node::opaque(Vec::new(), raw.to_vec()),
            b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)".to_vec(),
        );
    };
    let envelope = envelope(&msg);
    let root = build(&msg, 0, raw, depth);
    (root, envelope)
}

impl Node {
    fn opaque(header: Vec<u8>, body: Vec<u8>) -> Node {
        Node {
            header,
            body,
            ctype: "text".into(),
            subtype: "plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
            id: None,
            description: None,
            encoding: None,
            disposition: None,
            language: None,
            location: None,
            md5: None,
            children: Vec::new(),
            message: None,
        }
    }

    fn is_multipart(&self) -> bool {
        self.ctype == "multipart"
    }

    /// Part `n` (1-based) of this node seen as a message (the top level,
    /// or the message inside a message/rfc822 part): the n-th part of a
    /// multipart body, or for a single-part body, part 1 is that body
    /// (RFC 3501 section 6.4.5).
    fn message_child(&self, n: u32) -> Option<&Node> {
        if self.is_multipart() {
            return self.children.get((n as usize).checked_sub(1)?);
        }
        (n == 1).then_some(self)
    }

    /// Part `n` below a part: into an encapsulated message, a multipart's
    /// parts, or a single part's own body.
    fn child(&self, n: u32) -> Option<&Node> {
        match &self.message {
            Some(m) => m.0.message_child(n),
            None => self.message_child(n),
        }
    }

    /// The node at a part path; the empty path is the message itself.
    pub fn part(&self, path: &[u32]) -> Option<&Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let mut cur = self.message_child(*first)?;
        for &n in rest {
            cur = cur.child(n)?;
        }
        Some(cur)
    }

    /// For HEADER/TEXT of a part path: the message those refer to (the
    /// top level, or the encapsulated message of a message/rfc822 part).
    pub fn message_at(&self, path: &[u32]) -> Option<&Node> {
        if path.is_empty() {
            return Some(self);
        }
        let p = self.part(path)?;
        p.message.as_ref().map(|m| &m.0)
    }

    /// BODYSTRUCTURE (`extended`) or BODY.
    pub fn structure(&self, extended: bool, out: &mut Vec<u8>) {
        out.push(b'(');
        if self.is_multipart() && !self.children.is_empty() {
            for c in &self.children {
                c.structure(extended, out);
            }
            out.push(b' ');
            out.extend(quoted_or_literal(self.subtype.as_bytes()));
            if extended {
                out.push(b' ');
                params(&self.params, out);
                self.ext_tail(out);
            }
        } else {
            out.extend(quoted_or_literal(self.ctype.as_bytes()));
            out.push(b' ');
            out.extend(quoted_or_literal(self.subtype.as_bytes()));
            out.push(b' ');
            params(&self.params, out);
            out.push(b' ');
            out.extend(nstring(self.id.as_deref().map(str::as_bytes)));
            out.push(b' ');
            out.extend(nstring(self.description.as_deref().map(str::as_bytes)));
            out.push(b' ');
            out.extend(quoted_or_literal(
                self.encoding.as_deref().unwrap_or("7bit").as_bytes(),
            ));
            out.extend(format!(" {}", self.body.len()).as_bytes());
            if let Some(m) = &self.message {
                out.push(b' ');
                out.extend(&m.1);
                out.push(b' ');
                m.0.structure(extended, out);
                out.extend(format!(" {}", lines(&self.body)).as_bytes());
            } else if self.ctype == "text" {
                out.extend(format!(" {}", lines(&self.body)).as_bytes());
            }
            if extended {
                out.push(b' ');
                out.extend(nstring(self.md5.as_deref().map(str::as_bytes)));
                self.ext_tail(out);
            }
        }
        out.push(b')');
    }

    /// body-fld-dsp body-fld-lang body-fld-loc.
    fn ext_tail(&self, out: &mut Vec<u8>) {
        out.push(b' ');
        match &self.disposition {
            Some((d, p)) => {
                out.push(b'(');
                out.extend(quoted_or_literal(d.as_bytes()));
                out.push(b' ');
                params(p, out);
                out.push(b')');
            }
            None => out.extend(b"NIL"),
        }
        out.push(b' ');
        out.extend(nstring(self.language.as_deref().map(str::as_bytes)));
        out.push(b' ');
        out.extend(nstring(self.location.as_deref().map(str::as_bytes)));
    }
}

fn lines(body: &[u8]) -> usize {
    let n = body.iter().filter(|&&b| b == b'\n').count();
    if body.last().is_some_and(|&b| b != b'\n') {
        n + 1
    } else {
        n
    }
}

fn params(p: &[(String, String)], out: &mut Vec<u8>) {
    if p.is_empty() {
        out.extend(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(quoted_or_literal(k.as_bytes()));
        out.push(b' ');
        out.extend(quoted_or_literal(v.as_bytes()));
    }
    out.push(b')');
}

fn build(msg: &mail_parser::Message<'_>, idx: usize, raw: &[u8], depth: usize) -> Node {
    let part = &msg.parts[idx];
    let slice = |a: u32, b: u32| -> Vec<u8> {
        let (a, b) = (a as usize, b as usize);
        if a <= b && b <= raw.len() {
            raw[a..b].to_vec()
        } else {
            Vec::new()
        }
    };
    let header = slice(part.offset_header, part.offset_body);
    let body = slice(part.offset_body, part.offset_end);
    let mut node = Node::opaque(header, body);
    node.params.clear();
    let mut is_message = false;
    match part.content_type() {
        Some(ct) => {
            node.ctype = lower(ct.ctype());
            node.subtype = lower(ct.subtype().unwrap_or(""));
            if node.subtype.is_empty() {
                node.subtype = if node.ctype == "text" {
                    "plain"
                } else {
                    "octet-stream"
                }
                .into();
            }
            if let Some(attrs) = ct.attributes() {
                node.params = attrs
                    .iter()
                    .map(|a| (a.name.to_string(), a.value.to_string()))
                    .collect();
            }
        }
        None => {
            // RFC 2045 section 5.2 default; in a multipart/digest a part
            // without Content-Type is message/rfc822, which mail-parser
            // already reports as a message part.
            if matches!(part.body, PartType::Message(_)) {
                node.ctype = "message".into();
                node.subtype = "rfc822".into();
            } else {
                node.params = vec![("charset".into(), "us-ascii".into())];
            }
        }
    }
    if node.ctype == "message" && node.subtype == "rfc822" {
        is_message = true;
    }
    for h in part.headers.iter() {
        let name = h.name.as_str();
        let rawv = || {
            let (a, b) = (h.offset_start as usize, h.offset_end as usize);
            if a <= b && b <= raw.len() {
                Some(String::from_utf8_lossy(&raw[a..b]).trim().to_string())
            } else {
                None
            }
        };
        if name.eq_ignore_ascii_case("Content-Transfer-Encoding") {
            node.encoding = rawv().map(|v| v.to_ascii_uppercase());
        } else if name.eq_ignore_ascii_case("Content-ID") {
            node.id = rawv();
        } else if name.eq_ignore_ascii_case("Content-Description") {
            node.description = rawv();
        } else if name.eq_ignore_ascii_case("Content-Language") {
            node.language = rawv();
        } else if name.eq_ignore_ascii_case("Content-Location") {
            node.location = rawv();
        } else if name.eq_ignore_ascii_case("Content-MD5") {
            node.md5 = rawv();
        } else if name.eq_ignore_ascii_case("Content-Disposition") {
            if let HeaderValue::ContentType(ct) = &h.value {
                let p = ct
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|a| (a.name.to_string(), a.value.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                node.disposition = Some((ct.ctype().to_string(), p));
            }
        }
    }
    match &part.body {
        PartType::Multipart(ids) if node.ctype == "multipart" => {
            for &id in ids {
                let id = id as usize;
                if id < msg.parts.len() && id != idx {
                    node.children.push(build(msg, id, raw, depth));
                }
            }
        }
        _ if is_message => {
            if depth < MAX_NESTING {
                let (inner, env) = parse_message(&node.body, depth + 1);
                node.message = Some(Box::new((inner, env)));
            } else {
                node.ctype = "application".into();
                node.subtype = "octet-stream".into();
            }
        }
        _ => {}
    }
    node
}

/// ENVELOPE (RFC 3501 section 7.4.2): raw (undecoded) date, subject,
/// in-reply-to and message-id, parsed address lists.
fn envelope(msg: &mail_parser::Message<'_>) -> Vec<u8> {
    let raw_hdr = |name: &str| -> Option<Vec<u8>> {
        msg.header_raw(name).map(|v| v.trim().as_bytes().to_vec())
    };
    let mut out = b"(".to_vec();
    out.extend(nstring(raw_hdr("Date").as_deref()));
    out.push(b' ');
    out.extend(nstring(raw_hdr("Subject").map(|s| unfold(&s)).as_deref()));
    let from = addresses(msg.from());
    let sender = msg.sender().map(|a| addresses(Some(a)));
    let reply_to = msg.reply_to().map(|a| addresses(Some(a)));
    for list in [
        from.clone(),
        sender.unwrap_or_else(|| from.clone()),
        reply_to.unwrap_or_else(|| from.clone()),
        addresses(msg.to()),
        addresses(msg.cc()),
        addresses(msg.bcc()),
    ] {
        out.push(b' ');
        out.extend(list);
    }
    out.push(b' ');
    out.extend(nstring(
        raw_hdr("In-Reply-To").map(|s| unfold(&s)).as_deref(),
    ));
    out.push(b' ');
    out.extend(nstring(
        raw_hdr("Message-ID").map(|s| unfold(&s)).as_deref(),
    ));
    out.push(b')');
    out
}

/// Header values keep their folding in the raw text; the envelope shows
/// them unfolded (RFC 5322 section 2.2.3).
fn unfold(v: &[u8]) -> Vec<u8> {
    v.iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

fn addr(out: &mut Vec<u8>, name: Option<&str>, address: Option<&str>) {
    let (mailbox, host) = match address {
        Some(a) => match a.rsplit_once('@') {
            Some((m, h)) => (Some(m), Some(h)),
            None => (Some(a), None),
        },
        None => (None, None),
    };
    // An obsolete source route (`<@route:user@domain>`, RFC 5322 section
    // 4.4) goes in the at-domain-list field.
    let (adl, mailbox) = match mailbox.and_then(|m| m.strip_prefix('@').map(|_| m)) {
        Some(m) => match m.split_once(':') {
            Some((route, rest)) => (Some(route), Some(rest)),
            None => (None, Some(m)),
        },
        None => (None, mailbox),
    };
    out.push(b'(');
    out.extend(nstring(name.map(encode_word).as_deref()));
    out.push(b' ');
    out.extend(nstring(adl.map(str::as_bytes)));
    out.push(b' ');
    out.extend(nstring(mailbox.map(str::as_bytes)));
    out.push(b' ');
    out.extend(nstring(host.map(str::as_bytes)));
    out.push(b')');
}

/// A decoded display name back in an RFC 2047 word when it is not ASCII,
/// since an envelope is the header's text, not Unicode.
fn encode_word(s: &str) -> Vec<u8> {
    if s.is_ascii() {
        s.as_bytes().to_vec()
    } else {
        use base64::Engine;
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }
}

fn addresses(a: Option<&Address<'_>>) -> Vec<u8> {
    let mut out = Vec::new();
    match a {
        None => return b"NIL".to_vec(),
        Some(Address::List(list)) => {
            if list.is_empty() {
                return b"NIL".to_vec();
            }
            out.push(b'(');
            for x in list {
                addr(&mut out, x.name.as_deref(), x.address.as_deref());
            }
        }
        Some(Address::Group(groups)) => {
            if groups.is_empty() {
                return b"NIL".to_vec();
            }
            out.push(b'(');
            for g in groups {
                // RFC 3501: a group is a start marker (NIL NIL name NIL),
                // its members, and an end marker (NIL NIL NIL NIL).
                if let Some(name) = &g.name {
                    out.extend(b"(NIL NIL ");
                    out.extend(quoted_or_literal(&encode_word(name)));
                    out.extend(b" NIL)");
                }
                for x in g.addresses.iter().filter(|x| x.address.is_some()) {
                    addr(&mut out, x.name.as_deref(), x.address.as_deref());
                }
                if g.name.is_some() {
                    out.extend(b"(NIL NIL NIL NIL)");
                }
            }
        }
    }
    out.push(b')');
    out
}

/// The header lines of `header` whose names are (`not` = false) or are not
/// (`not` = true) in `names`, followed by the blank line (RFC 3501 section
/// 6.4.5 HEADER.FIELDS).
pub fn header_fields(header: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if keep {
                out.extend(line);
            }
            continue;
        }
        let name = match line.iter().position(|&b| b == b':') {
            Some(i) => line[..i].trim_ascii(),
            None => {
                keep = false;
                continue;
            }
        };
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(name));
        keep = listed != not;
        if keep {
            out.extend(line);
        }
    }
    out.extend(b"\r\n");
    out
}
