//! `WORK_DIR/allowed-hosts`: hosts that are counted but never blocked.
//!
//! DenyHosts (`allowedhosts.py`) accepts one entry per line with `#`
//! comments: an IPv4 address, `a.b.c.*`, `a.b.c.[x-y]` (DenyHosts treats the
//! end as exclusive; yubin includes it and warns), or a host name resolved once
//! at start-up. yubin adds CIDR (`192.0.2.0/24`, `2001:db8::/32`) and IPv6
//! addresses (denyhosts#7, #50).

use std::net::{IpAddr, ToSocketAddrs};

/// One allow-list rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Net(IpAddr, u8),
    Range([u8; 3], u8, u8),
    Name(String),
}

/// The parsed allow list.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    rules: Vec<Rule>,
    /// Addresses of named entries, resolved when loaded.
    resolved: Vec<IpAddr>,
    pub warnings: Vec<String>,
}

fn prefix_match(a: IpAddr, net: IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Allowed {
    /// Parses the file's text. `resolve` turns host names into addresses
    /// (injected so tests need no DNS).
    pub fn parse(file: &str, text: &str, resolve: &dyn Fn(&str) -> Vec<IpAddr>) -> Allowed {
        let mut a = Allowed::default();
        for (i, raw) in text.lines().enumerate() {
            let l = raw.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let warn = |m: String| format!("{file}:{}: {m}", i + 1);
            if let Ok(ip) = l.parse::<IpAddr>() {
                let len = if ip.is_ipv4() { 32 } else { 128 };
                a.rules.push(Rule::Net(normalize(ip), len));
            } else if let Some((net, len)) = l.split_once('/') {
                match (net.parse::<IpAddr>(), len.parse::<u8>()) {
                    (Ok(ip), Ok(n)) if n <= if ip.is_ipv4() { 32 } else { 128 } => {
                        a.rules.push(Rule::Net(ip, n))
                    }
                    _ => a.warnings.push(warn(format!("bad network {l:?}; ignored"))),
                }
            } else if let Some(head) = l.strip_suffix(".*") {
                match parse3(head) {
                    Some(p) => a.rules.push(Rule::Range(p, 0, 255)),
                    None => a
                        .warnings
                        .push(warn(format!("bad wildcard {l:?}; ignored"))),
                }
            } else if let (Some(open), true) = (l.rfind(".["), l.ends_with(']')) {
                let head = &l[..open];
                let range = &l[open + 2..l.len() - 1];
                let parsed = range.split_once('-').and_then(|(x, y)| {
                    Some((x.trim().parse::<u8>().ok()?, y.trim().parse::<u8>().ok()?))
                });
                match (parse3(head), parsed) {
                    (Some(p), Some((x, y))) if x <= y => {
                        a.rules.push(Rule::Range(p, x, y));
                        a.warnings.push(warn(format!(
                            "range {l:?} includes .{y}; DenyHosts excluded the upper end, add .{y} elsewhere only if you meant it"
                        )));
                    }
                    _ => a.warnings.push(warn(format!("bad range {l:?}; ignored"))),
                }
            } else if l
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
            {
                a.resolved.extend(resolve(l).into_iter().map(normalize));
                a.rules.push(Rule::Name(l.to_ascii_lowercase()));
            } else {
                a.warnings
                    .push(warn(format!("cannot understand {l:?}; ignored")));
            }
        }
        a
    }

    /// Loads a file; a missing file is an empty list.
    pub fn load(path: &std::path::Path) -> Allowed {
        match std::fs::read_to_string(path) {
            Ok(t) => Allowed::parse(&path.display().to_string(), &t, &resolve_name),
            Err(_) => Allowed::default(),
        }
    }

    /// Is this host (address text or name as found in the log) allowed?
    pub fn contains(&self, host: &str) -> bool {
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = normalize(ip);
                self.resolved.contains(&ip)
                    || self.rules.iter().any(|r| match r {
                        Rule::Net(n, len) => prefix_match(ip, *n, *len),
                        Rule::Range(p, x, y) => match ip {
                            IpAddr::V4(v4) => {
                                let o = v4.octets();
                                o[..3] == p[..] && (*x..=*y).contains(&o[3])
                            }
                            IpAddr::V6(_) => false,
                        },
                        Rule::Name(_) => false,
                    })
            }
            Err(_) => {
                let h = host.to_ascii_lowercase();
                self.rules
                    .iter()
                    .any(|r| matches!(r, Rule::Name(n) if *n == h))
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn parse3(head: &str) -> Option<[u8; 3]> {
    let mut it = head.split('.');
    let mut p = [0u8; 3];
    for slot in &mut p {
        *slot = it.next()?.parse().ok()?;
    }
    it.next().is_none().then_some(p)
}

/// IPv4-mapped IPv6 is IPv4.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Forward lookup of a name (once, at load time).
pub fn resolve_name(name: &str) -> Vec<IpAddr> {
    (name, 0)
        .to_socket_addrs()
        .map(|it| it.map(|s| s.ip()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let a = Allowed::parse(
            "allowed-hosts",
            "# me\n192.0.2.7\n198.51.100.*\n203.0.113.[10-20]\n10.0.0.0/8\n2001:db8::/32\nhome.example\n",
            &|n| if n == "home.example" { vec!["192.0.2.99".parse().unwrap()] } else { vec![] },
        );
        for yes in [
            "192.0.2.7",
            "198.51.100.200",
            "203.0.113.10",
            "203.0.113.20",
            "10.9.8.7",
            "2001:db8::1",
            "192.0.2.99",
            "home.example",
            "::ffff:192.0.2.7",
        ] {
            assert!(a.contains(yes), "{yes}");
        }
        for no in [
            "192.0.2.8",
            "203.0.113.21",
            "11.0.0.1",
            "2001:db9::1",
            "other.example",
        ] {
            assert!(!a.contains(no), "{no}");
        }
        assert_eq!(a.warnings.len(), 1);
    }
}
