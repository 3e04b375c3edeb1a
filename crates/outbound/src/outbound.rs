//! The one object the queue manager holds for outbound mail: the settings
//! and the resolver, built together from main.cf at start and at reload.

use yubin_conf::Config;

use crate::agent::{deliver_with, Delivery, Job};
use crate::cache::ConnCache;
use crate::dns::Dns;
use crate::nexthop::Nexthop;
use crate::settings::Settings;

pub struct Outbound {
    pub settings: Settings,
    pub dns: Dns,
    /// Idle SMTP sessions kept for the next message to the same nexthop.
    pub cache: ConnCache,
}

impl Outbound {
    /// Reads `smtp_*`, `inet_protocols`, `dns_servers`, ... (`relayhost` and
    /// the transports are the address resolver's: yubin-addr routing).
    /// An error names the parameter and where it was set.
    pub fn from_config(cfg: &Config) -> Result<Outbound, String> {
        let servers = yubin_dns::parse_servers(&cfg.list("dns_servers"))
            .map_err(|e| format!("{}: dns_servers: {e}", cfg.origin_text("dns_servers")))?;
        Ok(Outbound {
            settings: Settings::from_config(cfg)?,
            dns: Dns::new(Some(&servers)),
            cache: ConnCache::default(),
        })
    }

    /// As [`Outbound::from_config`], sharing the server's resolver.
    pub fn with_resolver(
        cfg: &Config,
        dns: std::sync::Arc<yubin_dns::Dns>,
    ) -> Result<Outbound, String> {
        Ok(Outbound {
            settings: Settings::from_config(cfg)?,
            dns: Dns::shared(dns),
            cache: ConnCache::default(),
        })
    }

    /// Delivers one message to one nexthop (all its recipients for that
    /// nexthop in one transaction). Call from a tokio runtime; from a
    /// blocking worker use `Handle::block_on`.
    pub async fn deliver(&self, nexthop: &Nexthop, job: &Job<'_>) -> Delivery {
        deliver_with(&self.settings, &self.dns, Some(&self.cache), nexthop, job).await
    }

    /// lmtp(8): one message to an LMTP server (see [`crate::lmtp`]).
    pub async fn deliver_lmtp(&self, target: &crate::lmtp::LmtpTarget, job: &Job<'_>) -> Delivery {
        crate::lmtp::deliver(&self.settings, target, job).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue manager keeps one Outbound behind an Arc and runs
    /// deliveries as tokio tasks: both must be possible.
    #[test]
    fn shareable_and_spawnable() {
        fn sync_send<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let ob = Outbound {
            settings: Settings::new("me.test"),
            dns: Dns::new(None),
            cache: ConnCache::default(),
        };
        sync_send(&ob);
        let nh = Nexthop::parse("example.test").unwrap();
        let job = Job {
            queue_id: "X",
            sender: "",
            recipients: Vec::new(),
            message: b"",
            ret: None,
            envid: None,
            smtputf8: false,
        };
        send(&ob.deliver(&nh, &job));
    }
}
