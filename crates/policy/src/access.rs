//! access(5) table values as a type: each right-hand side is parsed into an
//! [`AccessAction`] (OK, REJECT text, 4NN text, PREPEND header, a list of
//! restrictions, ...), and the reply helpers Postfix's smtpd_check.c applies
//! to them (the optional RFC 3463 code at the start of a text, and
//! smtpd_dsn_fix's adjustment of address codes to the thing rejected).

use std::fmt;

/// What an access table's value tells smtpd to do (access(5) "ACCEPT
/// ACTIONS", "REJECT ACTIONS", "OTHER ACTIONS").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessAction {
    /// `OK`, `RELAY`, or an all-numerical value (pop-before-smtp stamps).
    Ok,
    /// `DUNNO`: as if the key were not found, and no shorter key is tried.
    Dunno,
    /// `REJECT [text]`: `$access_map_reject_code`.
    Reject(String),
    /// `DEFER [text]`: `$access_map_defer_code`.
    Defer(String),
    /// `DEFER_IF_REJECT [text]`.
    DeferIfReject(String),
    /// `DEFER_IF_PERMIT [text]`.
    DeferIfPermit(String),
    /// `4NN text` / `5NN text`; 421 and 521 also end the session.
    Code { code: u16, text: String },
    /// `PREPEND header: value`.
    Prepend(String),
    /// `HOLD [text]`: the message goes to the hold queue.
    Hold(String),
    /// `DISCARD [text]`: accepted, then dropped.
    Discard(String),
    /// `WARN [text]`: a log line only.
    Warn(String),
    /// `INFO [text]`: a log line only (Postfix 3.3).
    Info(String),
    /// A restriction list, e.g. `permit_mynetworks, reject`.
    Restrictions(Vec<String>),
}

/// A value no action or restriction name matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError(pub String);

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `WORD rest` as check_table_result does: the command is the text
/// up to the first blank, the rest has its leading blanks removed.
fn split_command(value: &str) -> (&str, &str) {
    let value = value.trim_start_matches([' ', '\t']);
    match value.find([' ', '\t']) {
        Some(i) => (&value[..i], value[i..].trim_start_matches([' ', '\t'])),
        None => (value, ""),
    }
}

/// Postfix's is_header(): a printable name without blanks inside, optional
/// blanks, then a colon.
pub fn is_header(line: &str) -> bool {
    let mut seen_name = false;
    let mut after_blank = false;
    for b in line.bytes() {
        match b {
            b':' => return seen_name,
            b' ' | b'\t' if seen_name => after_blank = true,
            33..=126 if !after_blank => seen_name = true,
            _ => return false,
        }
    }
    false
}

impl AccessAction {
    /// Parses one table value. `is_restriction` tells whether a word names a
    /// restriction (the value may be a list of them); values naming a
    /// lookup table are refused as Postfix refuses them ("do not specify
    /// lookup tables inside SMTPD access maps").
    pub fn parse(
        value: &str,
        is_restriction: &dyn Fn(&str) -> bool,
    ) -> Result<AccessAction, ActionError> {
        let (cmd, text) = split_command(value);
        let text = text.to_string();
        let upper = cmd.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "OK" | "RELAY" => AccessAction::Ok,
            "DUNNO" => AccessAction::Dunno,
            "REJECT" => AccessAction::Reject(text),
            "DEFER" => AccessAction::Defer(text),
            "DEFER_IF_REJECT" => AccessAction::DeferIfReject(text),
            "DEFER_IF_PERMIT" => AccessAction::DeferIfPermit(text),
            "HOLD" => AccessAction::Hold(text),
            "DISCARD" => AccessAction::Discard(text),
            "WARN" => AccessAction::Warn(text),
            "INFO" => AccessAction::Info(text),
            "PREPEND" => {
                if text.is_empty() || !is_header(&text) {
                    return Err(ActionError(format!(
                        "PREPEND requires header: text, not \"{value}\""
                    )));
                }
                AccessAction::Prepend(text)
            }
            _ if !cmd.is_empty()
                && cmd.bytes().all(|b| b.is_ascii_digit())
                && value.trim() == cmd =>
            {
                AccessAction::Ok
            }
            _ if cmd.len() == 3
                && matches!(cmd.as_bytes()[0], b'4' | b'5')
                && cmd.bytes().all(|b| b.is_ascii_digit())
                && !text.is_empty() =>
            {
                AccessAction::Code {
                    code: cmd.parse().unwrap_or(450),
                    text,
                }
            }
            _ => {
                if value.contains(':') {
                    return Err(ActionError(format!(
                        "entry with lookup table \"{value}\": do not specify lookup tables inside access maps; define a restriction class and use its name"
                    )));
                }
                let names: Vec<String> = value
                    .split([',', ' ', '\t', '\r', '\n'])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if names.is_empty() {
                    return Err(ActionError("empty value".into()));
                }
                if let Some(bad) = names.iter().find(|n| !is_restriction(n)) {
                    return Err(ActionError(format!(
                        "unknown action or restriction \"{bad}\" in \"{value}\""
                    )));
                }
                AccessAction::Restrictions(names)
            }
        })
    }
}

/// RFC 3463 status `class.subject.detail` (dsn_valid): class 2, 4 or 5,
/// subject up to 3 digits, detail up to 3 digits.
fn dsn_valid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && (1..=3).contains(&parts[1].len())
        && (1..=3).contains(&parts[2].len())
        && parts[1..]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// dsn_split: a text may start with its own status code (`5.7.1 text`);
/// otherwise `default` applies. Returns (status, text without it).
pub fn dsn_split<'a>(default: &str, text: &'a str) -> (String, &'a str) {
    let t = text.trim_start_matches([' ', '\t']);
    let end = t.find([' ', '\t']).unwrap_or(t.len());
    let word = &t[..end];
    if dsn_valid(word) {
        // The code keeps the class the caller chose (the reply code wins).
        let mut s = word.to_string();
        s.replace_range(0..1, &default[..1]);
        (s, t[end..].trim_start_matches([' ', '\t']))
    } else {
        (default.to_string(), text)
    }
}

/// What is being refused, as Postfix names it in replies ("Sender address
/// rejected").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    Client,
    Helo,
    Sender,
    Recipient,
}

impl ReplyClass {
    pub fn name(self) -> &'static str {
        match self {
            ReplyClass::Client => "Client host",
            ReplyClass::Helo => "Helo command",
            ReplyClass::Sender => "Sender address",
            ReplyClass::Recipient => "Recipient address",
        }
    }
}

/// smtpd_dsn_fix: an address status (`X.1.Y`) is made to fit what is
/// rejected: sender codes for a sender, recipient codes for a recipient,
/// `X.0.0` for anything else.
pub fn dsn_fix(status: &str, class: ReplyClass) -> String {
    let b = status.as_bytes();
    if b.len() < 5 || !b[0].is_ascii_digit() || &status[1..4] != ".1." {
        return status.to_string();
    }
    let detail = &status[4..];
    // (detail, sender replacement, recipient replacement); Postfix 3.7
    // turns a recipient's "bad mailbox" X.1.1 into the sender's X.1.7
    // (checked against it: tests/dialogs/access/sender).
    const MAP: [(&str, &str, &str); 8] = [
        ("1", "1.7", "1.1"),
        ("2", "1.8", "1.2"),
        ("3", "1.7", "1.3"),
        ("4", "1.0", "1.4"),
        ("5", "1.0", "1.5"),
        ("6", "1.0", "1.6"),
        ("7", "1.7", "1.3"),
        ("8", "1.8", "1.2"),
    ];
    let found = MAP.iter().find(|(d, _, _)| *d == detail);
    let tail = match class {
        ReplyClass::Sender => found.map(|m| m.1).unwrap_or("1.0"),
        ReplyClass::Recipient => found.map(|m| m.2).unwrap_or("1.0"),
        _ => "0.0",
    };
    format!("{}.{tail}", &status[..1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<AccessAction, ActionError> {
        AccessAction::parse(v, &|n| n == "permit_mynetworks" || n == "reject")
    }

    #[test]
    fn actions() {
        assert_eq!(parse("OK").unwrap(), AccessAction::Ok);
        assert_eq!(parse("relay").unwrap(), AccessAction::Ok);
        assert_eq!(parse("12345").unwrap(), AccessAction::Ok);
        assert_eq!(parse("DUNNO whatever").unwrap(), AccessAction::Dunno);
        assert_eq!(
            parse("REJECT").unwrap(),
            AccessAction::Reject(String::new())
        );
        assert_eq!(
            parse("REJECT  go away").unwrap(),
            AccessAction::Reject("go away".into())
        );
        assert_eq!(
            parse("550 5.1.1 no such user").unwrap(),
            AccessAction::Code {
                code: 550,
                text: "5.1.1 no such user".into()
            }
        );
        // All-numerical is OK, even "550" (check_table_result tests alldig first).
        assert_eq!(parse("550").unwrap(), AccessAction::Ok);
        assert!(parse("PREPEND X-Seen: yes").is_ok());
        assert!(parse("PREPEND not a header").is_err());
        assert_eq!(
            parse("permit_mynetworks, reject").unwrap(),
            AccessAction::Restrictions(vec!["permit_mynetworks".into(), "reject".into()])
        );
        assert!(parse("REJEKT").is_err());
        assert!(parse("hash:/etc/x").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn dsn() {
        assert_eq!(
            dsn_split("5.7.1", "5.1.1 no such"),
            ("5.1.1".into(), "no such")
        );
        assert_eq!(
            dsn_split("4.7.1", "5.1.1 no such"),
            ("4.1.1".into(), "no such")
        );
        assert_eq!(
            dsn_split("5.7.1", "text only"),
            ("5.7.1".into(), "text only")
        );
        assert_eq!(dsn_fix("5.1.1", ReplyClass::Sender), "5.1.7");
        assert_eq!(dsn_fix("5.1.9", ReplyClass::Sender), "5.1.0");
        assert_eq!(dsn_fix("5.1.7", ReplyClass::Recipient), "5.1.3");
        assert_eq!(dsn_fix("4.1.2", ReplyClass::Client), "4.0.0");
        assert_eq!(dsn_fix("5.7.1", ReplyClass::Sender), "5.7.1");
    }
}
