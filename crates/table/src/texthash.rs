//! `texthash:` (postmap(1) "texthash"): the source file read straight into
//! memory, no postmap step; reloaded when the file changes.

use std::collections::HashMap;
use std::path::Path;

use crate::error::TableError;
use crate::reload::Reloading;
use crate::source;

/// Key (folded) -> (value, line).
type Entries = HashMap<String, (String, usize)>;

pub struct TexthashTable {
    entries: Reloading<Entries>,
}

fn load(path: &Path) -> Result<Entries, TableError> {
    let bytes = std::fs::read(path).map_err(|e| TableError::io(path, e))?;
    let text = source::as_utf8(path, &bytes)?;
    let lines = source::logical_lines(path, text)?;
    let mut map = HashMap::with_capacity(lines.len());
    for e in source::parse_entries(path, &lines)? {
        // First entry wins, as in an indexed table built from the same source.
        map.entry(e.key.to_lowercase()).or_insert((e.value, e.line));
    }
    Ok(map)
}

impl TexthashTable {
    pub fn open(path: &Path) -> Result<Self, TableError> {
        Ok(TexthashTable {
            entries: Reloading::open(path, load)?,
        })
    }

    /// Value and source line for a folded key.
    pub fn get(&self, key: &str) -> Option<(String, usize)> {
        self.entries.get().0.get(key).cloned()
    }

    pub fn dump(&self) -> Vec<(String, String)> {
        let cur = self.entries.get();
        let mut v: Vec<_> = cur
            .0
            .iter()
            .map(|(k, (v, l))| (*l, k.clone(), v.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, k, v)| (k, v)).collect()
    }
}
