//! `yubin postmap` and `yubin postalias` (postmap(1), postalias(1)): build
//! indexed tables from their source, query them, list them.

use std::io::{BufRead, Write};
use std::path::Path;

use clap::Args;
use yubin_conf::Config;
use yubin_table::indexed::{build, SourceFormat};
use yubin_table::spec::Kind;
use yubin_table::{Table, TableSpec};

use crate::fail::{fatal, warn};

#[derive(Args, Debug)]
pub struct PostmapArgs {
    /// Look KEY up and print its value (exit 0 found, 1 not found); "-" reads keys from stdin.
    #[arg(short = 'q', value_name = "KEY")]
    query: Option<String>,
    /// List every entry as "key<TAB>value".
    #[arg(short = 's')]
    show: bool,
    /// Do not fold keys to lower case when building.
    #[arg(short = 'f')]
    no_fold: bool,
    /// Verbose: with -q, print on stderr each statement a pgsql: table ran.
    #[arg(short = 'v')]
    verbose: bool,
    /// Tables: FILE or type:FILE (type defaults to default_database_type).
    #[arg(required = true, value_name = "[type:]FILE")]
    tables: Vec<String>,
}

/// `default_database_type` from main.cf when there is one, else `hash`.
fn default_type(dir: &Path) -> String {
    Config::load(dir)
        .map(|c| c.get("default_database_type").to_string())
        .unwrap_or_else(|_| "hash".into())
}

pub fn run(dir: &Path, a: PostmapArgs, format: SourceFormat) -> i32 {
    let program = match format {
        SourceFormat::Map => "postmap",
        SourceFormat::Aliases => "postalias",
    };
    let dtype = default_type(dir);
    let mut specs = Vec::new();
    for t in &a.tables {
        match TableSpec::parse(t, &dtype) {
            Ok(s) => specs.push(s),
            Err(e) => return fatal(program, e),
        }
    }
    if let Some(key) = &a.query {
        return query(program, dir, &specs, key, a.verbose);
    }
    if a.show {
        for spec in &specs {
            let table = match Table::open(spec, dir) {
                Ok(t) => t,
                Err(e) => return fatal(program, e),
            };
            match table.dump() {
                Ok(entries) => entries.iter().for_each(|(k, v)| println!("{k}\t{v}")),
                Err(e) => return fatal(program, e),
            }
        }
        return 0;
    }
    for spec in &specs {
        if spec.kind != Kind::Indexed {
            return fatal(program, format!("unsupported dictionary type for building: {} (only hash, btree, cdb, lmdb are built)", spec.type_name));
        }
        match build(Path::new(&spec.name), format, !a.no_fold) {
            Ok(report) => report.warnings.iter().for_each(|w| warn(program, w)),
            Err(e) => return fatal(program, e),
        }
    }
    0
}

fn query(program: &str, dir: &Path, specs: &[TableSpec], key: &str, verbose: bool) -> i32 {
    let mut tables = Vec::new();
    for spec in specs {
        match Table::open(spec, dir) {
            Ok(t) => tables.push(t),
            Err(e) => return fatal(program, e),
        }
    }
    // postmap(1): a table that cannot answer is fatal ("query error"),
    // never "not found".
    let find = |k: &str| -> Result<Option<yubin_table::Hit>, yubin_table::TableError> {
        for t in &tables {
            let probe = t.probe(k)?;
            if verbose {
                if let Some(q) = &probe.query {
                    eprintln!("{program}: {}: {q}", t.spec());
                }
            }
            if probe.hit.is_some() {
                return Ok(probe.hit);
            }
        }
        Ok(None)
    };
    if key == "-" {
        // Buffered: stdout is line-buffered, and a write per key would
        // dominate a bulk lookup.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        let mut found_any = false;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let k = line.split_whitespace().next().unwrap_or("");
            let found = match find(k) {
                Ok(f) => f,
                Err(e) => {
                    let _ = out.flush();
                    return fatal(program, e);
                }
            };
            if let Some(hit) = found {
                if writeln!(out, "{k}\t{}", hit.value).is_err() {
                    return 1;
                }
                found_any = true;
            }
        }
        let _ = out.flush();
        return if found_any { 0 } else { 1 };
    }
    match find(key) {
        Ok(Some(hit)) => {
            println!("{}", hit.value);
            0
        }
        Ok(None) => 1,
        Err(e) => fatal(program, e),
    }
}

/// `newaliases`: `postalias` on every table named in alias_database.
pub fn newaliases(dir: &Path) -> i32 {
    let cfg = match Config::load(dir) {
        Ok(c) => c,
        Err(e) => return fatal("newaliases", e),
    };
    let dtype = cfg.get("default_database_type").to_string();
    for item in cfg.list("alias_database") {
        let spec = match TableSpec::parse(&item, &dtype) {
            Ok(s) => s,
            Err(e) => return fatal("newaliases", e),
        };
        let path = if Path::new(&spec.name).is_absolute() {
            Path::new(&spec.name).to_path_buf()
        } else {
            dir.join(&spec.name)
        };
        match build(&path, SourceFormat::Aliases, true) {
            Ok(report) => report.warnings.iter().for_each(|w| warn("newaliases", w)),
            Err(e) => return fatal("newaliases", e),
        }
    }
    0
}
