//! The RFC 5258 LIST-EXTENDED command syntax (selection options, several
//! patterns, RETURN options, RFC 5819's RETURN (STATUS (...)) and RFC
//! 6154's SPECIAL-USE option), which imap-codec does not parse. A LIST in
//! RFC 3501's plain form is left to imap-codec.

/// What an extended LIST asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListExt {
    /// Selection option SUBSCRIBED.
    pub subscribed: bool,
    /// Selection option RECURSIVEMATCH (CHILDINFO for parents).
    pub recursive: bool,
    /// RFC 6154 selection option SPECIAL-USE.
    pub special_use: bool,
    pub reference: String,
    pub patterns: Vec<String>,
    /// RETURN (SUBSCRIBED).
    pub ret_subscribed: bool,
    /// RFC 5819 RETURN (STATUS (items)), the item names upper-cased.
    pub status: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    /// An atom (may hold list wildcards); true when it was not quoted.
    Word(String, bool),
}

/// Most items a list of options or patterns may have.
const MAX_ITEMS: usize = 100;

fn tokenize(mut s: &[u8]) -> Result<Vec<Tok>, &'static str> {
    let mut out = Vec::new();
    loop {
        while let [b' ', rest @ ..] = s {
            s = rest;
        }
        let Some(&c) = s.first() else {
            return Ok(out);
        };
        if out.len() > 4 * MAX_ITEMS {
            return Err("Too many arguments.");
        }
        match c {
            b'(' => {
                out.push(Tok::Open);
                s = &s[1..];
            }
            b')' => {
                out.push(Tok::Close);
                s = &s[1..];
            }
            b'"' => {
                let mut v = Vec::new();
                let mut i = 1;
                loop {
                    match s.get(i) {
                        None => return Err("Unterminated quoted string."),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            match s.get(i + 1) {
                                Some(&e @ (b'"' | b'\\')) => v.push(e),
                                _ => return Err("Invalid escape in quoted string."),
                            }
                            i += 2;
                        }
                        Some(b'\r' | b'\n' | 0) => return Err("Invalid quoted string."),
                        Some(&b) => {
                            v.push(b);
                            i += 1;
                        }
                    }
                }
                let text = String::from_utf8(v).map_err(|_| "Invalid UTF-8.")?;
                out.push(Tok::Word(text, false));
                s = &s[i + 1..];
            }
            b'{' => {
                let close = s
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or("Invalid literal.")?;
                let digits = s[1..close].strip_suffix(b"+").unwrap_or(&s[1..close]);
                let n: usize = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .ok_or("Invalid literal.")?;
                let rest = s[close + 1..]
                    .strip_prefix(b"\r\n")
                    .ok_or("Invalid literal.")?;
                if rest.len() < n {
                    return Err("Literal too short.");
                }
                let text = String::from_utf8(rest[..n].to_vec()).map_err(|_| "Invalid UTF-8.")?;
                out.push(Tok::Word(text, false));
                s = &rest[n..];
            }
            _ => {
                let end = s
                    .iter()
                    .position(|&b| matches!(b, b' ' | b'(' | b')' | b'"' | b'{'))
                    .unwrap_or(s.len());
                let w = &s[..end];
                if w.iter().any(|&b| !(0x20..0x7f).contains(&b)) {
                    return Err("Invalid characters.");
                }
                out.push(Tok::Word(String::from_utf8_lossy(w).into_owned(), true));
                s = &s[end..];
            }
        }
    }
}

/// Atoms inside `( ... )` starting at `toks[*i]` (which is `Open`).
fn atom_list(toks: &[Tok], i: &mut usize) -> Result<Vec<String>, &'static str> {
    *i += 1;
    let mut out = Vec::new();
    loop {
        match toks.get(*i) {
            Some(Tok::Close) => {
                *i += 1;
                return Ok(out);
            }
            Some(Tok::Word(w, true)) if out.len() < MAX_ITEMS => out.push(w.to_ascii_uppercase()),
            _ => return Err("Invalid option list."),
        }
        *i += 1;
    }
}

/// `Ok(None)` unless `cmd` is `tag LIST ...` in the extended form.
pub fn parse(cmd: &[u8]) -> Result<Option<ListExt>, &'static str> {
    let cmd = cmd.strip_suffix(b"\r\n").unwrap_or(cmd);
    let Some(sp) = cmd.iter().position(|&b| b == b' ') else {
        return Ok(None);
    };
    let rest = &cmd[sp + 1..];
    if rest.len() < 5 || !rest[..5].eq_ignore_ascii_case(b"LIST ") {
        return Ok(None);
    }
    let toks = tokenize(&rest[5..])?;
    let mut ext = ListExt::default();
    let mut extended = false;
    let mut i = 0;
    if toks.first() == Some(&Tok::Open) {
        extended = true;
        let mut other = false;
        for o in atom_list(&toks, &mut i)? {
            match o.as_str() {
                "SUBSCRIBED" => {
                    ext.subscribed = true;
                    other = true;
                }
                "SPECIAL-USE" => {
                    ext.special_use = true;
                    other = true;
                }
                // No remote mailboxes: nothing to add.
                "REMOTE" => {}
                "RECURSIVEMATCH" => ext.recursive = true,
                _ => return Err("Unknown selection option."),
            }
        }
        // RFC 5258 section 3: RECURSIVEMATCH alone (or with REMOTE only)
        // is an error.
        if ext.recursive && !other {
            return Err("RECURSIVEMATCH needs another selection option.");
        }
    }
    match toks.get(i) {
        Some(Tok::Word(r, _)) => ext.reference = r.clone(),
        _ => return Err("Missing reference."),
    }
    i += 1;
    match toks.get(i) {
        Some(Tok::Word(p, _)) => {
            ext.patterns.push(p.clone());
            i += 1;
        }
        Some(Tok::Open) => {
            extended = true;
            i += 1;
            loop {
                match toks.get(i) {
                    Some(Tok::Close) if !ext.patterns.is_empty() => break,
                    Some(Tok::Word(p, _)) if ext.patterns.len() < MAX_ITEMS => {
                        ext.patterns.push(p.clone())
                    }
                    _ => return Err("Invalid pattern list."),
                }
                i += 1;
            }
            i += 1;
        }
        _ => return Err("Missing mailbox pattern."),
    }
    if let Some(Tok::Word(w, true)) = toks.get(i) {
        if !w.eq_ignore_ascii_case("RETURN") || toks.get(i + 1) != Some(&Tok::Open) {
            return Err("Unexpected arguments.");
        }
        extended = true;
        i += 2;
        loop {
            match toks.get(i) {
                Some(Tok::Close) => {
                    i += 1;
                    break;
                }
                Some(Tok::Word(w, true)) => match w.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => ext.ret_subscribed = true,
                    // Always returned: \HasChildren / \HasNoChildren and
                    // the special-use attributes.
                    "CHILDREN" | "SPECIAL-USE" => {}
                    "STATUS" if toks.get(i + 1) == Some(&Tok::Open) => {
                        i += 1;
                        let items = atom_list(&toks, &mut i)?;
                        for it in &items {
                            if !STATUS_ITEMS.contains(&it.as_str()) {
                                return Err("Unknown STATUS item.");
                            }
                        }
                        ext.status = Some(items);
                        continue;
                    }
                    _ => return Err("Unknown return option."),
                },
                _ => return Err("Invalid return options."),
            }
            i += 1;
        }
    }
    if i != toks.len() {
        return Err("Unexpected arguments.");
    }
    Ok(extended.then_some(ext))
}

/// STATUS items LIST-STATUS can return (RFC 3501, RFC 7162, RFC 9051).
pub const STATUS_ITEMS: [&str; 7] = [
    "MESSAGES",
    "RECENT",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "HIGHESTMODSEQ",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_list_is_left_to_imap_codec() {
        assert_eq!(parse(b"a LIST \"\" *").unwrap(), None);
        assert_eq!(parse(b"a LIST \"\" \"imaptest*\"\r\n").unwrap(), None);
        assert_eq!(parse(b"a LSUB \"\" *").unwrap(), None);
    }

    #[test]
    fn extended_forms() {
        let e = parse(b"a LIST (SUBSCRIBED RecursiveMatch) \"\" (\"x/*\" y) RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))")
            .unwrap()
            .unwrap();
        assert!(e.subscribed && e.recursive && !e.special_use);
        assert_eq!(e.patterns, ["x/*", "y"]);
        assert_eq!(e.status.unwrap(), ["MESSAGES", "UIDNEXT"]);
        let e = parse(b"a list \"\" {3}\r\nabc return (subscribed)")
            .unwrap()
            .unwrap();
        assert_eq!(e.patterns, ["abc"]);
        assert!(e.ret_subscribed);
    }

    #[test]
    fn errors() {
        for bad in [
            &b"a LIST (imaptest) \"\" \"\""[..],
            b"a LIST (recursivematch) \"\" \"\"",
            b"a LIST (recursivematch remote) \"\" \"\"",
            b"a LIST \"\" \"\" return (imaptest)",
            b"a LIST \"\" () RETURN ()",
            b"a LIST (SUBSCRIBED \"\" *",
            b"a LIST \"\" * RETURN (STATUS (BOGUS))",
            b"a LIST \"\" {10}\r\nab",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
