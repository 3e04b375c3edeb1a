//! Real clients deliver through yubin: Python's smtplib and Postfix's
//! smtp-source; pflogsumm reads the resulting log.

mod common;

use std::process::Command;

use common::{Server, VIRTUAL_AFTER};

#[test]
fn python_smtplib_delivers() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    s.start();
    let script = format!(
        "import smtplib\nfrom email.message import EmailMessage\nm = EmailMessage()\nm['From'] = 'py@example.org'\nm['To'] = 'root@localhost'\nm['Subject'] = 'from smtplib'\nm.set_content('héllo ünïcode')\nwith smtplib.SMTP('127.0.0.1', {}) as c:\n    c.send_message(m)\nprint('sent')\n",
        s.port
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.wait_log("status=sent (delivered to maildir)");
    let mail = s.hoge_mail();
    assert_eq!(mail.len(), 1);
    assert!(std::fs::read_to_string(&mail[0])
        .unwrap()
        .contains("Subject: from smtplib"));
}

#[test]
fn smtp_source_delivers_and_pflogsumm_counts() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    s.start();
    let out = Command::new("/usr/sbin/smtp-source")
        .args([
            "-s",
            "5",
            "-m",
            "50",
            "-l",
            "2000",
            "-f",
            "load@example.org",
            "-t",
            "hoge@mydomain.com",
        ])
        .arg(format!("127.0.0.1:{}", s.port))
        .output()
        .expect("smtp-source (Debian package postfix; .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.hoge_mail().len() < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} delivered",
            s.hoge_mail().len()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.stop();
    let report = Command::new("pflogsumm")
        .arg(s.path("log/mail.log"))
        .output()
        .expect("pflogsumm (Debian package pflogsumm)");
    let text = String::from_utf8_lossy(&report.stdout);
    let grab = |label: &str| -> u64 {
        text.lines()
            .find(|l| {
                l.trim_end().ends_with(label)
                    && l.trim_start().starts_with(|c: char| c.is_ascii_digit())
            })
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} in pflogsumm output:\n{text}"))
    };
    assert_eq!(grab("received"), 50, "{text}");
    assert_eq!(grab("delivered"), 50, "{text}");
}
