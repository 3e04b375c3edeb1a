//! Report mails against a real SMTP listener (Postfix's smtp-sink).

mod common;

use common::*;

fn mail_conf(sink: &SmtpSink, interval: &str) -> String {
    format!("ADMIN_EMAIL = root@localhost\nSMTP_HOST = 127.0.0.1\nSMTP_PORT = {}\nSMTP_FROM = DenyHosts <nobody@localhost>\nSMTP_SUBJECT = DenyHosts Report\nREPORT_INTERVAL = {interval}\n", sink.port)
}

#[test]
fn denyhosts_report_one_mail_per_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(tmp.path());
    let env = Env::new(&mail_conf(&sink, "0"));
    env.append(&invalid_lines("203.0.113.7", 6));
    env.append(&invalid_lines("2001:db8::9", 6));
    let o = env.guard(&["--once"]);
    assert!(o.status.success(), "{}", stderr(&o));
    env.append(&invalid_lines("198.51.100.3", 6));
    let o = env.guard(&["--once"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        wait_for(10, || sink.messages().len() == 2),
        "{:?}",
        sink.messages()
    );
    let m = sink.messages();
    let first = m.iter().find(|x| x.contains("203.0.113.7")).unwrap();
    // DenyHosts' layout: four headers, blank line, one section, 70 dashes.
    let body = format!(
        "\nAdded the following hosts to {}:\n\n2001:db8::9\n203.0.113.7\n\n{}\n",
        env.deny.display(),
        "-".repeat(70)
    );
    assert!(
        first.contains("From: DenyHosts <nobody@localhost>\n")
            || first.contains("From: DenyHosts <nobody@localhost>\r\n"),
        "{first}"
    );
    assert!(first.replace("\r\n", "\n").contains(&body), "{first}");
    assert!(first.contains("Subject: DenyHosts Report"), "{first}");
    assert!(
        !first.contains("MIME-Version"),
        "DenyHosts' report has no MIME headers: {first}"
    );
}

#[test]
fn digest_at_most_one_mail_per_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(tmp.path());
    let env = Env::new(&mail_conf(&sink, "1h"));
    env.append(&invalid_lines("203.0.113.7", 6));
    assert!(env.guard(&["--once"]).status.success());
    assert!(wait_for(10, || sink.messages().len() == 1));
    // Three more batches within the hour: no mail, the hosts wait in the digest.
    for h in ["203.0.113.8", "203.0.113.9", "203.0.113.10"] {
        env.append(&invalid_lines(h, 7));
        let o = env.guard(&["--once"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 1, "one mail in the interval");
    let st = stdout(&env.guard(&["status"]));
    assert!(
        st.contains("3 host(s) waiting for the next digest mail"),
        "{st}"
    );
    let m = &sink.messages()[0];
    let m = m.replace("\r\n", "\n");
    assert!(
        m.contains("Subject: DenyHosts Report: 1 host blocked"),
        "{m}"
    );
    assert!(
        m.contains("yubin guard blocked 1 new host (6 failed attempts, "),
        "{m}"
    );
    assert!(
        m.contains("203.0.113.7\n    6 failures (invalid 6 > 5), users: admin0, admin1"),
        "{m}"
    );
    assert!(m.contains("first seen "), "{m}");
}

#[test]
fn unreachable_smtp_prints_the_report() {
    let port = free_port();
    let env = Env::new(&format!("ADMIN_EMAIL = root@localhost\nSMTP_HOST = 127.0.0.1\nSMTP_PORT = {port}\nREPORT_INTERVAL = 0\n"));
    env.append(&invalid_lines("203.0.113.7", 6));
    let o = env.guard(&["--once"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains(&format!("cannot mail report via 127.0.0.1:{port}")),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("Added the following hosts to"),
        "{}",
        stdout(&o)
    );
}
