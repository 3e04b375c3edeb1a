//! Finding the hosts for a nexthop, as Postfix's smtp(8) does
//! (smtp_addr.c): MX records in preference order with equal preferences
//! shuffled (RFC 5321 section 5.1), the domain's own addresses when it has
//! no MX (implicit MX), null MX (RFC 7505), `inet_protocols`, and mail that
//! would loop back to this host (`5.4.6`).
//!
//! The ordering and checks are pure functions; [`Dns`] does the lookups with
//! hickory, on the resolver of the `yubin-dns` crate (where `dns_servers`
//! replaces /etc/resolv.conf, so tests and labs can name their own DNS).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use std::sync::Arc;

use hickory_resolver::proto::rr::RData;
use hickory_resolver::{ResolveError, TokioResolver};
use yubin_smtp::Enhanced;

use crate::nexthop::{Host, Nexthop};

/// `inet_protocols`: which address families the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Protocols {
    /// `all`, `ipv4`, `ipv6`, `ipv4, ipv6` (postconf(5) inet_protocols).
    pub fn parse(list: &[String]) -> Result<Protocols, String> {
        let mut p = Protocols {
            ipv4: false,
            ipv6: false,
        };
        for w in list {
            match w.to_ascii_lowercase().as_str() {
                "all" => {
                    p.ipv4 = true;
                    p.ipv6 = true
                }
                "ipv4" => p.ipv4 = true,
                "ipv6" => p.ipv6 = true,
                other => return Err(format!("inet_protocols: unknown protocol {other:?}")),
            }
        }
        if !p.ipv4 && !p.ipv6 {
            return Err("inet_protocols: no protocol".into());
        }
        Ok(p)
    }

    pub fn allows(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        }
    }
}

/// `smtp_address_preference`: which family first when a host has both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPreference {
    Ipv4,
    Ipv6,
    /// Postfix picks at random; yubin keeps IPv6 first like `ipv6` but
    /// falls through to IPv4 on the same host (deterministic for logs).
    Any,
}

impl AddressPreference {
    pub fn parse(s: &str) -> Result<AddressPreference, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ipv4" => Ok(AddressPreference::Ipv4),
            "ipv6" => Ok(AddressPreference::Ipv6),
            "any" | "" => Ok(AddressPreference::Any),
            o => Err(format!("smtp_address_preference: bad value {o:?}")),
        }
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// Lower case, without the trailing dot; `""` for the null MX's `.`.
    pub exchange: String,
}

/// A host to try with its addresses, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    /// The MX preference (0 for a `[host]` nexthop or implicit MX).
    pub preference: u16,
}

/// Why no server could be found, with Postfix's texts (smtp_addr.c,
/// dns_lookup.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// RFC 7505: `MX 0 .`.
    NullMx { domain: String },
    /// NXDOMAIN or no records: permanent.
    NotFound { name: String, rtype: &'static str },
    /// SERVFAIL, timeout, refused: try again later.
    TryAgain {
        name: String,
        rtype: &'static str,
        why: String,
    },
    /// This host is the best MX (or the `[host]`) for the destination.
    LoopsToMyself { nexthop: String },
}

impl RouteError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, RouteError::TryAgain { .. })
    }

    pub fn enhanced(&self) -> Enhanced {
        match self {
            RouteError::NullMx { .. } => Enhanced::new(5, 1, 10),
            RouteError::NotFound { .. } => Enhanced::new(5, 4, 4),
            RouteError::TryAgain { .. } => Enhanced::new(4, 4, 3),
            RouteError::LoopsToMyself { .. } => Enhanced::new(5, 4, 6),
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NullMx { domain } => {
                write!(f, "Domain {domain} does not accept mail (nullMX)")
            }
            RouteError::NotFound { name, rtype } => write!(
                f,
                "Host or domain name not found. Name service error for name={name} type={rtype}: Host not found"
            ),
            RouteError::TryAgain { name, rtype, .. } => write!(
                f,
                "Host or domain name not found. Name service error for name={name} type={rtype}: Host not found, try again"
            ),
            RouteError::LoopsToMyself { nexthop } => {
                write!(f, "mail for {nexthop} loops back to myself")
            }
        }
    }
}

/// True for RFC 7505's null MX: exactly one record, `MX 0 .`.
pub fn is_null_mx(records: &[Mx]) -> bool {
    records.len() == 1 && records[0].exchange.is_empty()
}

/// A small, non-cryptographic generator for the shuffle: an MX order needs
/// no secrecy, only spread (xorshift64*).
pub struct Shuffle(u64);

impl Shuffle {
    pub fn new(seed: u64) -> Shuffle {
        Shuffle(seed | 1)
    }

    pub fn from_clock() -> Shuffle {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Shuffle::new(t ^ ((std::process::id() as u64) << 32))
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

/// RFC 5321 section 5.1: lowest preference first; hosts of equal preference
/// in random order. Duplicate names keep their best preference.
pub fn order_mx(mut records: Vec<Mx>, rng: &mut Shuffle) -> Vec<Mx> {
    records.sort_by_key(|m| m.preference);
    let mut seen = std::collections::HashSet::new();
    records.retain(|m| !m.exchange.is_empty() && seen.insert(m.exchange.clone()));
    let mut i = 0;
    while i < records.len() {
        let mut j = i;
        while j < records.len() && records[j].preference == records[i].preference {
            j += 1;
        }
        // Fisher-Yates within the group [i, j).
        for k in (i + 1..j).rev() {
            let r = i + rng.below(k - i + 1);
            records.swap(k, r);
        }
        i = j;
    }
    records
}

/// Drops this host and every MX no better than it (Postfix smtp_addr.c
/// `smtp_truncate_self`): when the local machine is an MX for the domain,
/// only better MX hosts may receive the mail. None left: the mail loops.
pub fn strip_self(
    servers: Vec<Server>,
    mine: &[IpAddr],
    nexthop: &Nexthop,
) -> Result<Vec<Server>, RouteError> {
    let best_self = servers
        .iter()
        .filter(|s| s.addrs.iter().any(|a| mine.contains(a)))
        .map(|s| s.preference)
        .min();
    let Some(limit) = best_self else {
        return Ok(servers);
    };
    let kept: Vec<Server> = servers
        .into_iter()
        .filter(|s| s.preference < limit)
        .collect();
    if kept.is_empty() {
        return Err(RouteError::LoopsToMyself {
            nexthop: nexthop.name(),
        });
    }
    Ok(kept)
}

/// Orders one host's addresses by `smtp_address_preference` after
/// filtering them by `inet_protocols`.
pub fn order_addrs(
    addrs: Vec<IpAddr>,
    protocols: Protocols,
    pref: AddressPreference,
) -> Vec<IpAddr> {
    let (mut v4, mut v6): (Vec<IpAddr>, Vec<IpAddr>) = addrs
        .into_iter()
        .filter(|a| protocols.allows(a))
        .partition(|a| a.is_ipv4());
    match pref {
        AddressPreference::Ipv4 => {
            v4.append(&mut v6);
            v4
        }
        AddressPreference::Ipv6 | AddressPreference::Any => {
            v6.append(&mut v4);
            v6
        }
    }
}

/// Lookups for the SMTP client, on the server's one resolver
/// (`yubin-dns`: /etc/resolv.conf or `dns_servers`).
pub struct Dns {
    shared: Arc<yubin_dns::Dns>,
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn absent(e: &ResolveError) -> bool {
    e.is_nx_domain() || e.is_no_records_found()
}

impl Dns {
    /// Shares the server's resolver.
    pub fn shared(shared: Arc<yubin_dns::Dns>) -> Dns {
        Dns { shared }
    }

    /// A resolver of its own: `None` is /etc/resolv.conf, `Some` the
    /// `dns_servers` list (tests and labs).
    pub fn new(servers: Option<&[SocketAddr]>) -> Dns {
        Dns::shared(Arc::new(yubin_dns::Dns::new(
            servers.map(<[SocketAddr]>::to_vec).unwrap_or_default(),
        )))
    }

    pub fn resolver(&self) -> &TokioResolver {
        self.shared.resolver()
    }

    /// The MX records; `Ok(None)` when the domain exists without MX.
    pub async fn mx(&self, domain: &str) -> Result<Option<Vec<Mx>>, RouteError> {
        match self.resolver().mx_lookup(fqdn(domain)).await {
            Ok(l) => {
                let v: Vec<Mx> = l
                    .iter()
                    .map(|m| Mx {
                        preference: m.preference(),
                        exchange: m
                            .exchange()
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase(),
                    })
                    .collect();
                Ok((!v.is_empty()).then_some(v))
            }
            Err(e) if e.is_nx_domain() => Err(RouteError::NotFound {
                name: domain.to_string(),
                rtype: "MX",
            }),
            Err(e) if e.is_no_records_found() => Ok(None),
            Err(e) => Err(RouteError::TryAgain {
                name: domain.to_string(),
                rtype: "MX",
                why: e.to_string(),
            }),
        }
    }

    /// A and AAAA records of a host, as `inet_protocols` allows.
    pub async fn addresses(
        &self,
        name: &str,
        protocols: Protocols,
    ) -> Result<Vec<IpAddr>, RouteError> {
        let mut out = Vec::new();
        let mut last_err = None;
        let mut tried = "A";
        if protocols.ipv6 {
            tried = "AAAA";
            match self.resolver().ipv6_lookup(fqdn(name)).await {
                Ok(l) => out.extend(l.iter().map(|a| IpAddr::V6(a.0))),
                Err(e) if absent(&e) => {}
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        if protocols.ipv4 {
            tried = "A";
            match self.resolver().ipv4_lookup(fqdn(name)).await {
                Ok(l) => out.extend(l.iter().map(|a| IpAddr::V4(a.0))),
                Err(e) if absent(&e) => {}
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        if out.is_empty() {
            return Err(match last_err {
                Some(why) => RouteError::TryAgain {
                    name: name.to_string(),
                    rtype: tried,
                    why,
                },
                None => RouteError::NotFound {
                    name: name.to_string(),
                    rtype: tried,
                },
            });
        }
        Ok(out)
    }

    /// TXT records (for `yubin trace` and DKIM checks); empty when none.
    pub async fn txt(&self, name: &str) -> Vec<String> {
        match self
            .resolver()
            .lookup(fqdn(name), hickory_resolver::proto::rr::RecordType::TXT)
            .await
        {
            Ok(l) => l
                .record_iter()
                .filter_map(|r| match r.data() {
                    RData::TXT(t) => Some(
                        t.txt_data()
                            .iter()
                            .map(|d| String::from_utf8_lossy(d).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The servers to try for a nexthop, best first, each with its
    /// addresses; hosts without addresses are skipped (as Postfix does,
    /// unless none is left).
    pub async fn servers(
        &self,
        nexthop: &Nexthop,
        protocols: Protocols,
        pref: AddressPreference,
        mine: &[IpAddr],
        rng: &mut Shuffle,
    ) -> Result<Vec<Server>, RouteError> {
        let servers = match nexthop {
            Nexthop::Host {
                host: Host::Ip(ip), ..
            } => vec![Server {
                name: ip.to_string(),
                addrs: order_addrs(vec![*ip], protocols, pref),
                preference: 0,
            }],
            Nexthop::Host {
                host: Host::Name(n),
                ..
            } => vec![Server {
                name: n.clone(),
                addrs: order_addrs(self.addresses(n, protocols).await?, protocols, pref),
                preference: 0,
            }],
            Nexthop::Mx { domain, .. } => match self.mx(domain).await? {
                None => vec![Server {
                    // RFC 5321 section 5.1: the implicit MX.
                    name: domain.clone(),
                    addrs: order_addrs(self.addresses(domain, protocols).await?, protocols, pref),
                    preference: 0,
                }],
                Some(records) if is_null_mx(&records) => {
                    return Err(RouteError::NullMx {
                        domain: domain.clone(),
                    })
                }
                Some(records) => {
                    let mut out = Vec::new();
                    let mut last = None;
                    for m in order_mx(records, rng) {
                        match self.addresses(&m.exchange, protocols).await {
                            Ok(a) => out.push(Server {
                                name: m.exchange,
                                addrs: order_addrs(a, protocols, pref),
                                preference: m.preference,
                            }),
                            Err(e) => last = Some(e),
                        }
                    }
                    if out.is_empty() {
                        return Err(last.unwrap_or(RouteError::NotFound {
                            name: domain.clone(),
                            rtype: "MX",
                        }));
                    }
                    out
                }
            },
        };
        let servers: Vec<Server> = servers
            .into_iter()
            .filter(|s| !s.addrs.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(RouteError::NotFound {
                name: nexthop.name(),
                rtype: if protocols.ipv4 { "A" } else { "AAAA" },
            });
        }
        strip_self(servers, mine, nexthop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(p: u16, e: &str) -> Mx {
        Mx {
            preference: p,
            exchange: e.into(),
        }
    }

    #[test]
    fn preference_order_and_equal_shuffle() {
        let recs = vec![
            mx(20, "c"),
            mx(10, "a"),
            mx(10, "b"),
            mx(30, "d"),
            mx(20, "a"),
        ];
        let mut seen_first = std::collections::HashSet::new();
        for seed in 0..64 {
            let o = order_mx(recs.clone(), &mut Shuffle::new(seed));
            let names: Vec<&str> = o.iter().map(|m| m.exchange.as_str()).collect();
            // `a` keeps its best preference, once.
            assert_eq!(names.len(), 4);
            assert!(matches!(&names[..2], ["a", "b"] | ["b", "a"]));
            assert_eq!(&names[2..], ["c", "d"]);
            seen_first.insert(names[0].to_string());
        }
        assert_eq!(seen_first.len(), 2, "equal preferences are shuffled");
    }

    #[test]
    fn null_mx() {
        assert!(is_null_mx(&[mx(0, "")]));
        assert!(!is_null_mx(&[mx(0, ""), mx(10, "a")]));
        assert_eq!(
            RouteError::NullMx {
                domain: "x.test".into()
            }
            .to_string(),
            "Domain x.test does not accept mail (nullMX)"
        );
        assert_eq!(
            RouteError::NullMx {
                domain: "x.test".into()
            }
            .enhanced(),
            Enhanced::new(5, 1, 10)
        );
    }

    #[test]
    fn loops_back_to_myself() {
        let me: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let nh = Nexthop::parse("x.test").unwrap();
        let s = |n: &str, p, a| Server {
            name: n.into(),
            addrs: vec![a],
            preference: p,
        };
        // A backup MX (this host, 20) keeps only the better one.
        let kept = strip_self(
            vec![s("a", 10, other), s("me", 20, me), s("c", 30, other)],
            &[me],
            &nh,
        )
        .unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name, "a");
        // Best MX: a loop.
        let e = strip_self(vec![s("me", 10, me), s("c", 20, other)], &[me], &nh).unwrap_err();
        assert_eq!(e.to_string(), "mail for x.test loops back to myself");
        assert_eq!(e.enhanced(), Enhanced::new(5, 4, 6));
    }

    #[test]
    fn protocols_and_address_order() {
        let all = Protocols::parse(&["all".into()]).unwrap();
        let v4 = Protocols::parse(&["ipv4".into()]).unwrap();
        assert!(Protocols::parse(&["ipx".into()]).is_err());
        let a: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        assert_eq!(
            order_addrs(a.clone(), v4, AddressPreference::Any),
            vec![a[0]]
        );
        assert_eq!(
            order_addrs(a.clone(), all, AddressPreference::Ipv4),
            vec![a[0], a[1]]
        );
        assert_eq!(
            order_addrs(a.clone(), all, AddressPreference::Ipv6),
            vec![a[1], a[0]]
        );
    }
}
