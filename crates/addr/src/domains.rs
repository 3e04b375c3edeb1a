//! Domain lists (`mydestination`, `virtual_mailbox_domains`, `relay_domains`,
//! ...) as postconf(5) defines them: literal names, `/file/name` whose
//! contents are more entries, `type:table` looked up with the domain as key,
//! and `!pattern` to exclude. With `parent_matches` (Postfix's
//! `parent_domain_matches_subdomains`, which lists relay_domains) an entry
//! also matches its subdomains.

use std::path::{Path, PathBuf};

use yubin_table::{Table, TableError, TableSpec};

enum Entry {
    Name {
        name: String,
        negate: bool,
        origin: String,
    },
    Table {
        table: Table,
        negate: bool,
    },
}

/// A compiled domain list.
pub struct DomainList {
    pub param: String,
    entries: Vec<Entry>,
    parent_matches: bool,
}

/// Why a domain matched: for the trace (`mydestination: localhost (main.cf:4)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainMatch {
    pub param: String,
    pub because: String,
}

impl DomainList {
    /// Builds the list from the (expanded, split) parameter value.
    /// `origin` says where the parameter was set, for the trace.
    pub fn new(
        param: &str,
        items: &[String],
        origin: &str,
        base: &Path,
        default_type: &str,
        parent_matches: bool,
    ) -> Result<DomainList, TableError> {
        let mut entries = Vec::new();
        for item in items {
            add_item(&mut entries, item, origin, base, default_type, 0)?;
        }
        Ok(DomainList {
            param: param.to_string(),
            entries,
            parent_matches,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a table of the list is remote (pgsql:).
    pub fn is_remote(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Table { table, .. } if table.is_remote()))
    }

    /// Whether `domain` (lower case) is in the list; the first matching
    /// entry decides, and a negated entry that matches means "no".
    /// A table that cannot answer (pgsql:) is logged and reads as "not
    /// listed": for callers that cannot defer; the address class uses
    /// `try_find`.
    pub fn find(&self, domain: &str) -> Option<DomainMatch> {
        self.try_find(domain).unwrap_or_else(|e| {
            tracing::warn!("{}: {e}", self.param);
            None
        })
    }

    /// `find`, with a remote table's temporary failure as an error
    /// (trivial-rewrite's RESOLVE_FLAG_FAIL).
    pub fn try_find(&self, domain: &str) -> Result<Option<DomainMatch>, TableError> {
        for e in &self.entries {
            match e {
                Entry::Name {
                    name,
                    negate,
                    origin,
                } => {
                    let hit = name == domain
                        || (self.parent_matches
                            && domain.ends_with(name.as_str())
                            && domain[..domain.len() - name.len()].ends_with('.'))
                        || (name.starts_with('.') && domain.ends_with(name.as_str()));
                    if hit {
                        return Ok((!negate).then(|| DomainMatch {
                            param: self.param.clone(),
                            because: format!("{name} ({origin})"),
                        }));
                    }
                }
                Entry::Table { table, negate } => {
                    let mut candidates = vec![domain.to_string()];
                    if self.parent_matches {
                        let mut d = domain;
                        while let Some((_, parent)) = d.split_once('.') {
                            candidates.push(parent.to_string());
                            candidates.push(format!(".{parent}"));
                            d = parent;
                        }
                    }
                    for c in candidates {
                        if let Some(hit) = table.try_lookup(&c)? {
                            let line = hit.line.or_else(|| table.locate_line(&c));
                            let place = match (&hit.file, line) {
                                (Some(f), Some(l)) => format!("{}:{l}", f.display()),
                                _ => hit.table.clone(),
                            };
                            return Ok((!negate).then(|| DomainMatch {
                                param: self.param.clone(),
                                because: format!("{c} in {} ({place})", hit.table),
                            }));
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}

fn add_item(
    entries: &mut Vec<Entry>,
    item: &str,
    origin: &str,
    base: &Path,
    default_type: &str,
    depth: usize,
) -> Result<(), TableError> {
    let (negate, item) = match item.strip_prefix('!') {
        Some(i) => (true, i),
        None => (false, item),
    };
    if item.starts_with('/') {
        if depth > 10 {
            return Err(TableError::Spec(format!("{item}: files nested too deeply")));
        }
        let path = PathBuf::from(item);
        let text = std::fs::read_to_string(&path).map_err(|e| TableError::io(&path, e))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            for word in line.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
                let inner_origin = format!("{}:{}", path.display(), i + 1);
                let word = if negate {
                    format!("!{word}")
                } else {
                    word.to_string()
                };
                add_item(entries, &word, &inner_origin, base, default_type, depth + 1)?;
            }
        }
        return Ok(());
    }
    if item.contains(':') && !item.starts_with('[') {
        let spec = TableSpec::parse(item, default_type)?;
        let table = Table::open(&spec, base)?;
        entries.push(Entry::Table { table, negate });
        return Ok(());
    }
    entries.push(Entry::Name {
        name: item.to_ascii_lowercase(),
        negate,
        origin: origin.to_string(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_tables_and_negation() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("virtual_domains");
        std::fs::write(&f, "mydomain.com\n# comment\nother.example\n").unwrap();
        let items = vec![
            f.display().to_string(),
            "!bad.example".into(),
            "inline:{ tbl.example=ok }".into(),
        ];
        let l = DomainList::new(
            "virtual_mailbox_domains",
            &items,
            "main.cf:3",
            dir.path(),
            "hash",
            false,
        )
        .unwrap();
        let m = l.find("mydomain.com").unwrap();
        assert!(m.because.ends_with("virtual_domains:1)"), "{}", m.because);
        assert!(l.find("tbl.example").is_some());
        assert!(l.find("sub.mydomain.com").is_none());
        let l = DomainList::new(
            "relay_domains",
            &["!bad.example".into(), "example".into()],
            "x",
            dir.path(),
            "hash",
            true,
        )
        .unwrap();
        assert!(l.find("bad.example").is_none());
        assert!(l.find("good.example").is_some());
    }
}
