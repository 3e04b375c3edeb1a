//! Hostile input over a real socket: smuggling, long lines, huge bodies,
//! too many recipients, slowloris, open relay.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{Client, Server, VIRTUAL_AFTER};

#[test]
fn smuggled_message_is_content_not_a_second_message() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<a@example.org>");
    c.cmd("RCPT TO:<hoge@mydomain.com>");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send_raw(b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<hoge@mydomain.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    let id = r.rsplit(' ').next().unwrap();
    s.wait_log(&format!("{id}: removed"));
    let mail = s.hoge_mail();
    assert_eq!(mail.len(), 1, "exactly one message");
    assert!(std::fs::read_to_string(&mail[0])
        .unwrap()
        .contains("Subject: smuggled"));
}

#[test]
fn long_lines_big_bodies_many_recipients_and_relaying() {
    let mut s = Server::seed(
        VIRTUAL_AFTER,
        "message_size_limit = 1000000\nsmtpd_recipient_limit = 100\n",
    );
    s.start();
    // A 1 MB command line.
    let mut c = Client::connect(s.port);
    c.send_raw(&vec![b'A'; 1 << 20]);
    c.send_raw(b"\r\n");
    assert_eq!(c.reply(), "500 5.5.2 Error: command not recognized");
    assert_eq!(c.cmd("NOOP"), "250 2.0.0 Ok");
    // A 100 MB body over a 1 MB limit: read to the end, then refused, and
    // the server's memory stays small (it does not keep what it refuses).
    c.cmd("MAIL FROM:<a@example.org>");
    c.cmd("RCPT TO:<hoge@mydomain.com>");
    assert!(c.cmd("DATA").starts_with("354"));
    let chunk = ("y".repeat(1022) + "\r\n").repeat(64);
    for _ in 0..1_600 {
        c.send_raw(chunk.as_bytes());
    }
    // Postfix's words for a message over message_size_limit after DATA
    // (tests/dialogs/data-too-big.expected).
    assert_eq!(c.cmd("."), "552 5.3.4 Error: message file too big");
    let pid = s.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        hwm_kb < 64 * 1024,
        "peak RSS {hwm_kb} kB after a 100 MB body"
    );
    // 10,000 RCPTs: 100 accepted, then 452, and the error limit ends it.
    c.cmd("MAIL FROM:<a@example.org>");
    let mut batch = String::new();
    for i in 0..10_000 {
        batch.push_str(&format!("RCPT TO:<hoge+{i}@mydomain.com>\r\n"));
    }
    c.send_raw(batch.as_bytes());
    let mut ok = 0;
    let mut too_many = 0;
    let mut closed = false;
    for _ in 0..10_000 {
        let r = c.reply();
        match &r[..3] {
            "250" => ok += 1,
            "452" => too_many += 1,
            "421" => {
                closed = true;
                break;
            }
            _ => panic!("unexpected {r}"),
        }
    }
    assert_eq!(ok, 100);
    // Two errors came before (500, 552): 18 more reach smtpd_hard_error_limit (20).
    assert!(too_many == 18 && closed, "{too_many} {closed}");
    // Relaying from outside mynetworks (127.0.0.2; mynetworks is 127.0.0.1/32).
    let out = std::process::Command::new("python3")
        .arg(common::repo().join("tests/smtp_dialog.py"))
        .args(["127.0.0.1", &s.port.to_string()])
        .arg(common::repo().join("tests/dialogs/relay.txt"))
        .args(["--source", "127.0.0.2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("S: 454 4.7.1 <someone@example.org>: Relay access denied"),
        "{text}"
    );
    s.stop();
    assert!(
        !s.log().contains("someone@example.org, relay="),
        "nothing was relayed"
    );
}

#[test]
fn slowloris_times_out() {
    let mut s = Server::seed(VIRTUAL_AFTER, "smtpd_timeout = 2s\n");
    s.start();
    let mut c = Client::connect(s.port);
    let start = Instant::now();
    // One byte per second, never a full line: the timeout is per read, so
    // trickling keeps it alive; silence ends it.
    c.send_raw(b"E");
    std::thread::sleep(Duration::from_millis(500));
    c.send_raw(b"H");
    let r = c.reply();
    assert_eq!(r, "421 4.4.2 mail.mydomain.com Error: timeout exceeded");
    assert!(start.elapsed() < Duration::from_secs(10));
    let mut rest = Vec::new();
    let _ = c.r.read_to_end(&mut rest);
    s.wait_log("timeout after CONNECT from localhost[127.0.0.1]");
}

/// Postfix's smtpd refuses MAIL when the queue's file system is short of
/// space (smtpd_check_queue: less than queue_minfree, or less than 1.5 x
/// message_size_limit), before the client sends anything big; a SIZE=
/// larger than what is free is refused the same way.
#[test]
fn mail_is_refused_when_the_queue_is_short_of_space() {
    // No real disk is that big: the free space is always short of 1.5 x this.
    let mut s = Server::seed(VIRTUAL_AFTER, "message_size_limit = 1000000000000000000\n");
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org>"),
        "452 4.3.1 Insufficient system storage"
    );
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
    s.wait_log("warning: not enough free space in mail queue");
    drop(c);
    let mut s = Server::seed(VIRTUAL_AFTER, "queue_minfree = 1000\n");
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    assert_eq!(c.cmd("MAIL FROM:<a@example.org> SIZE=1000"), "250 2.1.0 Ok");
    c.cmd("RSET");
    let free = 1u64 << 62; // more than any file system here has free
    assert_eq!(
        c.cmd(&format!("MAIL FROM:<a@example.org> SIZE={free}")),
        "552 5.3.4 Message size exceeds fixed limit"
    );
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 Bye");
}
