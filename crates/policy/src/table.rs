//! One access(5) table: any table type yubin-table opens, with every value
//! checked when the table is opened (a bad value is reported with its file
//! and line, where the table type can list its entries) and parsed into an
//! [`AccessAction`] on each lookup (tables reload when their file changes).

use std::path::Path;

use yubin_table::{Hit, Table, TableSpec};

use crate::access::{AccessAction, ActionError};
use crate::restrict::Restriction;

pub struct AccessTable {
    table: Table,
}

/// A lookup that found the key, with where its value came from.
#[derive(Debug, Clone)]
pub struct Found {
    pub action: Result<AccessAction, ActionError>,
    pub hit: Hit,
}

impl Found {
    /// `hash:/etc/postfix/access` or `texthash:/etc/x:12`, for messages.
    pub fn origin(&self) -> String {
        match (&self.hit.file, self.hit.line) {
            (Some(f), Some(l)) => format!("{}:{l}", f.display()),
            _ => self.hit.table.clone(),
        }
    }
}

fn parse(value: &str) -> Result<AccessAction, ActionError> {
    AccessAction::parse(value, &Restriction::is_known)
}

impl AccessTable {
    pub fn open(spec: &str, default_type: &str, base: &Path) -> Result<AccessTable, String> {
        let spec = TableSpec::parse(spec, default_type).map_err(|e| e.to_string())?;
        let table = Table::open(&spec, base).map_err(|e| e.to_string())?;
        // Tables that can be listed (hash, texthash, inline, ...) are checked
        // whole now; regexp and cidr values are checked when they match.
        if let Ok(entries) = table.dump() {
            for (key, value) in entries {
                if let Err(e) = parse(&value) {
                    let line = table
                        .lookup(&key)
                        .and_then(|h| h.line)
                        .or_else(|| table.locate_line(&key));
                    let file = table
                        .lookup(&key)
                        .and_then(|h| h.file)
                        .map(|f| f.display().to_string())
                        .unwrap_or_else(|| spec.to_string());
                    return Err(match line {
                        Some(l) => format!("{file}:{l}: access table entry \"{key}\": {e}"),
                        None => format!("{file}: access table entry \"{key}\": {e}"),
                    });
                }
            }
        }
        Ok(AccessTable { table })
    }

    pub fn spec(&self) -> String {
        self.table.spec().to_string()
    }

    /// Whether keys are matched as patterns (regexp, pcre, cidr): those get
    /// the whole string only, never the shorter forms (Postfix's
    /// DICT_FLAG_FIXED "partial" lookups).
    pub fn is_pattern(&self) -> bool {
        use yubin_table::spec::Kind;
        matches!(self.table.spec().kind, Kind::Regexp | Kind::Cidr)
    }

    pub fn lookup(&self, key: &str) -> Option<Found> {
        let hit = self.table.lookup(key)?;
        Some(Found {
            action: parse(&hit.value),
            hit,
        })
    }
}
