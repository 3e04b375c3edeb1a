//! reject_unknown_recipient_domain against a real DNS server on loopback
//! (dnsmasq, authoritative for `.test`): a domain without MX or address
//! records is refused with Postfix's 450 4.1.2; a domain that exists passes.

mod common;

use std::process::{Child, Command, Stdio};

use common::{Client, Server, VIRTUAL_AFTER};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dnsmasq(port: u16) -> Dnsmasq {
    let child = Command::new("dnsmasq")
        .args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
        ])
        .arg(format!("--port={port}"))
        .args([
            "--local=/test/",
            "--address=/exists.test/192.0.2.1",
            "--mx-host=withmx.test,mx.exists.test,10",
            "--user=root",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (Debian package dnsmasq-base; .ci/run installs it)");
    std::thread::sleep(std::time::Duration::from_millis(300));
    Dnsmasq(child)
}

#[test]
fn unknown_recipient_domains_are_refused() {
    let dns_port = common::free_port();
    let _dns = dnsmasq(dns_port);
    let mut s = Server::seed(
        VIRTUAL_AFTER,
        &format!("smtpd_recipient_restrictions = reject_unknown_recipient_domain\ndns_servers = 127.0.0.1:{dns_port}\n"),
    );
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(
        c.cmd("RCPT TO:<someone@nonexistent.test>"),
        "450 4.1.2 <someone@nonexistent.test>: Recipient address rejected: Domain not found"
    );
    assert_eq!(
        c.cmd("RCPT TO:<someone@exists.test>"),
        "250 2.1.5 Ok",
        "A record"
    );
    assert_eq!(
        c.cmd("RCPT TO:<someone@withmx.test>"),
        "250 2.1.5 Ok",
        "MX record"
    );
    // Final destinations are never looked up.
    assert_eq!(c.cmd("RCPT TO:<hoge@mydomain.com>"), "250 2.1.5 Ok");
    s.wait_log(
        "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 450 4.1.2 <someone@nonexistent.test>",
    );
}
