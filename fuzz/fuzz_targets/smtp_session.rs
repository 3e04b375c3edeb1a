//! The SMTP session core fed arbitrary bytes in arbitrary chunks: replies
//! stay well-formed, no panic, and buffered data stays bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Duration;
use yubin_addr::{Address, Class, Verdict};
use yubin_smtp::{Action, ClientInfo, Policy, Restriction, Session, SessionConfig};

struct P;
impl Policy for P {
    fn check_recipient(&self, a: &Address) -> (Class, Verdict) {
        if a.local.starts_with('r') {
            (Class::Local, Verdict::Reject { code: 550, enhanced: "5.1.1".into(), text: "no".into(), hint: String::new() })
        } else if a.domain.ends_with(".org") {
            (Class::Default, Verdict::Accept)
        } else {
            (Class::VirtualMailbox, Verdict::Accept)
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
        relay_restrictions: vec![Restriction::PermitMynetworks, Restriction::RejectUnauthDestination],
        recipient_restrictions: vec![Restriction::RejectNonFqdnRecipient],
        sender_restrictions: vec![],
        line_limit: 512,
        tls_offered: true,
        tls_required: false,
        auth: None,
        auth_requires_tls: false,
        broken_sasl_auth_clients: false,
        new_queue_id: Arc::new(|| "ID".to_string()),
    };
    let client = ClientInfo { name: "x".into(), addr: "192.0.2.1".parse().unwrap(), in_mynetworks: data.first() == Some(&b'M') };
    let mut s = Session::new(cfg, Arc::new(P), client);
    let _ = s.start();
    let split = data.first().map(|b| (*b as usize % 7) + 1).unwrap_or(1);
    for chunk in data.chunks(split) {
        let mut pending = s.feed(chunk);
        while !pending.is_empty() {
            let mut next = Vec::new();
            for a in pending {
                match a {
                    Action::Send(b) => {
                        assert!(b.ends_with(b"\r\n"));
                        assert!(b[..3].iter().all(u8::is_ascii_digit));
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
