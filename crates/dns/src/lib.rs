//! DNS for the server: one hickory resolver, from `/etc/resolv.conf` or
//! from `dns_servers` (so a lab or a private DNS can be named), created on
//! first use. Async only: callers await it, nothing here blocks a thread.
//! It must not know about SMTP or configuration files.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

/// The DNS answer for a domain, as reject_unknown_*_domain needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainStatus {
    Exists,
    NotFound,
    TempFail(String),
}

pub struct Dns {
    servers: Option<Vec<SocketAddr>>,
    resolver: OnceLock<TokioResolver>,
}

/// Parses `dns_servers` items: `IP` (port 53) or `IP:PORT` / `[IPv6]:PORT`.
pub fn parse_servers(items: &[String]) -> Result<Vec<SocketAddr>, String> {
    items
        .iter()
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| format!("bad address {s}"))
        })
        .collect()
}

impl Dns {
    /// `servers` empty: the system's resolv.conf.
    pub fn new(servers: Vec<SocketAddr>) -> Dns {
        Dns {
            servers: (!servers.is_empty()).then_some(servers),
            resolver: OnceLock::new(),
        }
    }

    pub fn resolver(&self) -> &TokioResolver {
        self.resolver.get_or_init(|| match &self.servers {
            None => TokioResolver::builder_tokio()
                .map(|b| b.build())
                .unwrap_or_else(|_| {
                    TokioResolver::builder_with_config(
                        ResolverConfig::default(),
                        TokioConnectionProvider::default(),
                    )
                    .build()
                }),
            Some(list) => {
                let mut rc = ResolverConfig::new();
                for addr in list {
                    rc.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
                    // TCP too: a truncated UDP answer (a 2048-bit DKIM key
                    // without EDNS, a long SPF record) is retried over TCP
                    // (RFC 7766), as resolv.conf's servers are.
                    rc.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
                }
                TokioResolver::builder_with_config(rc, TokioConnectionProvider::default()).build()
            }
        })
    }

    /// Does the domain exist for mail: an MX record, else an address record
    /// (RFC 5321 section 5.1's implicit MX)?
    pub async fn domain(&self, domain: &str) -> DomainStatus {
        let resolver = self.resolver();
        let name = format!("{}.", domain.trim_end_matches('.'));
        match resolver.mx_lookup(name.as_str()).await {
            Ok(mx) if mx.iter().next().is_some() => return DomainStatus::Exists,
            Ok(_) => {}
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => {}
            Err(e) => return DomainStatus::TempFail(e.to_string()),
        }
        match resolver.lookup_ip(name.as_str()).await {
            Ok(ips) if ips.iter().next().is_some() => DomainStatus::Exists,
            Ok(_) => DomainStatus::NotFound,
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => DomainStatus::NotFound,
            Err(e) => DomainStatus::TempFail(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers() {
        let v = parse_servers(&[
            "127.0.0.1".into(),
            "127.0.0.1:5353".into(),
            "[::1]:53".into(),
        ])
        .unwrap();
        assert_eq!(v[0].port(), 53);
        assert_eq!(v[1].port(), 5353);
        assert!(parse_servers(&["nope".into()]).is_err());
    }
}
