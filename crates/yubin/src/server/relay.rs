//! Wiring only: the deliver crate's relay agent (`yubin_deliver::agent::Relay`)
//! backed by the SMTP client of yubin-outbound, awaited on the server's
//! runtime from the queue manager's blocking worker.

use std::sync::Arc;

use tokio::runtime::Handle;
use yubin_addr::{Delivery, Nexthop};
use yubin_deliver::agent::{Envelope, Relay, Relayed};
use yubin_deliver::{Failure, Message};
use yubin_maillog::MailLog;
use yubin_outbound::agent::{Job, Status};
use yubin_outbound::Outbound;
use yubin_smtp::client::{Rcpt, Ret};

pub struct SmtpRelay<'a> {
    pub outbound: Arc<Outbound>,
    pub handle: Handle,
    pub log: &'a MailLog,
}

impl Relay for SmtpRelay<'_> {
    fn relay(
        &self,
        nexthop: &Nexthop,
        copies: &[(&Delivery, Message<'_>)],
        envelope: &Envelope<'_>,
    ) -> Vec<Relayed> {
        let Some((_, first)) = copies.first() else {
            return Vec::new();
        };
        let job = Job {
            queue_id: first.queue_id,
            sender: first.sender,
            recipients: copies
                .iter()
                .enumerate()
                .map(|(i, (d, _))| {
                    let (notify, orcpt) = envelope.dsn.get(i).copied().unwrap_or_default();
                    Rcpt {
                        address: d.recipient.clone(),
                        notify: notify.map(str::to_string),
                        orcpt: orcpt.map(str::to_string),
                    }
                })
                .collect(),
            message: first.content,
            ret: match envelope.ret.map(str::to_ascii_uppercase).as_deref() {
                Some("FULL") => Some(Ret::Full),
                Some("HDRS") => Some(Ret::Hdrs),
                _ => None,
            },
            envid: envelope.envid.map(str::to_string),
            smtputf8: envelope.smtputf8,
        };
        let done = self.handle.block_on(self.outbound.deliver(nexthop, &job));
        for note in &done.notes {
            self.log.log("smtp", note);
        }
        done.results
            .into_iter()
            .map(|r| Relayed {
                relay: r.relay_field(),
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
            })
            .collect()
    }
}
