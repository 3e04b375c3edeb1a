//! Interoperation with a real Dovecot 2.3 (Debian's dovecot-core,
//! dovecot-lmtpd, dovecot-imapd; .ci/packages.txt), started privately for
//! each test (own base_dir, configuration, passwd-file and mail location in
//! a temporary folder, ports on 127.0.0.1) and stopped after:
//!
//! - SMTP AUTH answered by Dovecot's auth socket (`smtpd_sasl_type =
//!   dovecot`), over its UNIX socket and over TCP, with Python's smtplib;
//!   Dovecot stopped: 454 4.7.0 as Postfix answers.
//! - yubin delivering by LMTP (`virtual_transport = lmtp:unix:...`) into
//!   Dovecot's mailboxes, read back through Dovecot's IMAP; an unknown user
//!   bounced while the other recipient is delivered.
//! - Dovecot's LMTP proxy (`lmtp_proxy = yes`, passdb `proxy=y host= port=`)
//!   delivering into yubin through yubin's `lmtpd` service.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, owner, Server, VIRTUAL_AFTER};

struct Dovecot {
    dir: tempfile::TempDir,
    conf: PathBuf,
    master: Option<Child>,
    imap_port: u16,
    lmtp_port: u16,
    auth_port: u16,
}

impl Dovecot {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("dovecot.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        if let Some(mut m) = self.master.take() {
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if let Ok(Some(_)) = m.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a private Dovecot. `users` are passwd-file lines (full
/// addresses, `{PLAIN}` passwords); mail is stored as the test's unprivileged
/// user under the temporary folder.
fn dovecot(users: &[String]) -> Dovecot {
    dovecot_with(users, "disable_plaintext_auth = no")
}

/// As [`dovecot`], with `extra` settings.
fn dovecot_with(users: &[String], extra: &str) -> Dovecot {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (_, uid, gid) = owner();
    let mail = d.join("mail");
    fs::create_dir_all(&mail).unwrap();
    std::os::unix::fs::chown(&mail, Some(uid), Some(gid)).unwrap();
    let users: Vec<String> = users
        .iter()
        .map(|u| {
            u.replace("UID", &uid.to_string())
                .replace("GID", &gid.to_string())
                .replace("MAIL", &mail.display().to_string())
        })
        .collect();
    fs::write(d.join("users"), users.join("\n") + "\n").unwrap();
    let (imap_port, lmtp_port, auth_port) = (free_port(), free_port(), free_port());
    let conf = d.join("dovecot.conf");
    fs::write(
        &conf,
        format!(
            "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\n\
             ssl = no\nprotocols = imap lmtp\nlisten = 127.0.0.1\n\
             {extra}\nauth_mechanisms = plain login\nauth_failure_delay = 0\n\
             mail_location = maildir:~/Maildir\nfirst_valid_uid = 1\n\
             lmtp_proxy = yes\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {d}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {d}/users\n}}\n\
             service auth {{\n  unix_listener auth-client {{\n    mode = 0666\n  }}\n  \
             inet_listener auth-inet {{\n    address = 127.0.0.1\n    port = {auth_port}\n  }}\n}}\n\
             service lmtp {{\n  unix_listener lmtp {{\n    mode = 0666\n  }}\n  \
             inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtp_port}\n  }}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imap_port}\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            d = d.display(),
        ),
    )
    .unwrap();
    let master = Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dovecot (Debian package dovecot-core) is installed");
    let dv = Dovecot {
        dir,
        conf,
        master: Some(master),
        imap_port,
        lmtp_port,
        auth_port,
    };
    let end = Instant::now() + Duration::from_secs(20);
    while !(dv.path("run/auth-client").exists()
        && dv.path("run/lmtp").exists()
        && std::net::TcpStream::connect(("127.0.0.1", imap_port)).is_ok()
        && std::net::TcpStream::connect(("127.0.0.1", lmtp_port)).is_ok())
    {
        assert!(Instant::now() < end, "dovecot did not start: {}", dv.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    dv
}

fn python(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// AUTH attempts with smtplib: prints `MECH user code` per attempt, and
/// the EHLO's AUTH line first.
fn smtp_auth(port: u16, attempts: &[(&str, &str, &str)]) -> String {
    let list: Vec<String> = attempts
        .iter()
        .map(|(m, u, p)| format!("({m:?}, {u:?}, {p:?})"))
        .collect();
    python(&format!(
        r#"
import smtplib
for mech, user, password in [{list}]:
    s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
    s.ehlo("client.test")
    if mech == "PLAIN":
        print("EHLO AUTH", s.esmtp_features.get("auth", "-").strip())
    s.user, s.password = user, password
    try:
        code, text = s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=(mech == "PLAIN"))
    except smtplib.SMTPAuthenticationError as e:
        code, text = e.smtp_code, e.smtp_error
    print(mech, user, code, text.decode())
    s.quit()
"#,
        list = list.join(", ")
    ))
}

fn sasl_server(path: &str) -> Server {
    let s = Server::seed(
        VIRTUAL_AFTER,
        &format!(
            "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {path}\nsmtpd_tls_auth_only = no\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n"
        ),
    );
    s
}

#[test]
fn smtp_auth_through_dovecot() {
    let mut dv = dovecot(&["alice@mydomain.com:{PLAIN}wonderland:UID:GID::MAIL/alice::".into()]);
    let mut unix = sasl_server(&dv.path("run/auth-client").display().to_string());
    unix.start();
    let mut inet = sasl_server(&format!("inet:127.0.0.1:{}", dv.auth_port));
    inet.start();
    for s in [&unix, &inet] {
        let out = smtp_auth(
            s.port,
            &[
                ("PLAIN", "alice@mydomain.com", "wonderland"),
                ("PLAIN", "alice@mydomain.com", "looking-glass"),
                ("LOGIN", "alice@mydomain.com", "wonderland"),
                ("LOGIN", "nobody@mydomain.com", "x"),
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        // The mechanisms Dovecot announces (auth_mechanisms = plain login).
        assert!(lines.contains(&"EHLO AUTH PLAIN LOGIN"), "{out}");
        assert!(
            lines.contains(&"PLAIN alice@mydomain.com 235 2.7.0 Authentication successful"),
            "{out}"
        );
        assert!(lines.contains(&"PLAIN alice@mydomain.com 535 5.7.8 Error: authentication failed: authentication failure"), "{out}");
        assert!(
            lines.contains(&"LOGIN alice@mydomain.com 235 2.7.0 Authentication successful"),
            "{out}"
        );
        assert!(lines.contains(&"LOGIN nobody@mydomain.com 535 5.7.8 Error: authentication failed: authentication failure"), "{out}");
        // Postfix's log line, which fail2ban's postfix-sasl filter reads.
        s.wait_log("SASL LOGIN authentication failed: UGFzc3dvcmQ6");
    }
    // RFC 4954's empty initial response (`=`) reaches Dovecot as `resp==`,
    // which it reads as an empty PLAIN message: refused, not a protocol
    // error (that would be a 454). PLAIN without an initial response goes
    // through Dovecot's CONT.
    let out = python(&format!(
        r#"
import smtplib, base64
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.test")
print("EMPTY", s.docmd("AUTH PLAIN =")[0])
print("ASK", s.docmd("AUTH PLAIN")[0])
print("CONT", s.docmd(base64.b64encode(b"\0alice@mydomain.com\0wonderland").decode())[0])
s.quit()
"#,
        port = unix.port
    ));
    assert!(
        out.contains("EMPTY 535") && out.contains("ASK 334") && out.contains("CONT 235"),
        "{out}"
    );
    // smtpd_sasl_path is Dovecot's socket: `yubin users` does not read it
    // as a passwd-file.
    let o = unix.yubin_output(&["users"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("smtpd_sasl_type = dovecot"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Dovecot down: a temporary failure, as Postfix's xsasl_dovecot gives.
    dv.stop();
    let out = smtp_auth(unix.port, &[("PLAIN", "alice@mydomain.com", "wonderland")]);
    assert!(
        out.contains("PLAIN alice@mydomain.com 454 4.7.0 Temporary authentication failure: Connection lost to authentication server"),
        "{out}"
    );
    unix.wait_log("SASL PLAIN authentication failed: Connection lost to authentication server");
}

/// Messages in a Dovecot user's INBOX, read through Dovecot's IMAP.
fn imap_subjects(dv: &Dovecot, user: &str, password: &str) -> Vec<String> {
    python(&format!(
        r#"
import imaplib
m = imaplib.IMAP4("127.0.0.1", {port})
m.login({user:?}, {password:?})
typ, data = m.select("INBOX")
n = int(data[0])
for i in range(1, n + 1):
    typ, d = m.fetch(str(i), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    print(d[0][1].decode().strip())
m.logout()
"#,
        port = dv.imap_port
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn lmtp_delivery_into_dovecot() {
    let dv = dovecot(&[
        "alice@mydomain.com:{PLAIN}wonderland:UID:GID::MAIL/alice::".into(),
        "bob@mydomain.com:{PLAIN}builder:UID:GID::MAIL/bob::".into(),
        // carol's home cannot be made (a root-owned directory): Dovecot
        // fails her delivery temporarily, after the dot.
        "carol@mydomain.com:{PLAIN}x:UID:GID::MAIL/locked/carol::".into(),
    ]);
    fs::create_dir(dv.path("mail/locked")).unwrap();
    let lmtp = dv.path("run/lmtp");
    let mut s = Server::seed(
        VIRTUAL_AFTER,
        &format!("virtual_transport = lmtp:unix:{}\n", lmtp.display()),
    );
    // ghost is in yubin's table but not in Dovecot's: Dovecot refuses it.
    fs::write(
        s.path("virtual_maps"),
        "alice@mydomain.com x\nbob@mydomain.com x\ncarol@mydomain.com x\nghost@mydomain.com x\n",
    )
    .unwrap();
    s.yubin(&["postmap", &s.path("virtual_maps").display().to_string()]);
    s.start();
    python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
msg = "From: sender@example.net\r\nTo: alice@mydomain.com\r\nSubject: by LMTP\r\n\r\nhello Dovecot\r\n"
refused = s.sendmail("sender@example.net", ["alice@mydomain.com", "ghost@mydomain.com", "carol@mydomain.com", "bob@mydomain.com"], msg)
assert refused == {{}}, refused
s.quit()
"#,
        port = s.port
    ));
    let shown = lmtp.display().to_string();
    s.wait_log("to=<bob@mydomain.com>");
    s.wait_log("to=<ghost@mydomain.com>");
    let log = s.wait_log("to=<carol@mydomain.com>");
    let line = |who: &str| {
        log.lines()
            .find(|l| l.contains(&format!("to=<{who}@mydomain.com>")))
            .unwrap_or_else(|| panic!("no line for {who}:\n{log}"))
            .to_string()
    };
    // Postfix's lmtp(8) lines: relay=myhostname[socket], Dovecot's own
    // per-recipient reply as the status text.
    for who in ["alice", "bob"] {
        let l = line(who);
        assert!(l.contains("postfix/lmtp["), "{l}");
        assert!(
            l.contains(&format!("relay=mail.mydomain.com[{shown}]")),
            "{l}"
        );
        assert!(
            l.contains(&format!("status=sent (250 2.0.0 <{who}@mydomain.com> ")),
            "{l}"
        );
        assert!(l.ends_with(" Saved)"), "{l}");
    }
    // One transaction, three outcomes: carol deferred by her own reply.
    let l = line("carol");
    assert!(
        l.contains("status=deferred (host mail.mydomain.com["),
        "{l}"
    );
    assert!(l.contains("said: 451 4.2.0 <carol@mydomain.com> "), "{l}");
    assert!(l.ends_with("(in reply to end of DATA command))"), "{l}");
    let l = line("ghost");
    assert!(
        l.contains("dsn=5.1.1, status=bounced (host mail.mydomain.com["),
        "{l}"
    );
    assert!(l.contains("said: 550 5.1.1 <ghost@mydomain.com> User doesn't exist: ghost@mydomain.com (in reply to RCPT TO command))"), "{l}");
    // In Dovecot's mailboxes, read back through Dovecot's IMAP.
    assert_eq!(
        imap_subjects(&dv, "alice@mydomain.com", "wonderland"),
        ["Subject: by LMTP"]
    );
    assert_eq!(
        imap_subjects(&dv, "bob@mydomain.com", "builder"),
        ["Subject: by LMTP"]
    );
    // The bounce for ghost went to the sender.
    s.wait_log("sender non-delivery notification");
}

#[test]
fn dovecot_lmtp_proxy_delivers_into_yubin() {
    let lmtpd_port = free_port();
    let dv = dovecot(&[
        "alice@mydomain.com:{PLAIN}wonderland:UID:GID::MAIL/alice::".into(),
        // Mail for hoge lives on yubin: Dovecot's LMTP proxies it there.
        format!("hoge@mydomain.com::::::: proxy=y host=127.0.0.1 port={lmtpd_port} nopassword=y"),
    ]);
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    let mut master = fs::read_to_string(s.path("master.cf")).unwrap();
    master.push_str(&format!("127.0.0.1:{lmtpd_port} inet n - n - - lmtpd\n"));
    fs::write(s.path("master.cf"), master).unwrap();
    s.start();
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.LMTP("127.0.0.1", {port})
s.ehlo("mx.test")  # LMTP.ehlo sends LHLO
msg = "From: sender@example.net\r\nSubject: through Dovecot\r\n\r\nhello yubin\r\n"
s.mail("sender@example.net")
for r in ["hoge@mydomain.com", "alice@mydomain.com", "nosuch@mydomain.com"]:
    print("RCPT", r, s.rcpt(r)[0])
code, text = s.docmd("DATA")
assert code == 354, (code, text)
s.send(msg.replace("\n.", "\n..").encode() + b".\r\n")
# RFC 2033: one reply per accepted recipient.
for i in range(2):
    code, text = s.getreply()
    print("DATA", code, text.decode())
s.quit()
"#,
        port = dv.lmtp_port
    ));
    assert!(
        out.contains("RCPT hoge@mydomain.com 250"),
        "{out}\n{}",
        dv.log()
    );
    assert!(out.contains("RCPT alice@mydomain.com 250"), "{out}");
    assert!(out.contains("RCPT nosuch@mydomain.com 550"), "{out}");
    let data: Vec<&str> = out.lines().filter(|l| l.starts_with("DATA ")).collect();
    assert_eq!(data.len(), 2, "{out}");
    assert!(
        data[0].starts_with("DATA 250 2.0.0 <hoge@mydomain.com> "),
        "{out}"
    );
    // Dovecot's proxy got yubin's own per-recipient reply after the dot.
    let sent = format!(
        "Sent message to <hoge@mydomain.com> at 127.0.0.1:{lmtpd_port}: 250 2.0.0 <hoge@mydomain.com> Ok: queued as "
    );
    assert!(dv.log().contains(&sent), "{}", dv.log());
    assert!(
        data[1].starts_with("DATA 250 2.0.0 <alice@mydomain.com> "),
        "{out}"
    );
    let mail = s.wait_mail(1);
    let text = fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("Subject: through Dovecot"), "{text}");
    assert!(text.contains("with LMTP"), "{text}");
    let log = s.wait_log("postfix/lmtpd[");
    assert!(
        log.contains("lmtpd[") && log.contains("connect from localhost[127.0.0.1]"),
        "{log}"
    );
    assert_eq!(
        imap_subjects(&dv, "alice@mydomain.com", "wonderland"),
        ["Subject: through Dovecot"]
    );
}

/// Both ends yubin, over a UNIX-domain socket: lmtp(8) in one (the
/// `lmtp:unix:` next hop) and the `lmtpd` master.cf `unix` service in the
/// other, which puts the message in its hoge's Maildir. Python's LMTP
/// client on the same socket checks the RFC 2033 rules.
#[test]
fn yubin_to_yubin_over_a_unix_socket() {
    let mut b = Server::seed(VIRTUAL_AFTER, "");
    let mut master = fs::read_to_string(b.path("master.cf")).unwrap();
    master.push_str("lmtp unix n - n - - lmtpd\n");
    fs::write(b.path("master.cf"), master).unwrap();
    b.start();
    let socket = b.path("queue/public/lmtp");
    let end = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < end, "no socket {}", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.LMTP({socket:?})
print("EHLO", s.docmd("EHLO x")[0])
print("MAIL", s.docmd("MAIL FROM:<a@example.net>")[0])
s.ehlo("mx.test")
print("LHLO", " ".join(sorted(s.esmtp_features)))
print("DATA", s.docmd("MAIL FROM:<a@example.net>")[0], s.docmd("DATA")[0])
s.quit()
"#,
        socket = socket.display().to_string()
    ));
    assert!(out.contains("EHLO 500"), "{out}");
    assert!(out.contains("MAIL 503"), "{out}");
    assert!(
        out.contains("LHLO 8bitmime dsn enhancedstatuscodes pipelining size smtputf8"),
        "{out}"
    );
    assert!(out.contains("DATA 250 503"), "{out}");

    let mut a = Server::seed(
        VIRTUAL_AFTER,
        &format!("virtual_transport = lmtp:unix:{}\n", socket.display()),
    );
    a.start();
    python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.sendmail("a@example.net", ["hoge@mydomain.com"], "Subject: yubin to yubin\r\n\r\nby LMTP\r\n")
s.quit()
"#,
        port = a.port
    ));
    let log = a.wait_log("status=sent (250 2.0.0 <hoge@mydomain.com> Ok: queued as ");
    let line = log
        .lines()
        .find(|l| l.contains("to=<hoge@mydomain.com>"))
        .unwrap();
    assert!(line.contains("postfix/lmtp["), "{line}");
    assert!(
        line.contains(&format!("relay=mail.mydomain.com[{}]", socket.display())),
        "{line}"
    );
    let mail = b.wait_mail(1);
    let text = fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("Subject: yubin to yubin"), "{text}");
    assert!(text.contains("with LMTP"), "{text}");
    assert!(a.hoge_mail().is_empty());
    b.wait_log("postfix/lmtpd[");
}

/// Postfix's usual TLS-only setup: before STARTTLS no mechanism Dovecot
/// announces passes `smtpd_sasl_security_options = noanonymous,
/// noplaintext`, so EHLO offers no AUTH; after it
/// `smtpd_sasl_tls_security_options = noanonymous` offers Dovecot's PLAIN
/// and LOGIN, and the login works against `disable_plaintext_auth = yes`.
/// (yubin sends `secured` over TLS, see the auth crate's tests; Dovecot also
/// counts loopback clients as secured, so this sandbox cannot show its
/// refusal without it.)
#[test]
fn smtp_auth_through_dovecot_after_starttls() {
    let dv = dovecot_with(
        &["alice@mydomain.com:{PLAIN}wonderland:UID:GID::MAIL/alice::".into()],
        "disable_plaintext_auth = yes",
    );
    let s = Server::seed(VIRTUAL_AFTER, "");
    let d = s.dir.path();
    common::make_cert(d);
    let mut main = fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\n\
         smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {sock}\nsmtpd_tls_auth_only = no\n\
         smtpd_sasl_security_options = noanonymous, noplaintext\nsmtpd_sasl_tls_security_options = noanonymous\n",
        d = d.display(),
        sock = dv.path("run/auth-client").display()
    ));
    fs::write(d.join("main.cf"), main).unwrap();
    let mut s = s;
    s.start();
    let out = python(&format!(
        r#"
import smtplib, ssl
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.test")
print("PLAIN-CHANNEL", s.esmtp_features.get("auth", "-").strip())
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.ehlo("client.test")
print("TLS", s.esmtp_features.get("auth", "-").strip())
print("LOGIN", s.login("alice@mydomain.com", "wonderland")[0])
s.quit()
"#,
        port = s.port
    ));
    assert!(out.contains("PLAIN-CHANNEL -"), "{out}");
    assert!(out.contains("TLS PLAIN LOGIN"), "{out}");
    assert!(out.contains("LOGIN 235"), "{out}\n{}", dv.log());
}
