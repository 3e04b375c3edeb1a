//! The SMTP dialogs recorded from Postfix 3.7.11 on the seed's configuration
//! (tests/dialogs/*.expected) replayed against yubin: every reply must be
//! the same. Queue ids differ by nature; STARTTLS is advertised by the
//! recorded Postfix (Debian enables TLS) and not yet by yubin.

mod common;

use std::process::Command;

use common::{repo, Server, VIRTUAL_BEFORE};

fn normalise(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| *l != "S: 250-STARTTLS")
        .map(|l| match l.find("queued as ") {
            Some(i) => format!("{}queued as ID", &l[..i]),
            None => l.to_string(),
        })
        .collect()
}

fn replay(name: &str, source: Option<&str>, s: &Server) {
    let dir = repo().join("tests/dialogs");
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/smtp_dialog.py"))
        .arg("127.0.0.1")
        .arg(s.port.to_string())
        .arg(dir.join(format!("{name}.txt")));
    if let Some(src) = source {
        cmd.args(["--source", src]);
    }
    let out = cmd.output().expect("python3");
    let got = normalise(&String::from_utf8_lossy(&out.stdout));
    let want = normalise(&std::fs::read_to_string(dir.join(format!("{name}.expected"))).unwrap());
    assert_eq!(
        got,
        want,
        "dialog {name}: stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn postfix_dialogs_replay_identically() {
    let mut s = Server::seed(VIRTUAL_BEFORE, "");
    s.start();
    for name in ["order", "seed-reject", "syntax", "params", "vrfy", "data"] {
        replay(name, None, &s);
    }
    replay("relay", Some("127.0.0.2"), &s);
}
