//! Writing IMAP strings (RFC 3501 section 4.3): quoted when the bytes
//! allow it, a literal otherwise.

/// A quoted string, or a literal for bytes a quoted string cannot carry
/// (CR, LF, NUL, 8-bit) or for long values.
pub fn quoted_or_literal(s: &[u8]) -> Vec<u8> {
    let quotable = s.len() <= 1024 && s.iter().all(|&b| (0x20..0x7f).contains(&b));
    if quotable {
        let mut out = Vec::with_capacity(s.len() + 2);
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        literal(s)
    }
}

pub fn literal(s: &[u8]) -> Vec<u8> {
    let mut out = format!("{{{}}}\r\n", s.len()).into_bytes();
    out.extend(s);
    out
}

/// nstring: NIL or a string.
pub fn nstring(s: Option<&[u8]>) -> Vec<u8> {
    match s {
        Some(s) => quoted_or_literal(s),
        None => b"NIL".to_vec(),
    }
}

/// A mailbox name in a response: an atom when it is one, else a string.
pub fn mailbox_name(name: &str) -> Vec<u8> {
    let atom = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){ %*\"\\]".contains(&b));
    if atom {
        name.as_bytes().to_vec()
    } else {
        quoted_or_literal(name.as_bytes())
    }
}
