//! `yubin install-links DIR`: Postfix's command names work through the links.

mod common;

use std::process::Command;

#[test]
fn links_answer_to_postfix_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .arg("install-links")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "sendmail",
        "mailq",
        "newaliases",
        "postmap",
        "postconf",
        "postalias",
        "postqueue",
        "postsuper",
    ] {
        assert!(std::fs::read_link(dir.path().join(name)).is_ok(), "{name}");
    }
    // postmap through its link, on a table made here.
    let t = dir.path().join("virtual");
    std::fs::write(&t, "root hoge@mydomain.com\n").unwrap();
    assert!(Command::new(dir.path().join("postmap"))
        .arg(&t)
        .status()
        .unwrap()
        .success());
    let q = Command::new(dir.path().join("postmap"))
        .args(["-q", "ROOT"])
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&q.stdout), "hoge@mydomain.com\n");
    // Another program's file is not replaced without --force.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("sendmail"), "#!/bin/sh\n").unwrap();
    let out = Command::new(common::bin())
        .arg("install-links")
        .arg(other.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use --force"));
}
