//! Fuzzes the SMTP client core: the input is split into server replies fed
//! in pieces, with driver events (body sent, TLS done, timeout) chosen by the
//! first byte. Any input must end in actions, never a panic, and the core
//! must never hold more than MAX_BUFFER bytes of input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_smtp::client::{Action, Client, ClientConfig, Credentials, Rcpt, StartTls, Transaction};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let mut cfg = ClientConfig::new("fuzz.test");
    cfg.pipelining = ctl & 1 != 0;
    cfg.chunking = ctl & 2 != 0;
    cfg.starttls = match ctl & 12 {
        0 => StartTls::Never,
        4 => StartTls::IfOffered,
        _ => StartTls::Required,
    };
    if ctl & 16 != 0 {
        cfg.auth = Some(Credentials {
            user: "u".into(),
            password: "p".into(),
        });
        cfg.auth_plaintext = ctl & 32 != 0;
    }
    let mut c = Client::new(cfg);
    let mut began = 0;
    let n_rcpt = 3;
    for (i, chunk) in rest.split(|&b| b == 0xff).enumerate() {
        let mut actions = c.feed(chunk);
        if i % 7 == 6 {
            actions.extend(c.timeout());
        }
        let mut results = 0;
        for a in actions {
            match a {
                Action::Ready | Action::TransactionDone if began < 3 => {
                    began += 1;
                    if began > 1 && ctl & 1 != 0 {
                        // A session from the connection cache: RSET first.
                        c.reuse();
                    }
                    let t = Transaction {
                        sender: "s@x".into(),
                        recipients: (0..n_rcpt).map(|k| Rcpt::new(format!("r{k}@y"))).collect(),
                        size: 10,
                        eight_bit: ctl & 64 != 0,
                        smtputf8: ctl & 128 != 0,
                        ret: None,
                        envid: None,
                    };
                    for b in c.begin(t) {
                        if let Action::Recipient { index, .. } = b {
                            assert!(index < n_rcpt);
                        }
                    }
                }
                Action::SendMessage(_) => {
                    c.message_sent();
                }
                Action::StartTls => {
                    c.tls_established();
                }
                Action::Recipient { index, .. } => {
                    assert!(index < n_rcpt);
                    results += 1;
                }
                _ => {}
            }
        }
        assert!(results <= n_rcpt);
    }
    let _ = c.closed();
});
