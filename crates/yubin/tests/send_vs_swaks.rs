//! The seed's two swaks commands, rerun with `yubin send` and with real swaks
//! against yubin serve: the transcripts agree line for line (dates, message
//! ids, queue ids and X-Mailer aside), and so do the exit codes.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Server, VIRTUAL_AFTER, VIRTUAL_BEFORE};

/// The seed's command line, loose syntax included (`-to`, `-h-subject`).
fn seed_args(port: u16) -> Vec<String> {
    [
        "-4",
        "--server",
        &format!("127.0.0.1:{port}"),
        "--from",
        "hogehoge@onotherdomain.com",
        "-to",
        "root@localhost",
        "-h-subject",
        "Test Message",
        "--body",
        "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(mut cmd: Command) -> (i32, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello world\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn normalize(t: &str) -> Vec<String> {
    t.lines()
        .map(|l| {
            let (hint, rest) = if l.len() >= 4 && l.is_char_boundary(4) {
                l.split_at(4)
            } else {
                ("", l)
            };
            if rest.starts_with("Date: ") {
                format!("{hint}Date: DATE")
            } else if rest.starts_with("Subject: test ") {
                format!("{hint}Subject: test DATE")
            } else if rest.starts_with("Message-Id: ") {
                format!("{hint}Message-Id: ID")
            } else if rest.starts_with("X-Mailer: ") {
                format!("{hint}X-Mailer: MAILER")
            } else if let Some(i) = l.find("queued as ") {
                format!("{}queued as QID", &l[..i])
            } else {
                l.to_string()
            }
        })
        .collect()
}

fn compare(s: &Server) -> (i32, Vec<String>) {
    let mut ours = Command::new(common::bin());
    ours.arg("send").args(seed_args(s.port));
    let mut theirs = Command::new("swaks");
    theirs.args(seed_args(s.port));
    let (c1, t1) = run(ours);
    let (c2, t2) = run(theirs);
    let (n1, n2) = (normalize(&t1), normalize(&t2));
    assert_eq!(n1, n2, "--- yubin send\n{t1}\n--- swaks\n{t2}");
    assert_eq!(c1, c2, "exit codes");
    (c1, n1)
}

#[test]
fn seed_reject_and_accept_read_the_same_as_swaks() {
    let mut before = Server::seed(
        VIRTUAL_BEFORE,
        "local_recipient_maps = $virtual_mailbox_maps\n",
    );
    before.start();
    let (code, t) = compare(&before);
    assert_ne!(code, 0);
    assert!(t.contains(&"<** 550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in local recipient table".to_string()), "{t:?}");
    let mut after = Server::seed(
        VIRTUAL_AFTER,
        "local_recipient_maps = $virtual_mailbox_maps\n",
    );
    after.start();
    let (code, t) = compare(&after);
    assert_eq!(code, 0);
    assert!(
        t.contains(&"<-  250 2.0.0 Ok: queued as QID".to_string()),
        "{t:?}"
    );
}
