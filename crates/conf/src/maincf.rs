//! The `main.cf` file format, postconf(5) "SYNTAX":
//!
//! - `name = value` lines; white space around `=` is optional;
//! - a line that starts with white space continues the previous logical line;
//! - a line whose first non-space character is `#` is a comment, and so is an
//!   empty or all-white-space line; `#` elsewhere is not special;
//! - later settings of the same name override earlier ones.
//!
//! Parsing keeps the line number of every setting so that errors and
//! `yubin trace` can point at the line to edit.

use std::path::Path;

use crate::error::ConfError;

/// One `name = value` setting, with the line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Upper bound for one logical line; Postfix has none, but a config file with
/// a megabyte-long parameter is a mistake, and the bound keeps memory in check.
const MAX_LOGICAL_LINE: usize = 1 << 20;

/// Parses main.cf text. `file` is only used in error messages.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<Setting>, ConfError> {
    let mut out: Vec<Setting> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (idx, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let lineno = idx + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| {
            ConfError::syntax(
                file,
                lineno,
                format!("invalid UTF-8 byte at column {}", e.valid_up_to() + 1),
            )
        })?;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some((_, text)) => {
                    if text.len() + line.len() > MAX_LOGICAL_LINE {
                        return Err(ConfError::syntax(file, lineno, "logical line too long"));
                    }
                    text.push(' ');
                    text.push_str(trimmed.trim_end());
                }
                None => {
                    return Err(ConfError::syntax(
                        file,
                        lineno,
                        "continuation line without a preceding parameter setting",
                    ))
                }
            }
            continue;
        }
        if let Some((start, text)) = current.take() {
            out.push(split_setting(file, start, &text)?);
        }
        current = Some((lineno, line.trim_end().to_string()));
    }
    if let Some((start, text)) = current.take() {
        out.push(split_setting(file, start, &text)?);
    }
    Ok(out)
}

fn split_setting(file: &Path, line: usize, text: &str) -> Result<Setting, ConfError> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(ConfError::syntax(
            file,
            line,
            format!("missing '=' after parameter name: \"{}\"", truncate(text)),
        ));
    };
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(is_name_byte) {
        return Err(ConfError::syntax(
            file,
            line,
            format!("bad parameter name: \"{}\"", truncate(name)),
        ));
    }
    Ok(Setting {
        name: name.to_string(),
        value: value.trim().to_string(),
        line,
    })
}

/// Parameter names are letters, digits and `_` (Postfix also allows `-` and `.`
/// in service-specific names like `smtp-in_foo`; so do we).
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Vec<Setting>, ConfError> {
        parse(Path::new("main.cf"), s.as_bytes())
    }

    #[test]
    fn settings_comments_and_continuations() {
        let s = p("# c\nmyhostname = mail.example.com\n\nmydestination = a,\n  b\n\t# not a comment? yes it is\n  c\nx=\n").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].value, "mail.example.com");
        assert_eq!(s[1].value, "a, b c");
        assert_eq!(s[1].line, 4);
        assert_eq!(s[2].name, "x");
        assert_eq!(s[2].value, "");
    }

    #[test]
    fn errors_name_the_line() {
        let e = p("a = 1\nnonsense line\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "main.cf:2: missing '=' after parameter name: \"nonsense line\""
        );
        let e = p("  leading = 1\n").unwrap_err().to_string();
        assert!(e.starts_with("main.cf:1: continuation"), "{e}");
        let e = parse(Path::new("main.cf"), b"a = 1\nb = \xff\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "main.cf:2: invalid UTF-8 byte at column 5");
    }
}
