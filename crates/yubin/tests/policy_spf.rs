//! check_policy_service with Debian's postfix-policyd-spf-python, run
//! through the exact master.cf line Postfix sites use
//! (`policyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf`):
//! yubin serves in the lab host mx2, the SPF records come from the lab DNS,
//! a client in the lab host `client` sends. A pass is accepted with the
//! daemon's `Received-SPF:` header prepended; a fail is refused with its
//! reply. Needs root (network namespaces, see crates/outbound/tests/lab.rs).

mod common;
#[path = "../../outbound/tests/support/mod.rs"]
mod support;

use common::{Server, VIRTUAL_AFTER};
use support::*;

/// Sends `n` messages in one session from the lab host `client` with
/// Python's smtplib; returns the RCPT replies (code and text) or "queued",
/// one line each.
fn send_from_client(lab: &Lab, to_ip: &str, sender: &str, n: usize) -> String {
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("{to_ip}", 25, local_hostname="client.lab.test", timeout=60)
s.ehlo()
for i in range({n}):
    s.mail("{sender}")
    code, text = s.rcpt("hoge@mydomain.com")
    if code != 250:
        print(code, text.decode())
        s.rset()
    else:
        s.data(b"Subject: spf\r\nMessage-Id: <spf@client.lab.test>\r\n\r\nhello\r\n")
        print("queued")
s.quit()
"#
    );
    lab.sh(&["exec", "client", "python3", "-c", &script])
}

#[test]
fn policyd_spf_through_spawn() {
    let lab = Lab::new(&[
        &format!("spf-pass.test. TXT \"v=spf1 ip4:{NET}.2 -all\""),
        "spf-fail.test. TXT \"v=spf1 -all\"",
    ]);
    let mx2 = format!("{NET}.11");
    let s = Server::seed(
        VIRTUAL_AFTER,
        "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, check_policy_service unix:private/policyd-spf\npolicyd-spf_time_limit = 3600\n",
    );
    std::fs::write(
        s.path("master.cf"),
        format!(
            "{mx2}:25 inet n - n - - smtpd\npolicyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf\n"
        ),
    )
    .unwrap();
    let main = std::fs::read_to_string(s.path("main.cf"))
        .unwrap()
        .replace("inet_interfaces = loopback-only", "inet_interfaces = all");
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

    let fail = send_from_client(&lab, &mx2, "a@spf-fail.test", 1);
    assert!(
        fail.starts_with("550 5.7.23 <hoge@mydomain.com>: Recipient address rejected: Message rejected due to: SPF fail - not authorized."),
        "{fail}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Two messages in one session: each is a transaction of its own for
    // the policy server (the `instance` attribute), each gets its header.
    assert_eq!(
        send_from_client(&lab, &mx2, "a@spf-pass.test", 2),
        "queued\nqueued"
    );
    let files = s.wait_mail(2);
    for f in &files {
        let body = std::fs::read_to_string(f).unwrap();
        let spf =
            body.find("Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=10.61.0.2;");
        let received = body.find("Received: from client.lab.test");
        assert!(
            spf.is_some() && received.is_some() && spf < received,
            "the policy server's header comes first: {body}"
        );
    }
    let maillog = s.log();
    assert!(
        // The client's name from the lab DNS (PTR, then its A record).
        maillog.contains("reject: RCPT from client.lab.test[10.61.0.2]: 550 5.7.23 <hoge@mydomain.com>: Recipient address rejected: Message rejected due to: SPF fail"),
        "{maillog}"
    );
}
