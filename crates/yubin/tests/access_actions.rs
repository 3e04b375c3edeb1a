//! What access(5) HOLD, DISCARD and PREPEND do to a message once it is
//! acknowledged (the replies are checked against Postfix in dialogs.rs):
//! HOLD keeps it in the hold queue until `postsuper -H`, DISCARD drops it,
//! PREPEND puts the header above smtpd's Received:. A bad value in a table
//! stops the start with the file and line.

mod common;

use common::{Client, Server, VIRTUAL_AFTER};

fn server() -> Server {
    let s = Server::seed(
        VIRTUAL_AFTER,
        "smtpd_sender_restrictions = check_sender_access texthash:$config_directory/senders\n",
    );
    std::fs::write(
        s.path("senders"),
        "hold@x.example HOLD\ndisc@x.example DISCARD\npre@x.example PREPEND X-Access: seen\n",
    )
    .unwrap();
    s
}

#[test]
fn hold_discard_and_prepend() {
    let mut s = server();
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO client.example");
    let body = "Subject: t\n\nhello\n";
    assert!(c
        .mail("disc@x.example", &["hoge@mydomain.com"], body)
        .starts_with("250 2.0.0 Ok: queued as "));
    assert!(c
        .mail("hold@x.example", &["hoge@mydomain.com"], body)
        .starts_with("250 2.0.0 Ok: queued as "));
    assert!(c
        .mail("pre@x.example", &["hoge@mydomain.com"], body)
        .starts_with("250 2.0.0 Ok: queued as "));
    c.cmd("QUIT");
    // Only the PREPEND message is delivered, with its header first.
    let mail = s.wait_mail(1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    let header = text.find("X-Access: seen\n").expect("prepended header");
    assert!(header < text.find("Received: ").unwrap(), "{text}");
    let held: Vec<_> = std::fs::read_dir(s.path("queue/hold"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(held.len(), 1, "one held message");
    let log = s.log();
    assert!(log.contains("NOQUEUE: discard: RCPT from localhost[127.0.0.1]: <disc@x.example>: Sender address triggers DISCARD action; from=<disc@x.example> to=<hoge@mydomain.com> proto=ESMTP helo=<client.example>"), "{log}");
    assert!(log.contains("NOQUEUE: hold: RCPT from localhost[127.0.0.1]: <hold@x.example>: Sender address triggers HOLD action;"), "{log}");
    // Released, the held message is delivered; the discarded one never is.
    s.yubin(&["postsuper", "-H", "ALL"]);
    let mail = s.wait_mail(2);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(s.hoge_mail().len(), 2, "{:?}", mail);
}

#[test]
fn a_bad_table_value_stops_the_start_with_its_line() {
    let s = server();
    std::fs::write(s.path("senders"), "a@x.example OK\nb@x.example REJEKT\n").unwrap();
    let out = s.yubin_output(&["serve"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("senders:2: access table entry \"b@x.example\": unknown action or restriction \"REJEKT\""),
        "{err}"
    );
}
