//! `cidr:` tables (cidr_table(5)): `network/prefix result` or `address
//! result`, IPv4 and IPv6 (`[::1]/128` or `::1/128`), first match wins.

use std::net::IpAddr;
use std::path::Path;

use crate::error::TableError;
use crate::reload::Reloading;
use crate::source;

struct Rule {
    net: IpAddr,
    prefix: u8,
    negate: bool,
    result: String,
    line: usize,
}

pub struct CidrTable {
    rules: Reloading<Vec<Rule>>,
}

/// Parses `addr[/prefix]` (brackets around IPv6 allowed) into a network with
/// its host bits checked to be zero, as Postfix insists.
pub fn parse_network(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("bad address \"{addr}\""))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|&p| p <= max)
            .ok_or_else(|| format!("bad network mask \"{p}\""))?,
        None => max,
    };
    if mask(ip, prefix) != ip {
        return Err(format!("non-null host address bits in \"{text}\", perhaps you should use \"{}/{prefix}\" instead", mask(ip, prefix)));
    }
    Ok((ip, prefix))
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix as u32)
            };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix as u32)
            };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// Whether `ip` lies in `net/prefix`.
pub fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    let ip = match (net, ip) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        _ => ip,
    };
    net.is_ipv4() == ip.is_ipv4() && mask(ip, prefix) == net
}

fn load(path: &Path) -> Result<Vec<Rule>, TableError> {
    let bytes = std::fs::read(path).map_err(|e| TableError::io(path, e))?;
    let text = source::as_utf8(path, &bytes)?;
    let lines = source::logical_lines(path, text)?;
    let mut rules = Vec::new();
    for e in source::parse_entries(path, &lines)? {
        let (negate, net) = match e.key.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, e.key),
        };
        let (net, prefix) = parse_network(net).map_err(|m| TableError::syntax(path, e.line, m))?;
        rules.push(Rule {
            net,
            prefix,
            negate,
            result: e.value,
            line: e.line,
        });
    }
    Ok(rules)
}

impl CidrTable {
    pub fn open(path: &Path) -> Result<Self, TableError> {
        Ok(CidrTable {
            rules: Reloading::open(path, load)?,
        })
    }

    pub fn get(&self, key: &str) -> Option<(String, usize)> {
        let ip: IpAddr = key
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let cur = self.rules.get();
        cur.0
            .iter()
            .find(|r| contains(r.net, r.prefix, ip) != r.negate)
            .map(|r| (r.result.clone(), r.line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        std::fs::write(
            &p,
            "192.168.1.1 one\n192.168.0.0/16 lan\n[2001:db8::]/32 doc6\n0.0.0.0/0 any\n",
        )
        .unwrap();
        let t = CidrTable::open(&p).unwrap();
        assert_eq!(t.get("192.168.1.1"), Some(("one".into(), 1)));
        assert_eq!(t.get("192.168.7.7"), Some(("lan".into(), 2)));
        assert_eq!(t.get("2001:db8::5"), Some(("doc6".into(), 3)));
        assert_eq!(t.get("10.0.0.1"), Some(("any".into(), 4)));
        assert_eq!(t.get("::1"), None);
        std::fs::write(&p, "192.168.1.1/16 bad\n").unwrap();
        let e = CidrTable::open(&p).err().unwrap().to_string();
        assert!(e.contains("line 1: non-null host address bits"), "{e}");
    }
}
