//! DANE (RFC 7672) against a TLS peer in the lab. yubin trusts the AD bit
//! of its resolver, as Postfix does (it validates no DNSSEC itself): the
//! lab's unbound serves unsigned local data and never sets AD, so these
//! tests answer the client's DNS from a stub resolver that sets AD or not
//! per case — a stand-in for a validating resolver on the host. What is
//! tested is yubin's DANE logic (which records count, what each level does
//! with them, certificate matching over a real handshake), not DNSSEC.
//! Needs root (netlab).

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector, TLSA};
use hickory_resolver::proto::rr::rdata::{A, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use support::*;
use yubin_outbound::agent::{deliver, Delivery, Job, Status};
use yubin_outbound::{Dns, Nexthop, TlsLevel};
use yubin_smtp::client::Rcpt;

/// What the stub resolver answers.
#[derive(Clone)]
struct Zone {
    /// The AD bit on every answer.
    ad: bool,
    /// TLSA records of `_25._tcp.mx1.lab.test` (none: NXDOMAIN).
    tlsa: Vec<(u8, u8, u8, Vec<u8>)>,
}

fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries().first()?.clone();
    let name = question.name().to_ascii().to_ascii_lowercase();
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(q.op_code())
        .set_recursion_desired(true)
        .set_recursion_available(true)
        .set_authentic_data(zone.ad);
    r.add_query(question.clone());
    let owner = question.name().clone();
    let mut records: Vec<RData> = Vec::new();
    let known = match (name.as_str(), question.query_type()) {
        ("example.test.", RecordType::MX) => {
            records.push(RData::MX(MX::new(
                10,
                Name::from_ascii("mx1.lab.test.").ok()?,
            )));
            true
        }
        ("example.test.", _) => true,
        ("mx1.lab.test.", RecordType::A) => {
            records.push(RData::A(A::from(Ipv4Addr::new(10, 61, 0, 10))));
            true
        }
        ("mx1.lab.test.", _) => true,
        ("_25._tcp.mx1.lab.test.", RecordType::TLSA) => {
            for (u, s, m, d) in &zone.tlsa {
                records.push(RData::TLSA(TLSA::new(
                    CertUsage::from(*u),
                    Selector::from(*s),
                    Matching::from(*m),
                    d.clone(),
                )));
            }
            !zone.tlsa.is_empty()
        }
        _ => false,
    };
    if !known {
        r.set_response_code(ResponseCode::NXDomain);
    }
    for d in records {
        r.add_answer(Record::from_rdata(owner.clone(), 60, d));
    }
    r.to_vec().ok()
}

/// A certificate for mx1.lab.test, its key, and its TLSA 3 1 1 digest.
struct Cert {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    spki_sha256: Vec<u8>,
}

fn cert(lab: &Lab) -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let c = rcgen::CertificateParams::new(vec!["mx1.lab.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert, keyf) = (lab.path("mx1.crt"), lab.path("mx1.key"));
    std::fs::write(&cert, c.pem()).unwrap();
    std::fs::write(&keyf, key.serialize_pem()).unwrap();
    // The digest as an admin computes it for the DNS (openssl), not with
    // yubin's own code.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary",
            cert.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.len() == 32, "{out:?}");
    Cert {
        cert,
        key: keyf,
        spki_sha256: out.stdout,
    }
}

/// `yubin trace`'s TLS part for u@example.test under `level`.
fn explain(lab: &Lab, zone: Zone, level: TlsLevel) -> String {
    in_ns(lab.ns("client"), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let stub = stub(zone).await;
            let mut s = settings();
            s.tls_level = level;
            s.dns_servers = vec![stub];
            let ob = yubin_outbound::Outbound {
                settings: s,
                dns: Dns::new(Some(&[stub])),
                cache: Default::default(),
            };
            let nexthop = Nexthop::parse("example.test").unwrap();
            ob.explain(&nexthop, "s@client.lab.test").await.to_string()
        })
    })
}

/// Starts the stub resolver on the current runtime; its address.
async fn stub(zone: Zone) -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let sock = Arc::new(sock);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            if let Some(a) = answer(&zone, &buf[..n]) {
                let _ = sock.send_to(&a, from).await;
            }
        }
    });
    addr
}

fn send(lab: &Lab, zone: Zone, level: TlsLevel, id: &str) -> Delivery {
    let id = id.to_string();
    in_ns(lab.ns("client"), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let stub = stub(zone).await;
            let mut s = settings();
            s.tls_level = level;
            s.dns_servers = vec![stub];
            let dns = Dns::new(Some(&[stub]));
            let msg = message(&id);
            let job = Job {
                queue_id: "DANE",
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
fn dane_and_dane_only_over_a_real_handshake() {
    let lab = Lab::new(&[]);
    let c = cert(&lab);
    let log = lab.peer(
        "mx1",
        &format!("{NET}.10"),
        &[
            "--tls",
            "--cert",
            c.cert.to_str().unwrap(),
            "--key",
            c.key.to_str().unwrap(),
        ],
    );
    let good = vec![(3, 1, 1, c.spki_sha256.clone())];
    let bad = vec![(3, 1, 1, vec![0x55; 32])];
    let tls_note = |d: &Delivery, what: &str| d.notes.iter().any(|n| n.starts_with(what));

    // What `yubin trace` shows for the policy.
    let hex: String = c.spki_sha256.iter().map(|b| format!("{b:02x}")).collect();
    let t = explain(
        &lab,
        Zone {
            ad: true,
            tlsa: good.clone(),
        },
        TlsLevel::Dane,
    );
    assert!(
        t.contains("TLS: dane (from smtp_tls_security_level)")
            && t.contains("DANE: MX records of example.test: DNSSEC-authenticated (AD)")
            && t.contains(&format!(
                "DANE: _25._tcp.mx1.lab.test: TLSA (authenticated): 3 1 1 {hex}"
            )),
        "{t}"
    );
    let t = explain(
        &lab,
        Zone {
            ad: false,
            tlsa: good.clone(),
        },
        TlsLevel::Dane,
    );
    assert!(
        t.contains("not authenticated (no AD from the resolver): no DANE"),
        "{t}"
    );

    // Authenticated TLSA 3 1 1 that matches: delivered, verified.
    let d = send(
        &lab,
        Zone {
            ad: true,
            tlsa: good.clone(),
        },
        TlsLevel::Dane,
        "ok",
    );
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");
    assert!(
        tls_note(&d, "Verified TLS connection established to mx1.lab.test"),
        "{d:?}"
    );

    // Authenticated TLSA that does not match: never sent, deferred with why.
    let d = send(
        &lab,
        Zone {
            ad: true,
            tlsa: bad.clone(),
        },
        TlsLevel::Dane,
        "mismatch",
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred, "{d:?}");
    assert!(r.text.contains("DANE TLSA"), "{}", r.text);

    // The same records without AD are not DANE: `dane` is opportunistic.
    let d = send(
        &lab,
        Zone {
            ad: false,
            tlsa: bad.clone(),
        },
        TlsLevel::Dane,
        "insecure",
    );
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");
    assert!(
        tls_note(&d, "Untrusted TLS connection established"),
        "{d:?}"
    );
    // ...and `dane-only` refuses.
    let d = send(
        &lab,
        Zone {
            ad: false,
            tlsa: good.clone(),
        },
        TlsLevel::DaneOnly,
        "only1",
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred, "{d:?}");
    assert_eq!(r.dsn.to_string(), "4.7.5");
    assert!(
        r.text.contains("no DNSSEC-authenticated MX records"),
        "{}",
        r.text
    );

    // Secure MX, securely no TLSA: `dane` is `may`, `dane-only` defers.
    let d = send(
        &lab,
        Zone {
            ad: true,
            tlsa: vec![],
        },
        TlsLevel::Dane,
        "none",
    );
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");
    let d = send(
        &lab,
        Zone {
            ad: true,
            tlsa: vec![],
        },
        TlsLevel::DaneOnly,
        "only2",
    );
    assert_eq!(d.results[0].status, Status::Deferred, "{d:?}");
    assert!(
        d.results[0]
            .text
            .contains("no DNSSEC-authenticated TLSA records for _25._tcp.mx1.lab.test"),
        "{}",
        d.results[0].text
    );
    // dane-only with matching records delivers.
    let d = send(
        &lab,
        Zone {
            ad: true,
            tlsa: good,
        },
        TlsLevel::DaneOnly,
        "only3",
    );
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");

    // Only usable records: PKIX-EE (1) alone means TLS without
    // authentication (RFC 7672 section 2.2), so the bad digest is ignored.
    let d = send(
        &lab,
        Zone {
            ad: true,
            tlsa: vec![(1, 1, 1, vec![0x55; 32])],
        },
        TlsLevel::Dane,
        "unusable",
    );
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");
    assert!(
        tls_note(&d, "Untrusted TLS connection established"),
        "{d:?}"
    );

    count_events(&log, "accepted", 5);
    let accepted = events(&log, "accepted");
    assert_eq!(accepted.len(), 5, "{accepted:?}");
    assert!(
        accepted.iter().all(|a| a["tls"] == serde_json::json!(true)),
        "{accepted:?}"
    );
}

/// DANE-TA(2): the TLSA record names the issuing CA; the server sends it in
/// its chain, and the chain must verify up to it and name the MX host.
#[test]
fn dane_ta_checks_the_chain_up_to_the_named_ca() {
    let lab = Lab::new(&[]);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "lab CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["mx1.lab.test".into()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let (certf, keyf) = (lab.path("chain.crt"), lab.path("leaf.key"));
    std::fs::write(&certf, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(&keyf, leaf_key.serialize_pem()).unwrap();
    let log = lab.peer(
        "mx1",
        &format!("{NET}.10"),
        &[
            "--tls",
            "--cert",
            certf.to_str().unwrap(),
            "--key",
            keyf.to_str().unwrap(),
        ],
    );
    // 2 0 1: SHA-256 of the CA certificate, as `openssl x509 -outform DER | sha256`.
    let ca_digest = {
        let cap = lab.path("ca.crt");
        std::fs::write(&cap, ca.pem()).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -in {} -outform DER | openssl dgst -sha256 -binary",
                cap.display()
            ))
            .output()
            .unwrap();
        out.stdout
    };
    let d = send(
        &lab,
        Zone {
            ad: true,
            tlsa: vec![(2, 0, 1, ca_digest)],
        },
        TlsLevel::DaneOnly,
        "ta",
    );
    assert_eq!(d.results[0].status, Status::Sent, "{d:?}");
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("Verified TLS connection established to mx1.lab.test")),
        "{d:?}"
    );
    // A TLSA record for another CA: refused.
    let d = send(
        &lab,
        Zone {
            ad: true,
            tlsa: vec![(2, 0, 1, vec![0x11; 32])],
        },
        TlsLevel::DaneOnly,
        "ta-bad",
    );
    assert_eq!(d.results[0].status, Status::Deferred, "{d:?}");
    assert_eq!(count_events(&log, "accepted", 1), 1);
}
