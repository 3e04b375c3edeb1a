//! yubin relays to a second yubin found by MX: `yubin serve` runs in the
//! lab host mx2 (its own network namespace) as the final destination for
//! mydomain.com; the SMTP client in host `client` finds it through the lab
//! DNS's MX record. Needs root (see crates/outbound/tests/lab.rs).

mod common;
#[path = "../../outbound/tests/support/mod.rs"]
mod support;

use common::{Server, VIRTUAL_AFTER};
use support::*;
use yubin_outbound::agent::Status;

#[test]
fn relay_to_a_second_yubin_found_by_mx() {
    let lab = Lab::new(&["mydomain.com. MX 10 mx2.lab.test."]);
    // The receiving yubin: the seed's configuration, listening on mx2's
    // address in the lab.
    let s = Server::seed(VIRTUAL_AFTER, "");
    let mx2 = format!("{NET}.11");
    std::fs::write(
        s.path("master.cf"),
        format!("{mx2}:25 inet n - n - - smtpd\n"),
    )
    .unwrap();
    let mut main = std::fs::read_to_string(s.path("main.cf")).unwrap();
    main = main.replace("inet_interfaces = loopback-only", "inet_interfaces = all");
    std::fs::write(s.path("main.cf"), main).unwrap();
    let log = lab.path("yubin-mx2.log");
    lab.sh(&[
        "spawn",
        "mx2",
        log.to_str().unwrap(),
        common::bin().to_str().unwrap(),
        "-c",
        s.dir.path().to_str().unwrap(),
        "serve",
    ]);
    lab.sh(&["wait", "client", &mx2, "25", "20"]);

    let d = send(
        &lab,
        |_| {},
        "mydomain.com",
        &["hoge@mydomain.com"],
        message("second-yubin"),
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Sent, "{r:?}");
    assert_eq!(r.relay, format!("mx2.lab.test[{mx2}]:25"));
    // Over BDAT (yubin offers CHUNKING) the last chunk's reply is
    // Postfix's "250 2.0.0 Ok: N bytes queued as ID".
    assert!(
        r.text.starts_with("250 2.0.0 Ok: ") && r.text.contains("queued as "),
        "{}",
        r.text
    );
    let files = s.wait_mail(1);
    let body = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        body.contains("Message-Id: <second-yubin@client.lab.test>"),
        "{body}"
    );
    // The receiving yubin logged the client by its lab address.
    let maillog = s.log();
    assert!(
        maillog.contains(&format!("connect from unknown[{NET}.2]"))
            || maillog.contains(&format!("[{NET}.2]")),
        "{maillog}"
    );
}

/// `yubin serve` itself relays: a message submitted to a yubin in the lab
/// host `client` for a remote domain goes out by MX to the peer on mx1;
/// a recipient the peer refuses with 550 bounces to the sender with the
/// peer's reply.
#[test]
fn yubin_serve_relays_by_mx_and_bounces_a_5xx() {
    let lab = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let peer_log = lab.peer(
        "mx1",
        &format!("{NET}.10"),
        &[
            "--rcpt-reply",
            "550 5.1.1 User unknown",
            "--rcpt-match",
            "nobody",
        ],
    );
    let s = Server::seed(VIRTUAL_AFTER, "");
    let log = lab.path("yubin-client.log");
    lab.sh(&[
        "spawn",
        "client",
        log.to_str().unwrap(),
        common::bin().to_str().unwrap(),
        "-c",
        s.dir.path().to_str().unwrap(),
        "serve",
    ]);
    lab.sh(&["wait", "client", "127.0.0.1", &s.port.to_string(), "20"]);
    let out = std::process::Command::new("bash")
        .arg(format!("{SHARED}/netlab.sh"))
        .args(["exec", "client", "swaks", "--server"])
        .arg(format!("127.0.0.1:{}", s.port))
        .args([
            "--from",
            "hoge@mydomain.com",
            "--to",
            "bob@example.test,nobody@example.test",
            "--header",
            "Message-Id: <relay1@mydomain.com>",
        ])
        .env("NETLAB_ID", &lab.id)
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        transcript.contains("<-  250 2.0.0 Ok: queued as"),
        "{transcript}"
    );
    let sent = s.wait_log("status=sent");
    assert!(
        sent.contains("postfix/smtp[")
            && sent.contains(&format!(
                "to=<bob@example.test>, relay=mx1.lab.test[{NET}.10]:25, delay="
            )),
        "{sent}"
    );
    let bounced = s.wait_log("status=bounced");
    assert!(
        bounced.contains(&format!(
            "to=<nobody@example.test>, relay=mx1.lab.test[{NET}.10]:25, delay="
        )) && bounced.contains("dsn=5.1.1, status=bounced (host mx1.lab.test[10.61.0.10] said: 550 5.1.1 User unknown (in reply to RCPT TO command))"),
        "{bounced}"
    );
    let acc = events(&peer_log, "accepted");
    assert_eq!(acc.len(), 1, "{acc:?}");
    assert_eq!(acc[0]["rcpt"], serde_json::json!(["bob@example.test"]));
    // The bounce reaches the sender's mailbox and quotes the remote reply.
    let mails = s.wait_mail(1);
    // RFC 3464, read by Python's email package: the remote reply as an
    // `smtp;` Diagnostic-Code and the server as Remote-MTA, as Postfix.
    let script = r#"
import email, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
assert m.get_content_type() == 'multipart/report', m.get_content_type()
parts = list(m.iter_parts())
fields = {k.lower(): str(v) for block in parts[1].get_payload() for k, v in block.items()}
assert fields['action'] == 'failed', fields
assert fields['status'] == '5.1.1', fields
assert fields['remote-mta'] == 'dns; mx1.lab.test', fields
assert fields['diagnostic-code'] == 'smtp; 550 5.1.1 User unknown', fields
assert fields['final-recipient'] == 'rfc822; nobody@example.test', fields
print('ok')
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, mails[0].to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Submits one message to the yubin in the lab host `client`.
fn swaks(lab: &Lab, port: u16, to: &str, id: &str) {
    let out = std::process::Command::new("bash")
        .arg(format!("{SHARED}/netlab.sh"))
        .args(["exec", "client", "swaks", "--server"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--from", "hoge@mydomain.com", "--to", to, "--header"])
        .arg(format!("Message-Id: <{id}@mydomain.com>"))
        .env("NETLAB_ID", &lab.id)
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        transcript.contains("<-  250 2.0.0 Ok: queued as"),
        "{transcript}"
    );
}

/// Waits until `needle` occurs `n` times in the server's mail.log.
fn wait_count(s: &common::Server, needle: &str, n: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let log = s.log();
        if log.matches(needle).count() >= n {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} x {needle:?} not seen:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `yubin serve` with transport_maps and connection reuse: three messages
/// for example.test (MX mx1) go out one after another over one SMTP
/// session (the peer counts one connection; mail.log says conn_use=2 and
/// 3, as Postfix); routed.test, whose MX is also mx1, goes to mx2 because
/// transport_maps says `smtp:[mx2.lab.test]`; gone.test bounces with the
/// table's error text.
#[test]
fn yubin_serve_routes_by_transport_maps_and_reuses_a_session() {
    let lab = Lab::new(&[
        "example.test. MX 10 mx1.lab.test.",
        "routed.test. MX 10 mx1.lab.test.",
    ]);
    let mx1 = lab.peer("mx1", &format!("{NET}.10"), &[]);
    let mx2 = lab.peer("mx2", &format!("{NET}.11"), &[]);
    let mx1_before = settled_connects(&mx1);
    // The messages wait in the queue (defer_transports) until the flush,
    // then go out one at a time (concurrency 1), so each can take the
    // session the previous one left; the cache time limit is long so a
    // slow machine cannot make the test depend on timing.
    let s = Server::seed(
        VIRTUAL_AFTER,
        "defer_transports = smtp\nsmtp_destination_concurrency_limit = 1\n\
         smtp_connection_cache_time_limit = 60s\ntransport_maps = texthash:transport\n",
    );
    std::fs::write(
        s.path("transport"),
        "routed.test   smtp:[mx2.lab.test]\ngone.test     error:5.7.1 gone.test takes no mail\n",
    )
    .unwrap();
    let log = lab.path("yubin-client.log");
    lab.sh(&[
        "spawn",
        "client",
        log.to_str().unwrap(),
        common::bin().to_str().unwrap(),
        "-c",
        s.dir.path().to_str().unwrap(),
        "serve",
    ]);
    lab.sh(&["wait", "client", "127.0.0.1", &s.port.to_string(), "20"]);
    for i in 1..=3 {
        swaks(
            &lab,
            s.port,
            &format!("bob{i}@example.test"),
            &format!("reuse{i}"),
        );
    }
    swaks(&lab, s.port, "x@routed.test", "routed");
    swaks(&lab, s.port, "y@gone.test", "gone");
    wait_count(&s, "status=deferred (deferred transport)", 4);
    let bounced = s.wait_log("to=<y@gone.test>");
    assert!(
        bounced.contains("dsn=5.7.1, status=bounced (gone.test takes no mail)"),
        "{bounced}"
    );
    s.yubin(&["postqueue", "-f"]);
    let maillog = wait_count(&s, "status=sent", 4);
    let line = |to: &str| {
        maillog
            .lines()
            .find(|l| l.contains(&format!("to=<{to}>")) && l.contains("status=sent"))
            .unwrap_or_else(|| panic!("no sent line for {to}:\n{maillog}"))
            .to_string()
    };
    assert!(
        line("x@routed.test").contains(&format!("relay=mx2.lab.test[{NET}.11]:25, delay=")),
        "{maillog}"
    );
    let uses: Vec<String> = (1..=3)
        .map(|i| line(&format!("bob{i}@example.test")))
        .collect();
    for l in &uses {
        assert!(
            l.contains(&format!("relay=mx1.lab.test[{NET}.10]:25")),
            "{l}"
        );
    }
    assert!(
        uses.iter().any(|l| l.contains(":25, conn_use=2, delay=")),
        "{maillog}"
    );
    assert!(
        uses.iter().any(|l| l.contains(":25, conn_use=3, delay=")),
        "{maillog}"
    );
    assert_eq!(
        count_events(&mx1, "connect", mx1_before + 1) - mx1_before,
        1,
        "one connection carried the three messages"
    );
    assert_eq!(count_events(&mx1, "accepted", 3), 3);
    assert_eq!(count_events(&mx2, "accepted", 1), 1);
}
