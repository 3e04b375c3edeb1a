//! STARTTLS with real clients (Python ssl/smtplib, curl, openssl s_client,
//! swaks), TLS 1.0/1.1 refused, the CVE-2011-0411 injection case, and the
//! encrypt level.

mod common;

use std::process::Command;

use common::{Server, VIRTUAL_AFTER};

fn tls_server(extra: &str) -> Server {
    let s = Server::seed(VIRTUAL_AFTER, "");
    let d = s.dir.path();
    common::make_cert(d);
    let mut main = std::fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\nsmtpd_tls_received_header = yes\nsmtpd_tls_loglevel = 1\n{extra}",
        d = d.display()
    ));
    std::fs::write(d.join("main.cf"), main).unwrap();
    s
}

fn python(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        script
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn starttls_with_smtplib_curl_and_openssl() {
    let mut s = tls_server("smtpd_tls_security_level = may\n");
    s.start();
    let out = python(&format!(
        "import smtplib, ssl\nc = smtplib.SMTP('127.0.0.1', {p})\nc.ehlo()\nassert c.has_extn('starttls')\nc.starttls(context=ssl._create_unverified_context())\nc.ehlo()\nassert not c.has_extn('starttls')\nc.sendmail('py@example.org', ['hoge@mydomain.com'], 'Subject: over tls\\r\\n\\r\\nsecret\\r\\n')\nc.quit()\nprint('ok')\n",
        p = s.port
    ));
    assert_eq!(out.trim(), "ok");
    let log = s.wait_log("status=sent");
    assert!(
        log.contains(
            "Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher"
        ),
        "{log}"
    );
    let text = std::fs::read_to_string(&s.hoge_mail()[0]).unwrap();
    assert!(text.contains("\t(using TLSv1.3 with cipher TLS_"), "{text}");
    assert!(text.contains(") with ESMTPS id "), "{text}");

    // curl --ssl-reqd (STARTTLS, certificate not verified: -k).
    let mail = s.path("curl.txt");
    std::fs::write(&mail, "Subject: from curl\r\n\r\nhi\r\n").unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--ssl-reqd",
            "-k",
            "--mail-from",
            "curl@example.org",
            "--mail-rcpt",
            "hoge@mydomain.com",
            "--upload-file",
        ])
        .arg(&mail)
        .arg(format!("smtp://127.0.0.1:{}", s.port))
        .output()
        .expect("curl (Debian package curl)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // openssl s_client: TLS 1.1 refused, TLS 1.3 accepted.
    for (flag, ok) in [("-tls1_1", false), ("-tls1_3", true)] {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-starttls",
                "smtp",
                "-connect",
                &format!("127.0.0.1:{}", s.port),
                flag,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(text.contains("Cipher is TLS_"), ok, "{flag}: {text}");
    }
}

#[test]
fn injected_commands_after_starttls_are_not_executed() {
    let mut s = tls_server("smtpd_tls_security_level = may\n");
    s.start();
    // STARTTLS and RSET in one packet (CVE-2011-0411): after the handshake
    // the first reply must be the one to our NOOP, not an injected RSET's.
    let out = python(&format!(
        "import socket, ssl\ns = socket.create_connection(('127.0.0.1', {p}))\nf = s.makefile('rb')\nf.readline()\ns.sendall(b'EHLO x\\r\\n')\nwhile f.readline()[3:4] == b'-': pass\ns.sendall(b'STARTTLS\\r\\nRSET\\r\\nMAIL FROM:<evil@example.org>\\r\\n')\nprint(f.readline().decode().strip())\nt = ssl._create_unverified_context().wrap_socket(s)\nt.sendall(b'NOOP\\r\\nMAIL FROM:<ok@example.org>\\r\\n')\ng = t.makefile('rb')\nprint(g.readline().decode().strip())\nprint(g.readline().decode().strip())\n",
        p = s.port
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "220 2.0.0 Ready to start TLS",
            "250 2.0.0 Ok",
            "250 2.1.0 Ok"
        ]
    );
}

#[test]
fn encrypt_level_refuses_mail_before_starttls() {
    let mut s = tls_server("smtpd_tls_security_level = encrypt\n");
    s.start();
    let mut c = common::Client::connect(s.port);
    c.cmd("EHLO x");
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org>"),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", s.port),
            "--tls",
            "--from",
            "a@example.org",
            "--to",
            "hoge@mydomain.com",
        ])
        .output()
        .expect("swaks");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn smtps_wrapped_mode_and_certificate_reload() {
    let mut s = tls_server("");
    // A second listener on 465-style wrapped TLS (master.cf -o override).
    let smtps = common::free_port();
    let master = format!(
        "127.0.0.1:{} inet n - n - - smtpd\n127.0.0.1:{smtps} inet n - n - - smtpd\n  -o smtpd_tls_wrappedmode=yes\n  -o smtpd_sasl_auth_enable=no\n",
        s.port
    );
    std::fs::write(s.path("master.cf"), master).unwrap();
    s.start();
    let script = |port: u16| {
        format!(
            "import smtplib, ssl\nc = smtplib.SMTP_SSL('127.0.0.1', {port}, context=ssl._create_unverified_context())\nprint(c.sock.version(), c.sock.getpeercert(binary_form=True).hex()[:64])\nc.sendmail('a@example.org', ['hoge@mydomain.com'], 'Subject: smtps\\r\\n\\r\\nhi\\r\\n')\nc.quit()\n"
        )
    };
    let first = python(&script(smtps));
    assert!(first.starts_with("TLSv1.3 "), "{first}");
    s.wait_log("status=sent");
    // A new certificate and `yubin reload`: new sessions get it.
    common::make_cert(s.dir.path());
    s.yubin(&["reload"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = python(&script(smtps));
    assert_ne!(
        first.trim(),
        second.trim(),
        "the certificate changed after reload"
    );
}
