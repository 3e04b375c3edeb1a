//! yubin guard with yubin serve: the digest report arrives in the admin's
//! Maildir through yubin, and 1,000 failed SMTP AUTH logins from one address
//! are logged in the form guard counts, and get that address blocked.

mod common;

use std::process::Command;

use common::{Client, Server, VIRTUAL_AFTER};

fn guard_conf(dir: &std::path::Path, log: &std::path::Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("denyhosts.conf");
    std::fs::write(
        &conf,
        format!(
            "SECURE_LOG = {log}\nHOSTS_DENY = {d}/hosts.deny\nWORK_DIR = {d}/guard-work\nLOCK_FILE = {d}/guard.pid\nHOSTNAME_LOOKUP = NO\n\
             ADMIN_EMAIL = root@localhost\nSMTP_HOST = 127.0.0.1\nSMTP_PORT = {port}\nSMTP_FROM = DenyHosts <nobody@localhost>\nSMTP_SUBJECT = DenyHosts Report\nREPORT_INTERVAL = 1h\n",
            log = log.display(),
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("hosts.deny"),
        "# the admin's own line\nALL: 192.0.2.66\n",
    )
    .unwrap();
    conf
}

#[test]
fn digest_report_lands_in_the_admins_maildir() {
    // The report is submitted with SMTP_USERNAME/SMTP_PASSWORD (AUTH PLAIN).
    let mut s = Server::seed(
        VIRTUAL_AFTER,
        "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_path = users\nsmtpd_tls_auth_only = no\n",
    );
    std::fs::write(s.path("users"), "guard@mydomain.com:{PLAIN}s3cret::::::\n").unwrap();
    s.start();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("auth.log");
    let lines: String = (0..12)
        .map(|i| format!("Jan  2 03:04:{i:02} mail sshd[{}]: Invalid user admin{i} from 203.0.113.7 port {}\n", 1000 + i, 40000 + i))
        .collect();
    std::fs::write(&log, lines).unwrap();
    let conf = guard_conf(work.path(), &log, s.port);
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("SMTP_USERNAME = guard@mydomain.com\nSMTP_PASSWORD = s3cret\n");
    std::fs::write(&conf, text).unwrap();
    let out = Command::new(common::bin())
        .args(["guard", "--config"])
        .arg(&conf)
        .arg("--once")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deny = std::fs::read_to_string(work.path().join("hosts.deny")).unwrap();
    assert!(
        deny.contains("ALL: 192.0.2.66") && deny.contains("203.0.113.7"),
        "{deny}"
    );
    // root@localhost -> (virtual user form) hoge@mydomain.com.
    s.wait_mail(1);
    let mail = std::fs::read_to_string(&s.hoge_mail()[0]).unwrap();
    assert!(mail.contains("Subject: DenyHosts Report"), "{mail}");
    assert!(mail.contains("203.0.113.7"), "{mail}");
    assert!(mail.contains("X-Original-To: root@localhost"), "{mail}");
    assert!(
        s.log()
            .contains("sasl_method=PLAIN, sasl_username=guard@mydomain.com"),
        "{}",
        s.log()
    );
}

#[test]
fn a_thousand_failed_logins_are_logged_and_block_the_address() {
    let mut s = Server::seed(
        VIRTUAL_AFTER,
        &format!(
            "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_path = {}/users\nsmtpd_error_sleep_time = 0\nsmtpd_tls_auth_only = no\n",
            "USERS_DIR"
        ),
    );
    let users = s.path("users");
    std::fs::write(&users, "hoge@mydomain.com:{PLAIN}right::::::\n").unwrap();
    let main = std::fs::read_to_string(s.path("main.cf"))
        .unwrap()
        .replace("USERS_DIR", &s.dir.path().display().to_string());
    std::fs::write(s.path("main.cf"), main).unwrap();
    s.start();
    // Every failure costs a growing delay in units of smtpd_error_sleep_time
    // (0 here, to keep the test short; the session tests check the delays),
    // and smtpd_hard_error_limit closes a connection after 20 errors.
    let port = s.port;
    let threads: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let mut failed = 0;
                while failed < 50 {
                    let mut c = Client::connect(port);
                    c.cmd("EHLO attacker");
                    let r = c.cmd("AUTH PLAIN AGhvZ2VAbXlkb21haW4uY29tAHdyb25n");
                    assert_eq!(
                        r,
                        "535 5.7.8 Error: authentication failed: authentication failure"
                    );
                    failed += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // The log writer may still be flushing the last lines the clients'
    // replies already reported: give it a few seconds to catch up.
    let count = |log: &str| {
        log.lines()
            .filter(|l| l.contains("SASL PLAIN authentication failed"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(&s.log()) < 1000 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(count(&s.log()), 1000);
    let work = tempfile::tempdir().unwrap();
    let conf = guard_conf(work.path(), &s.path("log/mail.log"), port);
    let out = Command::new(common::bin())
        .args(["guard", "--config"])
        .arg(&conf)
        .args(["--once", "--dry-run"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("would block 127.0.0.1 (invalid 1000 > 5)"),
        "{text}"
    );
}
