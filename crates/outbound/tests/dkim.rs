//! DKIM signatures made by yubin, checked by an independent verifier:
//! Debian's python3-dkim (dkimpy), with the TXT record `yubin dkim keygen`
//! prints served to it in place of DNS. RSA and Ed25519 (RFC 8463), signed
//! directly and by the delivery agent on its way out.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use yubin_outbound::agent::{deliver, Job, Status};
use yubin_outbound::dkim::{keygen, Algorithm, Signer, SigningTable};
use yubin_outbound::{Dns, Nexthop, Settings};
use yubin_smtp::client::{crlf, Rcpt};

const PYTHON: &str = "/usr/bin/python3";

/// Verifies `message` with dkimpy, answering the key query with `txt`.
fn dkimpy_verify(message: &[u8], txt: &str) -> (bool, String) {
    let script = r#"
import sys, dkim
txt = sys.argv[1].encode()
msg = sys.stdin.buffer.read()
def dnsfunc(name, timeout=5):
    return txt if name == sys.argv[2].encode() else None
d = dkim.DKIM(msg)
ok = d.verify(dnsfunc=dnsfunc)
print("verified" if ok else "failed", getattr(d, "domain", b""), file=sys.stderr)
sys.exit(0 if ok else 1)
"#;
    let mut child = Command::new(PYTHON)
        .args(["-c", script, txt, "sel1._domainkey.example.test."])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON} with python3-dkim is needed (.ci/packages.txt): {e}"));
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MESSAGE: &str = "From: Alice <alice@example.test>\nTo: bob@other.test\nSubject: signed  and   folded\n header\nDate: Wed, 2 Dec 2026 12:00:00 +0000\nMessage-ID: <dkim1@example.test>\n\nHello,  with  spaces   \n\n\n";

fn signer(alg: Algorithm, dir: &std::path::Path) -> (Signer, String) {
    let key = keygen(alg).unwrap();
    let path = dir.join("key.pem");
    std::fs::write(&path, &key.private_pem).unwrap();
    (
        Signer::load("Example.TEST", "sel1", &path).unwrap(),
        key.txt,
    )
}

#[test]
fn rsa_and_ed25519_signatures_verify_with_dkimpy() {
    for alg in [Algorithm::Rsa { bits: 2048 }, Algorithm::Ed25519] {
        let dir = tempfile::tempdir().unwrap();
        let (s, txt) = signer(alg, dir.path());
        let body = crlf(MESSAGE.as_bytes());
        let header = s.sign(&body).unwrap();
        assert!(header.starts_with("DKIM-Signature: "), "{header}");
        assert!(
            header.contains("d=example.test") && header.contains("s=sel1"),
            "{header}"
        );
        let mut signed = header.clone().into_bytes();
        signed.extend_from_slice(&body);
        let (ok, why) = dkimpy_verify(&signed, &txt);
        assert!(ok, "{alg:?}: dkimpy says {why}\n{header}");
        // A changed body fails: the verifier is really checking.
        let tampered = String::from_utf8(signed).unwrap().replace("Hello", "Jello");
        let (ok, _) = dkimpy_verify(tampered.as_bytes(), &txt);
        assert!(!ok, "{alg:?}: a tampered message must not verify");
    }
}

#[test]
fn keys_and_table_errors_are_clear() {
    assert!(keygen(Algorithm::Rsa { bits: 512 }).is_err());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.pem");
    std::fs::write(&p, "not a key").unwrap();
    let e = Signer::load("x.test", "s", &p).err().unwrap();
    assert!(e.contains("no PEM private key"), "{e}");
    let (s, _) = signer(Algorithm::Ed25519, dir.path());
    let t = SigningTable::from_signers(vec![s]);
    assert!(
        t.for_sender("a@mail.example.test").is_some(),
        "parent domain"
    );
    assert!(t.for_sender("a@other.test").is_none());
    assert!(t.for_sender("").is_none());
}

#[tokio::test]
async fn the_agent_signs_what_it_sends() {
    let dir = tempfile::tempdir().unwrap();
    let (s, txt) = signer(Algorithm::Rsa { bits: 2048 }, dir.path());
    // A peer that stores the message it receives.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got = tokio::spawn(async move {
        let (c, _) = l.accept().await.unwrap();
        let (r, mut w) = c.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 peer\r\n").await.unwrap();
        let mut line = String::new();
        let mut msg = Vec::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap() == 0 {
                return msg;
            }
            let reply: &[u8] = match line.get(..4).unwrap_or("") {
                "EHLO" => b"250-peer\r\n250 PIPELINING\r\n",
                "DATA" => {
                    w.write_all(b"354 go\r\n").await.unwrap();
                    loop {
                        line.clear();
                        r.read_line(&mut line).await.unwrap();
                        if line == ".\r\n" {
                            break;
                        }
                        let l = line.strip_prefix('.').unwrap_or(&line);
                        msg.extend_from_slice(l.as_bytes());
                    }
                    b"250 2.0.0 Ok: queued as P1\r\n"
                }
                "QUIT" => {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    return msg;
                }
                _ => b"250 ok\r\n",
            };
            w.write_all(reply).await.unwrap();
        }
    });
    let mut settings = Settings::new("client.test");
    settings.dkim = SigningTable::from_signers(vec![s]);
    let nh = Nexthop::parse(&format!("[127.0.0.1]:{port}")).unwrap();
    let dns = Dns::new(Some(&["127.0.0.1:9".parse().unwrap()]));
    let job = Job {
        queue_id: "DKIM1",
        sender: "alice@example.test",
        recipients: vec![Rcpt::new("bob@other.test")],
        message: MESSAGE.as_bytes(),
        ret: None,
        envid: None,
        smtputf8: false,
    };
    let d = tokio::time::timeout(Duration::from_secs(30), deliver(&settings, &dns, &nh, &job))
        .await
        .unwrap();
    assert_eq!(d.results[0].status, Status::Sent, "{:?}", d.results[0]);
    let msg = got.await.unwrap();
    assert!(msg.starts_with(b"DKIM-Signature: "));
    let (ok, why) = dkimpy_verify(&msg, &txt);
    assert!(ok, "dkimpy: {why}");
}
