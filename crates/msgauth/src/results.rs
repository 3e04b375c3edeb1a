//! The message's header section as the checks need it, and the
//! Authentication-Results header field (RFC 8601): writing ours, removing
//! any that claims our authserv-id (section 5).

use std::borrow::Cow;

/// Offset just past the header section: after the empty line, or the
/// whole input when there is none.
pub fn header_end(m: &[u8]) -> usize {
    let mut at = 0;
    while at < m.len() {
        let line_end = m[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(m.len(), |i| at + i + 1);
        let line = &m[at..line_end];
        if line == b"\n" || line == b"\r\n" {
            return line_end;
        }
        at = line_end;
    }
    m.len()
}

/// The header fields in order: (start, end, name, unfolded value).
fn fields(m: &[u8]) -> Vec<(usize, usize, String, String)> {
    let end = header_end(m);
    let mut out: Vec<(usize, usize, String, String)> = Vec::new();
    let mut at = 0;
    while at < end {
        let line_end = m[at..end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end, |i| at + i + 1);
        let line = &m[at..line_end];
        if line == b"\n" || line == b"\r\n" {
            break;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A continuation line (RFC 5322 section 2.2.3).
            if let Some(last) = out.last_mut() {
                last.1 = line_end;
                last.3.push_str(text);
            }
        } else if let Some((name, value)) = text.split_once(':') {
            out.push((
                at,
                line_end,
                name.trim().to_ascii_lowercase(),
                value.to_string(),
            ));
        } else {
            // Not a header field: the rest is no header section we can read.
            out.push((at, line_end, String::new(), String::new()));
        }
        at = line_end;
    }
    out
}

/// The unfolded values of every field named `name` (lower case).
pub fn header_values(m: &[u8], name: &str) -> Vec<String> {
    fields(m)
        .into_iter()
        .filter(|f| f.2 == name)
        .map(|f| f.3)
        .collect()
}

/// The domains of the addresses in an address-list header value (RFC
/// 5322 section 3.4): comments and display names skipped, quoted local
/// parts kept whole.
pub fn address_domains(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0u32;
    let mut quoted = false;
    let mut angle: Option<String> = None;
    let mut chars = value.chars();
    let flush = |cur: &mut String, angle: &mut Option<String>, out: &mut Vec<String>| {
        let addr = angle.take().unwrap_or_else(|| cur.clone());
        if let Some((_, d)) = addr.trim().rsplit_once('@') {
            let d = d.trim().trim_end_matches('.');
            if !d.is_empty() {
                out.push(d.to_string());
            }
        }
        cur.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || depth > 0 => {
                chars.next();
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                cur.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '<' if !quoted => angle = Some(String::new()),
            '>' if !quoted => {
                if let Some(a) = angle.take() {
                    cur = a;
                }
            }
            ',' | ';' if !quoted && angle.is_none() => flush(&mut cur, &mut angle, &mut out),
            ':' if !quoted && angle.is_none() => cur.clear(), // group name
            _ => match angle.as_mut() {
                Some(a) => a.push(c),
                None => cur.push(c),
            },
        }
    }
    flush(&mut cur, &mut angle, &mut out);
    out
}

/// The authserv-id of an Authentication-Results value (RFC 8601 section
/// 2.2: `[CFWS] authserv-id [ CFWS authres-version ] ...`).
pub fn authserv_id(value: &str) -> String {
    let mut v = value.trim_start();
    // Leading comments.
    while v.starts_with('(') {
        match v.find(')') {
            Some(i) => v = v[i + 1..].trim_start(),
            None => return String::new(),
        }
    }
    let end = v
        .find(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .unwrap_or(v.len());
    let id = &v[..end];
    id.trim_matches('"').to_ascii_lowercase()
}

/// Removes every Authentication-Results field whose authserv-id is ours
/// (RFC 8601 section 5: a forged result must not reach our users). Also
/// Postfix's own cleanup does not; OpenDMARC and OpenDKIM do this.
pub fn strip_ours<'a>(m: &'a [u8], authserv_id_ours: &str) -> (Cow<'a, [u8]>, usize) {
    let ours = authserv_id_ours.to_ascii_lowercase();
    let drop: Vec<(usize, usize)> = fields(m)
        .into_iter()
        .filter(|f| f.2 == "authentication-results" && authserv_id(&f.3) == ours)
        .map(|f| (f.0, f.1))
        .collect();
    if drop.is_empty() {
        return (Cow::Borrowed(m), 0);
    }
    let mut out = Vec::with_capacity(m.len());
    let mut at = 0;
    for (s, e) in &drop {
        out.extend_from_slice(&m[at..*s]);
        at = *e;
    }
    out.extend_from_slice(&m[at..]);
    (Cow::Owned(out), drop.len())
}

/// A property value (RFC 8601 section 2.2 `pvalue`): as is when it is a
/// plain `[local-part "@"] domain`, else a quoted-string.
pub fn pvalue(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.@".contains(&b));
    if plain {
        v.to_string()
    } else {
        quoted(v)
    }
}

/// A quoted-string of printable ASCII (others become '?').
pub fn quoted(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            ' '..='~' => s.push(c),
            _ => s.push('?'),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_our_id() {
        let m = b"Authentication-Results: mx.test;\r\n\tspf=pass smtp.mailfrom=a@b\r\nAuthentication-Results: other.test; dkim=pass\r\nauthentication-results: (c) MX.TEST 1; none\r\nFrom: a@b\r\n\r\nAuthentication-Results: mx.test; body\r\n";
        let (out, n) = strip_ours(m, "mx.test");
        assert_eq!(n, 2);
        assert_eq!(
            &out[..],
            &b"Authentication-Results: other.test; dkim=pass\r\nFrom: a@b\r\n\r\nAuthentication-Results: mx.test; body\r\n"[..]
        );
        assert_eq!(strip_ours(m, "mx").1, 0);
    }

    #[test]
    fn from_domains() {
        assert_eq!(
            address_domains(" \"Doe, J\" <j@Example.test> (x@y.z), k@other.test"),
            vec!["Example.test", "other.test"]
        );
        assert_eq!(address_domains("undisclosed:;"), Vec::<String>::new());
        assert_eq!(address_domains("\"a@b\"@c.test"), vec!["c.test"]);
    }

    #[test]
    fn pvalues() {
        assert_eq!(pvalue("a@b.test"), "a@b.test");
        assert_eq!(pvalue("a b@c"), "\"a b@c\"");
    }
}
