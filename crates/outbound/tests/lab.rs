//! Outbound delivery in the offline lab (../shared/tools/netlab.md): hosts
//! in network namespaces, a lab DNS (unbound) with MX records, real peers
//! (smtp_peer.py, Postfix). The client runs in the lab host `client`: each
//! delivery runs on a thread that joined that namespace with setns(2).
//!
//! Needs root (namespaces) and unbound, python3, postfix from
//! .ci/packages.txt. Without root every test fails and says so. Each test
//! builds its own lab (its own NETLAB_ID) and tears it down, also when it
//! fails; every delivery is bounded by a timeout.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;
use yubin_outbound::agent::Status;
use yubin_outbound::log::{delivery_line, QueueTimes};
use yubin_outbound::{Dns, Outbound, TlsClient, TlsLevel};

#[test]
fn relay_by_mx_to_smtp_peer() {
    let lab = Lab::new(&[
        "example.test. MX 10 mx1.lab.test.",
        "implicit.test. A 10.61.0.11",
        "nullmx.test. MX 0 .",
    ]);
    let log1 = lab.peer("mx1", &format!("{NET}.10"), &[]);
    let d = send(
        &lab,
        |_| {},
        "example.test",
        &["a@example.test", "b@example.test"],
        message("mx1"),
    );
    for r in &d.results {
        assert_eq!(r.status, Status::Sent, "{r:?}");
        assert_eq!(r.relay, format!("mx1.lab.test[{NET}.10]:25"));
        assert!(r.text.starts_with("250 2.0.0 Ok"), "{}", r.text);
    }
    let line = delivery_line(
        "LABTEST",
        "a@example.test",
        None,
        &d.results[0],
        QueueTimes::default(),
    );
    assert!(
        line.starts_with(&format!(
            "LABTEST: to=<a@example.test>, relay=mx1.lab.test[{NET}.10]:25, delay="
        )) && line.contains(", dsn=2.0.0, status=sent (250 2.0.0 Ok"),
        "{line}"
    );
    let acc = events(&log1, "accepted");
    assert_eq!(acc.len(), 1, "one transaction for both recipients");
    assert_eq!(
        acc[0]["rcpt"],
        serde_json::json!(["a@example.test", "b@example.test"])
    );

    // Implicit MX: no MX record, the domain's own A record (mx2's address).
    let log2 = lab.peer("mx2", &format!("{NET}.11"), &[]);
    let d = send(
        &lab,
        |_| {},
        "implicit.test",
        &["c@implicit.test"],
        message("imp"),
    );
    assert_eq!(d.results[0].status, Status::Sent, "{:?}", d.results[0]);
    assert_eq!(d.results[0].relay, format!("implicit.test[{NET}.11]:25"));
    assert_eq!(events(&log2, "accepted").len(), 1);

    // Null MX (RFC 7505): bounced without a connection, Postfix's words.
    let d = send(
        &lab,
        |_| {},
        "nullmx.test",
        &["d@nullmx.test"],
        message("null"),
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Bounced);
    assert_eq!(r.dsn.to_string(), "5.1.10");
    assert_eq!(r.text, "Domain nullmx.test does not accept mail (nullMX)");
    assert_eq!(r.relay, "none");

    // A domain that does not exist.
    let d = send(
        &lab,
        |_| {},
        "nowhere.test",
        &["e@nowhere.test"],
        message("nx"),
    );
    assert_eq!(d.results[0].status, Status::Bounced);
    assert_eq!(
        d.results[0].text,
        "Host or domain name not found. Name service error for name=nowhere.test type=MX: Host not found"
    );

    // The lab's client is the best MX for example.test: a loop (5.4.6).
    let d = send(
        &lab,
        |s| s.my_addresses = vec![format!("{NET}.10").parse().unwrap()],
        "example.test",
        &["f@example.test"],
        message("loop"),
    );
    assert_eq!(d.results[0].status, Status::Bounced);
    assert_eq!(d.results[0].dsn.to_string(), "5.4.6");
    assert_eq!(
        d.results[0].text,
        "mail for example.test loops back to myself"
    );

    // relayhost [mx2.lab.test]: no MX lookup, straight to mx2.
    let d = send(
        &lab,
        |_| {},
        "[mx2.lab.test]",
        &["g@example.test"],
        message("relayhost"),
    );
    assert_eq!(d.results[0].relay, format!("mx2.lab.test[{NET}.11]:25"));
    assert_eq!(events(&log2, "accepted").len(), 2);
    assert_eq!(events(&log1, "accepted").len(), 1);
}

/// `yubin trace`'s view of a remote address, from the lab's client.
fn explain(lab: &Lab, rcpt: &str) -> String {
    let rcpt = rcpt.to_string();
    in_ns(lab.ns("client"), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let dns_addr: SocketAddr = format!("{NET}.53:53").parse().unwrap();
            let mut settings = settings();
            settings.tls_level = TlsLevel::May;
            let ob = Outbound {
                settings,
                dns: Dns::new(Some(&[dns_addr])),
                cache: Default::default(),
            };
            let domain = rcpt.rsplit_once('@').unwrap().1;
            let nexthop = yubin_outbound::Nexthop::parse(domain).unwrap();
            ob.explain(&nexthop, "s@client.lab.test").await.to_string()
        })
    })
}

#[test]
fn first_mx_refuses_second_accepts_delivered_once() {
    let lab = Lab::new(&[
        "example.test. MX 10 mx1.lab.test.",
        "example.test. MX 20 mx2.lab.test.",
    ]);
    assert_eq!(
        explain(&lab, "a@example.test"),
        format!(
            "nexthop example.test (MX lookup):\n  \
             1. mx1.lab.test (preference 10) {NET}.10\n  \
             2. mx2.lab.test (preference 20) {NET}.11\n\
             TLS: may (from smtp_tls_security_level)\n\
             DKIM: not signed (sender domain not in yubin_dkim_signing_maps)\n"
        )
    );
    // mx1 exists but listens nowhere: connection refused.
    let log2 = lab.peer("mx2", &format!("{NET}.11"), &[]);
    let d = send(
        &lab,
        |_| {},
        "example.test",
        &["a@example.test"],
        message("fallback"),
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Sent, "{r:?}");
    assert_eq!(r.relay, format!("mx2.lab.test[{NET}.11]:25"));
    assert!(
        d.notes
            .iter()
            .any(|n| n == &format!("connect to mx1.lab.test[{NET}.10]:25: Connection refused")),
        "{:?}",
        d.notes
    );
    assert_eq!(events(&log2, "accepted").len(), 1);

    // Both down: deferred with the last reason, relay=none.
    let lab2 = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let d = send(
        &lab2,
        |_| {},
        "example.test",
        &["a@example.test"],
        message("down"),
    );
    assert_eq!(d.results[0].status, Status::Deferred);
    assert_eq!(d.results[0].relay, "none");
    assert_eq!(
        d.results[0].text,
        format!("connect to mx1.lab.test[{NET}.10]:25: Connection refused")
    );
}

#[test]
fn tempfail_then_accept_is_delivered_exactly_once() {
    let lab = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let log = lab.peer("mx1", &format!("{NET}.10"), &["--tempfail-first", "1"]);
    let d = send(
        &lab,
        |_| {},
        "example.test",
        &["a@example.test"],
        message("once"),
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred, "{r:?}");
    assert_eq!(r.dsn.to_string(), "4.3.0");
    assert!(
        r.text
            .starts_with(&format!("host mx1.lab.test[{NET}.10] said: 451 4.3.0"))
            && r.text.ends_with("(in reply to end of DATA command)"),
        "{}",
        r.text
    );
    // The queue retries later: the second attempt is accepted.
    let d = send(
        &lab,
        |_| {},
        "example.test",
        &["a@example.test"],
        message("once"),
    );
    assert_eq!(d.results[0].status, Status::Sent, "{:?}", d.results[0]);
    let acc = events(&log, "accepted");
    assert_eq!(acc.len(), 1, "{acc:?}");
    assert_eq!(acc[0]["attempt"], 2);
}

#[test]
fn permanent_failure_keeps_the_remote_reply() {
    let lab = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let log = lab.peer(
        "mx1",
        &format!("{NET}.10"),
        &[
            "--rcpt-reply",
            "550 5.1.1 User unknown",
            "--rcpt-match",
            "bad",
        ],
    );
    let d = send(
        &lab,
        |_| {},
        "example.test",
        &["good@example.test", "bad@example.test"],
        message("perm"),
    );
    assert_eq!(d.results[0].status, Status::Sent, "{:?}", d.results[0]);
    let r = &d.results[1];
    assert_eq!(r.status, Status::Bounced);
    assert_eq!(r.dsn.to_string(), "5.1.1");
    assert_eq!(r.diagnostic_code(), "smtp; 550 5.1.1 User unknown");
    assert_eq!(
        r.text,
        format!("host mx1.lab.test[{NET}.10] said: 550 5.1.1 User unknown (in reply to RCPT TO command)")
    );
    assert_eq!(r.remote_mta.as_deref(), Some("mx1.lab.test"));
    let acc = events(&log, "accepted");
    assert_eq!(acc.len(), 1);
    assert_eq!(acc[0]["rcpt"], serde_json::json!(["good@example.test"]));
}

/// A lab CA and a certificate for mx1.lab.test signed by it.
fn lab_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "yubin lab CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = CertificateParams::new(vec!["mx1.lab.test".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let (c, k, a) = (dir.join("mx1.pem"), dir.join("mx1.key"), dir.join("ca.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    std::fs::write(&a, ca_cert.pem()).unwrap();
    (c, k, a)
}

#[test]
fn tls_may_encrypts_and_verify_needs_the_lab_ca() {
    let lab = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let (cert, key, ca) = lab_ca(lab.tmp.path());
    let log = lab.peer(
        "mx1",
        &format!("{NET}.10"),
        &[
            "--tls",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    // may: encrypted, certificate not checked.
    let d = send(
        &lab,
        |s| s.tls_level = TlsLevel::May,
        "example.test",
        &["a@example.test"],
        message("may"),
    );
    assert_eq!(d.results[0].status, Status::Sent, "{:?}", d.results[0]);
    assert!(
        d.notes.iter().any(|n| n.starts_with(&format!(
            "Untrusted TLS connection established to mx1.lab.test[{NET}.10]:25: TLSv1."
        ))),
        "{:?}",
        d.notes
    );
    // verify with the lab CA in smtp_tls_CAfile.
    let ca2 = ca.clone();
    let d = send(
        &lab,
        move |s| {
            s.tls_level = TlsLevel::Verify;
            s.tls = TlsClient::new(Some(&ca2)).unwrap();
        },
        "example.test",
        &["b@example.test"],
        message("verify"),
    );
    assert_eq!(d.results[0].status, Status::Sent, "{:?}", d.results[0]);
    assert!(d
        .notes
        .iter()
        .any(|n| n.starts_with("Verified TLS connection")));
    // verify without it: deferred with the reason, nothing sent in clear.
    let d = send(
        &lab,
        |s| s.tls_level = TlsLevel::Verify,
        "example.test",
        &["c@example.test"],
        message("noca"),
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred);
    assert_eq!(r.dsn.to_string(), "4.7.5");
    assert!(
        r.text.starts_with(&format!(
            "Cannot start TLS: handshake failure with mx1.lab.test[{NET}.10]:"
        )) && r.text.contains("UnknownIssuer"),
        "{}",
        r.text
    );
    let acc = events(&log, "accepted");
    assert_eq!(acc.len(), 2, "{acc:?}");
    assert!(acc.iter().all(|a| a["tls"] == true));
}

#[test]
fn relay_to_a_real_postfix() {
    if Command::new("sh")
        .args(["-c", "command -v postfix"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        panic!("postfix is needed for this test (.ci/packages.txt)");
    }
    let lab = Lab::new(&["other.test. MX 10 mx2.lab.test."]);
    let dir = lab.path("pf-mx2");
    lab.sh(&[
        "postfix",
        "mx2",
        dir.to_str().unwrap(),
        "--domain",
        "other.test",
    ]);
    lab.sh(&["wait", "client", &format!("{NET}.11"), "25", "20"]);
    let d = send(
        &lab,
        |s| s.tls_level = TlsLevel::May,
        "other.test",
        &["bob@other.test"],
        message("postfix"),
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Sent, "{r:?}");
    assert_eq!(r.relay, format!("mx2.lab.test[{NET}.11]:25"));
    // Postfix offers CHUNKING, so the body went by BDAT: its reply says
    // "250 2.0.0 Ok: 135 bytes queued as ID".
    assert!(
        r.text.starts_with("250 2.0.0 Ok") && r.text.contains(" queued as "),
        "{}",
        r.text
    );
    let new = dir.join("mail/other.test/new");
    let start = Instant::now();
    let file = loop {
        let found = std::fs::read_dir(&new)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).next())
            .unwrap_or(None);
        if let Some(f) = found {
            break f;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Postfix did not deliver into {}",
            new.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let body = std::fs::read_to_string(file).unwrap();
    assert!(
        body.contains("Message-Id: <postfix@client.lab.test>"),
        "{body}"
    );
    // Dot-stuffing undone by the receiver: the line is as sent.
    assert!(body.contains("\n.leading dot\n"), "{body}");
}
