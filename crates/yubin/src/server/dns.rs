//! DNS for smtpd's `reject_unknown_recipient_domain`, with the hickory
//! resolver: a domain exists when it has an MX record or, failing that, an
//! address record (RFC 5321 section 5.1). `dns_servers` (yubin's parameter,
//! `ip[:port]` list) replaces the system resolver configuration, so tests
//! can ask a DNS server of their own on loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::anyhow;
use hickory_resolver::TokioResolver;
use yubin_conf::Config;
use yubin_smtp::session::DomainStatus;

pub struct Dns {
    /// `None`: the system configuration (/etc/resolv.conf).
    servers: Option<Vec<SocketAddr>>,
    /// Made at the first lookup, inside the server's runtime.
    resolver: std::sync::OnceLock<TokioResolver>,
}

impl Dns {
    /// A resolver when some restriction list uses DNS, else `None`.
    pub fn new(cfg: &Config) -> anyhow::Result<Option<Arc<Dns>>> {
        let uses_dns = [
            "smtpd_relay_restrictions",
            "smtpd_recipient_restrictions",
            "smtpd_sender_restrictions",
        ]
        .iter()
        .any(|p| {
            cfg.list(p)
                .iter()
                .any(|r| r == "reject_unknown_recipient_domain")
        });
        if !uses_dns {
            return Ok(None);
        }
        // One parser and one resolver builder for smtpd and the SMTP client.
        let servers = yubin_outbound::dns::parse_servers(&cfg.list("dns_servers"))
            .map_err(|e| anyhow!("{}: {e}", cfg.origin_text("dns_servers")))?;
        Ok(Some(Arc::new(Dns {
            servers,
            resolver: Default::default(),
        })))
    }

    /// Looks the domain up. Blocking: call it where blocking is allowed
    /// (smtpd runs such sessions under `block_in_place`).
    pub fn domain(&self, domain: &str) -> DomainStatus {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return DomainStatus::TempFail("no DNS outside the server".into());
        };
        let resolver = self
            .resolver
            .get_or_init(|| yubin_outbound::dns::build_resolver(self.servers.as_deref()));
        let name = format!("{}.", domain.trim_end_matches('.'));
        handle.block_on(async {
            match resolver.mx_lookup(name.as_str()).await {
                Ok(mx) if mx.iter().next().is_some() => return DomainStatus::Exists,
                Ok(_) => {}
                // Some servers answer NXDOMAIN per record type (dnsmasq for
                // its --address names): the address lookup decides.
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => {}
                Err(e) => return DomainStatus::TempFail(e.to_string()),
            }
            match resolver.lookup_ip(name.as_str()).await {
                Ok(ips) if ips.iter().next().is_some() => DomainStatus::Exists,
                Ok(_) => DomainStatus::NotFound,
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => DomainStatus::NotFound,
                Err(e) => DomainStatus::TempFail(e.to_string()),
            }
        })
    }
}
