//! `yubin trace` for a remote address (issue 12 item 6): transport,
//! nexthop and why, the servers in order, the TLS level and where it comes
//! from, and the DKIM decision. A relayhost in brackets needs no DNS.

mod common;

use std::process::Command;

#[test]
fn remote_address_shows_route_tls_and_dkim() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("main.cf"),
        "myhostname = mail.example.test\nmydestination = localhost\nalias_maps =\n\
         relayhost = [127.0.0.1]:2600\nsmtp_tls_security_level = encrypt\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .arg("-c")
        .arg(d.path())
        .args(["trace", "--from", "me@example.test", "someone@example.org"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("via smtp"), "{text}");
    assert!(
        text.contains("nexthop [127.0.0.1]:2600 (relayhost = [127.0.0.1]:2600)"),
        "{text}"
    );
    assert!(text.contains("1. 127.0.0.1"), "{text}");
    assert!(
        text.contains("TLS: encrypt (from smtp_tls_security_level)"),
        "{text}"
    );
    assert!(text.contains("DKIM: not signed"), "{text}");
}
