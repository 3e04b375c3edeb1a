//! `$name` expansion as postconf(5) defines it (Postfix `mac_expand`):
//!
//! - `$name`, `${name}`, `$(name)`: the value of `name`, itself expanded;
//! - `${name?value}` / `${name?{value}}`: `value` when `$name` is non-empty;
//! - `${name:value}` / `${name:{value}}`: `value` when `$name` is empty;
//! - `${name?{value1}:{value2}}`: one or the other (Postfix 3.0);
//! - `${{text1} OP {text2} ? {value1} : {value2}}`: relational expressions
//!   (Postfix 3.0), OP one of `==` `!=` (text), `<` `<=` `>` `>=`
//!   (decimal numbers) and `<level` `<=level` `>level` `>=level`
//!   (compatibility levels such as `3.6`, compared part by part), the form
//!   Postfix's own compatibility-dependent defaults are written in; either
//!   `? {value1}` or `: {value2}` may be left out;
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
        return relational(inner, lookup, stack);
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

/// The relational operators of postconf(5) "Relational expressions".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `{text1} OP {text2} ? {value1} : {value2}` (the braces of `${...}`
/// already removed). Both texts are expanded before they are compared.
fn relational(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    stack: &mut Vec<String>,
) -> Result<String, ExpandError> {
    let bad = || ExpandError::BadSyntax(format!("${{{}}}", clip(inner)));
    let (left, rest) = braced(inner).ok_or_else(bad)?;
    let rest = rest.trim_start();
    let op_len = rest.bytes().take_while(|b| b"=!<>".contains(b)).count();
    let (op, level, rest) = {
        let op = match &rest[..op_len] {
            "==" => RelOp::Eq,
            "!=" => RelOp::Ne,
            "<" => RelOp::Lt,
            "<=" => RelOp::Le,
            ">" => RelOp::Gt,
            ">=" => RelOp::Ge,
            _ => return Err(bad()),
        };
        let after = &rest[op_len..];
        match after.strip_prefix("level") {
            Some(r) if !matches!(op, RelOp::Eq | RelOp::Ne) => (op, true, r),
            _ => (op, false, after),
        }
    };
    let (right, rest) = braced(rest.trim_start()).ok_or_else(bad)?;
    let mut rest = rest.trim_start();
    let (mut when_true, mut when_false) = (None, None);
    if let Some(r) = rest.strip_prefix('?') {
        let (v, r) = braced(r.trim_start()).ok_or_else(bad)?;
        when_true = Some(v);
        rest = r.trim_start();
    }
    if let Some(r) = rest.strip_prefix(':') {
        let (v, r) = braced(r.trim_start()).ok_or_else(bad)?;
        when_false = Some(v);
        rest = r.trim_start();
    }
    if !rest.is_empty() || (when_true.is_none() && when_false.is_none()) {
        return Err(bad());
    }
    let l = expand_in(left, lookup, stack)?;
    let r = expand_in(right, lookup, stack)?;
    let ord = match op {
        RelOp::Eq => return pick(l == r, when_true, when_false, lookup, stack),
        RelOp::Ne => return pick(l != r, when_true, when_false, lookup, stack),
        _ if level => {
            let (a, b) = (parse_level(&l), parse_level(&r));
            match (a, b) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => {
                    return Err(ExpandError::BadSyntax(format!(
                        "${{{}}}: \"{l}\" or \"{r}\" is not a compatibility level",
                        clip(inner)
                    )))
                }
            }
        }
        _ => match (l.trim().parse::<i64>(), r.trim().parse::<i64>()) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => {
                return Err(ExpandError::BadSyntax(format!(
                    "${{{}}}: \"{l}\" or \"{r}\" is not a number",
                    clip(inner)
                )))
            }
        },
    };
    use std::cmp::Ordering::*;
    let holds = match op {
        RelOp::Lt => ord == Less,
        RelOp::Le => ord != Greater,
        RelOp::Gt => ord == Greater,
        RelOp::Ge => ord != Less,
        RelOp::Eq | RelOp::Ne => unreachable!("handled above"),
    };
    pick(holds, when_true, when_false, lookup, stack)
}

fn pick(
    holds: bool,
    when_true: Option<&str>,
    when_false: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
    stack: &mut Vec<String>,
) -> Result<String, ExpandError> {
    match if holds { when_true } else { when_false } {
        Some(t) => expand_in(t, lookup, stack),
        None => Ok(String::new()),
    }
}

/// `{text}` at the start of `s`: the text and what follows the brace.
fn braced(s: &str) -> Option<(&str, &str)> {
    if !s.starts_with('{') {
        return None;
    }
    let end = matching(s, '{', '}')?;
    Some((&s[1..end], &s[end + 1..]))
}

/// A compatibility level (`0`, `1`, `2`, `3.6`, `3.6.1`) as comparable
/// parts; `3.10` is above `3.9`, as Postfix's compat_level(3) compares.
pub fn parse_level(s: &str) -> Option<Vec<u32>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut parts: Vec<u32> = s
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    if parts.len() > 3 {
        return None;
    }
    parts.resize(3, 0);
    Some(parts)
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

    /// postconf(5) "Relational expressions" and the form of Postfix 3.7's
    /// compatibility-dependent defaults (`postconf -d` on this machine).
    #[test]
    fn relational_expressions() {
        let v = [("compatibility_level", "0"), ("mydestination", "localhost")];
        let adm = "${{$compatibility_level} <level {1} ? {yes} : {no}}";
        assert_eq!(run(&v, adm).unwrap(), "yes");
        assert_eq!(run(&[("compatibility_level", "3.6")], adm).unwrap(), "no");
        let rd = "${{$compatibility_level} <level {2} ? {$mydestination} : {}}";
        assert_eq!(run(&v, rd).unwrap(), "localhost");
        assert_eq!(run(&[("compatibility_level", "2")], rd).unwrap(), "");
        // 3.10 is above 3.9 (levels compare part by part, not as decimals).
        assert_eq!(
            run(&[], "${{3.10} >=level {3.9} ? {t} : {f}}").unwrap(),
            "t"
        );
        assert_eq!(run(&[], "${{3.6} <=level {3.6}?{t}}").unwrap(), "t");
        assert_eq!(run(&[], "${{a} == {a} ? {same}}").unwrap(), "same");
        assert_eq!(run(&[], "${{a} != {a} ? {x} : {y}}").unwrap(), "y");
        assert_eq!(run(&[], "${{10} > {9} ? {x} : {y}}").unwrap(), "x");
        assert_eq!(run(&[], "${{a} == {b} : {differ}}").unwrap(), "differ");
        for bad in [
            "${{a} = {b} ? {x}}",
            "${{a} == {b}}",
            "${{a} < {b} ? {x}}",
            "${{x} <level {1} ? {y}}",
            "${{a} == {b} ? {x} junk}",
            "${{a} == b ? {x}}",
        ] {
            assert!(
                matches!(run(&[], bad), Err(ExpandError::BadSyntax(_))),
                "{bad}"
            );
        }
    }
}
