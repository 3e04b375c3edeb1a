//! STARTTLS, TLS-on-connect and AUTH (PLAIN, LOGIN, CRAM-MD5) against a real
//! TLS server (Python's ssl module with a self-signed certificate made by
//! openssl), side by side with swaks.

mod common;
use common::*;
use std::process::Command;

/// A test CA and a server certificate it signed for mail.mydomain.com, in a
/// temporary dir: (dir, server cert, server key, CA cert).
fn cert() -> (tempfile::TempDir, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        p("ext.cnf"),
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:mail.mydomain.com\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=yubin test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/C=JP/O=yubin test/CN=mail.mydomain.com",
        "-keyout",
        &p("key.pem"),
        "-out",
        &p("req.csr"),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p("req.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("cert.pem"),
    ]);
    let (c, k, ca) = (p("cert.pem"), p("key.pem"), p("ca.pem"));
    (dir, c, k, ca)
}

fn base(port: u16) -> Vec<String> {
    [
        "-s",
        &format!("127.0.0.1:{port}"),
        "-t",
        "root@localhost",
        "-f",
        "a@example.com",
        "-h",
        "client.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn both(args: &[String]) -> (Output, Output) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    (send(&a, ""), swaks(&a, ""))
}

#[test]
fn starttls_transcript_matches_swaks() {
    let (_d, c, k, _ca) = cert();
    let peer = replay(&["--cert", &c, "--key", &k]);
    let mut args = base(peer.port);
    args.push("--tls".into());
    let (ours, theirs) = both(&args);
    assert_eq!(
        (ours.code, theirs.code),
        (0, 0),
        "{}\n{}",
        ours.stderr,
        ours.stdout
    );
    assert!(ours
        .stdout
        .contains(" -> STARTTLS\n<-  220 2.0.0 Ready to start TLS\n"));
    assert!(
        ours.stdout.contains("=== TLS started with cipher TLSv1.3:"),
        "{}",
        ours.stdout
    );
    assert!(ours
        .stdout
        .contains("=== TLS peer DN=\"/C=JP/O=yubin test/CN=mail.mydomain.com\""));
    assert!(ours
        .stdout
        .contains(" ~> EHLO client.example\n<~  250-mail.mydomain.com\n"));
    assert!(ours.stdout.contains(" ~> QUIT\n<~  221 2.0.0 Bye\n"));
    assert_same("starttls", &ours.stdout, &theirs.stdout);
}

#[test]
fn tls_on_connect_and_verification() {
    let (_d, c, k, ca) = cert();
    let peer = replay(&["--cert", &c, "--key", &k, "--tls-on-connect"]);
    let mut args = base(peer.port);
    args.push("--tls-on-connect".into());
    let (ours, theirs) = both(&args);
    assert_eq!((ours.code, theirs.code), (0, 0), "{}", ours.stderr);
    assert!(ours.stdout.contains("<~  220 mail.mydomain.com ESMTP"));
    assert_same("tls-on-connect", &ours.stdout, &theirs.stdout);

    // --tls-verify with the system store refuses a self-signed certificate,
    // and accepts it given as the CA with the right name.
    args.push("--tls-verify".into());
    let (ours, theirs) = both(&args);
    assert_eq!((ours.code, theirs.code), (29, 29), "{}", ours.stdout);
    assert!(
        ours.stderr.contains("*** TLS startup failed ("),
        "{}",
        ours.stderr
    );
    args.extend([
        "--tls-ca-path".into(),
        ca,
        "--tls-sni".into(),
        "mail.mydomain.com".into(),
    ]);
    let out = send(&args.iter().map(String::as_str).collect::<Vec<_>>(), "");
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn starttls_not_offered() {
    let peer = replay(&[]);
    let mut args = base(peer.port);
    args.push("--tls".into());
    let (ours, theirs) = both(&args);
    assert_eq!((ours.code, theirs.code), (29, 29));
    assert!(ours.stderr.contains("*** Host did not advertise STARTTLS"));
    assert_same("no starttls", &ours.stdout, &theirs.stdout);
    args.pop();
    args.push("--tls-optional".into());
    let (ours, theirs) = both(&args);
    assert_eq!((ours.code, theirs.code), (0, 0));
}

#[test]
fn auth_mechanisms_match_swaks() {
    let peer = replay(&["--auth", "hoge:s3cret"]);
    for mech in [
        vec!["-a"],
        vec!["-a", "PLAIN"],
        vec!["-a", "LOGIN"],
        vec!["-a", "CRAM-MD5"],
        vec!["-a", "LOGIN", "-apt"],
        vec!["-a", "PLAIN", "-ahp"],
    ] {
        let mut args = base(peer.port);
        args.extend(mech.iter().map(|s| s.to_string()));
        args.extend(
            ["-au", "hoge", "-ap", "s3cret"]
                .iter()
                .map(|s| s.to_string()),
        );
        let (ours, theirs) = both(&args);
        assert_eq!(
            (ours.code, theirs.code),
            (0, 0),
            "{mech:?}: {}",
            ours.stdout
        );
        assert!(
            ours.stdout
                .contains("<-  235 2.7.0 Authentication successful"),
            "{mech:?}"
        );
        assert_same(&format!("{mech:?}"), &ours.stdout, &theirs.stdout);
    }
    // Default choice: swaks tries CRAM-MD5 first when offered.
    let mut args = base(peer.port);
    args.extend(
        ["-au", "hoge", "-ap", "s3cret"]
            .iter()
            .map(|s| s.to_string()),
    );
    let ours = send(&args.iter().map(String::as_str).collect::<Vec<_>>(), "");
    assert!(
        ours.stdout.contains(" -> AUTH CRAM-MD5\n"),
        "{}",
        ours.stdout
    );
}

#[test]
fn wrong_password_exits_28() {
    let peer = replay(&["--auth", "hoge:s3cret"]);
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        let mut args = base(peer.port);
        args.extend(
            ["-a", mech, "-au", "hoge", "-ap", "wrong"]
                .iter()
                .map(|s| s.to_string()),
        );
        let (ours, theirs) = both(&args);
        assert_eq!((ours.code, theirs.code), (28, 28), "{mech}");
        assert!(ours.stderr.contains("*** No authentication type succeeded"));
        assert_same(mech, &ours.stdout, &theirs.stdout);
    }
    // Not offered at all.
    let peer = replay(&[]);
    let mut args = base(peer.port);
    args.extend(["-au", "hoge", "-ap", "x"].iter().map(|s| s.to_string()));
    let (ours, theirs) = both(&args);
    assert_eq!((ours.code, theirs.code), (28, 28));
    assert!(ours
        .stderr
        .contains("*** Host did not advertise authentication"));
}
