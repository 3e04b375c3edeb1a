//! The SMTP client core driven with byte strings: what it sends for each
//! server reply, and the per-recipient outcomes.

use yubin_smtp::client::*;
use yubin_smtp::Enhanced;

fn tx(rcpts: &[&str]) -> Transaction {
    Transaction {
        sender: "s@client.test".into(),
        recipients: rcpts.iter().map(|r| Rcpt::new(*r)).collect(),
        size: 100,
        eight_bit: false,
        smtputf8: false,
        ret: None,
        envid: None,
    }
}

fn sent(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

fn outcomes(actions: &[Action]) -> Vec<(usize, Outcome)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Recipient { index, outcome } => Some((*index, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn cfg() -> ClientConfig {
    ClientConfig::new("client.test")
}

/// Greets with `ehlo` (the lines after the first) and returns the client,
/// ready for a transaction.
fn ready(cfg: ClientConfig, ehlo: &str) -> Client {
    let mut c = Client::new(cfg);
    assert_eq!(c.stage(), Stage::Greeting);
    let a = c.feed(b"220 mx.test ESMTP\r\n");
    assert_eq!(sent(&a), "EHLO client.test\r\n");
    assert_eq!(c.stage(), Stage::Ehlo);
    let a = c.feed(ehlo.as_bytes());
    assert!(a.contains(&Action::Ready), "{a:?}");
    c
}

const EHLO_FULL: &str = "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n";

#[test]
fn pipelined_transaction_with_per_recipient_results() {
    let mut c = ready(cfg(), EHLO_FULL);
    let mut t = tx(&["a@x.test", "b@x.test", "c@x.test"]);
    t.eight_bit = true;
    t.ret = Some(Ret::Hdrs);
    t.envid = Some("QID1".into());
    t.recipients[0].notify = Some("SUCCESS,FAILURE".into());
    t.recipients[1].orcpt = Some("rfc822;orig@x.test".into());
    let a = c.begin(t);
    // RFC 2920: MAIL, every RCPT and DATA in one write.
    assert_eq!(a.len(), 1);
    assert_eq!(
        sent(&a),
        "MAIL FROM:<s@client.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=QID1\r\n\
         RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@x.test\r\n\
         RCPT TO:<b@x.test> ORCPT=rfc822;orig@x.test\r\n\
         RCPT TO:<c@x.test> ORCPT=rfc822;c@x.test\r\n\
         DATA\r\n"
    );
    assert_eq!(c.stage(), Stage::Mail);
    let a = c.feed(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@x.test>: Recipient address rejected: User unknown\r\n");
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(c.stage(), Stage::Rcpt);
    let a = c.feed(b"250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    assert_eq!(a, vec![Action::SendMessage(BodyMode::Data)]);
    assert_eq!(c.stage(), Stage::Message);
    assert!(c.message_sent().is_empty());
    assert_eq!(c.stage(), Stage::DataDone);
    let a = c.feed(b"250 2.0.0 Ok: queued as ABC\r\n");
    let o = outcomes(&a);
    assert_eq!(o.len(), 3);
    assert!(matches!(&o[0].1, Outcome::Delivered(r) if r.code == 250));
    match &o[1].1 {
        Outcome::Failed(f) => {
            assert!(f.is_permanent());
            assert_eq!(f.enhanced(), Enhanced::new(5, 1, 1));
            assert_eq!(
                f.describe("mx.test[10.0.0.1]"),
                "host mx.test[10.0.0.1] said: 550 5.1.1 <b@x.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)"
            );
            assert_eq!(f.reply().unwrap().code, 550);
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(&o[2].1, Outcome::Delivered(_)));
    assert_eq!(a.last(), Some(&Action::TransactionDone));
    // Connection reuse: the next transaction needs no RSET.
    let a = c.begin(tx(&["d@x.test"]));
    assert!(sent(&a).starts_with("MAIL FROM:"), "{}", sent(&a));
    c.feed(b"250 ok\r\n250 ok\r\n354 go\r\n");
    c.message_sent();
    c.feed(b"250 ok\r\n");
    let a = c.quit();
    assert_eq!(sent(&a), "QUIT\r\n");
    assert_eq!(c.stage(), Stage::Quit);
    assert_eq!(c.feed(b"221 bye\r\n"), vec![Action::Close(None)]);
}

#[test]
fn without_pipelining_one_command_at_a_time_and_no_data_when_all_rejected() {
    let mut c = ready(cfg(), "250-mx.test\r\n250 SIZE\r\n");
    let a = c.begin(tx(&["a@x.test", "b@x.test"]));
    assert_eq!(sent(&a), "MAIL FROM:<s@client.test> SIZE=100\r\n");
    let a = c.feed(b"250 ok\r\n");
    assert_eq!(sent(&a), "RCPT TO:<a@x.test>\r\n");
    let a = c.feed(b"450 4.2.0 busy\r\n");
    assert_eq!(sent(&a), "RCPT TO:<b@x.test>\r\n");
    let a = c.feed(b"550 5.1.1 no\r\n");
    // Nobody accepted: no DATA; outcomes per recipient.
    assert_eq!(sent(&a), "");
    let o = outcomes(&a);
    assert!(
        matches!(&o[0].1, Outcome::Failed(f) if !f.is_permanent() && f.enhanced() == Enhanced::new(4,2,0))
    );
    assert!(matches!(&o[1].1, Outcome::Failed(f) if f.is_permanent()));
    // The server holds a transaction: RSET before the next one.
    let a = c.begin(tx(&["c@x.test"]));
    assert_eq!(sent(&a), "RSET\r\n");
    assert_eq!(c.stage(), Stage::Rset);
    let a = c.feed(b"250 ok\r\n");
    assert_eq!(sent(&a), "MAIL FROM:<s@client.test> SIZE=100\r\n");
    let a = c.feed(b"250 ok\r\n");
    assert_eq!(sent(&a), "RCPT TO:<c@x.test>\r\n");
    let a = c.feed(b"250 ok\r\n");
    assert_eq!(sent(&a), "DATA\r\n");
    let a = c.feed(b"354 go\r\n");
    assert_eq!(a, vec![Action::SendMessage(BodyMode::Data)]);
    c.message_sent();
    let a = c.feed(b"451 4.3.0 try later\r\n");
    let o = outcomes(&a);
    match &o[0].1 {
        Outcome::Failed(f) => {
            assert!(!f.is_permanent());
            assert_eq!(f.stage(), Stage::DataDone);
            assert_eq!(
                f.describe("mx[1.2.3.4]"),
                "host mx[1.2.3.4] said: 451 4.3.0 try later (in reply to end of DATA command)"
            );
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn mail_rejected_pipelined_consumes_all_replies() {
    let mut c = ready(cfg(), "250-mx.test\r\n250 PIPELINING\r\n");
    c.begin(tx(&["a@x.test", "b@x.test"]));
    let a = c.feed(b"553 5.7.1 sender rejected\r\n503 5.5.1 need MAIL\r\n");
    assert!(a.is_empty());
    let a = c.feed(b"503 5.5.1 need MAIL\r\n554 5.5.1 no valid recipients\r\n");
    let o = outcomes(&a);
    assert_eq!(o.len(), 2);
    for (_, out) in o {
        match out {
            Outcome::Failed(f) => {
                assert_eq!(f.stage(), Stage::Mail);
                assert_eq!(f.reply().unwrap().code, 553);
            }
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn pipelined_354_with_nobody_accepted_sends_an_empty_message() {
    let mut c = ready(cfg(), "250-mx.test\r\n250 PIPELINING\r\n");
    c.begin(tx(&["a@x.test"]));
    let a = c.feed(b"250 ok\r\n550 no\r\n354 go ahead anyway\r\n");
    assert_eq!(sent(&a), ".\r\n");
    let a = c.feed(b"554 no recipients\r\n");
    let o = outcomes(&a);
    assert!(matches!(&o[0].1, Outcome::Failed(f) if f.stage() == Stage::Rcpt));
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let mut c = Client::new(cfg());
    c.feed(b"220 old.test SMTP\r\n");
    let a = c.feed(b"502 5.5.2 Error: command not recognized\r\n");
    assert_eq!(sent(&a), "HELO client.test\r\n");
    assert_eq!(c.stage(), Stage::Helo);
    let a = c.feed(b"250 old.test\r\n");
    assert_eq!(a, vec![Action::Ready]);
    let mut t = tx(&["a@x.test"]);
    t.eight_bit = true;
    t.recipients[0].notify = Some("NEVER".into());
    let a = c.begin(t);
    // No ESMTP parameters to a HELO server; 8-bit goes as it is (as
    // Postfix with disable_mime_output_conversion = yes).
    assert_eq!(sent(&a), "MAIL FROM:<s@client.test>\r\n");
}

#[test]
fn greeting_failures() {
    let mut c = Client::new(cfg());
    let a = c.feed(b"554 5.7.1 go away\r\n");
    match &a[..] {
        [Action::Close(Some(f))] => {
            // smtp_skip_5xx_greeting: try the next MX, never bounce.
            assert!(!f.is_permanent());
            assert_eq!(
                f.describe("mx[1.2.3.4]"),
                "host mx[1.2.3.4] refused to talk to me: 554 5.7.1 go away"
            );
        }
        a => panic!("{a:?}"),
    }
    // A peer that speaks before it is spoken to.
    let mut c = Client::new(cfg());
    let a = c.feed(b"220 mx\r\n250 ok\r\n");
    assert!(
        matches!(
            &a[..],
            [Action::Close(Some(Failure::Local {
                reason: LocalReason::Protocol(_),
                ..
            }))]
        ),
        "{a:?}"
    );
    // Timeout, then no more actions.
    let mut c = Client::new(cfg());
    let a = c.timeout();
    match &a[..] {
        [Action::Close(Some(f))] => assert_eq!(
            f.describe("mx[1.2.3.4]"),
            "conversation with mx[1.2.3.4] timed out while receiving the initial server greeting"
        ),
        a => panic!("{a:?}"),
    }
    assert!(c.feed(b"220 late\r\n").is_empty());
    assert_eq!(c.stage(), Stage::Closed);
}

#[test]
fn lost_connection_after_data_says_message_may_be_sent_twice() {
    let mut c = ready(cfg(), "250-mx\r\n250 PIPELINING\r\n");
    c.begin(tx(&["a@x.test"]));
    c.feed(b"250 ok\r\n250 ok\r\n354 go\r\n");
    c.message_sent();
    let a = c.closed();
    let o = outcomes(&a);
    match &o[0].1 {
        Outcome::Failed(f) => {
            assert!(!f.is_permanent());
            assert_eq!(f.enhanced(), Enhanced::new(4, 4, 2));
            assert_eq!(f.describe("mx[1.2.3.4]"), "lost connection with mx[1.2.3.4] while sending end of data -- message may be sent more than once");
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(a.last(), Some(Action::Close(Some(_)))));
}

#[test]
fn hostile_replies_are_bounded() {
    // Endless multi-line reply.
    let mut c = Client::new(cfg());
    let mut closed = None;
    for _ in 0..10_000 {
        let a = c.feed(b"220-more and more\r\n");
        if let Some(Action::Close(f)) = a.last() {
            closed = f.clone();
            break;
        }
    }
    assert!(matches!(
        closed,
        Some(Failure::Local {
            reason: LocalReason::Protocol(_),
            ..
        })
    ));
    // One 100 kB line.
    let mut c = Client::new(cfg());
    let a = c.feed(&vec![b'2'; 100_000]);
    assert!(matches!(a.last(), Some(Action::Close(Some(_)))), "{a:?}");
    // Byte at a time: fine, just slow (the driver's stage deadline ends it).
    let mut c = Client::new(cfg());
    let mut acts = Vec::new();
    for b in b"220 mx\r\n" {
        acts.extend(c.feed(&[*b]));
    }
    assert_eq!(sent(&acts), "EHLO client.test\r\n");
    // Not a reply code at all.
    let mut c = Client::new(cfg());
    let a = c.feed(b"999 what\r\n");
    assert!(matches!(a.last(), Some(Action::Close(Some(_)))));
}

#[test]
fn size_and_smtputf8_checked_before_mail() {
    let mut c = ready(cfg(), "250-mx\r\n250 SIZE 50\r\n");
    let a = c.begin(tx(&["a@x.test"]));
    assert_eq!(sent(&a), "");
    match &outcomes(&a)[0].1 {
        Outcome::Failed(f) => {
            assert!(f.is_permanent());
            assert_eq!(f.enhanced(), Enhanced::new(5, 3, 4));
            assert_eq!(
                f.describe("mx[1.2.3.4]"),
                "message size 100 exceeds size limit 50 of server mx[1.2.3.4]"
            );
        }
        o => panic!("{o:?}"),
    }
    let mut c = ready(cfg(), "250-mx\r\n250 8BITMIME\r\n");
    let mut t = tx(&["ü@x.test"]);
    t.smtputf8 = true;
    let a = c.begin(t);
    match &outcomes(&a)[0].1 {
        Outcome::Failed(f) => {
            assert!(f.is_permanent());
            assert_eq!(f.enhanced(), Enhanced::new(5, 6, 7));
            assert_eq!(
                f.describe("mx[1.2.3.4]"),
                "SMTPUTF8 is required, but was not offered by host mx[1.2.3.4]"
            );
        }
        o => panic!("{o:?}"),
    }
    // With SMTPUTF8 offered it is requested.
    let mut c = ready(cfg(), "250-mx\r\n250 SMTPUTF8\r\n");
    let mut t = tx(&["ü@x.test"]);
    t.smtputf8 = true;
    assert_eq!(sent(&c.begin(t)), "MAIL FROM:<s@client.test> SMTPUTF8\r\n");
}

#[test]
fn chunking_sends_bdat_after_the_envelope() {
    let mut c = ready(cfg(), "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    let a = c.begin(tx(&["a@x.test"]));
    assert_eq!(
        sent(&a),
        "MAIL FROM:<s@client.test>\r\nRCPT TO:<a@x.test>\r\n"
    );
    let a = c.feed(b"250 ok\r\n250 ok\r\n");
    assert_eq!(a, vec![Action::SendMessage(BodyMode::Bdat)]);
    c.message_sent();
    let a = c.feed(b"250 2.0.0 queued\r\n");
    assert!(matches!(&outcomes(&a)[0].1, Outcome::Delivered(_)));
    assert_eq!(bdat_bytes(b"a\nb\n"), b"BDAT 6 LAST\r\na\r\nb\r\n");
    // Not used when configured off.
    let mut cf = cfg();
    cf.chunking = false;
    let mut c = ready(cf, "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
    assert!(sent(&c.begin(tx(&["a@x.test"]))).ends_with("DATA\r\n"));
}

#[test]
fn starttls_may_and_required() {
    // may: STARTTLS when offered, EHLO again afterwards.
    let mut c = Client::new(cfg());
    c.feed(b"220 mx\r\n");
    let a = c.feed(b"250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n");
    assert_eq!(sent(&a), "STARTTLS\r\n");
    assert_eq!(c.stage(), Stage::StartTls);
    let a = c.feed(b"220 2.0.0 Ready to start TLS\r\n");
    assert_eq!(a, vec![Action::StartTls]);
    assert_eq!(c.stage(), Stage::TlsHandshake);
    let a = c.tls_established();
    assert_eq!(sent(&a), "EHLO client.test\r\n");
    let a = c.feed(b"250-mx\r\n250 PIPELINING\r\n");
    assert_eq!(a, vec![Action::Ready]);
    assert!(c.tls_active());

    // may: refused STARTTLS, plaintext.
    let mut c = Client::new(cfg());
    c.feed(b"220 mx\r\n");
    c.feed(b"250-mx\r\n250 STARTTLS\r\n");
    assert_eq!(
        c.feed(b"454 4.7.0 TLS not available\r\n"),
        vec![Action::Ready]
    );
    assert!(!c.tls_active());

    // Injection after the 220 (CVE-2011-0411 pattern).
    let mut c = Client::new(cfg());
    c.feed(b"220 mx\r\n");
    c.feed(b"250-mx\r\n250 STARTTLS\r\n");
    let a = c.feed(b"220 go\r\n250 injected\r\n");
    assert!(matches!(&a[..], [Action::Close(Some(_))]), "{a:?}");

    // Required and not offered.
    let mut cf = cfg();
    cf.starttls = StartTls::Required;
    let mut c = Client::new(cf.clone());
    c.feed(b"220 mx\r\n");
    let a = c.feed(b"250-mx\r\n250 PIPELINING\r\n");
    match &a[..] {
        [Action::Close(Some(f))] => {
            assert!(!f.is_permanent());
            assert_eq!(f.enhanced(), Enhanced::new(4, 7, 4));
            assert_eq!(
                f.describe("mx[1.2.3.4]"),
                "TLS is required, but was not offered by host mx[1.2.3.4]"
            );
        }
        a => panic!("{a:?}"),
    }
    // Required, handshake fails.
    let mut c = Client::new(cf);
    c.feed(b"220 mx\r\n");
    c.feed(b"250-mx\r\n250 STARTTLS\r\n");
    c.feed(b"220 go\r\n");
    let a = c.tls_failed("certificate verify failed");
    assert!(matches!(&a[..], [Action::Close(Some(f))] if f.enhanced() == Enhanced::new(4,7,5)));

    // never: not even when offered.
    let mut cf = cfg();
    cf.starttls = StartTls::Never;
    let mut c = Client::new(cf);
    c.feed(b"220 mx\r\n");
    assert_eq!(c.feed(b"250-mx\r\n250 STARTTLS\r\n"), vec![Action::Ready]);
}

#[test]
fn auth_plain_and_login() {
    let mut cf = cfg();
    cf.auth = Some(Credentials {
        user: "u".into(),
        password: "p".into(),
    });
    cf.starttls = StartTls::Never;
    cf.auth_plaintext = true;
    let mut c = Client::new(cf.clone());
    c.feed(b"220 mx\r\n");
    let a = c.feed(b"250-mx\r\n250 AUTH LOGIN PLAIN\r\n");
    // base64("\0u\0p")
    assert_eq!(sent(&a), "AUTH PLAIN AHUAcA==\r\n");
    assert_eq!(c.stage(), Stage::Auth);
    assert_eq!(c.feed(b"235 2.7.0 ok\r\n"), vec![Action::Ready]);
    assert!(c.authenticated());

    let mut c = Client::new(cf.clone());
    c.feed(b"220 mx\r\n");
    let a = c.feed(b"250-mx\r\n250 AUTH=LOGIN\r\n");
    assert_eq!(sent(&a), "AUTH LOGIN\r\n");
    assert_eq!(sent(&c.feed(b"334 VXNlcm5hbWU6\r\n")), "dQ==\r\n");
    assert_eq!(sent(&c.feed(b"334 UGFzc3dvcmQ6\r\n")), "cA==\r\n");
    assert_eq!(c.feed(b"235 ok\r\n"), vec![Action::Ready]);

    // A refusal is a soft failure (smtp_sasl_auth_soft_bounce).
    let mut c = Client::new(cf.clone());
    c.feed(b"220 mx\r\n");
    c.feed(b"250-mx\r\n250 AUTH PLAIN\r\n");
    let a = c.feed(b"535 5.7.8 Error: authentication failed\r\n");
    match &a[..] {
        [Action::Close(Some(f))] => {
            assert!(!f.is_permanent());
            assert_eq!(f.describe("smarthost[1.2.3.4]"), "SASL authentication failed; server smarthost[1.2.3.4] said: 535 5.7.8 Error: authentication failed");
        }
        a => panic!("{a:?}"),
    }

    // Plaintext AUTH not allowed (smtp_sasl_security_options = noplaintext).
    cf.auth_plaintext = false;
    let mut c = Client::new(cf);
    c.feed(b"220 mx\r\n");
    let a = c.feed(b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
    assert!(
        matches!(
            &a[..],
            [Action::Close(Some(Failure::Local {
                reason: LocalReason::NoAuthMechanism,
                ..
            }))]
        ),
        "{a:?}"
    );
}

#[test]
fn data_encoding() {
    assert_eq!(data_bytes(b"a\n.b\n..\n"), b"a\r\n..b\r\n...\r\n.\r\n");
    assert_eq!(
        data_bytes(b"a\r\n.\r\nno end"),
        b"a\r\n..\r\nno end\r\n.\r\n"
    );
    assert_eq!(data_bytes(b""), b".\r\n");
    assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    assert!(is_eight_bit("ü".as_bytes()));
}

#[test]
fn misuse_never_panics() {
    let mut c = Client::new(cfg());
    // begin before the greeting.
    let a = c.begin(tx(&["a@x.test"]));
    assert!(matches!(&outcomes(&a)[0].1, Outcome::Failed(_)));
    assert!(c.message_sent().is_empty());
    assert!(c.tls_established().is_empty());
}

/// The fuzz target's driving loop over pseudo-random mixes of reply
/// fragments (cargo-fuzz is not part of `cargo test`): no panic, at most one
/// outcome per recipient, always an end.
#[test]
fn random_reply_mixes_never_panic() {
    const PIECES: &[&[u8]] = &[
        b"220 mx\r\n",
        b"250-mx\r\n",
        b"250-PIPELINING\r\n",
        b"250-CHUNKING\r\n",
        b"250-STARTTLS\r\n",
        b"250-AUTH PLAIN LOGIN\r\n",
        b"250-SIZE 10\r\n",
        b"250 ok\r\n",
        b"354 go\r\n",
        b"334 x\r\n",
        b"235 ok\r\n",
        b"220 go\r\n",
        b"451 4.3.0 later\r\n",
        b"550 5.1.1 no\r\n",
        b"502 no\r\n",
        b"\r\n",
        b"25",
        b"0 x\r\n",
        b"\xff\xfe\r\n",
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..3000 {
        let mut cf = cfg();
        cf.pipelining = round % 2 == 0;
        cf.chunking = round % 3 == 0;
        cf.starttls = [StartTls::Never, StartTls::IfOffered, StartTls::Required][round % 3];
        if round % 5 == 0 {
            cf.auth = Some(Credentials {
                user: "u".into(),
                password: "p".into(),
            });
            cf.auth_plaintext = true;
        }
        let mut c = Client::new(cf);
        let mut results = 0;
        let mut begun = 0;
        let mut closed = false;
        for _ in 0..40 {
            let piece = PIECES[(next() % PIECES.len() as u64) as usize];
            let mut acts = c.feed(piece);
            if next() % 50 == 0 {
                acts.extend(c.timeout());
            }
            let mut i = 0;
            while i < acts.len() {
                match acts[i].clone() {
                    Action::Ready | Action::TransactionDone if begun < 2 => {
                        begun += 1;
                        acts.extend(c.begin(tx(&["a@x", "b@x"])));
                    }
                    Action::SendMessage(_) => acts.extend(c.message_sent()),
                    Action::StartTls => acts.extend(c.tls_established()),
                    Action::Recipient { index, .. } => {
                        assert!(index < 2);
                        results += 1;
                    }
                    Action::Close(_) => closed = true,
                    _ => {}
                }
                i += 1;
            }
        }
        if !closed {
            let acts = c.closed();
            assert!(acts.iter().any(|a| matches!(a, Action::Close(_))));
        }
        assert!(results <= 2 * begun.max(1) + 2, "round {round}: {results}");
    }
}

#[test]
fn a_server_greeting_with_my_own_name_is_a_loop() {
    let mut cf = cfg();
    cf.my_hostname = Some("client.test".into());
    let mut c = Client::new(cf.clone());
    let a = c.feed(b"220 CLIENT.test ESMTP\r\n");
    match &a[..] {
        [Action::Close(Some(f))] => {
            assert!(f.is_permanent());
            assert_eq!(f.enhanced(), Enhanced::new(5, 4, 6));
            assert_eq!(
                f.describe("mx[1.2.3.4]"),
                "host mx[1.2.3.4] greeted me with my own hostname CLIENT.test"
            );
        }
        a => panic!("{a:?}"),
    }
    // In the EHLO reply (behind a load balancer whose banner differs).
    let mut c = Client::new(cf.clone());
    c.feed(b"220 lb.test ESMTP\r\n");
    let a = c.feed(b"250-client.test\r\n250 PIPELINING\r\n");
    assert!(
        matches!(&a[..], [Action::Close(Some(f))] if f.enhanced() == Enhanced::new(5, 4, 6)),
        "{a:?}"
    );
    // Another name is fine.
    let mut c = Client::new(cf);
    c.feed(b"220 mx.test ESMTP\r\n");
    assert_eq!(c.feed(b"250 mx.test\r\n"), vec![Action::Ready]);
}

/// RFC 2033: LHLO, DATA even when CHUNKING is offered, and after the final
/// dot one reply per accepted recipient, in RCPT order, each that
/// recipient's own result (section 4.2); a recipient refused at RCPT gets
/// no reply after the dot.
#[test]
fn lmtp_one_reply_per_accepted_recipient() {
    let mut cfg = cfg();
    cfg.lmtp = true;
    let mut c = Client::new(cfg);
    let a = c.feed(b"220 dovecot ready.\r\n");
    assert_eq!(sent(&a), "LHLO client.test\r\n");
    let a = c.feed(b"250-dovecot\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n");
    assert!(a.contains(&Action::Ready), "{a:?}");
    let a = c.begin(tx(&["a@x.test", "ghost@x.test", "b@x.test", "full@x.test"]));
    assert!(
        sent(&a).ends_with("RCPT TO:<full@x.test>\r\nDATA\r\n"),
        "{}",
        sent(&a)
    );
    let a = c.feed(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 <ghost@x.test> User doesn't exist: ghost@x.test\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n354 OK\r\n");
    assert_eq!(a, vec![Action::SendMessage(BodyMode::Data)]);
    assert!(c.message_sent().is_empty());
    // The first two of three replies: no outcome yet for anybody.
    let a = c.feed(b"250 2.0.0 <a@x.test> abc Saved\r\n250 2.0.0 <b@x.test> abd Saved\r\n");
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(c.stage(), Stage::DataDone);
    let a = c.feed(b"452 4.2.2 <full@x.test> Quota exceeded (mailbox for user is full)\r\n");
    let o = outcomes(&a);
    assert_eq!(o.len(), 4);
    assert!(matches!(&o[0].1, Outcome::Delivered(r) if r.text[0].contains("<a@x.test>")));
    assert!(matches!(&o[1].1, Outcome::Failed(f) if f.is_permanent() && f.stage() == Stage::Rcpt));
    assert!(matches!(&o[2].1, Outcome::Delivered(r) if r.text[0].contains("<b@x.test>")));
    match &o[3].1 {
        Outcome::Failed(f) => {
            assert!(!f.is_permanent());
            assert_eq!(f.enhanced(), Enhanced::new(4, 2, 2));
            assert_eq!(
                f.describe("h[/run/lmtp]"),
                "host h[/run/lmtp] said: 452 4.2.2 <full@x.test> Quota exceeded (mailbox for user is full) (in reply to end of DATA command)"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(a.contains(&Action::TransactionDone));
}

/// The connection drops after one of two post-dot replies: the first
/// recipient keeps its success, the second fails as lost.
#[test]
fn lmtp_lost_between_replies() {
    let mut cfg = cfg();
    cfg.lmtp = true;
    let mut c = Client::new(cfg);
    c.feed(b"220 x\r\n");
    c.feed(b"250-x\r\n250 PIPELINING\r\n");
    c.begin(tx(&["a@x.test", "b@x.test"]));
    c.feed(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    c.message_sent();
    let mut a = c.feed(b"250 2.0.0 <a@x.test> Saved\r\n");
    assert!(a.is_empty());
    a = c.closed();
    let o = outcomes(&a);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0, 1);
    assert!(matches!(&o[0].1, Outcome::Failed(f) if !f.is_permanent()));
}

/// An LMTP server that refuses LHLO: no HELO fallback, and the failure
/// names LHLO as Postfix's lmtp(8) does.
#[test]
fn lmtp_lhlo_refused_is_a_failure_naming_lhlo() {
    let mut cfg = cfg();
    cfg.lmtp = true;
    let mut c = Client::new(cfg);
    c.feed(b"220 x\r\n");
    assert_eq!(c.stage(), Stage::Lhlo);
    let a = c.feed(b"500 5.5.1 Unknown command\r\n");
    assert_eq!(sent(&a), "");
    let f = a
        .iter()
        .find_map(|x| match x {
            Action::Close(Some(f)) => Some(f.clone()),
            _ => None,
        })
        .expect("closed with a failure");
    assert_eq!(
        f.describe("h[/run/lmtp]"),
        "host h[/run/lmtp] said: 500 5.5.1 Unknown command (in reply to LHLO command)"
    );
}
