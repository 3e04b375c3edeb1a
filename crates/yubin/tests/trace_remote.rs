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
    assert!(text.contains("relayhost = [127.0.0.1]:2600 ("), "{text}");
    assert!(
        text.contains("route: transport smtp, nexthop [127.0.0.1]:2600"),
        "{text}"
    );
    assert!(
        text.contains("nexthop [127.0.0.1]:2600 (no MX lookup):"),
        "{text}"
    );
    assert!(text.contains("1. 127.0.0.1"), "{text}");
    assert!(
        text.contains("TLS: encrypt (from smtp_tls_security_level)"),
        "{text}"
    );
    assert!(text.contains("DKIM: not signed"), "{text}");
}

/// The trace names the transport_maps table line and the sender-dependent
/// relayhost entry that chose the route.
#[test]
fn trace_names_the_table_line_that_chose_the_route() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("transport"),
        "# routes\nexample.net :[127.0.0.1]:2601\n",
    )
    .unwrap();
    std::fs::write(d.path().join("sdr"), "@branch.test [127.0.0.1]:2602\n").unwrap();
    std::fs::write(
        d.path().join("main.cf"),
        format!(
            "myhostname = mail.example.test\nmydestination = localhost\nalias_maps =\n\
             transport_maps = texthash:{p}/transport\nsender_dependent_relayhost_maps = texthash:{p}/sdr\n",
            p = d.path().display()
        ),
    )
    .unwrap();
    let trace = |args: &[&str]| {
        let out = Command::new(common::bin())
            .arg("-c")
            .arg(d.path())
            .arg("trace")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = trace(&["someone@example.net"]);
    assert!(
        text.contains("transport_maps: texthash:")
            && text.contains("key \"example.net\" -> :[127.0.0.1]:2601"),
        "{text}"
    );
    assert!(text.contains("transport:2]"), "{text}");
    assert!(
        text.contains("=> someone@example.net via smtp: [127.0.0.1]:2601"),
        "{text}"
    );
    let text = trace(&["--from", "ann@branch.test", "someone@example.org"]);
    assert!(
        text.contains("sender_dependent_relayhost_maps: texthash:")
            && text.contains("key \"@branch.test\" -> [127.0.0.1]:2602"),
        "{text}"
    );
    assert!(text.contains("via smtp: [127.0.0.1]:2602"), "{text}");
}
