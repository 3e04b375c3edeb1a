//! Replays fail2ban's annotated test logs (`# failJSON:` before each line says
//! whether it is a failure and from which host) through guard's parser and
//! connection tracker, per filter mode, in file order with state carried
//! across lines — as fail2ban's own `samplestestcase.py` does — and asserts
//! how many checks guard agrees with. The disagreements are printed (run with
//! `--nocapture`) and explained in docs/guard.md.
//!
//! The corpus is GPL test input and is read where Debian's `fail2ban`
//! package installs it (`fail2ban/tests/files/logs/` under its Python
//! package, found with `dpkg -L fail2ban`; .ci/packages.txt installs the
//! package), never copied into this repository. The figures below are those
//! of fail2ban 1.0.2 (Debian 12's package); a newer fail2ban adds lines and
//! changes them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use yubin_guard::engine::{Mode, Tracker};
use yubin_guard::parse::parse_line;

fn corpus_dir() -> PathBuf {
    let listed = std::process::Command::new("dpkg")
        .args(["-L", "fail2ban"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let d = listed
        .lines()
        .find(|l| l.ends_with("/fail2ban/tests/files/logs"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("fail2ban's test logs not found: install Debian's fail2ban package (.ci/packages.txt)")
        });
    assert!(d.join("sshd").is_file(), "no sshd log in {}", d.display());
    d
}

#[derive(Debug, Clone)]
struct Check {
    file: String,
    lineno: usize,
    line: String,
    expect: bool,
    host: Option<String>,
    desc: String,
}

/// The tiny expression language of `constraint` / `test.condition`.
fn eval(expr: &str, name: &str, opts: &serde_json::Map<String, serde_json::Value>) -> bool {
    let expr = expr.trim();
    let (op, neg) = if expr.contains("!=") {
        ("!=", true)
    } else {
        ("==", false)
    };
    let (l, r) = expr
        .split_once(op)
        .unwrap_or_else(|| panic!("unsupported expression {expr:?}"));
    let r = r.trim().trim_matches('\'');
    let l = l.trim();
    let left = if l == "name" {
        Some(name.to_string())
    } else if let Some(k) = l
        .strip_prefix("opts.get('")
        .and_then(|x| x.strip_suffix("')"))
    {
        opts.get(k).and_then(|v| v.as_str()).map(str::to_string)
    } else {
        panic!("unsupported expression {expr:?}")
    };
    (left.as_deref() == Some(r)) != neg
}

/// Per mode, the checks in order (fail2ban's harness semantics).
fn checks(first: &str, name: &str) -> BTreeMap<String, Vec<Check>> {
    let dir = corpus_dir();
    let mut files = vec![first.to_string()];
    let mut out: BTreeMap<String, Vec<Check>> = BTreeMap::new();
    let mut common = serde_json::Map::new();
    let mut variants: Option<Vec<serde_json::Map<String, serde_json::Value>>> = None;
    let mut i = 0;
    while i < files.len() {
        let fname = files[i].clone();
        i += 1;
        let text = std::fs::read_to_string(dir.join(&fname)).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        let mut n = 0;
        while n < lines.len() {
            let l = lines[n];
            n += 1;
            let Some(rest) = l.strip_prefix('#') else {
                continue;
            };
            let rest = rest.trim_start_matches('#').trim_start();
            let Some((kind, payload)) = rest.split_once(':') else {
                continue;
            };
            if !matches!(
                kind,
                "failJSON" | "fileOptions" | "filterOptions" | "addFILE"
            ) {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(payload.trim()).unwrap();
            match kind {
                "fileOptions" => common = v.as_object().unwrap().clone(),
                "addFILE" => files.push(v.as_str().unwrap().to_string()),
                "filterOptions" => {
                    let list = match v {
                        serde_json::Value::Array(a) => a,
                        o => vec![o],
                    };
                    let mut vs = Vec::new();
                    let mut ignore = false;
                    for o in list {
                        let mut m = common.clone();
                        m.extend(o.as_object().unwrap().clone());
                        if let Some(c) = m.get("test.condition").and_then(|c| c.as_str()) {
                            ignore = !eval(c, name, &m);
                        }
                        if !ignore {
                            vs.push(m);
                        }
                    }
                    variants = Some(if ignore { Vec::new() } else { vs });
                }
                _ => {
                    let data = v.as_object().unwrap();
                    let line = lines[n].to_string();
                    let lineno = n + 1;
                    n += 1;
                    let active = variants.clone().unwrap_or_else(|| vec![common.clone()]);
                    let mut seen = Vec::new();
                    for opts in active {
                        let mode = opts
                            .get("mode")
                            .and_then(|m| m.as_str())
                            .unwrap_or("normal")
                            .to_string();
                        if seen.contains(&mode) {
                            continue;
                        }
                        seen.push(mode.clone());
                        if let Some(c) = data.get("constraint").and_then(|c| c.as_str()) {
                            if !eval(c, name, &opts) {
                                continue;
                            }
                        }
                        out.entry(mode).or_default().push(Check {
                            file: fname.clone(),
                            lineno,
                            line: line.clone(),
                            expect: data.get("match").and_then(|m| m.as_bool()).unwrap_or(false),
                            host: data
                                .get("host")
                                .and_then(|h| h.as_str())
                                .map(str::to_string),
                            desc: data
                                .get("desc")
                                .and_then(|d| d.as_str())
                                .unwrap_or("")
                                .to_string(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Replays each mode; returns mode -> (agreed, total, disagreements).
fn replay(
    first: &str,
    name: &str,
    mode_of: impl Fn(&str) -> Mode,
) -> BTreeMap<String, (usize, usize, Vec<String>)> {
    let mut res = BTreeMap::new();
    for (mode, list) in checks(first, name) {
        let mut t = Tracker::new(mode_of(&mode));
        let mut agreed = 0;
        let mut bad = Vec::new();
        for c in &list {
            let mut hosts = Vec::new();
            if let Some(p) = parse_line(c.line.as_bytes()) {
                t.feed(&p, &mut |h| {
                    if !h.success {
                        hosts.push(h.host.to_str_lossy());
                    }
                });
            }
            let ok = if c.expect {
                c.host.as_ref().is_none_or(|h| hosts.contains(h)) && !hosts.is_empty()
            } else {
                hosts.is_empty()
            };
            if ok {
                agreed += 1;
            } else {
                bad.push(format!(
                    "{}:{} [{}] expected {} got {:?} ({})\n    {}",
                    c.file,
                    c.lineno,
                    mode,
                    if c.expect {
                        format!("match {:?}", c.host.as_deref().unwrap_or("?"))
                    } else {
                        "no match".into()
                    },
                    hosts,
                    c.desc,
                    c.line
                ));
            }
        }
        res.insert(mode, (agreed, list.len(), bad));
    }
    res
}

fn show(
    what: &str,
    r: &BTreeMap<String, (usize, usize, Vec<String>)>,
) -> BTreeMap<String, (usize, usize)> {
    let mut figures = BTreeMap::new();
    for (mode, (a, n, bad)) in r {
        println!("{what} {mode}: {a}/{n} agree");
        for b in bad {
            println!("  {b}");
        }
        figures.insert(mode.clone(), (*a, *n));
    }
    figures
}

fn expect(got: BTreeMap<String, (usize, usize)>, want: &[(&str, usize, usize)]) {
    let want: BTreeMap<String, (usize, usize)> = want
        .iter()
        .map(|(m, a, n)| (m.to_string(), (*a, *n)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn sshd_and_sshd_journal_corpus() {
    let r = replay("sshd", "sshd", |m| Mode::parse(m).expect("known mode"));
    let got = show("sshd+sshd-journal", &r);
    // 4 disagreements: sshd:144 and sshd-journal:145 (normal and aggressive),
    // the artificial "auth-info" injection; see docs/guard.md. (The newer
    // fail2ban corpus once read from ../shared gave 244/246, 48/48, 29/29,
    // 201/203: more lines, the same 4 disagreements.)
    expect(
        got,
        &[
            ("aggressive", 239, 241),
            ("ddos", 44, 44),
            ("extra", 29, 29),
            ("normal", 198, 200),
        ],
    );
}

#[test]
fn postfix_corpus() {
    // guard counts SASL authentication failures only: fail2ban's
    // postfix[mode=auth]. The other modes are policy rejects, not guesses.
    let r = replay("postfix", "postfix", |_| Mode::NORMAL);
    let got = show("postfix", &r);
    // Every disagreement is a policy reject or a connection-level event that
    // is no password guess (see docs/guard.md); `auth` agrees fully.
    expect(
        got,
        &[
            ("aggressive", 12, 51),
            ("auth", 12, 12),
            ("ddos", 1, 11),
            ("errors", 1, 2),
            ("normal", 1, 29),
            ("rbl", 0, 3),
        ],
    );
}

#[test]
fn dovecot_corpus() {
    // guard reads Dovecot's login-process lines (`… (auth failed, N attempts
    // …): … rip=ADDR`), which is what yubin's IMAP server writes; fail2ban's
    // dovecot filter also reads auth-worker/PAM and other lines.
    let r = replay("dovecot", "dovecot", |_| Mode::NORMAL);
    let got = show("dovecot", &r);
    // Not part of the acceptance figures; pinned so the number stays true.
    expect(got, &[("aggressive", 0, 8), ("normal", 24, 50)]);
}
