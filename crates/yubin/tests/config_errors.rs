//! Bad configuration: every case is an error that names the file and line,
//! with exit status 2, and a server with such a configuration does not start.

mod common;

use std::process::Command;

fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(common::bin())
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn main_cf_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let main = d.join("main.cf");
    let cases: [(&[u8], &str); 4] = [
        (
            b"myhostname = mail.example.com\nmyorigin = ${mydomain\n",
            "main.cf:2: parameter myorigin: unterminated \"${mydomain\"",
        ),
        (b"a = $b\nb = $a\nmyorigin = $a\n", "parameter loop"),
        (
            b"myhostname = ok\nthis line has no equals sign\n",
            "main.cf:2: missing '='",
        ),
        (
            b"myhostname = ok\nmydomain = caf\xe9\n",
            "main.cf:2: invalid UTF-8 byte",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&main, text).unwrap();
        for args in [
            &["postconf", "-n"][..],
            &["trace", "root@localhost"],
            &["serve"],
        ] {
            let (code, err) = run(d, args);
            assert_eq!(code, 2, "{args:?} {err}");
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }
}

#[test]
fn table_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("virtual"), "root hoge@example.com\nnovalue\n").unwrap();
    let (code, err) = run(d, &["postmap", &d.join("virtual").display().to_string()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("virtual, line 2: expected format: key whitespace value"),
        "{err}"
    );
    let (code, err) = run(d, &["postmap", &d.join("missing").display().to_string()]);
    assert_eq!(code, 2);
    assert!(err.contains("missing: No such file or directory"), "{err}");
    // A main.cf naming a table that was never built: the server refuses to start and says what to run.
    std::fs::write(
        d.join("main.cf"),
        format!("virtual_alias_maps = hash:{}/virtual\n", d.display()),
    )
    .unwrap();
    let (code, err) = run(d, &["serve"]);
    assert_eq!(code, 2);
    assert!(err.contains("run \"yubin postmap"), "{err}");
}

#[test]
fn unknown_parameters_are_reported_by_name_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.cf"),
        "myhostname = ok\nsmtp_tls_CApath = /etc/ssl/certs\n",
    )
    .unwrap();
    let (code, err) = run(dir.path(), &["postconf", "-n"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("main.cf:2: unknown parameter smtp_tls_CApath"),
        "{err}"
    );
}

/// A main.cf without compatibility_level is level 0, as in Postfix 3.7:
/// smtpd_relay_restrictions is empty, so relay control must be in
/// smtpd_recipient_restrictions. Postfix's smtpd dies at every connection
/// ("specify at least one working instance"); yubin refuses to start and
/// says which line to add.
#[test]
fn level_0_without_relay_control_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("main.cf"),
        "myhostname = mail.mydomain.com\nmydestination = localhost, $myhostname\ninet_interfaces = loopback-only\nalias_maps =\nlocal_recipient_maps =\n",
    )
    .unwrap();
    let (code, err) = run(d, &["serve"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject_unauth_destination")
            && err.contains("compatibility_level = 0")
            && err.contains("add \"compatibility_level = 3.6\" to main.cf"),
        "{err}"
    );
    // Each backwards-compatible default is named, as Postfix logs them.
    let (_, out) = run(d, &["postconf", "-n"]);
    assert!(
        out.contains("using backwards-compatible default setting append_dot_mydomain=yes"),
        "{out}"
    );
}
