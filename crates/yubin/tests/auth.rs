//! SMTP AUTH over TLS with real clients (swaks, Python smtplib), relaying
//! only when authenticated, sender ownership, and failures logged in the
//! form fail2ban and yubin guard read.

mod common;

use std::process::Command;

use common::{Server, VIRTUAL_AFTER};

fn auth_server() -> Server {
    let s = Server::seed(VIRTUAL_AFTER, "");
    let d = s.dir.path();
    common::make_cert(d);
    // A SHA512-CRYPT password as `doveadm pw -s SHA512-CRYPT` makes them.
    let hash = common::sha512_crypt("secret");
    std::fs::write(d.join("users"), format!("hoge@mydomain.com:{{SHA512-CRYPT}}{hash}:5000:5000::/home/vmail/mydomain.com/hoge::\nplain@mydomain.com:{{PLAIN}}pencil::::::\n")).unwrap();
    let mut main = std::fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\n\
         smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = passwd-file\nsmtpd_sasl_path = {d}/users\nsmtpd_tls_auth_only = yes\n\
         smtpd_sasl_mechanisms = PLAIN LOGIN CRAM-MD5\nsmtpd_sasl_authenticated_header = yes\n\
         smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n\
         smtpd_sender_login_maps = inline:{{ hoge@mydomain.com=hoge@mydomain.com, boss@mydomain.com=boss@mydomain.com, plain@mydomain.com=plain@mydomain.com }}\n\
         smtpd_sender_restrictions = reject_sender_login_mismatch\n",
        d = d.display()
    ));
    std::fs::write(d.join("main.cf"), main).unwrap();
    s
}

fn swaks(port: u16, args: &[&str]) -> (i32, String) {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--local-interface",
            "127.0.0.2",
            "--tls",
        ])
        .args(args)
        .output()
        .expect("swaks");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn authenticated_relay_and_refusals() {
    let mut s = auth_server();
    s.start();
    let p = s.port;
    // PLAIN and LOGIN over STARTTLS; relaying to a remote domain is allowed once authenticated.
    for mech in ["PLAIN", "LOGIN"] {
        let (code, out) = swaks(
            p,
            &[
                "--auth",
                mech,
                "--auth-user",
                "hoge@mydomain.com",
                "--auth-password",
                "secret",
                "--from",
                "hoge@mydomain.com",
                "--to",
                "someone@example.org",
            ],
        );
        assert_eq!(code, 0, "{mech}: {out}");
        assert!(
            out.contains("<~  235 2.7.0 Authentication successful"),
            "{out}"
        );
    }
    // Without AUTH from outside mynetworks: relay denied.
    let (code, out) = swaks(
        p,
        &["--from", "x@example.net", "--to", "someone@example.org"],
    );
    assert_ne!(code, 0);
    assert!(
        out.contains("554 5.7.1 <someone@example.org>: Relay access denied"),
        "{out}"
    );
    // Wrong password.
    let (code, out) = swaks(
        p,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "hoge@mydomain.com",
            "--auth-password",
            "wrong",
            "--from",
            "hoge@mydomain.com",
            "--to",
            "hoge@mydomain.com",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        out.contains("535 5.7.8 Error: authentication failed: authentication failure"),
        "{out}"
    );
    // Sending as another user's address.
    let (code, out) = swaks(
        p,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "hoge@mydomain.com",
            "--auth-password",
            "secret",
            "--from",
            "boss@mydomain.com",
            "--to",
            "hoge@mydomain.com",
        ],
    );
    assert_ne!(code, 0);
    assert!(out.contains("553 5.7.1 <boss@mydomain.com>: Sender address rejected: not owned by user hoge@mydomain.com"), "{out}");
    // CRAM-MD5 works for a user whose password is stored in a usable form.
    let (code, out) = swaks(
        p,
        &[
            "--auth",
            "CRAM-MD5",
            "--auth-user",
            "plain@mydomain.com",
            "--auth-password",
            "pencil",
            "--from",
            "plain@mydomain.com",
            "--to",
            "hoge@mydomain.com",
        ],
    );
    assert_eq!(code, 0, "{out}");
    // A user added with `yubin passwd` can log in without a restart.
    let mut child = Command::new(common::bin())
        .arg("passwd")
        .arg("--file")
        .arg(s.path("users"))
        .arg("new@mydomain.com")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"n3w-pass\nn3w-pass\n").unwrap();
    assert!(child.wait().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_, out) = swaks(
        p,
        &[
            "--auth",
            "LOGIN",
            "--auth-user",
            "new@mydomain.com",
            "--auth-password",
            "n3w-pass",
            "--quit-after",
            "AUTH",
        ],
    );
    assert!(
        out.contains("<~  235 2.7.0 Authentication successful"),
        "{out}"
    );
    // AUTH before STARTTLS is not offered (smtpd_tls_auth_only).
    let mut c = common::Client::connect(p);
    c.cmd("EHLO x");
    assert_eq!(
        c.cmd("AUTH PLAIN AGhvZ2VAbXlkb21haW4uY29tAHNlY3JldA=="),
        "503 5.5.1 Error: authentication not enabled"
    );
    // Python smtplib: starttls + login.
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import smtplib, ssl\nc = smtplib.SMTP('127.0.0.1', {p}, source_address=('127.0.0.2', 0))\nc.starttls(context=ssl._create_unverified_context())\nc.login('hoge@mydomain.com', 'secret')\nc.sendmail('hoge@mydomain.com', ['hoge@mydomain.com'], 'Subject: via smtplib\\r\\n\\r\\nhi\\r\\n')\nc.quit()\n"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = s.wait_log("sasl_username=hoge@mydomain.com");
    // 127.0.0.2 has no name (not in /etc/hosts): Postfix logs it as
    // unknown[127.0.0.2], as the access dialogs recorded from it show.
    assert!(
        log.contains(
            "warning: unknown[127.0.0.2]: SASL PLAIN authentication failed: authentication failure"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "client=unknown[127.0.0.2], sasl_method=PLAIN, sasl_username=hoge@mydomain.com"
        ),
        "{log}"
    );
    s.wait_log("to=<hoge@mydomain.com>, relay=virtual");
    let line = log
        .lines()
        .find(|l| l.contains("SASL PLAIN authentication failed"))
        .unwrap()
        .to_string();
    // yubin guard counts the line as a failure from 127.0.0.2.
    let out = Command::new(common::bin())
        .args(["guard", "test", &line])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("127.0.0.2"), "guard test: {text}");
}
