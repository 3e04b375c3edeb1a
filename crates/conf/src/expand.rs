//! `$name` expansion as postconf(5) defines it (Postfix `mac_expand`):
//!
//! - `$name`, `${name}`, `$(name)`: the value of `name`, itself expanded;
//! - `${name?value}` / `${name?{value}}`: `value` when `$name` is non-empty;
//! - `${name:value}` / `${name:{value}}`: `value` when `$name` is empty;
//! - `${name?{value1}:{value2}}`: one or the other (Postfix 3.0);
//! - `$$` is a literal `$`.
//!
//! A parameter that refers to itself, directly or through others, is an error
//! ("loop"), as is an unterminated `${`.

use std::fmt;

/// Why an expansion failed. The caller adds the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    Unterminated(String),
    Loop(Vec<String>),
    TooDeep,
    BadSyntax(String),
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Unterminated(s) => write!(f, "unterminated \"{s}\""),
            ExpandError::Loop(chain) => write!(f, "parameter loop: {}", chain.join(" -> ")),
            ExpandError::TooDeep => write!(f, "unreasonable macro call nesting"),
            ExpandError::BadSyntax(s) => write!(f, "bad $ syntax: \"{s}\""),
        }
    }
}

/// Nesting limit; Postfix's mac_expand stops at 100 as well.
const MAX_DEPTH: usize = 100;

/// Expands `text`; `lookup(name)` returns the raw (unexpanded) value of a
/// parameter, or `None` when it is not defined (which expands to nothing).
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut stack = Vec::new();
    expand_in(text, lookup, &mut stack)
}

fn expand_in(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    stack: &mut Vec<String>,
) -> Result<String, ExpandError> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    if stack.len() > MAX_DEPTH {
        return Err(ExpandError::TooDeep);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        match rest.as_bytes().first() {
            Some(b'$') => {
                out.push('$');
                rest = &rest[1..];
            }
            Some(&open @ (b'{' | b'(')) => {
                let close = if open == b'{' { '}' } else { ')' };
                let end = matching(rest, open as char, close)
                    .ok_or_else(|| ExpandError::Unterminated(format!("${}", clip(rest))))?;
                let inner = &rest[1..end];
                rest = &rest[end + 1..];
                out.push_str(&expand_braced(inner, lookup, stack)?);
            }
            Some(b) if is_name(*b) => {
                let len = rest.bytes().take_while(|b| is_name(*b)).count();
                let name = &rest[..len];
                rest = &rest[len..];
                out.push_str(&value_of(name, lookup, stack)?);
            }
            _ => return Err(ExpandError::BadSyntax(format!("${}", clip(rest)))),
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand_braced(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    stack: &mut Vec<String>,
) -> Result<String, ExpandError> {
    if inner.starts_with('{') {
        return Err(ExpandError::BadSyntax(format!(
            "${{{}}}: relational expressions are not supported",
            clip(inner)
        )));
    }
    let len = inner.bytes().take_while(|b| is_name(*b)).count();
    if len == 0 {
        return Err(ExpandError::BadSyntax(format!("${{{}}}", clip(inner))));
    }
    let name = &inner[..len];
    let tail = &inner[len..];
    let Some(op) = tail.chars().next() else {
        return value_of(name, lookup, stack);
    };
    if op != '?' && op != ':' {
        return Err(ExpandError::BadSyntax(format!("${{{}}}", clip(inner))));
    }
    let arg = &tail[1..];
    let (when_set, when_empty) = match op {
        '?' => split_alternatives(arg)?,
        _ => (None, Some(unbrace(arg))),
    };
    let value = value_of(name, lookup, stack)?;
    let chosen = if value.is_empty() {
        when_empty
    } else {
        when_set
    };
    match chosen {
        Some(t) => expand_in(t, lookup, stack),
        None => Ok(String::new()),
    }
}

/// `?value`, `?{value}` or `?{value1}:{value2}` after the name.
fn split_alternatives(arg: &str) -> Result<(Option<&str>, Option<&str>), ExpandError> {
    if arg.starts_with('{') {
        let end = matching(arg, '{', '}')
            .ok_or_else(|| ExpandError::Unterminated(format!("{{{}", clip(arg))))?;
        let first = &arg[1..end];
        let after = arg[end + 1..].trim_start();
        if after.is_empty() {
            return Ok((Some(first), None));
        }
        let second = after
            .strip_prefix(':')
            .map(str::trim_start)
            .ok_or_else(|| ExpandError::BadSyntax(clip(after)))?;
        return Ok((Some(first), Some(unbrace(second))));
    }
    Ok((Some(arg), None))
}

fn unbrace(s: &str) -> &str {
    if s.starts_with('{') {
        if let Some(end) = matching(s, '{', '}') {
            if end == s.len() - 1 {
                return &s[1..end];
            }
        }
    }
    s
}

fn value_of(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    stack: &mut Vec<String>,
) -> Result<String, ExpandError> {
    if stack.iter().any(|n| n == name) {
        let mut chain = stack.clone();
        chain.push(name.to_string());
        let start = chain.iter().position(|n| n == name).unwrap_or(0);
        return Err(ExpandError::Loop(chain[start..].to_vec()));
    }
    let Some(raw) = lookup(name) else {
        return Ok(String::new());
    };
    stack.push(name.to_string());
    let r = expand_in(&raw, lookup, stack);
    stack.pop();
    r
}

/// Index of the bracket that closes the one at `s[0]`.
fn matching(s: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

fn is_name(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)], text: &str) -> Result<String, ExpandError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expand(text, &|n| m.get(n).cloned())
    }

    #[test]
    fn plain_and_braced() {
        let v = [
            ("myhostname", "mail.example.com"),
            ("mydomain", "example.com"),
        ];
        assert_eq!(
            run(&v, "$myhostname, localhost.${mydomain}, $(mydomain)x").unwrap(),
            "mail.example.com, localhost.example.com, example.comx"
        );
        assert_eq!(run(&v, "$undefined|$$").unwrap(), "|$");
    }

    #[test]
    fn conditionals() {
        let v = [("set", "yes"), ("empty", "")];
        assert_eq!(run(&v, "${set?on}${empty?on}").unwrap(), "on");
        assert_eq!(run(&v, "${set:off}${empty:off}").unwrap(), "off");
        assert_eq!(
            run(&v, "${set?{a b}:{c}}/${empty?{a}:{c d}}").unwrap(),
            "a b/c d"
        );
        assert_eq!(run(&[("stress", "")], "${stress?{1}:{20}}").unwrap(), "20");
    }

    #[test]
    fn loops_and_syntax_errors() {
        let v = [("a", "$b"), ("b", "x $a")];
        assert_eq!(
            run(&v, "$a").unwrap_err(),
            ExpandError::Loop(vec!["a".into(), "b".into(), "a".into()])
        );
        assert!(matches!(
            run(&[], "${foo"),
            Err(ExpandError::Unterminated(_))
        ));
        assert!(matches!(run(&[], "$ x"), Err(ExpandError::BadSyntax(_))));
        assert!(matches!(
            run(&[], "${{$x} <level {2} ? {a} : {b}}"),
            Err(ExpandError::BadSyntax(_))
        ));
    }
}
