//! The SMTP client (yubin-outbound) relaying through a smarthost that wants
//! AUTH: a yubin server with submission-style settings (STARTTLS, then
//! AUTH PLAIN/LOGIN from smtp_sasl_password_maps, looked up by
//! `[host]:port` as Postfix's SASL_README shows). The smarthost marks the
//! mail with `(Authenticated sender: ...)`, which proves the login.

mod common;

use std::time::Duration;

use common::{Server, VIRTUAL_AFTER};
use yubin_outbound::agent::{Job, Status};
use yubin_outbound::{Nexthop, Outbound, TlsLevel};
use yubin_smtp::client::Rcpt;

fn smarthost() -> Server {
    let s = Server::seed(VIRTUAL_AFTER, "");
    let d = s.dir.path();
    common::make_cert(d);
    let hash = common::sha512_crypt("secret");
    std::fs::write(
        d.join("users"),
        format!(
            "hoge@mydomain.com:{{SHA512-CRYPT}}{hash}:5000:5000::/home/vmail/mydomain.com/hoge::\n"
        ),
    )
    .unwrap();
    let mut main = std::fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\n\
         smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = passwd-file\nsmtpd_sasl_path = {d}/users\nsmtpd_tls_auth_only = yes\n\
         smtpd_sasl_authenticated_header = yes\n",
        d = d.display()
    ));
    std::fs::write(d.join("main.cf"), main).unwrap();
    s
}

/// The client's own configuration directory: main.cf with relayhost and
/// the password table.
fn client_conf(port: u16, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("sasl_passwd"),
        format!("[127.0.0.1]:{port} hoge@mydomain.com:{password}\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("main.cf"),
        format!(
            "myhostname = client.test\nalias_maps =\nrelayhost = [127.0.0.1]:{port}\n\
             smtp_tls_security_level = encrypt\nsmtp_sasl_auth_enable = yes\n\
             smtp_sasl_password_maps = texthash:{d}/sasl_passwd\nsmtp_sasl_security_options = noanonymous\n\
             smtp_helo_timeout = 10s\nsmtp_data_done_timeout = 10s\n",
            d = d.display()
        ),
    )
    .unwrap();
    dir
}

fn relay(conf: &std::path::Path) -> yubin_outbound::RcptResult {
    let cfg = yubin_conf::Config::load(conf).unwrap();
    let out = Outbound::from_config(&cfg).unwrap();
    assert_eq!(out.settings.tls_level, TlsLevel::Encrypt);
    // Routed as the queue manager routes it: relayhost, by the resolver.
    let resolver = yubin_addr::Resolver::new(&cfg).unwrap();
    let (deliveries, _) = resolver.expand(&yubin_addr::Address::new("hoge", "mydomain.com"));
    let nexthop: Nexthop = match &deliveries[0].agent {
        yubin_addr::Agent::Smtp { nexthop, .. } => nexthop.clone(),
        other => panic!("{other:?}"),
    };
    let msg = b"From: hoge@mydomain.com\nSubject: via smarthost\n\nhello\n".to_vec();
    let job = Job {
        queue_id: "AUTHTEST",
        sender: "hoge@mydomain.com",
        recipients: vec![Rcpt::new("hoge@mydomain.com")],
        message: &msg,
        ret: None,
        envid: None,
        smtputf8: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), out.deliver(&nexthop, &job))
            .await
            .expect("bounded")
    })
    .results
    .remove(0)
}

#[test]
fn relayhost_with_sasl_auth() {
    let mut s = smarthost();
    s.start();
    let conf = client_conf(s.port, "secret");
    let r = relay(conf.path());
    assert_eq!(r.status, Status::Sent, "{r:?}");
    assert_eq!(r.relay, format!("127.0.0.1[127.0.0.1]:{}", s.port));
    let files = s.wait_mail(1);
    let body = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        body.contains("(Authenticated sender: hoge@mydomain.com)"),
        "{body}"
    );

    // A wrong password: deferred (smtp_sasl_auth_soft_bounce), with the
    // server's words.
    let conf = client_conf(s.port, "wrong");
    let r = relay(conf.path());
    assert_eq!(r.status, Status::Deferred, "{r:?}");
    assert!(
        r.text
            .starts_with("SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8"),
        "{}",
        r.text
    );
    s.stop();
}
