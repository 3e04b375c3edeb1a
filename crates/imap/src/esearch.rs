//! RFC 4731 ESEARCH: the `RETURN (...)` options of SEARCH, which
//! imap-codec does not parse, taken off the command line before it does,
//! and the ESEARCH response.

/// What a SEARCH RETURN asks for. `RETURN ()` means ALL (RFC 4731
/// section 3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Return {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
}

/// If `cmd` is `tag [UID] SEARCH RETURN (opts) rest`, the options and the
/// command without them (`tag [UID] SEARCH rest`). `Ok(None)` for any
/// other command; `Err` for a malformed or unknown option (SAVE belongs
/// to SEARCHRES, which is not advertised).
pub fn split_return(cmd: &[u8]) -> Result<Option<(Return, Vec<u8>)>, &'static str> {
    let mut pos = 0;
    let word = |pos: &mut usize| -> Option<(usize, usize)> {
        let start = *pos;
        let len = cmd[start..].iter().position(|&b| b == b' ')?;
        *pos = start + len + 1;
        Some((start, start + len))
    };
    // tag
    if word(&mut pos).is_none() {
        return Ok(None);
    }
    let Some((a, b)) = word(&mut pos) else {
        return Ok(None);
    };
    let mut name = &cmd[a..b];
    if name.eq_ignore_ascii_case(b"UID") {
        let Some((a, b)) = word(&mut pos) else {
            return Ok(None);
        };
        name = &cmd[a..b];
    }
    if !name.eq_ignore_ascii_case(b"SEARCH") {
        return Ok(None);
    }
    let head_end = pos;
    let rest = &cmd[pos..];
    if rest.len() < 7 || !rest[..7].eq_ignore_ascii_case(b"RETURN ") {
        return Ok(None);
    }
    let rest = &rest[7..];
    let Some(inner) = rest.strip_prefix(b"(") else {
        return Err("RETURN options must be in parentheses.");
    };
    let close = inner
        .iter()
        .position(|&b| b == b')')
        .ok_or("Unterminated RETURN options.")?;
    let mut ret = Return::default();
    for opt in inner[..close]
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
    {
        match opt.to_ascii_uppercase().as_slice() {
            b"MIN" => ret.min = true,
            b"MAX" => ret.max = true,
            b"ALL" => ret.all = true,
            b"COUNT" => ret.count = true,
            _ => return Err("Unknown RETURN option."),
        }
    }
    if ret == Return::default() {
        ret.all = true;
    }
    let after = inner[close + 1..]
        .strip_prefix(b" ")
        .ok_or("Search criteria missing.")?;
    let mut out = cmd[..head_end].to_vec();
    out.extend_from_slice(after);
    Ok(Some((ret, out)))
}

/// The ESEARCH response line for `found` (ascending sequence numbers or
/// UIDs); `modseq` is RFC 7162's MODSEQ result when the search used one.
pub fn response(tag: &str, uid: bool, ret: &Return, found: &[u32], modseq: Option<u64>) -> String {
    let mut out = format!("* ESEARCH (TAG \"{tag}\")");
    if uid {
        out.push_str(" UID");
    }
    if let (true, Some(n)) = (ret.min, found.first()) {
        out.push_str(&format!(" MIN {n}"));
    }
    if let (true, Some(n)) = (ret.max, found.last()) {
        out.push_str(&format!(" MAX {n}"));
    }
    if ret.all && !found.is_empty() {
        out.push_str(&format!(" ALL {}", crate::session::set_text(found)));
    }
    if ret.count {
        out.push_str(&format!(" COUNT {}", found.len()));
    }
    if let Some(m) = modseq {
        out.push_str(&format!(" MODSEQ {m}"));
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_return_options() {
        let (r, rest) = split_return(b"a UID SEARCH RETURN (min COUNT) ALL")
            .unwrap()
            .unwrap();
        assert!(r.min && r.count && !r.all && !r.max);
        assert_eq!(rest, b"a UID SEARCH ALL");
        let (r, rest) = split_return(b"a search return () 1:3").unwrap().unwrap();
        assert!(r.all);
        assert_eq!(rest, b"a search 1:3");
        assert_eq!(split_return(b"a SEARCH ALL").unwrap(), None);
        assert_eq!(split_return(b"a FETCH RETURN (MIN)").unwrap(), None);
        assert!(split_return(b"a SEARCH RETURN (SAVE) ALL").is_err());
        assert!(split_return(b"a SEARCH RETURN (MIN ALL").is_err());
        assert!(split_return(b"a SEARCH RETURN (MIN)").is_err());
    }

    #[test]
    fn response_line() {
        let r = Return {
            min: true,
            all: true,
            count: true,
            ..Return::default()
        };
        assert_eq!(
            response("t", true, &r, &[1, 2, 3, 7], None),
            "* ESEARCH (TAG \"t\") UID MIN 1 ALL 1:3,7 COUNT 4\r\n"
        );
        assert_eq!(
            response("t", false, &r, &[], None),
            "* ESEARCH (TAG \"t\") COUNT 0\r\n"
        );
    }
}
