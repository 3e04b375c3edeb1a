//! The seed document's story, end to end with the real binary and swaks.

mod common;

use common::{Server, VIRTUAL_AFTER, VIRTUAL_BEFORE};
use std::process::Command;

fn swaks(port: u16, to: &str) -> (i32, String) {
    let out = Command::new("swaks")
        .args([
            "-4",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--from",
            "hogehoge@onotherdomain.com",
            "-to",
            to,
            "-h-subject",
            "Test Message",
            "--body",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"hello world\n")?;
            c.wait_with_output()
        })
        .expect("swaks is needed (Debian package swaks; .ci/run installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn root_at_localhost_rejected_then_fixed_by_user_form_alias() {
    let mut s = Server::seed(VIRTUAL_BEFORE, "");
    s.start();
    let (code, out) = swaks(s.port, "root@localhost");
    assert!(
        out.contains("<** 550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in local recipient table"),
        "{out}"
    );
    assert_ne!(code, 0);
    let trace = s.yubin_output(&["trace", "root@localhost"]);
    let text = String::from_utf8_lossy(&trace.stdout);
    assert!(
        text.contains("to accept it: add \"root  some-user@mydomain.com\""),
        "{text}"
    );
    assert_eq!(trace.status.code(), Some(1));

    // The fix: the `user` form in virtual, postmap, reload.
    std::fs::write(s.path("virtual"), VIRTUAL_AFTER).unwrap();
    s.yubin(&["postmap", &s.path("virtual").display().to_string()]);
    s.yubin(&["reload"]);
    let (code, out) = swaks(s.port, "root@localhost");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("<-  250 2.1.5 Ok"), "{out}");
    let queued = out
        .lines()
        .find(|l| l.contains("queued as"))
        .expect("queued");
    let id = queued.rsplit(' ').next().unwrap().to_string();
    let log = s.wait_log(&format!("{id}: removed"));
    assert!(
        log.contains(&format!(
            "{id}: to=<hoge@mydomain.com>, orig_to=<root@localhost>, relay=virtual,"
        )),
        "{log}"
    );
    let mail = s.hoge_mail();
    assert_eq!(mail.len(), 1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.starts_with("Return-Path: <hogehoge@onotherdomain.com>\nX-Original-To: root@localhost\nDelivered-To: hoge@mydomain.com\nReceived: from "), "{text}");
    assert!(
        text.contains(&format!("with ESMTP id {id}\n\tfor <root@localhost>; ")),
        "{text}"
    );
    assert!(text.contains("hello world"));
    // `yubin log` stitches the story together: the reject and the delivery.
    let story = s.yubin(&["log", "root@localhost"]);
    assert!(
        story.contains(
            "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <root@localhost>"
        ),
        "{story}"
    );
    assert!(story.contains(&format!("== {id}\n")), "{story}");
    assert!(
        story.contains("status=sent (delivered to maildir)"),
        "{story}"
    );
    let by_id = s.yubin(&["log", &id]);
    assert!(by_id.contains(&format!("{id}: removed")), "{by_id}");
}

#[test]
fn default_local_recipient_maps_accepts_root_like_postfix() {
    let mut s = Server::seed(
        VIRTUAL_BEFORE,
        "local_recipient_maps = proxy:unix:passwd.byname $alias_maps\n",
    );
    s.start();
    let (_, out) = swaks(s.port, "root@localhost");
    assert!(out.contains("<-  250 2.1.5 Ok"), "{out}");
}
