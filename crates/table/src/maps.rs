//! Opening tables by `type:name` and searching lists of them (`maps = a, b`):
//! the first table that has the key wins (postconf(5) "*_maps").

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::cidr::CidrTable;
use crate::error::TableError;
use crate::indexed::IndexedTable;
use crate::inline::{static_value, InlineTable};
use crate::regexp::RegexpTable;
use crate::spec::{Kind, TableSpec};
use crate::texthash::TexthashTable;

/// A successful lookup and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub value: String,
    /// `hash:/etc/yubin/virtual`
    pub table: String,
    /// The source file, for file-backed tables.
    pub file: Option<PathBuf>,
    /// The source line, when the table knows it (texthash, regexp, cidr), or
    /// after `locate_line` for indexed tables.
    pub line: Option<usize>,
    /// For remote tables: the statement that ran, with its parameters.
    pub query: Option<String>,
}

/// One lookup explained: the hit, if any, and for remote tables the
/// statement that ran (also on a miss) or why none was sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probe {
    pub hit: Option<Hit>,
    pub query: Option<String>,
}

enum Inner {
    Indexed(IndexedTable),
    Texthash(TexthashTable),
    Static(String),
    Inline(InlineTable),
    Regexp(RegexpTable),
    Cidr(CidrTable),
    Pgsql(yubin_pgsql::PgsqlTable),
}

/// One open table.
pub struct Table {
    spec: TableSpec,
    inner: Inner,
}

/// Folds a key to lower case, borrowing when it already is.
fn fold(key: &str) -> Cow<'_, str> {
    if key.bytes().any(|b| b.is_ascii_uppercase()) || !key.is_ascii() {
        Cow::Owned(key.to_lowercase())
    } else {
        Cow::Borrowed(key)
    }
}

impl Table {
    /// Opens a table. Relative file names are taken relative to `base`
    /// (the configuration directory).
    pub fn open(spec: &TableSpec, base: &Path) -> Result<Table, TableError> {
        let path = || {
            let p = Path::new(&spec.name);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let inner = match spec.kind {
            Kind::Indexed => Inner::Indexed(IndexedTable::open(&path())?),
            Kind::Texthash => Inner::Texthash(TexthashTable::open(&path())?),
            Kind::Static => Inner::Static(static_value(&spec.name)),
            Kind::Inline => Inner::Inline(InlineTable::parse(&spec.name)?),
            Kind::Regexp => Inner::Regexp(RegexpTable::open(&path())?),
            Kind::Cidr => Inner::Cidr(CidrTable::open(&path())?),
            Kind::Pgsql => Inner::Pgsql(
                yubin_pgsql::PgsqlTable::open(&path())
                    .map_err(|e| TableError::Spec(e.to_string()))?,
            ),
        };
        Ok(Table {
            spec: spec.clone(),
            inner,
        })
    }

    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// Looks `key` up with table(5) case folding (not for regexp/cidr, whose
    /// patterns decide case themselves). A remote table's temporary failure
    /// is an error the caller must turn into a deferral.
    pub fn try_lookup(&self, key: &str) -> Result<Option<Hit>, TableError> {
        self.probe(key).map(|p| p.hit)
    }

    /// `try_lookup`, with the statement a remote table ran (for `yubin
    /// trace` and `postmap -q`). Remote tables block: call this from a
    /// blocking thread, never from an async task (docs/ARCHITECTURE.md).
    pub fn probe(&self, key: &str) -> Result<Probe, TableError> {
        let (value, line) = match &self.inner {
            Inner::Pgsql(t) => {
                let l = t.lookup(&fold(key)).map_err(|e| TableError::Temporary {
                    table: self.spec.to_string(),
                    msg: e.to_string(),
                })?;
                let query = l
                    .query
                    .or_else(|| l.skipped.map(|why| format!("(no query: {why})")));
                return Ok(Probe {
                    hit: l.value.map(|value| Hit {
                        value,
                        table: self.spec.to_string(),
                        file: Some(t.file().to_path_buf()),
                        line: None,
                        query: query.clone(),
                    }),
                    query,
                });
            }
            _ => match self.local_get(key) {
                Some(v) => v,
                None => return Ok(Probe::default()),
            },
        };
        Ok(Probe {
            hit: Some(Hit {
                value,
                table: self.spec.to_string(),
                file: self.file_path(),
                line,
                query: None,
            }),
            query: None,
        })
    }

    /// Looks `key` up, for callers that cannot defer: a remote table's
    /// temporary failure is logged and reads as "not found". Everything on
    /// a mail path uses `try_lookup` instead.
    pub fn lookup(&self, key: &str) -> Option<Hit> {
        self.try_lookup(key).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            None
        })
    }

    /// Whether lookups go over the network (and may block and fail
    /// temporarily).
    pub fn is_remote(&self) -> bool {
        matches!(self.inner, Inner::Pgsql(_))
    }

    fn local_get(&self, key: &str) -> Option<(String, Option<usize>)> {
        Some(match &self.inner {
            Inner::Indexed(t) => (t.get(&fold(key))?, None),
            Inner::Texthash(t) => t.get(&fold(key)).map(|(v, l)| (v, Some(l)))?,
            Inner::Static(v) => (v.clone(), None),
            Inner::Inline(t) => (t.get(&fold(key))?, None),
            Inner::Regexp(t) => t.get(key).map(|(v, l)| (v, Some(l)))?,
            Inner::Cidr(t) => t.get(key).map(|(v, l)| (v, Some(l)))?,
            Inner::Pgsql(_) => return None,
        })
    }

    fn file_path(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Indexed(t) => Some(t.source().to_path_buf()),
            Inner::Static(_) | Inner::Inline(_) => None,
            Inner::Pgsql(t) => Some(t.file().to_path_buf()),
            _ => Some(PathBuf::from(&self.spec.name)),
        }
    }

    /// For `yubin trace`: the source line that defines `key` in an indexed
    /// table (the compiled file does not keep line numbers; reading the
    /// source is fine for a person-facing command).
    pub fn locate_line(&self, key: &str) -> Option<usize> {
        let Inner::Indexed(t) = &self.inner else {
            return None;
        };
        let bytes = std::fs::read(t.source()).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let lines = crate::source::logical_lines(t.source(), text).ok()?;
        let key = fold(key);
        lines.iter().find_map(|(line, text)| {
            let k = text.split([' ', '\t', ':']).next()?;
            (fold(k) == key).then_some(*line)
        })
    }

    /// Every entry, for `postmap -s`; regexp and cidr tables cannot be listed.
    pub fn dump(&self) -> Result<Vec<(String, String)>, TableError> {
        match &self.inner {
            Inner::Indexed(t) => Ok(t.dump()),
            Inner::Texthash(t) => Ok(t.dump()),
            Inner::Inline(t) => Ok(t.dump()),
            _ => Err(TableError::Spec(format!(
                "table {} does not support sequential access",
                self.spec
            ))),
        }
    }
}

/// A list of tables searched in order.
#[derive(Default)]
pub struct Maps {
    pub tables: Vec<Table>,
}

impl Maps {
    /// Opens every table of a `*_maps` value (already split into a list).
    pub fn open(specs: &[String], default_type: &str, base: &Path) -> Result<Maps, TableError> {
        let mut tables = Vec::with_capacity(specs.len());
        for s in specs {
            let spec = TableSpec::parse(s, default_type)?;
            tables.push(Table::open(&spec, base)?);
        }
        Ok(Maps { tables })
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The first hit in list order, for callers that cannot defer (see
    /// `Table::lookup`).
    pub fn lookup(&self, key: &str) -> Option<Hit> {
        self.tables.iter().find_map(|t| t.lookup(key))
    }

    /// The first hit in list order; a temporary failure of a table stops
    /// the search (Postfix's maps_find: a later table must not answer for
    /// one that could not).
    pub fn try_lookup(&self, key: &str) -> Result<Option<Hit>, TableError> {
        for t in &self.tables {
            if let Some(hit) = t.try_lookup(key)? {
                return Ok(Some(hit));
            }
        }
        Ok(None)
    }

    /// Whether any table of the list is remote.
    pub fn is_remote(&self) -> bool {
        self.tables.iter().any(Table::is_remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indexed::{build, SourceFormat};

    #[test]
    fn list_order_and_folding() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("virtual"),
            "root hoge@mydomain.com\npostadmin@mydomain.com hoge@mydomain.com\n",
        )
        .unwrap();
        build(&dir.path().join("virtual"), SourceFormat::Map, true).unwrap();
        std::fs::write(dir.path().join("th"), "root texthash@x\nother o@x\n").unwrap();
        let maps = Maps::open(
            &[
                "hash:virtual".into(),
                "texthash:th".into(),
                "inline:{ x=y }".into(),
            ],
            "hash",
            dir.path(),
        )
        .unwrap();
        let hit = maps.lookup("ROOT").unwrap();
        assert_eq!(hit.value, "hoge@mydomain.com");
        assert_eq!(hit.table, "hash:virtual");
        assert_eq!(maps.tables[0].locate_line("root"), Some(1));
        assert_eq!(maps.lookup("other").unwrap().line, Some(2));
        assert_eq!(maps.lookup("X").unwrap().value, "y");
        assert!(maps.lookup("none").is_none());
    }
}
