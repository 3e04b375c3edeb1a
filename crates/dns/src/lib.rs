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

/// One DNS answer as the restrictions need it: records, no such name or
/// record (NXDOMAIN / NODATA), or a temporary failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(Vec<T>),
    NotFound,
    TempFail(String),
}

fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn classify<T>(e: &hickory_resolver::ResolveError) -> Lookup<T> {
    if e.is_nx_domain() || e.is_no_records_found() {
        Lookup::NotFound
    } else {
        Lookup::TempFail(e.to_string())
    }
}

/// Longest TXT text kept for a DNS list reply (Postfix's RBL_TXT_LIMIT).
pub const TXT_LIMIT: usize = 500;

impl Dns {
    /// IPv4 address records of `name` (DNS list queries, RFC 5782 section 2.1).
    pub async fn a(&self, name: &str) -> Lookup<std::net::Ipv4Addr> {
        match self.resolver().ipv4_lookup(absolute(name)).await {
            Ok(r) => {
                let v: Vec<_> = r.iter().map(|a| a.0).collect();
                if v.is_empty() {
                    Lookup::NotFound
                } else {
                    Lookup::Found(v)
                }
            }
            Err(e) => classify(&e),
        }
    }

    /// TXT records of `name`, each record's strings joined, the whole cut
    /// at [`TXT_LIMIT`] bytes (a DNS list's reason text).
    pub async fn txt(&self, name: &str) -> Lookup<String> {
        match self.resolver().txt_lookup(absolute(name)).await {
            Ok(r) => {
                let mut total = 0;
                let mut out = Vec::new();
                for t in r.iter() {
                    let mut s = String::new();
                    for part in t.txt_data() {
                        s.push_str(&String::from_utf8_lossy(part));
                    }
                    if total + s.len() > TXT_LIMIT {
                        let mut cut = TXT_LIMIT.saturating_sub(total);
                        while !s.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        s.truncate(cut);
                    }
                    total += s.len();
                    out.push(s);
                    if total >= TXT_LIMIT {
                        break;
                    }
                }
                Lookup::Found(out)
            }
            Err(e) => classify(&e),
        }
    }

    /// PTR names of an address (the client's reverse name), without the
    /// trailing dot.
    pub async fn ptr(&self, ip: IpAddr) -> Lookup<String> {
        match self.resolver().reverse_lookup(ip).await {
            Ok(r) => {
                let v: Vec<String> = r
                    .iter()
                    .map(|n| n.to_utf8().trim_end_matches('.').to_string())
                    .collect();
                if v.is_empty() {
                    Lookup::NotFound
                } else {
                    Lookup::Found(v)
                }
            }
            Err(e) => classify(&e),
        }
    }

    /// The addresses of a host name (A and AAAA).
    pub async fn addresses(&self, name: &str) -> Lookup<IpAddr> {
        match self.resolver().lookup_ip(absolute(name)).await {
            Ok(r) => {
                let v: Vec<IpAddr> = r.iter().collect();
                if v.is_empty() {
                    Lookup::NotFound
                } else {
                    Lookup::Found(v)
                }
            }
            Err(e) => classify(&e),
        }
    }

    /// Does a host name have an A, AAAA or MX record (Postfix's
    /// reject_unknown_helo_hostname and reject_unknown_sender_domain ask
    /// for any of them)?
    pub async fn host_or_mail_domain(&self, name: &str) -> DomainStatus {
        match self.addresses(name).await {
            Lookup::Found(_) => return DomainStatus::Exists,
            Lookup::TempFail(e) => return DomainStatus::TempFail(e),
            Lookup::NotFound => {}
        }
        match self.resolver().mx_lookup(absolute(name)).await {
            Ok(mx) if mx.iter().next().is_some() => DomainStatus::Exists,
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
