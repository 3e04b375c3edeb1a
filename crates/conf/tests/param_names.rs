//! Every main.cf parameter name the code reads must be one the table of
//! known parameters (src/params.rs) has: a misspelt name would read as an
//! empty value at run time and silently change behaviour, so this test
//! reads every crate's sources and fails on a name the table lacks.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `RECEIVER.METHOD("name"`, where RECEIVER is a name the code gives a
/// `Config` and METHOD one of its accessors.
fn names_read(src: &str) -> Vec<(usize, String)> {
    const RECEIVERS: &[&str] = &["cfg", "scfg", "config", "self.cfg", "rt.cfg", "self.config"];
    const METHODS: &[&str] = &[
        "get",
        "get_raw",
        "list",
        "bool",
        "u64",
        "time",
        "origin_text",
        "origin",
    ];
    let mut out = Vec::new();
    for (n, line) in src.lines().enumerate() {
        for r in RECEIVERS {
            for m in METHODS {
                let pat = format!("{r}.{m}(\"");
                let mut rest = line;
                while let Some(i) = rest.find(&pat) {
                    let before = &rest[..i];
                    rest = &rest[i + pat.len()..];
                    // `self.cfg` must not match inside `myself.cfg`, `xcfg`.
                    if before
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                    {
                        continue;
                    }
                    let name: String = rest.chars().take_while(|&c| c != '"').collect();
                    out.push((n + 1, name));
                }
            }
        }
    }
    out
}

#[test]
fn every_parameter_the_code_reads_is_known() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    let mut unknown = Vec::new();
    let mut seen = 0;
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        for (line, name) in names_read(&src) {
            seen += 1;
            if yubin_conf::params::find(&name).is_none() {
                unknown.push(format!("{}:{line}: {name}", f.display()));
            }
        }
    }
    assert!(
        seen > 50,
        "the scan found only {seen} reads: is the pattern stale?"
    );
    assert!(
        unknown.is_empty(),
        "parameters missing from src/params.rs:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_scan_finds_a_misspelt_name() {
    let found = names_read(
        "let x = cfg.get(\"mesage_size_limit\"); let y = self.cfg.list(\"mynetworks\");",
    );
    assert_eq!(found.len(), 2);
    assert!(yubin_conf::params::find(&found[0].1).is_none());
    assert!(yubin_conf::params::find(&found[1].1).is_some());
}
