//! The IMAP service with real clients: Python imaplib (a full session with
//! STARTTLS, LIST, SELECT, FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE,
//! APPEND, IDLE woken by mail delivered over SMTP), curl over imaps, and a
//! failed login logged in Dovecot's format and answered late.

mod common;

use std::process::Command;

use common::{free_port, Server, VIRTUAL_AFTER};

struct Imap {
    s: Server,
    imap: u16,
    imaps: u16,
}

fn imap_server() -> Imap {
    let s = Server::seed(VIRTUAL_AFTER, "");
    let d = s.dir.path();
    common::make_cert(d);
    let hash = common::sha512_crypt("secret");
    // No home or mail field: the Maildir is the one the resolver delivers
    // hoge's mail to (virtual_mailbox_maps).
    std::fs::write(
        d.join("users"),
        format!("hoge@mydomain.com:{{SHA512-CRYPT}}{hash}::::::\n"),
    )
    .unwrap();
    let mut main = std::fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\n\
         smtpd_sasl_type = passwd-file\nsmtpd_sasl_path = {d}/users\nimapd_auth_failure_delay = 1s\n",
        d = d.display()
    ));
    std::fs::write(d.join("main.cf"), main).unwrap();
    let (imap, imaps) = (free_port(), free_port());
    let mut master = std::fs::read_to_string(d.join("master.cf")).unwrap();
    master.push_str(&format!(
        "127.0.0.1:{imap} inet n - n - - imap\n127.0.0.1:{imaps} inet n - n - - imap\n  -o imapd_tls_wrappermode=yes\n"
    ));
    std::fs::write(d.join("master.cf"), master).unwrap();
    Imap { s, imap, imaps }
}

#[test]
fn python_imaplib_full_session_and_curl() {
    let mut t = imap_server();
    t.s.start();
    let mut c = common::Client::connect(t.s.port);
    c.reply();
    for (n, subject) in ["first", "second"].iter().enumerate() {
        let r = c.mail(
            "someone@example.org",
            &["hoge@mydomain.com"],
            &format!("Subject: {subject}\r\n\r\nhello {}\r\n", ["one", "two"][n]),
        );
        assert!(r.starts_with("250"), "{r}");
    }
    t.s.wait_mail(2);
    let script = common::repo().join("tests/imap/imaplib_session.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            &t.imap.to_string(),
            &t.s.port.to_string(),
            "hoge@mydomain.com",
            "secret",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        t.s.log()
    );
    t.s.wait_log(
        "]: Login: user=<hoge@mydomain.com>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, TLS",
    );

    // curl over imaps: the mailbox list and one message by UID.
    let url = format!("imaps://127.0.0.1:{}/", t.imaps);
    let out = Command::new("curl")
        .args(["-sS", "-k", "-u", "hoge@mydomain.com:secret", &url])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("\\Sent) \"/\" Sent"),
        "{list} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "-u",
            "hoge@mydomain.com:secret",
            &format!("{url}Drafts;UID=1"),
        ])
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(
        msg.contains("Subject: draft") && msg.contains("unsent"),
        "{msg}"
    );
    // The Maildir is Dovecot's: folders as .Name, UIDs in dovecot-uidlist.
    let root = t.s.path("vmail/mydomain.com/hoge");
    for f in [
        ".Sent",
        ".Drafts",
        ".Trash",
        ".Junk",
        ".Archive",
        "dovecot-uidlist",
        "subscriptions",
    ] {
        assert!(root.join(f).exists(), "{f} missing in {}", root.display());
    }
    t.s.stop();
}

#[test]
fn failed_login_is_delayed_and_logged_like_dovecot() {
    let mut t = imap_server();
    t.s.start();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "-u",
            "hoge@mydomain.com:wrong",
            &format!("imaps://127.0.0.1:{}/", t.imaps),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = t.s.wait_log("]: Disconnected (auth failed, 1 attempts in ");
    assert!(
        log.contains(
            "secs): user=<hoge@mydomain.com>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, TLS"
        ),
        "{log}"
    );
    // Plaintext LOGIN before STARTTLS is refused (LOGINDISABLED).
    let mut c = std::net::TcpStream::connect(("127.0.0.1", t.imap)).unwrap();
    use std::io::{BufRead, BufReader, Write};
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(
        line.contains("STARTTLS") && line.contains("LOGINDISABLED"),
        "{line}"
    );
    c.write_all(b"a LOGIN hoge@mydomain.com secret\r\n")
        .unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("a NO [PRIVACYREQUIRED]"), "{line}");
    t.s.stop();
}

/// CONDSTORE, QRESYNC, ESEARCH, LIST-EXTENDED, LIST-STATUS, SPECIAL-USE
/// and QUOTA with Python's imaplib (tests/imap/imaplib_extensions.py), on
/// a Maildir with a Maildir++ quota.
#[test]
fn python_imaplib_extensions() {
    let mut t = imap_server();
    // hoge's Maildir with a maildirsize limit (1 MB, 100 messages), as an
    // administrator or Dovecot's quota plugin writes it.
    let root = t.s.path("vmail/mydomain.com/hoge");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("maildirsize"), "1048576S,100C\n").unwrap();
    let (_, uid, gid) = common::owner();
    for p in [
        t.s.path("vmail/mydomain.com"),
        root.clone(),
        root.join("maildirsize"),
    ] {
        let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
    }
    t.s.start();
    let script = common::repo().join("tests/imap/imaplib_extensions.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([&t.imap.to_string(), "hoge@mydomain.com", "secret"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        t.s.log()
    );
    t.s.stop();
}

/// Dovecot's mail_max_userip_connections as imapd_max_userip_connections:
/// past the limit a login is answered with BYE and logged; a slot frees
/// when a session ends.
#[test]
fn connections_per_user_and_ip_are_limited() {
    let mut t = imap_server();
    let mut main = std::fs::read_to_string(t.s.path("main.cf")).unwrap();
    main.push_str("imapd_max_userip_connections = 2\n");
    std::fs::write(t.s.path("main.cf"), main).unwrap();
    t.s.start();
    let script = r#"
import imaplib, ssl, sys
ctx = ssl._create_unverified_context()
port = int(sys.argv[1])
def login():
    c = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
    c.login("hoge@mydomain.com", "secret")
    return c
a, b = login(), login()
try:
    login()
    raise SystemExit("third login accepted")
except imaplib.IMAP4.abort as e:
    assert "Maximum number of connections" in str(e), e
b.logout()
# The server frees the slot as the session ends, just after its answer to
# LOGOUT: a retry for a while, not a timing assumption.
import time
for _ in range(100):
    try:
        c = login()
        break
    except imaplib.IMAP4.abort:
        time.sleep(0.1)
c.select("INBOX")
print("OK")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &t.imaps.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        t.s.log()
    );
    t.s.wait_log("Disconnected: Maximum number of connections from user+IP exceeded (imapd_max_userip_connections=2)");
    t.s.stop();
}
