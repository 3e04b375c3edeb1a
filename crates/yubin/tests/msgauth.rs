//! Message authentication through the running server (docs/msgauth.md):
//! with msgauth_enable = yes the delivered message carries our
//! Authentication-Results header, a forged one claiming our authserv-id is
//! removed, and reject_dmarc_policy in smtpd_end_of_data_restrictions
//! refuses a p=reject failure. DNS is a small dnspython server on loopback
//! (python3-dnspython, .ci/packages.txt) named by dns_servers.

mod common;

use std::process::{Child, Command, Stdio};

use common::*;

const DNS: &str = r#"
import socket, sys
import dns.message, dns.rrset, dns.rcode
zone = {
    "ok.test.": ["v=spf1 ip4:127.0.0.1 -all"],
    "forged.test.": ["v=spf1 ip4:192.0.2.1 -all"],
    "_dmarc.forged.test.": ["v=DMARC1; p=reject"],
}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(4096)
    q = dns.message.from_wire(data)
    r = dns.message.make_response(q)
    name = q.question[0].name.to_text().lower()
    if q.question[0].rdtype == 16 and name in zone:
        r.answer.append(dns.rrset.from_text_list(name, 60, "IN", "TXT", ['"%s"' % t for t in zone[name]]))
    elif not any(name == k or k.endswith("." + name) for k in zone):
        r.set_rcode(dns.rcode.NXDOMAIN)
    s.sendto(r.to_wire(), peer)
"#;

struct Dns(Child);

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dns(port: u16) -> Dns {
    let mut c = Command::new("/usr/bin/python3")
        .args(["-c", DNS, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with dnspython (.ci/packages.txt)");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Dns(c)
}

#[test]
fn header_added_forged_removed_dmarc_reject() {
    let dport = free_port();
    let _dns = dns(dport);
    let mut s = Server::seed(
        VIRTUAL_AFTER,
        &format!(
            "dns_servers = 127.0.0.1:{dport}\nmsgauth_enable = yes\nsmtpd_end_of_data_restrictions = reject_dmarc_policy\n"
        ),
    );
    s.start();
    let mut c = Client::connect(s.port);
    assert!(c.cmd("EHLO client.ok.test").starts_with("250"));
    let r = c.mail(
        "alice@ok.test",
        &["hoge@mydomain.com"],
        "Authentication-Results: mail.mydomain.com; dmarc=pass header.from=ok.test\nAuthentication-Results: other.example; spf=pass\nFrom: alice@ok.test\nSubject: hi\n\nhello\n",
    );
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
    // A p=reject domain, SPF fail, no signature: refused at the end of DATA.
    let r = c.mail(
        "mallory@forged.test",
        &["hoge@mydomain.com"],
        "From: ceo@forged.test\nSubject: pay\n\nnow\n",
    );
    assert_eq!(
        r,
        "550 5.7.1 Message rejected per DMARC policy for forged.test"
    );
    c.cmd("QUIT");
    let mail = s.wait_mail(1);
    assert_eq!(mail.len(), 1, "the refused message was not delivered");
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(
        text.contains(
            "Authentication-Results: mail.mydomain.com;\n\tspf=pass smtp.mailfrom=alice@ok.test;"
        ),
        "{text}"
    );
    assert!(text.contains("dkim=none"), "{text}");
    assert!(text.contains("\tdmarc=none header.from=ok.test"), "{text}");
    assert!(!text.contains("dmarc=pass"), "forged result kept: {text}");
    assert!(
        text.contains("Authentication-Results: other.example; spf=pass"),
        "{text}"
    );
    let log = s.wait_log("reject: END-OF-MESSAGE");
    assert!(
        log.contains("msgauth: removed 1 Authentication-Results header(s)"),
        "{log}"
    );
    assert!(
        log.contains("msgauth: spf=fail smtp.mailfrom=<mallory@forged.test>"),
        "{log}"
    );
    assert!(
        log.contains("reject: END-OF-MESSAGE from localhost[127.0.0.1]: 550 5.7.1 Message rejected per DMARC policy for forged.test; from=<mallory@forged.test> to=<hoge@mydomain.com> proto=ESMTP helo=<client.ok.test>"),
        "{log}"
    );

    // yubin trace --message: the same verdicts, explained.
    let ok = s.path("ok.eml");
    std::fs::write(
        &ok,
        "Authentication-Results: mail.mydomain.com; dmarc=pass\nFrom: alice@ok.test\n\nhello\n",
    )
    .unwrap();
    let out = s.yubin(&[
        "trace",
        "--message",
        ok.to_str().unwrap(),
        "--client",
        "127.0.0.1",
        "--helo",
        "client.ok.test",
        "--from",
        "alice@ok.test",
    ]);
    assert!(
        out.contains("SPF (MAIL FROM identity): pass (sender <alice@ok.test>, domain ok.test)"),
        "{out}"
    );
    assert!(
        out.contains("  record: \"v=spf1 ip4:127.0.0.1 -all\""),
        "{out}"
    );
    assert!(
        out.contains("  matched: ip4:127.0.0.1 (in ok.test)"),
        "{out}"
    );
    assert!(
        out.contains("DKIM: none (no DKIM-Signature header)"),
        "{out}"
    );
    assert!(out.contains("1 Authentication-Results header(s) claiming authserv-id mail.mydomain.com would be removed"), "{out}");
    assert!(out.contains("verdict: accepted (header added)"), "{out}");
    let bad = s.path("bad.eml");
    std::fs::write(&bad, "From: ceo@forged.test\n\nnow\n").unwrap();
    let out = s.yubin_output(&[
        "trace",
        "--message",
        bad.to_str().unwrap(),
        "--client",
        "127.0.0.1",
        "--helo",
        "client.ok.test",
        "--from",
        "mallory@forged.test",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  matched: -all (in forged.test)"), "{text}");
    assert!(
        text.contains("  record at _dmarc.forged.test: \"v=DMARC1; p=reject\""),
        "{text}"
    );
    assert!(text.contains("verdict: RejectDmarcPolicy in smtpd_end_of_data_restrictions answers \"550 5.7.1 Message rejected per DMARC policy for forged.test\""), "{text}");
    s.stop();

    // Off by default: no header, no checks.
    let mut s = Server::seed(VIRTUAL_AFTER, &format!("dns_servers = 127.0.0.1:{dport}\n"));
    s.start();
    let mut c = Client::connect(s.port);
    assert!(c.cmd("EHLO client.ok.test").starts_with("250"));
    let r = c.mail(
        "mallory@forged.test",
        &["hoge@mydomain.com"],
        "From: ceo@forged.test\n\nnow\n",
    );
    assert!(r.starts_with("250"), "{r}");
    let mail = s.wait_mail(1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(!text.contains("Authentication-Results"), "{text}");
    s.stop();
}

/// A SASL-authenticated client (submission) is not judged: a user's own
/// mail with a p=reject From domain is accepted, with no header.
#[test]
fn authenticated_clients_are_not_judged() {
    let dport = free_port();
    let _dns = dns(dport);
    let s0 = Server::seed(VIRTUAL_AFTER, "");
    let d = s0.dir.path();
    make_cert(d);
    std::fs::write(d.join("users"), "plain@mydomain.com:{PLAIN}pencil::::::\n").unwrap();
    let mut main = std::fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\n\
         smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = passwd-file\nsmtpd_sasl_path = {d}/users\n\
         smtpd_sasl_mechanisms = PLAIN\n\
         dns_servers = 127.0.0.1:{dport}\nmsgauth_enable = yes\nsmtpd_end_of_data_restrictions = reject_dmarc_policy\n",
        d = d.display()
    ));
    std::fs::write(d.join("main.cf"), main).unwrap();
    let mut s = s0;
    s.start();
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", s.port),
            "--local-interface",
            "127.0.0.2",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "plain@mydomain.com",
            "--auth-password",
            "pencil",
            "--from",
            "mallory@forged.test",
            "--to",
            "hoge@mydomain.com",
            "--header",
            "From: ceo@forged.test",
        ])
        .output()
        .expect("swaks (.ci/packages.txt)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<~  250 2.0.0 Ok: queued as"), "{text}");
    let mail = s.wait_mail(1);
    let m = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(!m.contains("Authentication-Results"), "{m}");
    let log = s.wait_log("msgauth: skipped, SASL-authenticated client");
    assert!(!log.contains("reject: END-OF-MESSAGE"), "{log}");
    s.stop();
}

/// Misconfigurations are errors at start, never ignored in silence.
#[test]
fn restriction_misconfigurations_stop_the_server() {
    for (extra, want) in [
        (
            "smtpd_end_of_data_restrictions = reject_spf_fail\n",
            "smtpd_end_of_data_restrictions is evaluated by yubin with msgauth_enable = yes only",
        ),
        (
            "msgauth_enable = yes\nsmtpd_end_of_data_restrictions = check_client_access inline:{1.2.3.4=REJECT}\n",
            "smtpd_end_of_data_restrictions",
        ),
        (
            "msgauth_enable = yes\nsmtpd_recipient_restrictions = reject_dmarc_policy, reject_unauth_destination\n",
            "use it in smtpd_end_of_data_restrictions only",
        ),
    ] {
        let s = Server::seed(VIRTUAL_AFTER, extra);
        let out = Command::new(bin())
            .arg("-c")
            .arg(s.dir.path())
            .arg("serve")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}: started");
        assert!(err.contains(want), "{extra}: {err}");
    }
}
