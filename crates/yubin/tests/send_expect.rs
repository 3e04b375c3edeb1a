//! `yubin send --expect-delivery` against the real server: where a message
//! landed, or why it did not.

mod common;

use std::process::Command;

use common::Server;

#[test]
fn expect_delivery_reports_maildir_file_and_bounce_reason() {
    let mut s = Server::seed(
        "root hoge@mydomain.com\nbad@mydomain.com nobody-here@mydomain.com\n",
        "",
    );
    s.start();
    let send = |to: &str| {
        let out = Command::new(common::bin())
            .arg("-c")
            .arg(s.dir.path())
            .args([
                "send",
                "--server",
                &format!("127.0.0.1:{}", s.port),
                "--from",
                "a@example.org",
                "--to",
                to,
                "--expect-delivery",
                "20",
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = send("root@localhost");
    assert_eq!(code, Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("delivered to hoge@mydomain.com"))
        .unwrap_or_else(|| panic!("{out}"));
    let path = line.rsplit("Maildir ").next().unwrap();
    assert!(std::path::Path::new(path).is_file(), "{line}");
    let (code, out) = send("bad@mydomain.com");
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("unknown user: \"nobody-here@mydomain.com\""),
        "{out}"
    );
}
