//! Wiring only: the deliver crate's relay agent (`yubin_deliver::agent::Relay`)
//! backed by the SMTP and LMTP clients of yubin-outbound, awaited on the
//! server's runtime from the queue manager's blocking worker.

use std::sync::Arc;

use tokio::runtime::Handle;
use yubin_addr::{Agent, Delivery};
use yubin_deliver::agent::{Envelope, Relay, Relayed};
use yubin_deliver::{Failure, Message};
use yubin_maillog::MailLog;
use yubin_outbound::agent::{Job, Status};
use yubin_outbound::{LmtpTarget, Outbound};
use yubin_smtp::client::{Rcpt, Ret};

pub struct SmtpRelay<'a> {
    pub outbound: Arc<Outbound>,
    pub handle: Handle,
    pub log: &'a MailLog,
    /// queue_directory: `lmtp:unix:private/...` is relative to it.
    pub queue_directory: std::path::PathBuf,
}

impl Relay for SmtpRelay<'_> {
    fn relay(
        &self,
        nexthop: &str,
        copies: &[(&Delivery, Message<'_>)],
        envelope: &Envelope<'_>,
    ) -> Vec<Relayed> {
        let Some((_, first)) = copies.first() else {
            return Vec::new();
        };
        let domain = first
            .recipient
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("");
        let lmtp = matches!(copies[0].0.agent, Agent::Lmtp { .. });
        let refuse = |e: String| -> Vec<Relayed> {
            copies
                .iter()
                .map(|_| Relayed {
                    result: Err(Failure::temp("4.3.5", e.clone())),
                    relay: "none".into(),
                })
                .collect()
        };
        let route = if lmtp {
            match LmtpTarget::parse(nexthop, &self.queue_directory) {
                Ok(t) => Route::Lmtp(t),
                Err(e) => return refuse(e),
            }
        } else {
            match self.outbound.nexthop_for_target(nexthop, domain) {
                Ok(n) => Route::Smtp(n),
                Err(e) => return refuse(e.to_string()),
            }
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
        let (done, daemon) = match &route {
            Route::Smtp(n) => (self.handle.block_on(self.outbound.deliver(n, &job)), "smtp"),
            Route::Lmtp(t) => (
                self.handle.block_on(self.outbound.deliver_lmtp(t, &job)),
                "lmtp",
            ),
        };
        for note in &done.notes {
            self.log.log(daemon, note);
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

enum Route {
    Smtp(yubin_outbound::Nexthop),
    Lmtp(LmtpTarget),
}
