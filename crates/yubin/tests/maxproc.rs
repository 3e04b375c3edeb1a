//! master.cf's maxproc column (issue 16 item 7): with `maxproc 2` two SMTP
//! sessions run at once; a third client is connected (the kernel's listen
//! queue holds it) but not greeted until one of the two ends, as with
//! Postfix's master(8), which starts no third smtpd process.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Client, Server, VIRTUAL_AFTER};

#[test]
fn third_client_waits_for_a_free_session_with_maxproc_2() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    std::fs::write(
        s.path("master.cf"),
        format!(
            "# service type private unpriv chroot wakeup maxproc command\n\
             127.0.0.1:{} inet n - n - 2 smtpd\n",
            s.port
        ),
    )
    .unwrap();
    s.start();
    let mut one = Client::connect(s.port);
    let mut two = Client::connect(s.port);
    assert!(one.cmd("EHLO one.example").starts_with("250"));
    assert!(two.cmd("EHLO two.example").starts_with("250"));

    // The third: connected, but no greeting while both sessions are busy.
    // (A wrong server greets at once; the second is only how long we look.)
    let third = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut r = BufReader::new(third.try_clone().unwrap());
    let mut line = String::new();
    let early = r.read_line(&mut line);
    assert!(
        early.is_err() || line.is_empty(),
        "third client greeted while maxproc 2 sessions were busy: {line:?}"
    );

    // One session ends: the third is greeted and served.
    assert!(one.cmd("QUIT").starts_with("221"));
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("220 "), "{line:?}");
    let mut w = third;
    w.write_all(b"QUIT\r\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("221"), "{line:?}");
    assert!(two.cmd("QUIT").starts_with("221"));
}
