//! `inline:{ key=value, { key = text with spaces } }` and `static:value`
//! (postconf(5) "inline", table(5) "static").

use std::collections::HashMap;

use crate::error::TableError;

pub struct InlineTable {
    entries: HashMap<String, String>,
}

impl InlineTable {
    /// Parses the text after `inline:`, which must be enclosed in `{ }`.
    pub fn parse(spec: &str) -> Result<Self, TableError> {
        let body = spec
            .trim()
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| {
                TableError::Spec(format!(
                    "inline:{spec}: expected inline:{{ key=value, ... }}"
                ))
            })?;
        let mut entries = HashMap::new();
        for item in yubin_split(body) {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                TableError::Spec(format!("inline:{spec}: \"{item}\": expected key=value"))
            })?;
            entries
                .entry(k.trim().to_lowercase())
                .or_insert_with(|| v.trim().to_string());
        }
        Ok(InlineTable { entries })
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }

    pub fn dump(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }
}

/// `static:{ text }` or `static:text`: the value every lookup returns.
pub fn static_value(spec: &str) -> String {
    let t = spec.trim();
    t.strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Splits on commas and white space at brace depth 0, removing one level of
/// braces around an item.
fn yubin_split(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in body.chars() {
        match c {
            '{' => {
                if depth > 0 {
                    cur.push(c);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth > 0 {
                    cur.push(c);
                }
            }
            c if depth == 0 && (c == ',' || c.is_whitespace()) => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_static() {
        let t = InlineTable::parse("{ root=hoge@x, {Post Master = a b} }").unwrap();
        assert_eq!(t.get("root").as_deref(), Some("hoge@x"));
        assert_eq!(t.get("post master").as_deref(), Some("a b"));
        assert!(InlineTable::parse("root=x").is_err());
        assert!(InlineTable::parse("{ novalue }").is_err());
        assert_eq!(static_value("{ a b }"), "a b");
        assert_eq!(static_value("vmail"), "vmail");
    }
}
