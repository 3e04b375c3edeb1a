//! MTA-STS (RFC 8461) in the lab: the lab DNS publishes
//! `_mta-sts.example.test` TXT and `mta-sts.example.test` (host mx2, where
//! Python's http.server serves the policy over HTTPS with a lab-CA
//! certificate); the MX mx1 runs smtp_peer.py with STARTTLS and a lab-CA
//! certificate. yubin trusts the lab CA through yubin_mta_sts_CAfile.
//! Needs root (netlab).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use yubin_outbound::agent::{deliver, Delivery, Job, Status};
use yubin_outbound::settings::MtaSts;
use yubin_outbound::{Dns, Nexthop, TlsClient, TlsLevel};
use yubin_smtp::client::Rcpt;

const HTTPS: &str = r#"
import http.server, ssl, sys, os
os.chdir(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = http.server.HTTPServer((sys.argv[4], 443), http.server.SimpleHTTPRequestHandler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

struct Pki {
    ca: std::path::PathBuf,
}

/// A lab CA, and certificates it signs for `name`, written as chain + key.
fn pki(lab: &Lab) -> (Pki, impl Fn(&str) -> (String, String) + '_) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "lab CA");
    let ca = p.self_signed(&ca_key).unwrap();
    let ca_path = lab.path("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let issue = move |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let (c, k) = (
            lab.path(&format!("{name}.crt")),
            lab.path(&format!("{name}.key")),
        );
        std::fs::write(&c, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    };
    (Pki { ca: ca_path }, issue)
}

fn send(lab: &Lab, ca: &std::path::Path, id: &str) -> Delivery {
    let (id, ca) = (id.to_string(), ca.to_path_buf());
    in_ns(lab.ns("client"), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut s = settings();
            s.tls_level = TlsLevel::May;
            s.mta_sts = Some(MtaSts {
                tls: TlsClient::new(Some(&ca)).unwrap(),
                cache: Default::default(),
            });
            let dns_addr: SocketAddr = format!("{NET}.53:53").parse().unwrap();
            let dns = Dns::new(Some(&[dns_addr]));
            let msg = message(&id);
            let job = Job {
                queue_id: "STS",
                sender: "s@client.lab.test",
                recipients: vec![Rcpt::new("u@example.test")],
                message: msg.as_bytes(),
                ret: None,
                envid: None,
                smtputf8: false,
            };
            let nexthop = Nexthop::parse("example.test").unwrap();
            tokio::time::timeout(Duration::from_secs(90), deliver(&s, &dns, &nexthop, &job))
                .await
                .expect("bounded")
        })
    })
}

#[test]
fn enforce_testing_and_no_policy() {
    let lab = Lab::new(&[
        "example.test. MX 10 mx1.lab.test.",
        "_mta-sts.example.test. TXT \"v=STSv1; id=20261202\"",
        &format!("mta-sts.example.test. A {NET}.11"),
    ]);
    let (pki, issue) = pki(&lab);
    let (mx_cert, mx_key) = issue("mx1.lab.test");
    let (web_cert, web_key) = issue("mta-sts.example.test");
    let log = lab.peer(
        "mx1",
        &format!("{NET}.10"),
        &["--tls", "--cert", &mx_cert, "--key", &mx_key],
    );
    let www = lab.path("www");
    std::fs::create_dir_all(www.join(".well-known")).unwrap();
    let policy = |text: &str| std::fs::write(www.join(".well-known/mta-sts.txt"), text).unwrap();
    let script = lab.path("https.py");
    std::fs::write(&script, HTTPS).unwrap();
    let ip = format!("{NET}.11");
    lab.sh(&[
        "spawn",
        "mx2",
        lab.path("https.log").to_str().unwrap(),
        "python3",
        script.to_str().unwrap(),
        &web_cert,
        &web_key,
        www.to_str().unwrap(),
        &ip,
    ]);
    lab.sh(&["wait", "client", &ip, "443", "10"]);

    // enforce, mx1 named: verified TLS to mx1.
    policy("version: STSv1\r\nmode: enforce\r\nmx: *.lab.test\r\nmax_age: 86400\r\n");
    let d = send(&lab, &pki.ca, "enforce");
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("Verified TLS connection established to mx1.lab.test")),
        "{d:?}"
    );

    // enforce, mx1 not named: deferred, nothing sent.
    policy("version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 86400\n");
    let d = send(&lab, &pki.ca, "refused");
    let r = &d.results[0];
    assert_eq!(
        (r.status, r.dsn.to_string().as_str()),
        (Status::Deferred, "4.7.5"),
        "{d:?}"
    );
    assert!(
        r.text.contains("MTA-STS policy of example.test")
            && r.text
                .contains("no MX host matches its mx patterns (mail.example.test)"),
        "{}",
        r.text
    );

    // testing: delivered as without a policy, the mismatch noted.
    policy("version: STSv1\nmode: testing\nmx: mail.example.test\nmax_age: 86400\n");
    let d = send(&lab, &pki.ca, "testing");
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("in testing mode would refuse MX mx1.lab.test")),
        "{d:?}"
    );

    // No policy file (404): no policy, opportunistic TLS as configured.
    std::fs::remove_file(www.join(".well-known/mta-sts.txt")).unwrap();
    let d = send(&lab, &pki.ca, "nopolicy");
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("Untrusted TLS connection established")),
        "{d:?}"
    );
    assert_eq!(count_events(&log, "accepted", 3), 3);
}
