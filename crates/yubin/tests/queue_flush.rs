//! The queue manager's flush hooks end to end: a transport in
//! defer_transports waits for a flush (postqueue -s SITE) before its agent
//! runs; the SMTP client then finds no DNS (dns_servers names a port where
//! nothing answers) and keeps the message queued with its clear reason.

mod common;

use common::{Client, Server};

#[test]
fn defer_transports_wait_for_postqueue_s() {
    let mut s = Server::seed("", "defer_transports = smtp\ndns_servers = 127.0.0.1:9\n");
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    assert!(c.cmd("MAIL FROM:<hoge@mydomain.com>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<someone@example.org>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send_raw(b"Subject: out\r\n\r\nbody\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    let log = s.wait_log("status=deferred (deferred transport)");
    assert!(
        log.contains("to=<someone@example.org>, relay=none,") && log.contains("dsn=4.3.2"),
        "{log}"
    );
    assert!(!log.contains("Name service error"), "{log}");
    // Postfix's `postqueue -s`: only this destination, and its transport
    // delivers now (the agent defers with its own reason).
    s.yubin(&["postqueue", "-s", "example.org"]);
    let log = s.wait_log("Name service error for name=example.org type=MX");
    assert!(
        log.contains("to=<someone@example.org>, relay=none,")
            && log.contains("dsn=4.4.3, status=deferred (Host or domain name not found. Name service error for name=example.org type=MX: Host not found, try again)"),
        "{log}"
    );
    assert_eq!(
        s.yubin(&["postqueue", "-p"])
            .matches("someone@example.org")
            .count(),
        1,
        "still queued, once"
    );
    let out = s.yubin_output(&["postqueue", "-s", ""]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad site name"));
}
