//! Non-delivery notifications: an RFC 3464 report that Python's `email`
//! package parses, back in the sender's Maildir.

mod common;

use std::process::Command;

use common::{Client, Server};

#[test]
fn bounce_is_a_parseable_delivery_status_report() {
    let mut s = Server::seed(
        "root hoge@mydomain.com\nbad@mydomain.com nobody-here@mydomain.com\n",
        "bounce_template_file = TEMPLATE\n",
    );
    // bounce(5): our own subject and text for failures.
    let template = s.path("bounce.cf");
    std::fs::write(&template, "failure_template = <<EOF\nFrom: MAILER-DAEMON (Post Office)\nSubject: Returned mail\n\nHost $myhostname could not deliver your message.\nEOF\n").unwrap();
    let main = std::fs::read_to_string(s.path("main.cf"))
        .unwrap()
        .replace("TEMPLATE", &template.display().to_string());
    std::fs::write(s.path("main.cf"), main).unwrap();
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    assert!(c
        .cmd("MAIL FROM:<hoge@mydomain.com> RET=HDRS ENVID=abc")
        .starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<bad@mydomain.com> NOTIFY=FAILURE ORCPT=rfc822;bad@mydomain.com")
        .starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send_raw(b"Subject: will bounce\r\n\r\nsecret body\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    s.wait_log("sender non-delivery notification");
    s.wait_mail(1);
    let path = s.hoge_mail()[0].clone();
    let script = r#"
import email, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m['Subject'] == 'Returned mail', m['Subject']
assert 'Host mail.mydomain.com could not deliver your message.' in list(m.iter_parts())[0].get_content()
assert m.get_param('report-type') == 'delivery-status'
parts = list(m.iter_parts())
assert [p.get_content_type() for p in parts] == ['text/plain', 'message/delivery-status', 'text/rfc822-headers'], [p.get_content_type() for p in parts]
status = parts[1].get_payload()
fields = {}
for block in status:
    for k, v in block.items():
        fields[k.lower()] = str(v)
assert fields['final-recipient'].replace(' ', '') == 'rfc822;nobody-here@mydomain.com', fields
assert fields['original-recipient'] == 'rfc822;bad@mydomain.com', fields
assert fields['action'] == 'failed' and fields['status'] == '5.1.1', fields
assert 'Subject: will bounce' in parts[2].get_content() and 'secret body' not in m.as_string()
print('ok')
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // mail-parser reads it the same way.
    let raw = std::fs::read(&path).unwrap();
    let m = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("mail-parser parses the report");
    assert_eq!(m.subject(), Some("Returned mail"));
    use mail_parser::MimeHeaders;
    let ct = m
        .content_type()
        .map(|c| format!("{}/{}", c.c_type, c.c_subtype.as_deref().unwrap_or("")));
    assert_eq!(ct.as_deref(), Some("multipart/report"));
    assert_eq!(m.parts.len(), 4, "root plus three parts");
}

#[test]
fn undeliverable_bounce_goes_to_postmaster_once() {
    let mut s = Server::seed(
        "root hoge@mydomain.com\nbad@mydomain.com nobody-here@mydomain.com\n",
        "2bounce_notice_recipient = hoge@mydomain.com\n",
    );
    s.start();
    // A message from the null sender that bounces: a double bounce to postmaster.
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    assert!(c
        .mail("", &["bad@mydomain.com"], "Subject: a bounce itself\n\nx\n")
        .starts_with("250"));
    s.wait_log("postmaster non-delivery notification");
    s.wait_mail(1);
    let text = std::fs::read_to_string(&s.hoge_mail()[0]).unwrap();
    assert!(
        text.contains("To: hoge@mydomain.com\n") && text.contains("Subject: a bounce itself"),
        "{text}"
    );
    s.stop();
    assert_eq!(
        s.log().matches("non-delivery notification").count(),
        1,
        "{}",
        s.log()
    );
}

#[test]
fn delay_warning_once_after_delay_warning_time() {
    let mut s = Server::seed(
        "root hoge@mydomain.com\n",
        "delay_warning_time = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 1s\n\
         dns_servers = 127.0.0.1:9\n",
    );
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    // Remote mail from a client in mynetworks stays deferred: dns_servers
    // names a port where no DNS answers, so the SMTP client defers it.
    assert!(c
        .mail(
            "hoge@mydomain.com",
            &["someone@example.org"],
            "Subject: slow one\n\nbody\n"
        )
        .starts_with("250"));
    s.wait_log("sender delay notification");
    s.wait_mail(1);
    // A few more retries: still only one warning.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        s.log().matches("sender delay notification").count(),
        1,
        "{}",
        s.log()
    );
    let path = s.hoge_mail()[0].clone();
    let script = r#"
import email, sys
from email import policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)
assert m['Subject'] == 'Delayed Mail (still being retried)', m['Subject']
parts = list(m.iter_parts())
assert [p.get_content_type() for p in parts] == ['text/plain', 'message/delivery-status', 'text/rfc822-headers']
assert 'THIS IS A WARNING ONLY' in parts[0].get_content()
fields = {k.lower(): str(v) for block in parts[1].get_payload() for k, v in block.items()}
assert fields['action'] == 'delayed' and fields['status'].startswith('4.'), fields
assert 'will-retry-until' in fields, fields
print('ok')
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn notify_classes_bounce_sends_the_postmaster_a_headers_only_copy() {
    let mut s = Server::seed(
        "root hoge@mydomain.com\nbad@mydomain.com nobody-here@mydomain.com\n",
        "notify_classes = resource, software, bounce\nbounce_notice_recipient = hoge@mydomain.com\n",
    );
    s.start();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO x");
    assert!(c
        .mail(
            "a@example.org",
            &["bad@mydomain.com"],
            "Subject: secret project\n\nconfidential body\n"
        )
        .starts_with("250"));
    s.wait_log("postmaster bounce notification");
    s.wait_mail(1);
    let text = std::fs::read_to_string(&s.hoge_mail()[0]).unwrap();
    assert!(
        text.contains("Subject: Postmaster Copy: Undelivered Mail Returned to Sender"),
        "{text}"
    );
    assert!(
        text.contains("Subject: secret project") && !text.contains("confidential body"),
        "headers only: {text}"
    );
}
