//! One queued message through the agents, without a daemon or a socket: a
//! spool in a temporary directory, the resolver from a main.cf, the log to a
//! file, and notifications kept in memory.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use yubin_addr::Resolver;
use yubin_conf::Config;
use yubin_deliver::agent;
use yubin_deliver::queued::{deliver_message, Env};
use yubin_maillog::{MailLog, Target};
use yubin_notify::Submit;
use yubin_queue::schedule::{Destination, Finished, Job, Policy};
use yubin_queue::{QueueFile, QueuedRecipient, Spool, State, Status};

#[derive(Default)]
struct Queue(RefCell<Vec<QueueFile>>);

impl Submit for Queue {
    fn submit(&self, file: QueueFile) -> Result<String, String> {
        let id = file.id.clone();
        self.0.borrow_mut().push(file);
        Ok(id)
    }
}

struct World {
    dir: tempfile::TempDir,
    spool: Spool,
    log: MailLog,
    resolver: Resolver,
    notify: yubin_notify::Settings,
    queue: Queue,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let uid = yubin_sys::geteuid();
        let gid = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(d).unwrap().gid()
        };
        std::fs::write(
            d.join("virtual_maps"),
            "hoge@example.com example.com/hoge/\n",
        )
        .unwrap();
        let main = format!(
            "compatibility_level = 3.6\nmyhostname = mail.example.com\nmydomain = example.com\nmydestination = localhost\n\
             alias_maps =\nvirtual_mailbox_domains = example.com\nvirtual_mailbox_base = {d}/vmail\n\
             virtual_mailbox_maps = texthash:{d}/virtual_maps\nvirtual_uid_maps = static:{uid}\n\
             virtual_gid_maps = static:{gid}\nvirtual_minimum_uid = 0\n",
            d = d.display()
        );
        let cfg = Config::from_bytes(d, &d.join("main.cf"), main.as_bytes()).unwrap();
        World {
            spool: Spool::open(&d.join("queue")).unwrap(),
            log: MailLog::start(Target::File(d.join("mail.log")), "mail", "postfix"),
            resolver: Resolver::new(&cfg).unwrap(),
            notify: yubin_notify::Settings::from_config(&cfg).unwrap(),
            queue: Queue::default(),
            dir,
        }
    }

    /// Queues a message that arrived `age` seconds ago.
    fn enqueue(&self, id: &str, recipients: &[&str], age: i64) {
        let q = QueueFile {
            id: id.into(),
            arrival: yubin_maillog::clock::now_secs() - age,
            sender: "sender@example.org".into(),
            client: "localhost[127.0.0.1]".into(),
            helo: "client".into(),
            protocol: "ESMTP".into(),
            ret: None,
            envid: None,
            smtputf8: false,
            recipients: recipients
                .iter()
                .map(|r| QueuedRecipient {
                    address: r.to_string(),
                    notify: None,
                    orcpt: None,
                })
                .collect(),
            message: b"Subject: t\n\nbody\n".to_vec(),
        };
        std::fs::write(self.spool.path(State::Incoming, id), q.encode()).unwrap();
    }

    fn run(&self, id: &str, policy: &Policy, flush: bool) -> Finished {
        let agents = agent::Settings::default();
        let env = Env {
            spool: &self.spool,
            log: &self.log,
            resolver: &self.resolver,
            policy,
            agents: &agents,
            notify: &self.notify,
            hostname: "mail.example.com",
            as_user: None,
            submit: &self.queue,
            relay: None,
        };
        let job = Job {
            id: id.into(),
            retry: false,
            flush,
        };
        deliver_message(&env, &job, Instant::now())
    }

    /// The log, once it holds `needle` (the writer is a thread).
    fn log_with(&self, needle: &str) -> String {
        for _ in 0..500 {
            let text =
                std::fs::read_to_string(self.dir.path().join("mail.log")).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no {needle:?} in the log");
    }
}

#[test]
fn delivered_bounced_and_deferred_in_one_run() {
    let w = World::new();
    w.enqueue(
        "4AAA1",
        &["hoge@example.com", "nobody@example.com", "far@example.net"],
        0,
    );
    let finished = w.run("4AAA1", &Policy::default(), false);
    // The remote copy stays queued with its destination for the scheduler.
    let Finished::Deferred { destinations, .. } = finished else {
        panic!("not deferred: {finished:?}");
    };
    assert_eq!(
        destinations,
        vec![Destination::new("smtp", "[example.net]")]
    );
    assert_eq!(w.spool.find("4AAA1"), Some(State::Deferred));
    let st = Status::load(&w.spool.status_path("4AAA1"));
    assert_eq!(st.attempts, 1);
    assert_eq!(st.done.len(), 2, "{st:?}");
    let new = w.dir.path().join("vmail/example.com/hoge/new");
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 1);
    let log = w.log_with("status=deferred");
    assert!(log.contains("postfix/qmgr["), "{log}");
    assert!(
        log.contains("4AAA1: from=<sender@example.org>, size=17, nrcpt=3 (queue active)"),
        "{log}"
    );
    assert!(
        log.contains("postfix/virtual[")
            && log.contains("4AAA1: to=<hoge@example.com>, relay=virtual, delay="),
        "{log}"
    );
    assert!(
        log.contains("dsn=2.0.0, status=sent (delivered to maildir)"),
        "{log}"
    );
    // An address error is error(8)'s, as in Postfix.
    assert!(
        log.contains("postfix/error[")
            && log.contains("to=<nobody@example.com>, relay=none,")
            && log.contains("dsn=5.1.1, status=bounced (unknown user: \"nobody@example.com\")"),
        "{log}"
    );
    assert!(log.contains("postfix/smtp[") && log.contains("to=<far@example.net>, relay=none,") && log.contains("dsn=4.4.1, status=deferred (delivery to remote domains ([example.net]) is not available"), "{log}");
    // One bounce to the sender, for the unknown user only.
    let files = w.queue.0.borrow();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].recipients[0].address, "sender@example.org");
    let text = String::from_utf8_lossy(&files[0].message);
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@example.com"),
        "{text}"
    );
    assert!(!text.contains("far@example.net"), "{text}");
}

#[test]
fn defer_transports_hold_until_a_flush_and_expiry_returns_the_mail() {
    let w = World::new();
    let policy = Policy {
        defer_transports: vec!["smtp".into()],
        ..Policy::default()
    };
    w.enqueue("4BBB1", &["far@example.net"], 10);
    assert!(matches!(
        w.run("4BBB1", &policy, false),
        Finished::Deferred { .. }
    ));
    w.log_with("status=deferred (deferred transport)");
    // A flush runs the agent (which defers with its own reason).
    assert!(matches!(
        w.run("4BBB1", &policy, true),
        Finished::Deferred { .. }
    ));
    w.log_with("(delivery to remote domains ([example.net])");
    assert_eq!(Status::load(&w.spool.status_path("4BBB1")).attempts, 2);
    // Past maximal_queue_lifetime: returned to the sender, removed.
    let expired = Policy {
        maximal_queue_lifetime: 0,
        ..Policy::default()
    };
    assert_eq!(w.run("4BBB1", &expired, false), Finished::Done);
    assert_eq!(w.spool.find("4BBB1"), None);
    let log = w.log_with("4BBB1: removed");
    assert!(
        log.contains("4BBB1: from=<sender@example.org>, status=expired, returned to sender"),
        "{log}"
    );
    let files = w.queue.0.borrow();
    let text = String::from_utf8_lossy(&files[0].message);
    assert!(text.contains("Status: 4.4.7"), "{text}");
    assert!(
        text.contains("message expired: delivery to remote domains"),
        "{text}"
    );
}

#[test]
fn a_message_that_is_gone_or_held_is_left_alone() {
    let w = World::new();
    assert_eq!(w.run("4CCC1", &Policy::default(), false), Finished::Done);
    w.enqueue("4CCC2", &["hoge@example.com"], 0);
    w.spool
        .move_to("4CCC2", State::Incoming, State::Hold)
        .unwrap();
    assert_eq!(w.run("4CCC2", &Policy::default(), false), Finished::Done);
    assert_eq!(w.spool.find("4CCC2"), Some(State::Hold));
}
