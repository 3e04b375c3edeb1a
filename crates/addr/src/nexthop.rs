//! Where a message goes next, as Postfix's smtp(8) reads a nexthop
//! (postconf(5) `relayhost`, transport(5) "nexthop"): `domain` or
//! `domain:port` means an MX lookup; `[host]` or `[host]:port` means the
//! host's own addresses, no MX lookup; `[1.2.3.4]` and `[ipv6:::1]` are
//! literal addresses. Also lmtp(8)'s `unix:path` / `inet:host:port` form.
//! Parsed once (main.cf, transport(5) results) and carried typed.

use std::fmt;
use std::net::IpAddr;

/// The default SMTP port (`smtp` service).
pub const SMTP_PORT: u16 = 25;

/// A host named in brackets: a DNS name or a literal address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A destination for the SMTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nexthop {
    /// `domain[:port]`: the domain's MX hosts (or the domain itself when it
    /// has none: RFC 5321 section 5.1's implicit MX).
    Mx { domain: String, port: u16 },
    /// `[host][:port]`: this host only, no MX lookup.
    Host { host: Host, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad nexthop {input:?}: {why}")]
pub struct NexthopError {
    pub input: String,
    pub why: &'static str,
}

impl Nexthop {
    /// Parses `host`, `host:port`, `[host]`, `[host]:port`, `[ipv6:addr]`.
    /// A port may be a number or `smtp`/`submission`/`submissions`.
    pub fn parse(input: &str) -> Result<Nexthop, NexthopError> {
        let err = |why| NexthopError {
            input: input.to_string(),
            why,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let close = rest.find(']').ok_or_else(|| err("missing ]"))?;
            let inner = &rest[..close];
            let after = &rest[close + 1..];
            let port = match after {
                "" => SMTP_PORT,
                p => parse_port(p.strip_prefix(':').ok_or_else(|| err("junk after ]"))?)
                    .ok_or_else(|| err("bad port"))?,
            };
            let lit = inner
                .strip_prefix("ipv6:")
                .or_else(|| inner.strip_prefix("IPv6:"))
                .unwrap_or(inner);
            let host = match lit.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) if valid_name(inner) => Host::Name(inner.to_ascii_lowercase()),
                Err(_) => return Err(err("bad host name")),
            };
            return Ok(Nexthop::Host { host, port });
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((n, p)) => (n, parse_port(p).ok_or_else(|| err("bad port"))?),
            None => (s, SMTP_PORT),
        };
        if !valid_name(name) {
            return Err(err("bad domain name"));
        }
        Ok(Nexthop::Mx {
            domain: name.trim_end_matches('.').to_ascii_lowercase(),
            port,
        })
    }

    pub fn port(&self) -> u16 {
        match self {
            Nexthop::Mx { port, .. } | Nexthop::Host { port, .. } => *port,
        }
    }

    /// The host or domain name without brackets or port (`smtp_sasl_password_maps`'
    /// second key, the name checked by `smtp_tls_security_level = secure`).
    pub fn name(&self) -> String {
        match self {
            Nexthop::Mx { domain, .. } => domain.clone(),
            Nexthop::Host { host, .. } => host.to_string(),
        }
    }
}

impl fmt::Display for Nexthop {
    /// As written in main.cf: `example.com`, `[smtp.example.com]:587`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nexthop::Mx { domain, port } if *port == SMTP_PORT => f.write_str(domain),
            Nexthop::Mx { domain, port } => write!(f, "{domain}:{port}"),
            Nexthop::Host { host, port } => {
                let h = match host {
                    Host::Ip(IpAddr::V6(v6)) => format!("ipv6:{v6}"),
                    h => h.to_string(),
                };
                if *port == SMTP_PORT {
                    write!(f, "[{h}]")
                } else {
                    write!(f, "[{h}]:{port}")
                }
            }
        }
    }
}

/// The default LMTP port (`lmtp` service, RFC 2033 section 5).
pub const LMTP_PORT: u16 = 24;

/// Where lmtp(8) connects (lmtp(8) "destination"): `unix:pathname` (a
/// relative name is under `queue_directory`, as Postfix's
/// `lmtp:unix:private/dovecot-lmtp`), or `inet:host[:port]`,
/// `inet:[host][:port]`, or the same without `inet:`. No MX lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpNexthop {
    Unix(String),
    Inet { host: Host, port: u16 },
}

impl LmtpNexthop {
    pub fn parse(input: &str) -> Result<LmtpNexthop, NexthopError> {
        let err = |why| NexthopError {
            input: input.to_string(),
            why,
        };
        let s = input.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(err("empty unix socket path"));
            }
            if path.bytes().any(|b| b == 0 || b.is_ascii_whitespace()) {
                return Err(err("bad unix socket path"));
            }
            return Ok(LmtpNexthop::Unix(path.to_string()));
        }
        let rest = s.strip_prefix("inet:").unwrap_or(s);
        // The host is taken as written: lmtp(8) does no MX lookup, so the
        // `[host]` and `host` forms name the same thing.
        let bracketed = if rest.starts_with('[') {
            rest.to_string()
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => format!("[{h}]:{p}"),
                None => format!("[{rest}]"),
            }
        };
        let explicit_port = bracketed
            .rsplit_once(']')
            .is_some_and(|(_, p)| !p.is_empty());
        match Nexthop::parse(&bracketed).map_err(|e| err(e.why))? {
            Nexthop::Host { host, port } => Ok(LmtpNexthop::Inet {
                host,
                port: if explicit_port { port } else { LMTP_PORT },
            }),
            Nexthop::Mx { .. } => Err(err("bad host")),
        }
    }
}

impl fmt::Display for LmtpNexthop {
    /// lmtp(8)'s form: `unix:private/dovecot-lmtp`, `inet:host:24`,
    /// `inet:[::1]:24` (brackets only where the address has colons).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LmtpNexthop::Unix(p) => write!(f, "unix:{p}"),
            LmtpNexthop::Inet {
                host: Host::Ip(IpAddr::V6(v6)),
                port,
            } => write!(f, "inet:[{v6}]:{port}"),
            LmtpNexthop::Inet { host, port } => write!(f, "inet:{host}:{port}"),
        }
    }
}

fn parse_port(p: &str) -> Option<u16> {
    match p {
        "smtp" => Some(25),
        "submission" => Some(587),
        "submissions" | "smtps" => Some(465),
        "lmtp" => Some(LMTP_PORT),
        _ => p.parse().ok().filter(|&n| n > 0),
    }
}

/// A DNS name: labels of letters, digits, `-` and `_`, 1-63 octets, at
/// most 253 in all (RFC 1035 section 2.3.4).
pub fn valid_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            Nexthop::parse("Example.COM").unwrap(),
            Nexthop::Mx {
                domain: "example.com".into(),
                port: 25
            }
        );
        assert_eq!(
            Nexthop::parse("[smtp.provider.test]:587").unwrap(),
            Nexthop::Host {
                host: Host::Name("smtp.provider.test".into()),
                port: 587
            }
        );
        assert_eq!(
            Nexthop::parse("[10.0.0.1]").unwrap(),
            Nexthop::Host {
                host: Host::Ip("10.0.0.1".parse().unwrap()),
                port: 25
            }
        );
        assert_eq!(
            Nexthop::parse("[ipv6:fd00::1]:2525").unwrap().to_string(),
            "[ipv6:fd00::1]:2525"
        );
        assert_eq!(
            Nexthop::parse("relay.test:submission").unwrap(),
            Nexthop::Mx {
                domain: "relay.test".into(),
                port: 587
            }
        );
        assert_eq!(
            Nexthop::parse("[smtp.provider.test]:587")
                .unwrap()
                .to_string(),
            "[smtp.provider.test]:587"
        );
        for bad in ["", "[x", "[x]y", "a b", "x:0", "x:99999", "[a..b]", "-:"] {
            assert!(Nexthop::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lmtp_forms() {
        let p = |s: &str| LmtpNexthop::parse(s).map(|n| n.to_string());
        assert_eq!(
            p("unix:private/dovecot-lmtp").unwrap(),
            "unix:private/dovecot-lmtp"
        );
        assert_eq!(p("inet:127.0.0.1").unwrap(), "inet:127.0.0.1:24");
        assert_eq!(p("inet:mail.test:2424").unwrap(), "inet:mail.test:2424");
        assert_eq!(p("[ipv6:::1]:24").unwrap(), "inet:[::1]:24");
        assert_eq!(p("inet:[::1]:24").unwrap(), "inet:[::1]:24");
        assert_eq!(p("Mail.Test").unwrap(), "inet:mail.test:24");
        for bad in ["unix:", "inet:", "inet:a b", "x:0", "unix:a b", "[x"] {
            assert!(LmtpNexthop::parse(bad).is_err(), "{bad}");
        }
    }
}
