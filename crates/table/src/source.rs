//! The source format of `postmap` input (postmap(1), table(5)):
//! `key whitespace value` per logical line; a line that starts with white
//! space continues the previous one (joined as Postfix's `readlline` joins
//! them, without the newline); `#` lines and blank lines are ignored. The
//! aliases(5) variant (`name: value`) is read by `parse_aliases`.

use std::path::Path;

use crate::error::TableError;

/// One entry of a table source, with its first line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub key: &'a str,
    pub value: String,
    pub line: usize,
}

/// Longest logical line accepted: bounds memory on hostile input.
const MAX_LOGICAL_LINE: usize = 1 << 20;

/// Yields logical lines `(first_line_number, text)` of `text`.
pub fn logical_lines(file: &Path, text: &str) -> Result<Vec<(usize, String)>, TableError> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut in_entry = false;
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            // Postfix's readlline: a comment or blank line ends nothing, but a
            // continuation after it still belongs to the previous entry.
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if !in_entry {
                return Err(TableError::syntax(
                    file,
                    i + 1,
                    "continuation line without a preceding entry",
                ));
            }
            let last = out.last_mut().expect("in_entry implies an entry");
            if last.1.len() + line.len() > MAX_LOGICAL_LINE {
                return Err(TableError::syntax(file, last.0, "logical line too long"));
            }
            last.1.push_str(line);
        } else {
            in_entry = true;
            out.push((i + 1, line.to_string()));
        }
    }
    Ok(out)
}

/// Checks that the whole source is UTF-8, naming the line of the first bad byte.
pub fn as_utf8<'a>(file: &Path, bytes: &'a [u8]) -> Result<&'a str, TableError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        TableError::syntax(file, line, "invalid UTF-8 byte")
    })
}

/// Parses `key value` entries. A key without a value is an error (Postfix
/// only warns and skips the line; yubin refuses to build a table that does
/// not say what the admin meant: see docs/tables.md).
pub fn parse_entries<'a>(
    file: &Path,
    lines: &'a [(usize, String)],
) -> Result<Vec<Entry<'a>>, TableError> {
    let mut out = Vec::with_capacity(lines.len());
    for (line, text) in lines {
        let text = text.trim_end();
        let split = text.find([' ', '\t']);
        let (key, value) = match split {
            Some(i) => (&text[..i], text[i..].trim_start()),
            None => (text, ""),
        };
        if value.is_empty() {
            return Err(TableError::syntax(
                file,
                *line,
                "expected format: key whitespace value",
            ));
        }
        out.push(Entry {
            key,
            value: value.to_string(),
            line: *line,
        });
    }
    Ok(out)
}

/// Parses aliases(5) entries: `name: value, value`. The name may be quoted.
pub fn parse_aliases<'a>(
    file: &Path,
    lines: &'a [(usize, String)],
) -> Result<Vec<Entry<'a>>, TableError> {
    let mut out = Vec::with_capacity(lines.len());
    for (line, text) in lines {
        let colon = if let Some(quoted) = text.strip_prefix('"') {
            quoted
                .find('"')
                .and_then(|q| text[q + 2..].find(':').map(|c| c + q + 2))
        } else {
            text.find(':')
        };
        let Some(colon) = colon else {
            return Err(TableError::syntax(file, *line, "need name:value pair"));
        };
        let key = text[..colon].trim();
        let value = text[colon + 1..].trim();
        if key.is_empty() || value.is_empty() {
            return Err(TableError::syntax(file, *line, "need name:value pair"));
        }
        out.push(Entry {
            key,
            value: value.to_string(),
            line: *line,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_continuations() {
        let f = Path::new("virtual");
        let lines = logical_lines(
            f,
            "root hoge@mydomain.com\n# c\nmulti a,\n  b\n\n@Example.COM\tcatch@x\n",
        )
        .unwrap();
        let e = parse_entries(f, &lines).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[1].key, e[1].value.as_str(), e[1].line),
            ("multi", "a,  b", 3)
        );
        assert_eq!(e[2].key, "@Example.COM");
        let lines = logical_lines(f, "ok v\nnovalue\n").unwrap();
        assert_eq!(
            parse_entries(f, &lines).unwrap_err().to_string(),
            "virtual, line 2: expected format: key whitespace value"
        );
        assert!(logical_lines(f, "  x y\n").is_err());
        assert_eq!(
            as_utf8(f, b"a b\nc \xff\n").unwrap_err().to_string(),
            "virtual, line 2: invalid UTF-8 byte"
        );
    }

    #[test]
    fn aliases() {
        let f = Path::new("aliases");
        let lines = logical_lines(f, "root: hoge, b\npostmaster:root\n\"a b\": c\n").unwrap();
        let e = parse_aliases(f, &lines).unwrap();
        assert_eq!((e[0].key, e[0].value.as_str()), ("root", "hoge, b"));
        assert_eq!(e[2].key, "\"a b\"");
        let lines = logical_lines(f, "x\n").unwrap();
        assert!(parse_aliases(f, &lines).is_err());
    }
}
