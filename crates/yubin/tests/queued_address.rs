//! Issue 16 item 8: an acknowledged message must stay readable and keep its
//! recipients across a restart, whatever (accepted) syntax they had. The
//! queue file keeps the internal form (`quoted local@x`, no quotes); the
//! queue manager once re-parsed it with the SMTP syntax check and bounced
//! such recipients as "bad address syntax".

mod common;

use common::{Client, Server, VIRTUAL_AFTER};

#[test]
fn quoted_and_utf8_recipients_survive_queue_and_restart() {
    // defer_transports holds the remote recipients (Postfix's way to keep
    // mail queued), so they are still queued at the restart.
    let mut s = Server::seed(
        VIRTUAL_AFTER,
        "smtputf8_enable = yes\ndefer_transports = smtp\n",
    );
    s.start();
    let mut c = Client::connect(s.port);
    assert!(c.cmd("EHLO client.example").starts_with("250"));
    assert!(c
        .cmd("MAIL FROM:<c@example.org> SMTPUTF8")
        .starts_with("250"));
    // Remote recipients (the client is in mynetworks): held by
    // defer_transports, which is what lets the test restart the server with
    // them still in the queue.
    for rcpt in [
        "\"quoted local\"@remote.example",
        "a..b@remote.example",
        "用户@例子.测试",
        "hoge@mydomain.com",
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("250"), "{rcpt}: {r}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    c.send_raw(b"Subject: queued address\r\n\r\nhello\r\n");
    let r = c.cmd(".");
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
    let _ = c.cmd("QUIT");

    s.wait_mail(1);
    let log = s.wait_log("to=<用户@例子.测试>");
    for who in ["quoted local@remote.example", "a..b@remote.example"] {
        s.wait_log(&format!("to=<{who}>"));
    }
    let log = s.log() + &log;
    assert!(!log.contains("status=bounced"), "{log}");
    assert!(!log.contains("bad address syntax"), "{log}");

    // Crash and restart: the queue file is still readable, nothing is moved
    // to corrupt/, the three remote recipients are still listed.
    s.kill9();
    s.start();
    let q = s.yubin(&["mailq"]);
    for who in [
        "quoted local@remote.example",
        "a..b@remote.example",
        "用户@例子.测试",
    ] {
        assert!(q.contains(who), "{who} not in mailq:\n{q}");
    }
    let corrupt: Vec<_> = std::fs::read_dir(s.path("queue/corrupt"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(corrupt.is_empty(), "{corrupt:?}");
    assert!(!s.log().contains("corrupt"), "{}", s.log());
}
