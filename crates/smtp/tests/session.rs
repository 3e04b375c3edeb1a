//! The session core driven by byte strings: replies, pipelining, DATA
//! framing (smuggling), limits.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use yubin_address::Address;
use yubin_smtp::{
    Action, Answer, AuthRequest, Authenticator, ClientInfo, Reply, Request, SaslExchange, Session,
    SessionConfig,
};

/// The seed's recipient verdicts (the resolver's part of the policy; the
/// real evaluation is the policy crate's, tested there and end to end).
fn seed_verdict(a: &Address) -> (bool, Option<Reply>) {
    let reject = |table: &str| {
        Some(Reply::new(
            550,
            "5.1.1",
            format!(
                "<{}>: Recipient address rejected: User unknown in {table}",
                a.internal()
            ),
        ))
    };
    match a.domain.as_str() {
        "localhost" if a.local == "root" => (true, reject("local recipient table")),
        "localhost" => (true, None),
        "mydomain.com" if a.local.starts_with("hoge") => (true, None),
        "mydomain.com" => (true, reject("virtual mailbox table")),
        _ => (false, None),
    }
}

thread_local! {
    static EXCHANGE: RefCell<Option<Box<dyn SaslExchange>>> = const { RefCell::new(None) };
}

/// The server's side of the requests: the seed's verdicts behind
/// `permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination`,
/// and the PLAIN authenticator below.
fn answer(s: &Session, r: Request) -> Answer {
    match r {
        Request::Mail(_) => Answer::Verdict(None),
        Request::Verify(a) => Answer::Verdict(seed_verdict(&a).1),
        Request::Recipient(q) => {
            let (authorized, unlisted) = seed_verdict(&q.recipient);
            if !authorized && !s.client().in_mynetworks && q.sasl_user.is_none() {
                let given = q.recipient.internal();
                return Answer::Verdict(Some(Reply::new(
                    554,
                    "5.7.1",
                    format!("<{given}>: Relay access denied"),
                )));
            }
            Answer::Verdict(unlisted)
        }
        Request::Auth(AuthRequest::Start {
            mechanism, initial, ..
        }) => {
            let ctx = yubin_smtp::SaslContext {
                remote: s.client().addr,
                local: None,
                tls: false,
            };
            let (x, step) = Plain.start(&mechanism, initial.as_deref(), &ctx).unwrap();
            EXCHANGE.with(|e| *e.borrow_mut() = Some(x));
            Answer::Sasl(step)
        }
        Request::Auth(AuthRequest::Response(bytes)) => Answer::Sasl(EXCHANGE.with(|e| {
            e.borrow_mut()
                .as_mut()
                .expect("an exchange in progress")
                .step(&bytes)
        })),
        Request::Connect | Request::Helo(_) => Answer::Verdict(None),
    }
}

fn config() -> SessionConfig {
    let n = Arc::new(AtomicU32::new(0));
    SessionConfig {
        hostname: "mail.mydomain.com".into(),
        banner: "mail.mydomain.com ESMTP".into(),
        message_size_limit: 1000,
        recipient_limit: 3,
        hard_error_limit: 20,
        soft_error_limit: 10,
        error_sleep: Duration::ZERO,
        disable_vrfy: false,
        smtputf8_enable: true,
        helo_required: false,
        line_limit: 2048,
        tls_offered: false,
        tls_required: false,
        auth_mechanisms: None,
        auth_mechanisms_tls: None,
        auth_requires_tls: false,
        broken_sasl_auth_clients: false,
        check_client: false,
        check_helo: false,
        lmtp: false,
        new_queue_id: Arc::new(move || format!("ID{}", n.fetch_add(1, Ordering::SeqCst))),
    }
}

fn client(in_mynetworks: bool) -> ClientInfo {
    if in_mynetworks {
        ClientInfo {
            name: "localhost".into(),
            addr: "127.0.0.1".parse().unwrap(),
            in_mynetworks,
        }
    } else {
        ClientInfo {
            name: "unknown".into(),
            addr: "192.0.2.9".parse().unwrap(),
            in_mynetworks,
        }
    }
}

fn session(in_mynetworks: bool) -> Session {
    Session::new(config(), client(in_mynetworks))
}

/// Feeds input, answers every request and queues every message; returns
/// every other action in order, and the queued messages.
fn drive(s: &mut Session, input: &[u8]) -> (Vec<Action>, Vec<Vec<u8>>) {
    let mut actions = Vec::new();
    let mut messages = Vec::new();
    let mut pending = s.feed(input);
    while !pending.is_empty() {
        let mut next = Vec::new();
        for a in pending {
            match a {
                Action::Request(r) => {
                    let ans = answer(s, r);
                    next.extend(s.answer(ans));
                }
                Action::Deliver { envelope, data } => {
                    messages.push(data);
                    next.extend(s.queued(Ok(envelope.queue_id)));
                }
                other => actions.push(other),
            }
        }
        pending = next;
    }
    (actions, messages)
}

/// Like [`drive`], returning the replies (one string per reply line).
fn run(s: &mut Session, input: &[u8]) -> (Vec<String>, Vec<Vec<u8>>) {
    let (actions, messages) = drive(s, input);
    let replies = actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Reply(r) => Some(r.wire_lines()),
            _ => None,
        })
        .flatten()
        .collect();
    (replies, messages)
}

#[test]
fn seed_transcript_replies() {
    let mut s = session(true);
    assert_eq!(
        s.start(),
        vec![Action::Reply(Reply::new(
            220,
            "",
            "mail.mydomain.com ESMTP"
        ))]
    );
    let (r, _) = run(&mut s, b"ehlo myhost.mydomain.com\r\nmail FROM:<nobody@localhost> size=286\r\nrcpt TO:<root@localhost>\r\nrset\r\nquit\r\n");
    assert_eq!(
        r,
        [
            "250-mail.mydomain.com", "250-PIPELINING", "250-SIZE 1000", "250-VRFY", "250-ETRN",
            "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING",
            "250 2.1.0 Ok",
            "550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in local recipient table",
            "250 2.0.0 Ok", "221 2.0.0 Bye",
        ]
    );
    assert!(s.is_closed());
    assert_eq!(
        s.disconnect_log(),
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=0/1 rset=1 quit=1 commands=4/5"
    );
}

#[test]
fn pipelined_transaction_and_queue_reply() {
    let mut s = session(true);
    let (r, m) = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge@mydomain.com>\r\nDATA\r\nSubject: t\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n");
    assert_eq!(
        &r[10..],
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as ID0",
            "221 2.0.0 Bye"
        ]
    );
    assert_eq!(m, [b"Subject: t\n\n.dot\nbody\n".to_vec()]);
}

#[test]
fn smuggling_bare_lf_dot_is_content() {
    let mut s = session(true);
    let input = b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge@mydomain.com>\r\nDATA\r\nfirst\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<hoge@mydomain.com>\r\nDATA\r\nsmuggled\r\n.\r\n";
    let (r, m) = run(&mut s, input);
    assert_eq!(m.len(), 1, "one message, not two");
    assert!(String::from_utf8_lossy(&m[0]).contains("MAIL FROM:<evil@x>"));
    assert_eq!(r.last().unwrap(), "250 2.0.0 Ok: queued as ID0");
    // "\r\n.\n" and "\n.\r\n" do not end DATA either.
    let mut s = session(true);
    let (_, m) = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge@mydomain.com>\r\nDATA\r\na\r\n.\nb\n.\r\nc\r\n.\r\n");
    assert_eq!(m, [b"a\n.\nb\n.\nc\n".to_vec()]);
}

#[test]
fn relay_denied_outside_mynetworks() {
    let mut s = session(false);
    let (r, _) = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<someone@example.org>\r\nRCPT TO:<hoge@mydomain.com>\r\n");
    assert_eq!(
        &r[11..],
        [
            "554 5.7.1 <someone@example.org>: Relay access denied",
            "250 2.1.5 Ok"
        ]
    );
}

#[test]
fn limits() {
    let mut s = session(true);
    let mut big =
        b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge@mydomain.com>\r\nDATA\r\n".to_vec();
    big.extend(std::iter::repeat_n(b"0123456789\r\n".to_vec(), 200).flatten());
    big.extend(b".\r\nRCPT TO:<hoge1@mydomain.com>\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge1@mydomain.com>\r\nRCPT TO:<hoge2@mydomain.com>\r\nRCPT TO:<hoge3@mydomain.com>\r\nRCPT TO:<hoge4@mydomain.com>\r\n");
    let (r, m) = run(&mut s, &big);
    assert!(m.is_empty());
    assert_eq!(
        &r[13..],
        [
            "552 5.3.4 Error: message file too big",
            "503 5.5.1 Error: need MAIL command",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "452 4.5.3 Error: too many recipients",
        ]
    );
    // A 1 MB command line: one error, memory stays bounded, the session goes on.
    let mut s = session(true);
    let mut long = vec![b'A'; 1 << 20];
    long.extend(b"\r\nNOOP\r\n");
    let (r, _) = run(&mut s, &long);
    assert_eq!(
        r,
        ["500 5.5.2 Error: command not recognized", "250 2.0.0 Ok"]
    );
}

#[test]
fn too_many_errors_closes() {
    let mut s = session(true);
    let input = "FOO\r\n".repeat(21);
    let (r, _) = run(&mut s, input.as_bytes());
    assert_eq!(r.len(), 21);
    assert_eq!(r[20], "421 4.7.0 mail.mydomain.com Error: too many errors");
    assert!(s.is_closed());
}

#[test]
fn bdat_chunks() {
    let mut s = session(true);
    let (r, m) = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge@mydomain.com>\r\nBDAT 5\r\nhelloBDAT 9 LAST\r\n\r\nworld\r\nQUIT\r\n");
    assert_eq!(
        &r[12..],
        [
            "250 2.0.0 Ok: 5 bytes",
            "250 2.0.0 Ok: 14 bytes queued as ID0",
            "221 2.0.0 Bye"
        ]
    );
    assert_eq!(m, [b"hello\nworld\n".to_vec()]);
    let mut s = session(true);
    let (r, _) = run(&mut s, b"BDAT 4 LAST\r\nNOOPNOOP\r\n");
    assert_eq!(r, ["503 5.5.1 Error: need RCPT command", "250 2.0.0 Ok"]);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz pass; cargo fuzz runs the real one.
    let mut seed = 12345u64;
    for _ in 0..300 {
        let mut s = session(seed.is_multiple_of(2));
        let mut input = Vec::new();
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pick = (seed >> 33) % 12;
            input.extend_from_slice(match pick {
                0 => b"MAIL FROM:<a@b.c> SIZE=5\r\n".as_slice(),
                1 => b"RCPT TO:<hoge@mydomain.com>\r\n",
                2 => b"DATA\r\n",
                3 => b"\r\n.\r\n",
                4 => b".\n",
                5 => b"BDAT 3\r\n",
                6 => b"BDAT 2 LAST\r\n",
                7 => b"\xff\xfe\x00",
                8 => b"EHLO x\r\n",
                9 => b"RSET\r\n",
                10 => b"\r",
                _ => b"x",
            });
        }
        for chunk in input.chunks(((seed >> 40) % 17 + 1) as usize) {
            run(&mut s, chunk);
        }
    }
}

#[test]
fn starttls_discards_injected_commands_and_resets() {
    let mut cfg = config();
    cfg.tls_offered = true;
    let mut s = Session::new(cfg, client(true));
    s.start();
    let (a, _) = drive(
        &mut s,
        b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<injected@evil>\r\n",
    );
    let sends: Vec<String> = a
        .iter()
        .filter_map(|x| match x {
            Action::Reply(r) => Some(String::from_utf8_lossy(&r.to_wire()).into_owned()),
            _ => None,
        })
        .collect();
    assert!(sends[0].contains("250-STARTTLS\r\n"), "{}", sends[0]);
    assert_eq!(
        &sends[1..],
        ["250 2.1.0 Ok\r\n", "220 2.0.0 Ready to start TLS\r\n"]
    );
    assert_eq!(a.last(), Some(&Action::StartTls));
    s.tls_started("TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384 (256/256 bits)".into());
    // Nothing of the injected input ran; the transaction was reset; EHLO again.
    let (r, _) = run(
        &mut s,
        b"RCPT TO:<hoge@mydomain.com>\r\nEHLO x\r\nSTARTTLS\r\n",
    );
    assert_eq!(r[0], "503 5.5.1 Error: need MAIL command");
    assert!(!r.iter().any(|l| l.contains("STARTTLS")), "{r:?}");
    assert_eq!(r.last().unwrap(), "554 5.5.1 Error: TLS already active");
}

#[test]
fn encrypt_level_requires_starttls() {
    let mut cfg = config();
    cfg.tls_offered = true;
    cfg.tls_required = true;
    let mut s = Session::new(cfg, client(true));
    let (r, _) = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b.c>\r\n");
    assert_eq!(
        r.last().unwrap(),
        "530 5.7.0 Must issue a STARTTLS command first"
    );
}

/// A PLAIN-only authenticator: user "hoge", password "secret".
struct Plain;
struct PlainExchange;

impl yubin_smtp::SaslExchange for PlainExchange {
    fn step(&mut self, r: &[u8]) -> yubin_smtp::SaslStep {
        if r == b"\0hoge\0secret" {
            yubin_smtp::SaslStep::Success("hoge".into())
        } else {
            yubin_smtp::SaslStep::Failure("authentication failure".into())
        }
    }
}

impl Authenticator for Plain {
    fn mechanisms(&self) -> Vec<String> {
        vec!["PLAIN".into()]
    }
    fn start(
        &self,
        m: &str,
        initial: Option<&[u8]>,
        _context: &yubin_smtp::SaslContext,
    ) -> Option<(Box<dyn yubin_smtp::SaslExchange>, yubin_smtp::SaslStep)> {
        (m == "PLAIN").then(|| {
            let mut x = PlainExchange;
            let step = match initial {
                Some(r) => yubin_smtp::SaslExchange::step(&mut x, r),
                None => yubin_smtp::SaslStep::Challenge(Vec::new()),
            };
            (Box::new(x) as Box<dyn yubin_smtp::SaslExchange>, step)
        })
    }
}

#[test]
fn auth_plain_enables_relaying() {
    let mut cfg = config();
    cfg.auth_mechanisms = Some(Plain.mechanisms());
    let mut s = Session::new(cfg, client(false));
    let (r, _) = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<x@example.org>\r\nRSET\r\nAUTH PLAIN AGhvZ2UAd3Jvbmc=\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\nAGhvZ2UAc2VjcmV0\r\nAUTH PLAIN AGhvZ2UAc2VjcmV0\r\nMAIL FROM:<a@b.c> AUTH=<>\r\nRCPT TO:<x@example.org>\r\n");
    assert!(r.contains(&"250-AUTH PLAIN".to_string()), "{r:?}");
    let tail: Vec<&str> = r
        .iter()
        .skip_while(|l| !l.starts_with("250 CHUNKING"))
        .skip(1)
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "250 2.1.0 Ok",
            "554 5.7.1 <x@example.org>: Relay access denied",
            "250 2.0.0 Ok",
            "535 5.7.8 Error: authentication failed: authentication failure",
            "334 ",
            "501 5.7.0 Authentication aborted",
            "334 ",
            "235 2.7.0 Authentication successful",
            "503 5.5.1 Error: already authenticated",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
        ]
    );
}

#[test]
fn seed_session_yields_a_policy_notice_with_transcript() {
    let mut s = session(true);
    s.start();
    let (_, _) = run(&mut s, b"ehlo myhost.mydomain.com\r\nmail FROM:<nobody@localhost> size=286\r\nrcpt TO:<root@localhost>\r\nrset\r\nquit\r\n");
    let n = s.notice().expect("errors happened");
    assert_eq!(n.classes, ["policy"]);
    assert_eq!(n.rejected, ["root@localhost"]);
    let t: Vec<&str> = n.transcript.iter().map(String::as_str).collect();
    assert_eq!(t[0], "Out: 220 mail.mydomain.com ESMTP");
    assert_eq!(t[1], "In:  ehlo myhost.mydomain.com");
    assert_eq!(t[2], "Out: 250-mail.mydomain.com");
    let tail: Vec<&str> = t.iter().rev().take(8).rev().copied().collect();
    assert_eq!(
        tail,
        [
            "In:  mail FROM:<nobody@localhost> size=286",
            "Out: 250 2.1.0 Ok",
            "In:  rcpt TO:<root@localhost>",
            "Out: 550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in local recipient table",
            "In:  rset",
            "Out: 250 2.0.0 Ok",
            "In:  quit",
            "Out: 221 2.0.0 Bye",
        ]
    );
    // A clean session has no notice; a syntax error is "protocol".
    let mut s = session(true);
    run(&mut s, b"EHLO x\r\nNOOP\r\nQUIT\r\n");
    assert!(s.notice().is_none());
    let mut s = session(true);
    run(&mut s, b"EHLO x\r\nFROBNICATE\r\nQUIT\r\n");
    assert_eq!(s.notice().unwrap().classes, ["protocol"]);
}

#[test]
fn failed_auth_costs_a_growing_delay() {
    let mut cfg = config();
    cfg.auth_mechanisms = Some(Plain.mechanisms());
    cfg.error_sleep = Duration::from_secs(1);
    let mut s = Session::new(cfg, client(false));
    let delays: Vec<Duration> = drive(&mut s, b"EHLO x\r\nAUTH PLAIN AGhvZ2UAd3Jvbmc=\r\nAUTH PLAIN AGhvZ2UAd3Jvbmc=\r\nAUTH PLAIN AGhvZ2UAd3Jvbmc=\r\n")
        .0
        .into_iter()
        .filter_map(|a| match a {
            Action::Delay(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(
        delays,
        [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3)
        ]
    );
}

/// BDAT error states as Postfix 3.7 answers them (tests/dialogs/bdat-*):
/// DATA, MAIL and RCPT inside a chunk sequence are refused (DATA used to get
/// a 354 and then hang), a refused chunk poisons the rest of its sequence,
/// and a malformed BDAT ends the session.
#[test]
fn bdat_error_states() {
    let mut s = session(true);
    let (r, m) = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge@mydomain.com>\r\nBDAT 5\r\nhelloDATA\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge@mydomain.com>\r\nRSET\r\n");
    assert!(m.is_empty());
    assert_eq!(
        &r[12..],
        [
            "250 2.0.0 Ok: 5 bytes",
            "503 5.5.1 Error: DATA after BDAT",
            "503 5.5.1 Error: nested MAIL command",
            "503 5.5.1 Error: RCPT after BDAT",
            "250 2.0.0 Ok",
        ]
    );
    let mut s = session(true);
    let (r, _) = run(
        &mut s,
        b"EHLO x\r\nBDAT 5\r\nhelloMAIL FROM:<a@b.c>\r\nBDAT 3 LAST\r\nabcMAIL FROM:<a@b.c>\r\n",
    );
    assert_eq!(
        &r[10..],
        [
            "503 5.5.1 Error: need RCPT command",
            "503 5.5.1 Error: MAIL after BDAT",
            "551 5.0.0 Discarded 3 bytes after earlier error",
            "250 2.1.0 Ok",
        ]
    );
    let mut s = session(true);
    let (r, _) = run(&mut s, b"EHLO x\r\nBDAT x\r\nNOOP\r\n");
    assert_eq!(&r[10..], ["521 5.5.4 Syntax: BDAT count [LAST]"]);
    assert!(s.is_closed());
}

/// Lines that are not SMTP (a message header sent as a command, an HTTP
/// request, a command not starting with a letter) end the session as
/// smtpd_forbidden_commands does; NUL and CR end a command word.
#[test]
fn non_smtp_commands() {
    for line in ["Subject: hello", "GET / HTTP/1.0", "8BITMIME", "post x"] {
        let mut s = session(true);
        let (r, _) = run(&mut s, format!("{line}\r\nNOOP\r\n").as_bytes());
        assert_eq!(
            r,
            ["221 2.7.0 Error: I can break rules, too. Goodbye."],
            "{line}"
        );
        assert!(s.is_closed());
    }
    let mut s = session(true);
    let (r, _) = run(&mut s, b"NOOP\0junk\r\nNOOP\rMAIL\r\nXYZZY\r\n");
    assert_eq!(
        r,
        [
            "250 2.0.0 Ok",
            "250 2.0.0 Ok",
            "500 5.5.2 Error: command not recognized"
        ]
    );
}

// milter: begin
/// A milter's refusals: RCPT gets the milter's reply with Postfix's
/// `milter-reject:` log line, the end of data gets [`Session::refused`],
/// and a 421 closes the session.
#[test]
fn milter_refusals() {
    let mut s = session(true);
    s.start();
    let mut logs = Vec::new();
    let mut replies = Vec::new();
    let mut pending = s.feed(b"EHLO h.example\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge1@mydomain.com>\r\nRCPT TO:<hoge2@mydomain.com>\r\nDATA\r\nSubject: t\r\n\r\nx\r\n.\r\nMAIL FROM:<a@b.c>\r\n");
    let mut rcpts = 0;
    while !pending.is_empty() {
        let mut next = Vec::new();
        for a in pending {
            match a {
                Action::Request(Request::Recipient(_)) => {
                    rcpts += 1;
                    next.extend(s.answer(if rcpts == 1 {
                        Answer::Milter(Reply::new(550, "5.7.1", "Command rejected"))
                    } else {
                        Answer::Verdict(None)
                    }));
                }
                Action::Request(Request::Mail(_)) if rcpts > 0 => next.extend(s.answer(
                    Answer::Milter(Reply::new(421, "4.7.0", "Server closing connection")),
                )),
                Action::Request(_) => next.extend(s.answer(Answer::Verdict(None))),
                Action::Deliver { .. } => {
                    next.extend(s.refused(Reply::new(554, "5.7.1", "Spam message rejected")))
                }
                Action::Log(l) => logs.push(l),
                Action::Reply(r) => replies.extend(r.wire_lines()),
                _ => {}
            }
        }
        pending = next;
    }
    assert_eq!(
        logs,
        [
            "NOQUEUE: milter-reject: RCPT from localhost[127.0.0.1]: 550 5.7.1 Command rejected; from=<a@b.c> to=<hoge1@mydomain.com> proto=ESMTP helo=<h.example>",
            "ID0: client=localhost[127.0.0.1]",
            "NOQUEUE: milter-reject: MAIL from localhost[127.0.0.1]: 421 4.7.0 Server closing connection; from=<a@b.c> proto=ESMTP helo=<h.example>",
        ]
    );
    assert_eq!(
        &replies[10..],
        [
            "250 2.1.0 Ok",
            "550 5.7.1 Command rejected",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "554 5.7.1 Spam message rejected",
            "421 4.7.0 Server closing connection",
        ]
    );
    assert!(s.is_closed());
}
// milter: end
/// An authentication server that cannot be reached (Dovecot down): Postfix's
/// 454 with the reason, no failure count, and the mechanism list offered
/// after STARTTLS may differ from the plaintext one.
#[test]
fn auth_temporary_failure_is_454() {
    let mut cfg = config();
    cfg.auth_mechanisms = Some(vec!["PLAIN".into()]);
    cfg.auth_mechanisms_tls = Some(vec!["PLAIN".into(), "LOGIN".into()]);
    let mut s = Session::new(cfg, client(false));
    s.start();
    let mut replies = Vec::new();
    let mut logs = Vec::new();
    let mut pending = s.feed(b"EHLO x\r\nAUTH LOGIN\r\nAUTH PLAIN AGEAYg==\r\nQUIT\r\n");
    while let Some(a) = pending.first().cloned() {
        pending.remove(0);
        match a {
            Action::Reply(r) => replies.extend(r.wire_lines()),
            Action::Log(l) => logs.push(l),
            Action::Request(Request::Auth(AuthRequest::Start { mechanism, tls, .. })) => {
                assert_eq!((mechanism.as_str(), tls), ("PLAIN", false));
                let more = s.answer(Answer::Sasl(yubin_smtp::SaslStep::TempFailure(
                    "Connection lost to authentication server".into(),
                )));
                pending.extend(more);
            }
            _ => {}
        }
    }
    assert!(
        replies.contains(&"250-AUTH PLAIN".to_string()),
        "{replies:?}"
    );
    let tail: Vec<&str> = replies
        .iter()
        .skip_while(|l| !l.starts_with("250 CHUNKING"))
        .skip(1)
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
            "454 4.7.0 Temporary authentication failure: Connection lost to authentication server",
            "221 2.0.0 Bye",
        ]
    );
    assert!(logs.iter().any(|l| l
        == "warning: unknown[192.0.2.9]: SASL PLAIN authentication failed: Connection lost to authentication server"), "{logs:?}");
}

/// RFC 2033: LHLO (HELO/EHLO unknown), MAIL only after LHLO, DATA without
/// recipients is 503, and after the dot one reply per accepted recipient.
#[test]
fn lmtp_mode() {
    let mut cfg = config();
    cfg.lmtp = true;
    let mut s = Session::new(cfg, client(true));
    s.start();
    let (r, m) = run(
        &mut s,
        b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nLHLO client.test\r\nDATA\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<hoge@mydomain.com>\r\nRCPT TO:<root@localhost>\r\nRCPT TO:<hoge2@mydomain.com>\r\nDATA\r\nSubject: t\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(
        r,
        [
            "500 5.5.2 Error: command not recognized",
            "503 5.5.1 Error: send LHLO first",
            "250-mail.mydomain.com",
            "250-PIPELINING",
            "250-SIZE 1000",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-DSN",
            "250 SMTPUTF8",
            "503 5.5.1 Error: need RCPT command",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in local recipient table",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 <hoge@mydomain.com> Ok: queued as ID0",
            "250 2.0.0 <hoge2@mydomain.com> Ok: queued as ID0",
            "221 2.0.0 Bye",
        ]
    );
    assert_eq!(m.len(), 1);
    assert!(
        s.disconnect_log().contains("lhlo=1"),
        "{}",
        s.disconnect_log()
    );
}

/// The end-of-data checks (yubin-msgauth) refuse a message: the refusal
/// replaces "queued", the transaction is over, and the next one works.
#[test]
fn refused_at_end_of_data() {
    let mut s = session(true);
    s.start();
    let mut replies = Vec::new();
    let mut pending =
        s.feed(b"ehlo c.test\r\nmail from:<a@b.test>\r\nrcpt to:<hoge@mydomain.com>\r\ndata\r\n");
    pending.extend(s.feed(b"Subject: x\r\n\r\nbody\r\n.\r\n"));
    let mut refused_once = false;
    while !pending.is_empty() {
        let mut next = Vec::new();
        for a in pending {
            match a {
                Action::Request(r) => {
                    let ans = answer(&s, r);
                    next.extend(s.answer(ans));
                }
                Action::Deliver { envelope, .. } if !refused_once => {
                    refused_once = true;
                    let _ = envelope;
                    next.extend(s.refused(Reply::new(
                        550,
                        "5.7.1",
                        "Message rejected per DMARC policy for b.test",
                    )));
                }
                Action::Deliver { envelope, .. } => next.extend(s.queued(Ok(envelope.queue_id))),
                Action::Reply(r) => replies.extend(r.wire_lines()),
                _ => {}
            }
        }
        pending = next;
    }
    assert_eq!(
        replies.last().map(String::as_str),
        Some("550 5.7.1 Message rejected per DMARC policy for b.test")
    );
    // The transaction is over: RCPT needs a new MAIL.
    let (r, _) = run(&mut s, b"rcpt to:<hoge@mydomain.com>\r\n");
    assert_eq!(r, ["503 5.5.1 Error: need MAIL command"]);
    let (r, m) = run(
        &mut s,
        b"mail from:<a@b.test>\r\nrcpt to:<hoge@mydomain.com>\r\ndata\r\nx\r\n.\r\n",
    );
    assert_eq!(m.len(), 1);
    assert!(
        r.last().unwrap().starts_with("250 2.0.0 Ok: queued as"),
        "{r:?}"
    );
    // A refusal outside the end of DATA is ignored.
    assert!(s.refused(Reply::new(550, "5.7.1", "x")).is_empty());
}

/// Runs a session whose requests are answered by `policy`, from the
/// greeting on; returns replies, log lines and the queued envelopes.
fn run_policy(
    cfg: SessionConfig,
    input: &[u8],
    policy: &dyn Fn(&Request) -> Option<yubin_smtp::PolicyVerdict>,
) -> (Vec<String>, Vec<String>, Vec<yubin_smtp::Envelope>) {
    let mut s = Session::new(cfg, client(false));
    let (mut replies, mut logs, mut envs) = (Vec::new(), Vec::new(), Vec::new());
    let mut pending = s.start();
    pending.extend(s.feed(input));
    while !pending.is_empty() {
        let mut next = Vec::new();
        for a in pending {
            match a {
                Action::Request(r) => {
                    let ans = match policy(&r) {
                        Some(v) => Answer::Policy(v),
                        None => answer(&s, r),
                    };
                    next.extend(s.answer(ans));
                }
                Action::Deliver { envelope, .. } => {
                    let id = envelope.queue_id.clone();
                    envs.push(*envelope);
                    next.extend(s.queued(Ok(id)));
                }
                Action::Reply(r) => replies.extend(r.wire_lines()),
                Action::Log(l) => logs.push(l),
                _ => {}
            }
        }
        pending = next;
    }
    (replies, logs, envs)
}

fn refusal(code: u16, enh: &str, text: &str) -> yubin_smtp::PolicyVerdict {
    yubin_smtp::PolicyVerdict {
        reply: Some(Reply::new(code, enh, text)),
        ..Default::default()
    }
}

#[test]
fn client_refused_at_connect_gets_503_until_quit() {
    let mut cfg = config();
    cfg.check_client = true;
    let (replies, logs, _) = run_policy(
        cfg,
        b"EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n",
        &|r| {
            matches!(r, Request::Connect).then(|| {
                refusal(
                    554,
                    "5.7.1",
                    "<unknown[192.0.2.9]>: Client host rejected: Access denied",
                )
            })
        },
    );
    assert_eq!(
        replies,
        [
            "554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: Access denied",
            "503 5.7.0 Error: access denied for unknown[192.0.2.9]",
            "503 5.7.0 Error: access denied for unknown[192.0.2.9]",
            "221 2.0.0 Bye",
        ]
    );
    assert_eq!(
        logs[0],
        "NOQUEUE: reject: CONNECT from unknown[192.0.2.9]: 554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: Access denied; proto=SMTP"
    );
}

#[test]
fn helo_refused_leaves_no_helo() {
    let mut cfg = config();
    cfg.check_helo = true;
    cfg.helo_required = true;
    let (replies, logs, _) = run_policy(
        cfg,
        b"HELO bad.example\r\nMAIL FROM:<a@b.example>\r\nHELO good.example\r\n",
        &|r| match r {
            Request::Helo(q) if q.helo == "bad.example" => Some(refusal(
                554,
                "5.7.1",
                "<bad.example>: Helo command rejected: Access denied",
            )),
            _ => None,
        },
    );
    assert_eq!(
        &replies[1..],
        [
            "554 5.7.1 <bad.example>: Helo command rejected: Access denied",
            "503 5.5.1 Error: send HELO/EHLO first",
            "250 mail.mydomain.com",
        ]
    );
    assert!(
        logs[0].starts_with("NOQUEUE: reject: HELO from unknown[192.0.2.9]: 554 5.7.1"),
        "{logs:?}"
    );
    assert!(
        logs[0].ends_with("proto=SMTP helo=<bad.example>"),
        "{logs:?}"
    );
}

#[test]
fn hold_discard_and_prepend_reach_the_envelope() {
    let (replies, logs, envs) = run_policy(
        config(),
        b"EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<hoge@mydomain.com>\r\nRCPT TO:<hoge2@mydomain.com>\r\nDATA\r\nSubject: t\r\n\r\nhi\r\n.\r\n",
        &|r| match r {
            Request::Recipient(_) => Some(yubin_smtp::PolicyVerdict {
                events: vec![(
                    "hold".into(),
                    "<a@b.example>: Sender address triggers HOLD action".into(),
                )],
                hold: true,
                prepend: vec!["X-Seen: yes".into()],
                ..Default::default()
            }),
            _ => None,
        },
    );
    assert!(
        replies
            .last()
            .unwrap()
            .starts_with("250 2.0.0 Ok: queued as"),
        "{replies:?}"
    );
    assert_eq!(envs.len(), 1);
    assert!(envs[0].hold && !envs[0].discard);
    // Once per distinct header, though every recipient's check added it.
    assert_eq!(envs[0].prepend, ["X-Seen: yes"]);
    assert_eq!(
        logs[0],
        "NOQUEUE: hold: RCPT from unknown[192.0.2.9]: <a@b.example>: Sender address triggers HOLD action; from=<a@b.example> to=<hoge@mydomain.com> proto=ESMTP helo=<x.example>"
    );
}

#[test]
fn a_521_policy_reply_ends_the_session() {
    let (replies, _, _) = run_policy(
        config(),
        b"EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<hoge@mydomain.com>\r\nNOOP\r\n",
        &|r| {
            matches!(r, Request::Recipient(_)).then(|| {
                refusal(
                    521,
                    "5.7.1",
                    "<hoge@mydomain.com>: Recipient address rejected: go away",
                )
            })
        },
    );
    assert_eq!(
        replies.last().unwrap(),
        "521 5.7.1 <hoge@mydomain.com>: Recipient address rejected: go away"
    );
}
