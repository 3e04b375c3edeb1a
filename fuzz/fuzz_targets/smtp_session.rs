//! The SMTP session core fed arbitrary bytes in arbitrary chunks: replies
//! stay well-formed, every request gets an answer the way a server would
//! give it, no panic, and buffered data stays bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Duration;
use yubin_smtp::{
    Action, Answer, AuthRequest, ClientInfo, Reply, Request, SaslStep, Session, SessionConfig,
};

/// A server's answers: recipients starting with `r` are unknown, `.org`
/// needs relaying (refused outside mynetworks), PLAIN succeeds for "\0u\0p".
fn answer(s: &Session, r: Request) -> Answer {
    match r {
        Request::Mail(q) => Answer::Verdict(
            (q.size.unwrap_or(0) > 1000).then(|| Reply::new(452, "4.3.1", "Insufficient system storage")),
        ),
        Request::Recipient(q) if q.recipient.local.starts_with('r') => {
            Answer::Verdict(Some(Reply::new(550, "5.1.1", "no")))
        }
        Request::Recipient(q) if q.recipient.domain.ends_with(".org") && !s.client().in_mynetworks && q.sasl_user.is_none() => {
            Answer::Verdict(Some(Reply::new(554, "5.7.1", "Relay access denied")))
        }
        Request::Recipient(_) | Request::Verify(_) => Answer::Verdict(None),
        Request::Connect => Answer::Verdict(None),
        Request::Helo(q) if q.helo.starts_with('x') => Answer::Policy(yubin_smtp::PolicyVerdict {
            reply: Some(Reply::new(554, "5.7.1", format!("<{}>: Helo command rejected: Access denied", q.helo))),
            events: vec![("warn".into(), "x".into())],
            ..Default::default()
        }),
        Request::Helo(_) => Answer::Verdict(None),
        Request::Auth(AuthRequest::Start { initial: None, .. }) => Answer::Sasl(SaslStep::Challenge(Vec::new())),
        Request::Auth(AuthRequest::Start { initial: Some(b), .. }) | Request::Auth(AuthRequest::Response(b)) => {
            Answer::Sasl(if b == b"\0u\0p" {
                SaslStep::Success("u".into())
            } else if b == b"t" {
                SaslStep::TempFailure("down".into())
            } else {
                SaslStep::Failure("no".into())
            })
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = SessionConfig {
        hostname: "h".into(),
        banner: "h ESMTP".into(),
        message_size_limit: 4096,
        recipient_limit: 5,
        hard_error_limit: 20,
        soft_error_limit: 10,
        error_sleep: Duration::ZERO,
        disable_vrfy: false,
        smtputf8_enable: true,
        helo_required: false,
        line_limit: 512,
        tls_offered: true,
        tls_required: false,
        auth_mechanisms: Some(vec!["PLAIN".into()]),
        auth_mechanisms_tls: Some(vec!["PLAIN".into(), "LOGIN".into()]),
        auth_requires_tls: false,
        broken_sasl_auth_clients: false,
        check_client: false,
        check_helo: true,
        // The LMTP mode (yubin's lmtpd) when the input starts with 'L'.
        lmtp: data.first() == Some(&b'L'),
        new_queue_id: Arc::new(|| "ID".to_string()),
    };
    let client = ClientInfo { name: "x".into(), addr: "192.0.2.1".parse().unwrap(), in_mynetworks: data.first() == Some(&b'M') };
    let mut s = Session::new(cfg, client);
    let _ = s.start();
    let split = data.first().map(|b| (*b as usize % 7) + 1).unwrap_or(1);
    for chunk in data.chunks(split) {
        let mut pending = s.feed(chunk);
        while !pending.is_empty() {
            let mut next = Vec::new();
            for a in pending {
                match a {
                    Action::Reply(r) => {
                        let b = r.to_wire();
                        assert!(b.ends_with(b"\r\n"));
                        assert!(b[..3].iter().all(u8::is_ascii_digit));
                    }
                    Action::Request(r) => {
                        let ans = answer(&s, r);
                        next.extend(s.answer(ans));
                    }
                    Action::Deliver { envelope, data } => {
                        assert!(data.len() <= 4096 + 2);
                        next.extend(s.queued(Ok(envelope.queue_id.clone())));
                    }
                    _ => {}
                }
            }
            pending = next;
        }
    }
});
