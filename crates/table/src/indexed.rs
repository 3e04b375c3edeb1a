//! Indexed tables (`hash:`, `btree:`, `cdb:`, `lmdb:`): `yubin postmap FILE`
//! compiles the source `FILE` into `FILE.cdb`; lookups memory-map that file.
//!
//! One on-disk format serves every indexed type because what matters to an
//! admin is Postfix's behaviour (fast exact lookups, a rebuild replaces the
//! table atomically, a stale table is reported), not Berkeley DB itself; see
//! docs/tables.md. A table rebuilt on disk is picked up by the running server
//! within a second, without a restart.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::cdb;
use crate::error::TableError;
use crate::reload::Reloading;
use crate::source;

/// Which source syntax to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// postmap(1): `key value`.
    Map,
    /// postalias(1): `name: value`.
    Aliases,
}

/// What a build did.
#[derive(Debug, Default)]
pub struct BuildReport {
    pub entries: usize,
    /// Postfix-style warnings (`FILE, line N: duplicate entry: "key"`).
    pub warnings: Vec<String>,
}

/// The compiled file for a source path.
pub fn compiled_path(source: &Path) -> PathBuf {
    let mut s = source.as_os_str().to_owned();
    s.push(".cdb");
    PathBuf::from(s)
}

/// Compiles `source` into `source.cdb`, atomically (write a temporary file,
/// fsync, rename), so a running server never sees a half-written table.
/// Keys are folded to lower case unless `fold` is false (postmap -f).
/// Duplicate keys keep the first value and warn, as Postfix does.
pub fn build(
    source_path: &Path,
    format: SourceFormat,
    fold: bool,
) -> Result<BuildReport, TableError> {
    let bytes = std::fs::read(source_path).map_err(|e| TableError::io(source_path, e))?;
    let text = source::as_utf8(source_path, &bytes)?;
    let lines = source::logical_lines(source_path, text)?;
    let entries = match format {
        SourceFormat::Map => source::parse_entries(source_path, &lines)?,
        SourceFormat::Aliases => source::parse_aliases(source_path, &lines)?,
    };
    let out_path = compiled_path(source_path);
    let tmp_path = {
        let mut s = out_path.as_os_str().to_owned();
        s.push(format!(".tmp{}", std::process::id()));
        PathBuf::from(s)
    };
    let file = File::create(&tmp_path).map_err(|e| TableError::io(&tmp_path, e))?;
    let io_err = |e| TableError::io(&tmp_path, e);
    let mut w = cdb::Writer::new(BufWriter::with_capacity(1 << 20, file)).map_err(io_err)?;
    let mut seen: HashSet<String> = HashSet::with_capacity(entries.len());
    let mut report = BuildReport::default();
    for e in &entries {
        let key = if fold {
            e.key.to_lowercase()
        } else {
            e.key.to_string()
        };
        if !seen.insert(key.clone()) {
            report.warnings.push(format!(
                "{}, line {}: duplicate entry: \"{}\"",
                source_path.display(),
                e.line,
                e.key
            ));
            continue;
        }
        w.add(key.as_bytes(), e.value.as_bytes()).map_err(io_err)?;
        report.entries += 1;
    }
    let (buf, header) = w.finish().map_err(io_err)?;
    let mut file = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    file.write_all(&header).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    std::fs::rename(&tmp_path, &out_path).map_err(|e| TableError::io(&out_path, e))?;
    if let Some(dir) = out_path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(report)
}

/// A compiled table open for lookups.
pub struct IndexedTable {
    source: PathBuf,
    map: Reloading<Mmap>,
}

fn open_map(path: &Path, source: &Path) -> Result<Mmap, TableError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TableError::Spec(format!(
            "open database {}: No such file or directory (run \"yubin postmap {}\")",
            path.display(),
            source.display()
        )),
        _ => TableError::io(path, e),
    })?;
    let meta = file.metadata().map_err(|e| TableError::io(path, e))?;
    // SAFETY: postmap replaces the file by rename, never in place, so the
    // mapped bytes stay valid for the lifetime of the map.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| TableError::io(path, e))?;
    if cdb::Reader::new(&map).is_none() {
        return Err(TableError::Corrupt {
            file: path.to_path_buf(),
            msg: "not a cdb file (too short); rebuild it with yubin postmap".into(),
        });
    }
    if let (Ok(src), Ok(db)) = (
        std::fs::metadata(source).and_then(|m| m.modified()),
        meta.modified(),
    ) {
        if src > db {
            tracing::warn!(
                "database {} is older than source file {}",
                path.display(),
                source.display()
            );
        }
    }
    Ok(map)
}

impl IndexedTable {
    pub fn open(source: &Path) -> Result<IndexedTable, TableError> {
        let src = source.to_path_buf();
        let map = Reloading::open(&compiled_path(source), move |p| open_map(p, &src))?;
        Ok(IndexedTable {
            source: source.to_path_buf(),
            map,
        })
    }

    /// Looks up an already case-folded key.
    pub fn get(&self, key: &str) -> Option<String> {
        let cur = self.map.get();
        let r = cdb::Reader::new(&cur.0)?;
        r.get(key.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every entry (postmap -s).
    pub fn dump(&self) -> Vec<(String, String)> {
        let cur = self.map.get();
        let Some(r) = cdb::Reader::new(&cur.0) else {
            return Vec::new();
        };
        r.iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    pub fn source(&self) -> &Path {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_lookup_duplicates_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("virtual");
        std::fs::write(
            &src,
            "root hoge@mydomain.com\nRoot other@x\n@Example.COM catch@x\n",
        )
        .unwrap();
        let rep = build(&src, SourceFormat::Map, true).unwrap();
        assert_eq!(rep.entries, 2);
        assert_eq!(rep.warnings.len(), 1);
        assert!(rep.warnings[0].ends_with("virtual, line 2: duplicate entry: \"Root\""));
        let t = IndexedTable::open(&src).unwrap();
        assert_eq!(t.get("root").as_deref(), Some("hoge@mydomain.com"));
        assert_eq!(t.get("@example.com").as_deref(), Some("catch@x"));
        assert_eq!(t.get("nope"), None);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(&src, "root changed@x\n").unwrap();
        build(&src, SourceFormat::Map, true).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(t.get("root").as_deref(), Some("changed@x"));
    }

    #[test]
    fn missing_compiled_file_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("virtual");
        std::fs::write(&src, "a b\n").unwrap();
        let e = IndexedTable::open(&src).err().unwrap().to_string();
        assert!(e.contains("run \"yubin postmap"), "{e}");
    }
}
