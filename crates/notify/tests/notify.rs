//! The notify crate on its own: typed inputs in, finished messages out
//! through a `Submit` that keeps them in memory. No socket, no daemon.

use std::cell::RefCell;
use std::path::Path;

use mail_parser::MessageParser;
use yubin_maillog::{MailLog, Target};
use yubin_notify::{Bounced, Class, Notices, Notify, SessionReport, Settings, Submit};
use yubin_queue::{QueueFile, QueuedRecipient};

#[derive(Default)]
struct Queue {
    files: RefCell<Vec<QueueFile>>,
    fail: bool,
}

impl Submit for Queue {
    fn submit(&self, file: QueueFile) -> Result<String, String> {
        if self.fail {
            return Err("queue file write error".into());
        }
        let id = file.id.clone();
        self.files.borrow_mut().push(file);
        Ok(id)
    }
}

fn settings(main_cf: &str) -> Settings {
    let cfg = yubin_conf::Config::from_bytes(
        Path::new("/etc/yubin"),
        Path::new("/etc/yubin/main.cf"),
        format!("compatibility_level = 3.6\nmyhostname = mail.example.com\n{main_cf}").as_bytes(),
    )
    .unwrap();
    Settings::from_config(&cfg).unwrap()
}

fn log() -> (tempfile::TempDir, MailLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = MailLog::start(Target::File(dir.path().join("mail.log")), "mail", "postfix");
    (dir, log)
}

fn rcpt(address: &str, notify: Option<&str>) -> QueuedRecipient {
    QueuedRecipient {
        address: address.into(),
        notify: notify.map(str::to_string),
        orcpt: None,
    }
}

fn message(sender: &str, recipients: Vec<QueuedRecipient>) -> QueueFile {
    QueueFile {
        id: "4ABC123".into(),
        arrival: 1_700_000_000,
        sender: sender.into(),
        client: "localhost[127.0.0.1]".into(),
        helo: "client".into(),
        protocol: "ESMTP".into(),
        ret: None,
        envid: None,
        smtputf8: false,
        recipients,
        message: b"Subject: hello\nFrom: a@example.org\n\nthe body\n".to_vec(),
    }
}

#[test]
fn bounce_to_the_sender_with_a_postmaster_copy() {
    let s = settings("notify_classes = bounce\n");
    let queue = Queue::default();
    let (_dir, log) = log();
    let n = Notify {
        settings: &s,
        queue: &queue,
        log: &log,
    };
    let q = message(
        "a@example.org",
        vec![
            rcpt("x@example.com", None),
            rcpt("y@example.com", Some("NEVER")),
        ],
    );
    let failed = vec![
        Bounced::new(
            &q.recipients[0],
            "x@example.com",
            "5.1.1",
            "unknown user: \"x\"",
        ),
        Bounced::new(
            &q.recipients[1],
            "y@example.com",
            "5.1.1",
            "unknown user: \"y\"",
        ),
    ];
    n.bounce(&q, &failed, 1_700_000_100);
    let files = queue.files.borrow();
    assert_eq!(files.len(), 2, "the bounce and the postmaster's copy");
    let bounce = &files[0];
    assert_eq!(bounce.sender, "");
    assert_eq!(bounce.recipients[0].address, "a@example.org");
    assert_eq!(bounce.recipients[0].notify.as_deref(), Some("NEVER"));
    let text = String::from_utf8(bounce.message.clone()).unwrap();
    assert!(!text.contains('\r'), "queue files hold LF line ends");
    assert!(
        text.contains("Final-Recipient: rfc822; x@example.com"),
        "{text}"
    );
    assert!(!text.contains("y@example.com"), "NOTIFY=NEVER: {text}");
    assert!(
        text.contains("Diagnostic-Code: X-Postfix; unknown user"),
        "{text}"
    );
    let parsed = MessageParser::default().parse(&bounce.message).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Undelivered Mail Returned to Sender")
    );
    use mail_parser::MimeHeaders;
    assert!(parsed
        .root_part()
        .content_type()
        .is_some_and(|c| c.subtype() == Some("report")));
    assert_eq!(parsed.parts.len(), 4, "report, text, status, returned");
    assert!(text.contains("the body"), "the whole message is returned");
    let copy = String::from_utf8(files[1].message.clone()).unwrap();
    assert_eq!(files[1].recipients[0].address, "postmaster");
    assert!(
        copy.contains("Subject: Postmaster Copy: Undelivered Mail"),
        "{copy}"
    );
    assert!(!copy.contains("the body"), "headers only: {copy}");
    assert_eq!(files[1].envid.as_deref(), Some("yubin-2bounce"));
}

#[test]
fn double_bounce_goes_to_postmaster_once() {
    let s = settings("2bounce_notice_recipient = admin@example.com\n");
    let queue = Queue::default();
    let (_dir, log) = log();
    let n = Notify {
        settings: &s,
        queue: &queue,
        log: &log,
    };
    let mut q = message("", vec![rcpt("a@example.org", None)]);
    let failed = [Bounced::new(
        &q.recipients[0],
        "a@example.org",
        "5.1.1",
        "gone",
    )];
    n.bounce(&q, &failed, 1_700_000_100);
    {
        let files = queue.files.borrow();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].recipients[0].address, "admin@example.com");
        assert_eq!(files[0].envid.as_deref(), Some("yubin-2bounce"));
    }
    // The double bounce itself fails: only logged, nothing queued.
    q.envid = Some("yubin-2bounce".into());
    n.bounce(&q, &failed, 1_700_000_200);
    assert_eq!(queue.files.borrow().len(), 1);
}

#[test]
fn delay_warning_says_until_when_and_respects_notify() {
    let s = settings("delay_warning_time = 4h\n");
    let queue = Queue::default();
    let (_dir, log) = log();
    let n = Notify {
        settings: &s,
        queue: &queue,
        log: &log,
    };
    let q = message(
        "a@example.org",
        vec![
            rcpt("x@example.com", Some("SUCCESS")),
            rcpt("y@example.com", None),
        ],
    );
    let only_success = [Bounced::new(
        &q.recipients[0],
        "x@example.com",
        "4.4.1",
        "later",
    )];
    assert!(!n.delay(&q, &only_success, 1_700_020_000));
    let delayed = [Bounced::new(
        &q.recipients[1],
        "y@example.com",
        "4.4.1",
        "later",
    )];
    assert!(n.delay(&q, &delayed, 1_700_020_000));
    let files = queue.files.borrow();
    assert_eq!(files.len(), 1);
    let text = String::from_utf8(files[0].message.clone()).unwrap();
    assert!(
        text.contains("Subject: Delayed Mail (still being retried)"),
        "{text}"
    );
    assert!(text.contains("Action: delayed"), "{text}");
    assert!(text.contains("Will-Retry-Until: "), "{text}");
    assert!(text.contains("for more than 4 hour(s)"), "{text}");
    assert!(!text.contains("the body"), "headers only: {text}");
}

#[test]
fn notices_are_grouped_per_client_within_the_interval() {
    let s = settings("notify_classes = policy, resource\nyubin_notice_interval = 10m\n");
    let queue = Queue::default();
    let (_dir, log) = log();
    let n = Notify {
        settings: &s,
        queue: &queue,
        log: &log,
    };
    let notices = Notices::default();
    let report = |rejected: &str| {
        SessionReport {
        classes: vec![Class::Policy],
        transcript: vec![
            "Out: 220 mail.example.com ESMTP".into(),
            format!("Out: 550 5.1.1 <{rejected}>: Recipient address rejected: User unknown in local recipient table"),
        ],
        rejected: vec![rejected.into()],
    }
    };
    let t0 = 1_700_000_000;
    notices.session_ended(&n, "client[192.0.2.1]", report("a@x"), t0);
    notices.session_ended(&n, "client[192.0.2.1]", report("b@x"), t0 + 60);
    notices.session_ended(&n, "client[192.0.2.1]", report("b@x"), t0 + 120);
    // Not in notify_classes: nothing at all.
    notices.session_ended(
        &n,
        "other[192.0.2.2]",
        SessionReport {
            classes: vec![Class::Protocol],
            ..SessionReport::default()
        },
        t0,
    );
    assert_eq!(queue.files.borrow().len(), 1, "one notice, two counted");
    notices.flush_due(&n, t0 + 300);
    assert_eq!(queue.files.borrow().len(), 1, "the interval has not ended");
    notices.flush_due(&n, t0 + 600);
    let files = queue.files.borrow();
    assert_eq!(files.len(), 2);
    let first = String::from_utf8(files[0].message.clone()).unwrap();
    assert!(
        first.contains("Subject: yubin SMTP server: errors from client[192.0.2.1]\n"),
        "{first}"
    );
    assert!(
        first.contains("Transcript of session follows.\n\n Out: 220"),
        "{first}"
    );
    assert!(
        first.contains("User unknown in local\n     recipient table\n"),
        "{first}"
    );
    let summary = String::from_utf8(files[1].message.clone()).unwrap();
    assert!(
        summary.contains("errors from client[192.0.2.1] (summary)"),
        "{summary}"
    );
    assert!(
        summary.contains("2 more sessions from client[192.0.2.1] with policy errors"),
        "{summary}"
    );
    assert!(summary.contains("  b@x (2 times)"), "{summary}");
    assert_eq!(files[1].recipients[0].address, "postmaster");
}

#[test]
fn a_queue_that_refuses_is_reported_not_fatal() {
    let s = settings("");
    let queue = Queue {
        fail: true,
        ..Queue::default()
    };
    let (_dir, log) = log();
    let n = Notify {
        settings: &s,
        queue: &queue,
        log: &log,
    };
    let q = message("a@example.org", vec![rcpt("x@example.com", None)]);
    let failed = [Bounced::new(
        &q.recipients[0],
        "x@example.com",
        "5.1.1",
        "no",
    )];
    n.bounce(&q, &failed, 1_700_000_100);
    assert!(!n.delay(&q, &failed, 1_700_000_100));
}
