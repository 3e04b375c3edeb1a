//! `regexp:` and `pcre:` tables (regexp_table(5), pcre_table(5)):
//! `/pattern/flags result`, `!/pattern/ result`, `if /pattern/` ... `endif`,
//! `$1`/`${1}` substitution. Patterns are case-insensitive unless the `i`
//! flag toggles that off, as in Postfix. The Rust `regex` crate runs them in
//! linear time, so a hostile key cannot stall a lookup.

use std::path::Path;

use regex::{Regex, RegexBuilder};

use crate::error::TableError;
use crate::reload::Reloading;
use crate::source;

struct Rule {
    /// `None` for an `endif` line.
    re: Option<Regex>,
    negate: bool,
    /// `None` for `if`, `Some` for a result line.
    result: Option<String>,
    endif_of: bool,
    line: usize,
}

pub struct RegexpTable {
    rules: Reloading<Vec<Rule>>,
}

/// `/pattern/flags` at the start of `text`; returns the rest of the line.
fn parse_pattern(
    path: &Path,
    line: usize,
    text: &str,
) -> Result<(Regex, bool, String), TableError> {
    let (negate, text) = match text.strip_prefix('!') {
        Some(t) => (true, t),
        None => (false, text),
    };
    let mut chars = text.char_indices();
    let Some((_, delim)) = chars.next() else {
        return Err(TableError::syntax(path, line, "missing pattern"));
    };
    if delim.is_alphanumeric() || delim.is_whitespace() {
        return Err(TableError::syntax(
            path,
            line,
            "pattern must start with a delimiter such as /",
        ));
    }
    let body_start = delim.len_utf8();
    let mut end = None;
    let mut escaped = false;
    for (i, c) in text[body_start..].char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            end = Some(body_start + i);
            break;
        }
    }
    let end = end.ok_or_else(|| {
        TableError::syntax(path, line, format!("missing closing {delim} in pattern"))
    })?;
    let pattern = &text[body_start..end];
    let after = &text[end + delim.len_utf8()..];
    let flags_len = after
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let mut icase = true;
    let mut b = RegexBuilder::new(pattern);
    for f in after[..flags_len].chars() {
        match f {
            'i' => icase = !icase,
            'x' => {
                b.ignore_whitespace(true);
            }
            'm' => {
                b.multi_line(true);
            }
            's' => {
                b.dot_matches_new_line(true);
            }
            other => {
                return Err(TableError::syntax(
                    path,
                    line,
                    format!("unknown regexp flag \"{other}\""),
                ))
            }
        }
    }
    b.case_insensitive(icase).size_limit(1 << 20);
    let re = b
        .build()
        .map_err(|e| TableError::syntax(path, line, format!("bad regular expression: {e}")))?;
    Ok((re, negate, after[flags_len..].trim().to_string()))
}

fn load(path: &Path) -> Result<Vec<Rule>, TableError> {
    let bytes = std::fs::read(path).map_err(|e| TableError::io(path, e))?;
    let text = source::as_utf8(path, &bytes)?;
    let mut rules = Vec::new();
    let mut depth = 0usize;
    for (line, text) in source::logical_lines(path, text)? {
        let t = text.trim();
        if t.eq_ignore_ascii_case("endif") {
            if depth == 0 {
                return Err(TableError::syntax(
                    path,
                    line,
                    "ignoring ENDIF without matching IF",
                ));
            }
            depth -= 1;
            rules.push(Rule {
                re: None,
                negate: false,
                result: None,
                endif_of: true,
                line,
            });
            continue;
        }
        if let Some(cond) = t.strip_prefix("if ").or_else(|| t.strip_prefix("IF ")) {
            let (re, negate, rest) = parse_pattern(path, line, cond.trim())?;
            if !rest.is_empty() {
                return Err(TableError::syntax(path, line, "text after IF pattern"));
            }
            depth += 1;
            rules.push(Rule {
                re: Some(re),
                negate,
                result: None,
                endif_of: false,
                line,
            });
            continue;
        }
        let (re, negate, rest) = parse_pattern(path, line, t)?;
        if rest.is_empty() {
            return Err(TableError::syntax(
                path,
                line,
                "no replacement text after pattern",
            ));
        }
        rules.push(Rule {
            re: Some(re),
            negate,
            result: Some(rest),
            endif_of: false,
            line,
        });
    }
    if depth > 0 {
        return Err(TableError::syntax(path, 0, "IF has no matching ENDIF"));
    }
    Ok(rules)
}

/// Replaces `$1`, `${1}` and `$$` in `template` with the captures.
fn substitute(template: &str, caps: Option<&regex::Captures<'_>>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (digits, skip) = if let Some(r) = rest.strip_prefix('{') {
            let n = r.find('}').unwrap_or(r.len());
            (&r[..n], n + 2)
        } else {
            let n = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            (&rest[..n], n)
        };
        match digits.parse::<usize>() {
            Ok(i) => {
                if let Some(m) = caps.and_then(|c| c.get(i)) {
                    out.push_str(m.as_str());
                }
                rest = &rest[skip.min(rest.len())..];
            }
            Err(_) => out.push('$'),
        }
    }
    out.push_str(rest);
    out
}

impl RegexpTable {
    pub fn open(path: &Path) -> Result<Self, TableError> {
        Ok(RegexpTable {
            rules: Reloading::open(path, load)?,
        })
    }

    /// The first matching rule's result and its line.
    pub fn get(&self, key: &str) -> Option<(String, usize)> {
        let cur = self.rules.get();
        let rules = &cur.0;
        let mut i = 0;
        while i < rules.len() {
            let r = &rules[i];
            let Some(re) = r.re.as_ref().filter(|_| !r.endif_of) else {
                i += 1;
                continue;
            };
            let caps = re.captures(key);
            let matched = caps.is_some() != r.negate;
            match (&r.result, matched) {
                (Some(result), true) => {
                    return Some((
                        substitute(result, if r.negate { None } else { caps.as_ref() }),
                        r.line,
                    ));
                }
                (None, false) => {
                    // Skip to the matching endif.
                    let mut depth = 0;
                    i += 1;
                    while i < rules.len() {
                        if rules[i].endif_of {
                            if depth == 0 {
                                break;
                            }
                            depth -= 1;
                        } else if rules[i].result.is_none() {
                            depth += 1;
                        }
                        i += 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_flags_substitution_and_if() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("re");
        std::fs::write(
            &p,
            "/^(.*)-outgoing@(.*)$/ $1@$2\nif /@example\\.com$/\n/^postmaster@/ admin@example.com\nendif\n!/@/ bare\n/^CASE$/i exact-case\n",
        )
        .unwrap();
        let t = RegexpTable::open(&p).unwrap();
        assert_eq!(t.get("Bob-outgoing@x.org"), Some(("Bob@x.org".into(), 1)));
        assert_eq!(
            t.get("postmaster@EXAMPLE.com"),
            Some(("admin@example.com".into(), 3))
        );
        assert_eq!(t.get("postmaster@other.com"), None);
        assert_eq!(t.get("nobody"), Some(("bare".into(), 5)));
        assert_eq!(t.get("CASE@"), None);
        std::fs::write(&p, "/unterminated x\n").unwrap();
        assert!(RegexpTable::open(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("line 1"));
        std::fs::write(&p, "/a/ x\nendif\n").unwrap();
        assert!(RegexpTable::open(&p).is_err());
    }
}
