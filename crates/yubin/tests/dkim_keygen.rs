//! `yubin dkim keygen` end to end: the key it writes, loaded through
//! main.cf's `yubin_dkim_signing_maps`, signs a message that Debian's
//! python3-dkim verifies with the TXT record the command printed.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use yubin_outbound::Outbound;
use yubin_smtp::client::crlf;

fn keygen(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::bin())
        .arg("-c")
        .arg(dir)
        .args(["dkim", "keygen"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn keygen_record_and_signing_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = keygen(d, &["Example.TEST", "mail2026", "--algorithm", "ed25519"]);
    assert_eq!(code, 0, "{err}");
    let key = d.join("dkim/example.test.mail2026.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let record = out
        .lines()
        .find(|l| l.starts_with("mail2026._domainkey.example.test. IN TXT ( \""))
        .unwrap_or_else(|| panic!("{out}"));
    let txt: String = record
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    assert!(txt.starts_with("v=DKIM1; k=ed25519; p="), "{txt}");
    let table_line = out.lines().last().unwrap();
    assert_eq!(
        table_line,
        format!("example.test    mail2026:{}", key.display())
    );
    // Never over an existing key.
    let (code, _, err) = keygen(d, &["example.test", "mail2026"]);
    assert_ne!(code, 0);
    assert!(err.contains("File exists"), "{err}");
    assert!(keygen(d, &["not a domain", "s"]).0 != 0);

    // The printed line as the signing table.
    std::fs::write(d.join("dkim/signing"), format!("{table_line}\n")).unwrap();
    std::fs::write(
        d.join("main.cf"),
        format!(
            "myhostname = mail.example.test\nyubin_dkim_signing_maps = texthash:{}/dkim/signing\n",
            d.display()
        ),
    )
    .unwrap();
    let cfg = yubin_conf::Config::load(d).unwrap();
    let ob = Outbound::from_config(&cfg).unwrap();
    let signer = ob
        .settings
        .dkim
        .for_sender("someone@example.test")
        .expect("signer for the domain");
    let msg = crlf(b"From: someone@example.test\nTo: x@other.test\nSubject: hi\n\nbody\n");
    let mut signed = signer.sign(&msg).unwrap().into_bytes();
    signed.extend_from_slice(&msg);
    let script = "import sys, dkim\ntxt=sys.argv[1].encode()\nm=sys.stdin.buffer.read()\nok=dkim.verify(m, dnsfunc=lambda n, timeout=5: txt)\nsys.exit(0 if ok else 1)\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script, &txt])
        .stdin(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 with python3-dkim (.ci/packages.txt)");
    child.stdin.take().unwrap().write_all(&signed).unwrap();
    assert!(child.wait().unwrap().success(), "dkimpy did not verify");
}
