//! Typed views of parameter values: lists, booleans, times and sizes, with the
//! syntax postconf(5) gives them.

/// Splits a list value on white space and commas, keeping `{ ... }` groups
/// together, as Postfix's `mystrtokq` does: `inline:{ a=b, c=d }` stays one
/// element; a whole element in braces, `{ text with spaces }`, loses them.
pub fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' if depth > 0 => {
                depth -= 1;
                cur.push(c);
            }
            c if depth == 0 && (c == ',' || c.is_whitespace()) => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
        .map(
            |s| match s.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(inner) => inner.trim().to_string(),
                None => s,
            },
        )
        .filter(|s| !s.is_empty())
        .collect()
}

/// `yes`/`no` (postconf(5) boolean), case-insensitive.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// A time value with an optional unit letter: s, m, h, d, w (postconf(5)
/// "time units"); `default_unit` applies to a bare number.
pub fn parse_time(v: &str, default_unit: char) -> Option<u64> {
    let v = v.trim();
    let (num, unit) = match v.chars().last()? {
        c if c.is_ascii_alphabetic() => (&v[..v.len() - 1], c.to_ascii_lowercase()),
        _ => (v, default_unit),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        'w' => 604800,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A non-negative integer (sizes and limits).
pub fn parse_u64(v: &str) -> Option<u64> {
    v.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(split_list("a, b\tc,,d"), ["a", "b", "c", "d"]);
        assert_eq!(
            split_list("inline:{ a=b, {c = d e} } x"),
            ["inline:{ a=b, {c = d e} }", "x"]
        );
        assert_eq!(split_list("{ a b }, c"), ["a b", "c"]);
        assert!(split_list("  ").is_empty());
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_time("300s", 's'), Some(300));
        assert_eq!(parse_time("5d", 's'), Some(432000));
        assert_eq!(parse_time("10", 'm'), Some(600));
        assert_eq!(parse_time("10x", 's'), None);
        assert_eq!(parse_u64("10240000"), Some(10240000));
    }
}
