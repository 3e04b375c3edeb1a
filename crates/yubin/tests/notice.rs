//! The seed's opening: the admin finds "SMTP server: errors from localhost"
//! mails with a transcript. yubin sends the same notice (notify_classes =
//! policy), and groups the following ones into a summary.

mod common;

use std::time::Duration;

use common::{Client, Server, VIRTUAL_BEFORE};

fn seed_session(port: u16) {
    let mut c = Client::connect(port);
    c.cmd("ehlo myhost.mydomain.com");
    c.cmd("mail FROM:<nobody@localhost> size=286");
    let r = c.cmd("rcpt TO:<root@localhost>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    c.cmd("rset");
    c.cmd("quit");
}

fn wait_for_mail(s: &Server, n: usize) -> Vec<String> {
    s.wait_mail(n)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn policy_errors_mail_a_transcript_then_a_summary() {
    let mut s = Server::seed(
        VIRTUAL_BEFORE,
        "local_recipient_maps = $virtual_mailbox_maps\nnotify_classes = resource, software, policy\nerror_notice_recipient = hoge@mydomain.com\nyubin_notice_interval = 3s\n",
    );
    s.start();
    seed_session(s.port);
    let first = wait_for_mail(&s, 1).remove(0);
    assert!(
        first.contains("Subject: yubin SMTP server: errors from localhost[127.0.0.1]\n"),
        "{first}"
    );
    let body = first.split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n");
    let want = "Transcript of session follows.\n\n Out: 220 mail.mydomain.com ESMTP\n In:  ehlo myhost.mydomain.com\n Out: 250-mail.mydomain.com\n";
    assert!(body.contains(want), "{body}");
    assert!(
        body.contains(" In:  rcpt TO:<root@localhost>\n Out: 550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in\n     local recipient table\n In:  rset\n Out: 250 2.0.0 Ok\n In:  quit\n Out: 221 2.0.0 Bye\n\nFor other details, see the local mail logfile\n"),
        "{body}"
    );
    // Two more within the interval: no mail each, one summary afterwards.
    seed_session(s.port);
    seed_session(s.port);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.hoge_mail().len(), 1, "no flood");
    let all = wait_for_mail(&s, 2);
    let summary = all
        .iter()
        .find(|m| m.contains("(summary)"))
        .expect("summary notice");
    assert!(
        summary.contains("2 more sessions from localhost[127.0.0.1] with policy errors"),
        "{summary}"
    );
    assert!(summary.contains("  root@localhost (2 times)"), "{summary}");
}
