//! Splitting a command line into verb and argument, and the MAIL/RCPT
//! argument syntax as Postfix's smtpd reads it: `FROM:<addr> params`, with a
//! space after the colon tolerated, and a bare address without `<>` accepted
//! (strict_rfc821_envelopes = no).

/// The verbs smtpd knows, in Postfix's command-table order (which is also
/// the order of the counters in the `disconnect from` log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    Helo,
    Ehlo,
    /// LMTP's greeting (RFC 2033 section 4.1), in LMTP mode only.
    Lhlo,
    Auth,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Starttls,
    Rset,
    Noop,
    Vrfy,
    Etrn,
    Quit,
    Unknown,
}

impl Verb {
    pub fn parse(word: &str) -> Verb {
        match word.to_ascii_uppercase().as_str() {
            "HELO" => Verb::Helo,
            "EHLO" => Verb::Ehlo,
            "LHLO" => Verb::Lhlo,
            "AUTH" => Verb::Auth,
            "MAIL" => Verb::Mail,
            "RCPT" => Verb::Rcpt,
            "DATA" => Verb::Data,
            "BDAT" => Verb::Bdat,
            "STARTTLS" => Verb::Starttls,
            "RSET" => Verb::Rset,
            "NOOP" => Verb::Noop,
            "VRFY" => Verb::Vrfy,
            "ETRN" => Verb::Etrn,
            "QUIT" => Verb::Quit,
            _ => Verb::Unknown,
        }
    }

    /// The lower-case name used in log lines (`ehlo=1`, `after RCPT`).
    pub fn name(self) -> &'static str {
        match self {
            Verb::Helo => "helo",
            Verb::Ehlo => "ehlo",
            Verb::Lhlo => "lhlo",
            Verb::Auth => "auth",
            Verb::Mail => "mail",
            Verb::Rcpt => "rcpt",
            Verb::Data => "data",
            Verb::Bdat => "bdat",
            Verb::Starttls => "starttls",
            Verb::Rset => "rset",
            Verb::Noop => "noop",
            Verb::Vrfy => "vrfy",
            Verb::Etrn => "etrn",
            Verb::Quit => "quit",
            Verb::Unknown => "unknown",
        }
    }
}

/// Splits `MAIL FROM:<a@b> SIZE=10` after the verb into the path text
/// (without `<>`) and the parameters. `prefix` is `FROM:` or `TO:`.
/// Returns `None` when the `FROM:`/`TO:` keyword or the address is
/// missing (Postfix: `501 5.5.4 Syntax: MAIL FROM:<address>`).
pub fn split_path<'a>(arg: &'a str, prefix: &str) -> Option<(PathText<'a>, Vec<&'a str>)> {
    let arg = arg.trim_start();
    // `get` rather than indexing: the argument may hold UTF-8, and a slice
    // that ends inside a character would panic (found by cargo fuzz).
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    if rest.is_empty() {
        return None;
    }
    if let Some(inner) = rest.strip_prefix('<') {
        // Find the closing '>' outside a quoted string.
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '"' => quoted = !quoted,
                '>' if !quoted => {
                    let after = &inner[i + 1..];
                    // `<a@b.c>junk` is one malformed address to Postfix.
                    if !after.is_empty() && !after.starts_with(char::is_whitespace) {
                        return Some((PathText::Malformed, Vec::new()));
                    }
                    let params = after.split_whitespace().collect();
                    return Some((PathText::Bracketed(&inner[..i]), params));
                }
                _ => {}
            }
        }
        return Some((PathText::Malformed, Vec::new()));
    }
    let mut words = rest.split_whitespace();
    let addr = words.next().unwrap_or("");
    Some((PathText::Bare(addr), words.collect()))
}

/// The address part of MAIL/RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathText<'a> {
    Bracketed(&'a str),
    Bare(&'a str),
    /// No closing `>`, or text right after it.
    Malformed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            split_path("FROM:<a@b> SIZE=1", "FROM:"),
            Some((PathText::Bracketed("a@b"), vec!["SIZE=1"]))
        );
        assert_eq!(
            split_path("from: <a@b>", "FROM:"),
            Some((PathText::Bracketed("a@b"), vec![]))
        );
        assert_eq!(
            split_path("TO:foo@bar baz", "TO:"),
            Some((PathText::Bare("foo@bar"), vec!["baz"]))
        );
        assert_eq!(
            split_path("TO:<\"a>b\"@c>", "TO:"),
            Some((PathText::Bracketed("\"a>b\"@c"), vec![]))
        );
        assert_eq!(
            split_path("TO:<foo", "TO:"),
            Some((PathText::Malformed, vec![]))
        );
        assert_eq!(
            split_path("TO:<a@b>junk", "TO:"),
            Some((PathText::Malformed, vec![]))
        );
        assert_eq!(split_path("FROM:", "FROM:"), None);
        assert_eq!(split_path("FROM: ", "FROM:"), None);
        assert_eq!(split_path("<a@b>", "TO:"), None);
        assert_eq!(Verb::parse("ehlo"), Verb::Ehlo);
        // Multi-byte text where the keyword should be: no panic.
        assert_eq!(split_path("FRÖM:<a@b>", "FROM:"), None);
        assert_eq!(split_path("ééé", "TO:"), None);
    }
}
