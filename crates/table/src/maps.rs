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
}

enum Inner {
    Indexed(IndexedTable),
    Texthash(TexthashTable),
    Static(String),
    Inline(InlineTable),
    Regexp(RegexpTable),
    Cidr(CidrTable),
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
    /// patterns decide case themselves).
    pub fn lookup(&self, key: &str) -> Option<Hit> {
        let (value, line) = match &self.inner {
            Inner::Indexed(t) => (t.get(&fold(key))?, None),
            Inner::Texthash(t) => t.get(&fold(key)).map(|(v, l)| (v, Some(l)))?,
            Inner::Static(v) => (v.clone(), None),
            Inner::Inline(t) => (t.get(&fold(key))?, None),
            Inner::Regexp(t) => t.get(key).map(|(v, l)| (v, Some(l)))?,
            Inner::Cidr(t) => t.get(key).map(|(v, l)| (v, Some(l)))?,
        };
        Some(Hit {
            value,
            table: self.spec.to_string(),
            file: self.file_path(),
            line,
        })
    }

    fn file_path(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Indexed(t) => Some(t.source().to_path_buf()),
            Inner::Static(_) | Inner::Inline(_) => None,
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

    /// The first hit in list order.
    pub fn lookup(&self, key: &str) -> Option<Hit> {
        self.tables.iter().find_map(|t| t.lookup(key))
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
