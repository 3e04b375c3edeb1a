//! Wiring only: the deliver crate's relay agent (`yubin_deliver::agent::Relay`)
//! backed by the SMTP client of yubin-outbound, awaited on the server's
//! runtime from the queue manager's blocking worker.

use std::sync::Arc;

use tokio::runtime::Handle;
use yubin_addr::Delivery;
use yubin_deliver::agent::{Relay, Relayed};
use yubin_deliver::{Failure, Message};
use yubin_maillog::MailLog;
use yubin_outbound::agent::{Job, Status};
use yubin_outbound::Outbound;
use yubin_smtp::client::Rcpt;

pub struct SmtpRelay<'a> {
    pub outbound: Arc<Outbound>,
    pub handle: Handle,
    pub log: &'a MailLog,
}

impl Relay for SmtpRelay<'_> {
    fn relay(&self, nexthop: &str, copies: &[(&Delivery, Message<'_>)]) -> Vec<Relayed> {
        let Some((_, first)) = copies.first() else {
            return Vec::new();
        };
        let domain = first
            .recipient
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("");
        let nexthop = match self.outbound.nexthop_for_target(nexthop, domain) {
            Ok(n) => n,
            Err(e) => {
                return copies
                    .iter()
                    .map(|_| Relayed {
                        result: Err(Failure::temp("4.3.5", e.to_string())),
                        relay: "none".into(),
                    })
                    .collect()
            }
        };
        let job = Job {
            queue_id: first.queue_id,
            sender: first.sender,
            recipients: copies
                .iter()
                .map(|(d, _)| Rcpt::new(d.recipient.clone()))
                .collect(),
            message: first.content,
            ret: None,
            envid: None,
            smtputf8: false,
        };
        let done = self.handle.block_on(self.outbound.deliver(&nexthop, &job));
        for note in &done.notes {
            self.log.log("smtp", note);
        }
        done.results
            .into_iter()
            .map(|r| Relayed {
                result: match r.status {
                    Status::Sent => Ok(r.text),
                    Status::Deferred => Err(Failure::temp(&r.dsn.to_string(), r.text)),
                    Status::Bounced => {
                        let diagnostic = r.diagnostic_code();
                        let f = Failure::perm(&r.dsn.to_string(), r.text);
                        Err(match (r.remote_mta, r.reply.is_some()) {
                            (Some(mta), true) => f.with_remote(mta, diagnostic),
                            _ => f,
                        })
                    }
                },
                relay: r.relay,
            })
            .collect()
    }
}
