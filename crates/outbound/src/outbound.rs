//! The one object the queue manager holds for outbound mail: the settings
//! and the resolver, built together from main.cf at start and at reload.

use yubin_conf::Config;

use crate::agent::{deliver, Delivery, Job};
use crate::dns::Dns;
use crate::nexthop::Nexthop;
use crate::settings::Settings;

pub struct Outbound {
    pub settings: Settings,
    pub dns: Dns,
}

impl Outbound {
    /// Reads `smtp_*`, `relayhost`, `inet_protocols`, `dns_servers`, ...
    /// An error names the parameter and where it was set.
    pub fn from_config(cfg: &Config) -> Result<Outbound, String> {
        let servers = yubin_dns::parse_servers(&cfg.list("dns_servers"))
            .map_err(|e| format!("{}: dns_servers: {e}", cfg.origin_text("dns_servers")))?;
        Ok(Outbound {
            settings: Settings::from_config(cfg)?,
            dns: Dns::new(Some(&servers)),
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
        })
    }

    /// The nexthop for a recipient domain: `relayhost` when set, else the
    /// domain itself by MX.
    pub fn nexthop_for(&self, recipient_domain: &str) -> Nexthop {
        Nexthop::route(recipient_domain, self.settings.relayhost.as_ref())
    }

    /// The nexthop for a relay copy, from the target the address resolver
    /// gave (`[domain]` or `domain` for the recipient's own domain, as
    /// trivial-rewrite gives for the default and relay classes) : that is
    /// routed by `relayhost` or MX; any other target (a transport_maps-style
    /// nexthop) is used as written.
    pub fn nexthop_for_target(
        &self,
        target: &str,
        recipient_domain: &str,
    ) -> Result<Nexthop, crate::nexthop::NexthopError> {
        let bare = target.trim_start_matches('[').trim_end_matches(']');
        if target.is_empty() || bare.eq_ignore_ascii_case(recipient_domain) {
            return Ok(self.nexthop_for(recipient_domain));
        }
        Nexthop::parse(target)
    }

    /// Delivers one message to one nexthop (all its recipients for that
    /// nexthop in one transaction). Call from a tokio runtime; from a
    /// blocking worker use `Handle::block_on`.
    pub async fn deliver(&self, nexthop: &Nexthop, job: &Job<'_>) -> Delivery {
        deliver(&self.settings, &self.dns, nexthop, job).await
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

    #[test]
    fn resolver_targets() {
        let mut ob = Outbound {
            settings: Settings::new("me.test"),
            dns: Dns::new(None),
        };
        let mx = Nexthop::parse("example.org").unwrap();
        assert_eq!(
            ob.nexthop_for_target("[example.org]", "example.org")
                .unwrap(),
            mx
        );
        assert_eq!(
            ob.nexthop_for_target("example.org", "example.org").unwrap(),
            mx
        );
        assert_eq!(
            ob.nexthop_for_target("[relay.test]:2525", "example.org")
                .unwrap(),
            Nexthop::parse("[relay.test]:2525").unwrap()
        );
        ob.settings.relayhost = Some(Nexthop::parse("[smart.test]:587").unwrap());
        assert_eq!(
            ob.nexthop_for_target("[example.org]", "example.org")
                .unwrap()
                .to_string(),
            "[smart.test]:587"
        );
    }
}
