//! MTA-STS (RFC 8461): a domain publishes, over HTTPS, which MX hosts may
//! receive its mail and that they must have valid certificates. yubin
//! looks for `_mta-sts.DOMAIN` TXT (`v=STSv1; id=...`), fetches
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (certificate checked
//! against `yubin_mta_sts_CAfile`, no redirects, 64 kB at most), caches
//! the policy for its `max_age` and refetches when the TXT id changes.
//! Under `mode: enforce` only the MX hosts the policy names are used, with
//! verified TLS (the certificate must chain to the same CA file and name
//! the MX host); `testing` only logs; `none` (or no policy) changes nothing.
//! Enabled with `yubin_mta_sts_enable = yes`; DANE and explicit `verify`,
//! `secure` levels take precedence (RFC 8461 section 2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::dns::Dns;
use crate::tls::server_name;

/// The largest policy accepted (RFC 8461 section 3.3 suggests 64 kB).
pub const MAX_POLICY: usize = 64 * 1024;
/// RFC 8461 section 3.2: max_age is at most 31557600 s.
pub const MAX_AGE: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy (RFC 8461 section 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// `mx:` patterns, lower case: `mail.example.com` or `*.example.net`.
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// `key: value` lines (CRLF or LF); `version: STSv1`, `mode`, `max_age`
    /// required, `mx` required unless the mode is `none`. Unknown keys are
    /// ignored (section 3.2).
    pub fn parse(text: &str) -> Result<Policy, String> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("policy line without a colon: {line:?}"))?;
            let v = v.trim();
            match k.trim() {
                "version" => version = Some(v.to_string()),
                "mode" => {
                    mode = Some(match v {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        o => return Err(format!("unknown mode {o:?}")),
                    })
                }
                "max_age" => {
                    let n: u64 = v.parse().map_err(|_| format!("bad max_age {v:?}"))?;
                    max_age = Some(n.min(MAX_AGE));
                }
                "mx" => {
                    let p = v.to_ascii_lowercase();
                    let name = p.strip_prefix("*.").unwrap_or(&p);
                    if !crate::nexthop::valid_name(name) {
                        return Err(format!("bad mx pattern {v:?}"));
                    }
                    mx.push(p);
                }
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("no \"version: STSv1\"".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx patterns".into());
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// Whether an MX host name matches a pattern: exactly, or `*.` standing
    /// for exactly one leftmost label (section 4.1).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *p == host,
        })
    }
}

/// The `id` of a `_mta-sts` TXT record: exactly one record must start
/// with `v=STSv1` (section 3.1).
pub fn txt_id(records: &[String]) -> Option<String> {
    let sts: Vec<&String> = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect();
    let [one] = sts.as_slice() else {
        return None;
    };
    one.split(';')
        .filter_map(|f| f.trim().split_once('='))
        .find(|(k, _)| k.trim() == "id")
        .map(|(_, v)| v.trim().to_string())
        .filter(|id| {
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

struct Cached {
    id: String,
    policy: Policy,
    until: Instant,
}

/// Policies by domain, for the life of the server (a restart refetches).
#[derive(Clone, Default)]
pub struct PolicyCache {
    inner: Arc<Mutex<HashMap<String, Cached>>>,
}

/// What MTA-STS says for one delivery, and why (for logs and trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No policy (no TXT record, mode none, or fetch failed without a
    /// cached policy).
    NoPolicy(String),
    /// A TXT record exists but the policy could not be fetched and none
    /// is cached: delivered as without a policy (section 5), logged.
    Failed(String),
    Policy(Policy, String),
}

impl PolicyCache {
    /// The policy for `domain`: the TXT id first; a cached policy with the
    /// same id and time left is used as is; otherwise fetched.
    pub async fn lookup(
        &self,
        dns: &Dns,
        tls: &Arc<ClientConfig>,
        domain: &str,
        limit: Duration,
    ) -> Decision {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let txt = dns.txt(&format!("_mta-sts.{domain}")).await;
        let cached = {
            let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&domain)
                .filter(|c| c.until > Instant::now())
                .map(|c| (c.id.clone(), c.policy.clone()))
        };
        let Some(id) = txt_id(&txt) else {
            // Section 5.1: with a cached, unexpired policy the TXT record's
            // absence changes nothing.
            return match cached {
                Some((_, p)) => Decision::Policy(p, format!("cached policy of {domain}")),
                None => Decision::NoPolicy(format!("no _mta-sts.{domain} TXT record")),
            };
        };
        if let Some((cid, p)) = &cached {
            if *cid == id {
                return Decision::Policy(p.clone(), format!("cached policy of {domain} (id {id})"));
            }
        }
        match fetch(dns, tls, &domain, limit)
            .await
            .and_then(|t| Policy::parse(&t))
        {
            Ok(p) => {
                let until = Instant::now() + Duration::from_secs(p.max_age);
                self.inner.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    domain.clone(),
                    Cached {
                        id: id.clone(),
                        policy: p.clone(),
                        until,
                    },
                );
                Decision::Policy(
                    p,
                    format!("https://mta-sts.{domain}/.well-known/mta-sts.txt (id {id})"),
                )
            }
            Err(e) => match cached {
                Some((_, p)) => {
                    Decision::Policy(p, format!("cached policy of {domain}; refetch failed: {e}"))
                }
                None => Decision::Failed(format!("MTA-STS policy fetch for {domain} failed: {e}")),
            },
        }
    }
}

/// GET the policy over HTTPS/1.1: status 200 only, no redirects (section
/// 3.3), a bounded body.
pub async fn fetch(
    dns: &Dns,
    tls: &Arc<ClientConfig>,
    domain: &str,
    limit: Duration,
) -> Result<String, String> {
    let host = format!("mta-sts.{domain}");
    let work = async {
        // The host's addresses from yubin's resolver (dns_servers or
        // resolv.conf), like every other lookup of the client.
        let ips: Vec<std::net::IpAddr> = dns
            .resolver()
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|e| format!("{host}: {e}"))?
            .iter()
            .collect();
        let mut tcp = None;
        let mut last = format!("{host}: no address");
        for ip in ips {
            match tokio::net::TcpStream::connect((ip, 443)).await {
                Ok(t) => {
                    tcp = Some(t);
                    break;
                }
                Err(e) => last = format!("connect to {host}[{ip}]:443: {e}"),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let mut s = TlsConnector::from(tls.clone())
            .connect(server_name(&host), tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        let req = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: yubin\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    body.extend_from_slice(&buf[..n]);
                    if body.len() > MAX_POLICY + 8192 {
                        return Err(format!(
                            "policy from {host} is larger than {MAX_POLICY} bytes"
                        ));
                    }
                }
                // Servers that close without close_notify: what came is it.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok::<Vec<u8>, String>(body)
    };
    let raw = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| format!("timeout fetching the policy from {host}"))??;
    parse_http(&raw, &host)
}

/// The body of an HTTP/1.1 200 response (Content-Length or to the end;
/// chunked bodies are decoded).
pub fn parse_http(raw: &[u8], host: &str) -> Result<String, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header from {host}"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "bad HTTP header".to_string())?;
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!(
            "{host} answered {status:?} (only 200 counts; no redirects)"
        ));
    }
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                let n: usize = v.parse().map_err(|_| "bad Content-Length".to_string())?;
                body = body.get(..n).ok_or("body shorter than Content-Length")?;
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    if body.len() > MAX_POLICY {
        return Err(format!(
            "policy from {host} is larger than {MAX_POLICY} bytes"
        ));
    }
    String::from_utf8(body).map_err(|_| format!("policy from {host} is not UTF-8"))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if size > MAX_POLICY || b.len() < size + 2 {
            return Err("bad chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.allows("mail.example.com") && p.allows("MX1.example.net."));
        assert!(
            !p.allows("a.b.example.net") && !p.allows("example.net") && !p.allows("x.example.com")
        );
        assert_eq!(
            Policy::parse("version: STSv1\nmode: none\nmax_age: 99999999999\n")
                .unwrap()
                .max_age,
            MAX_AGE
        );
        for bad in [
            "mode: enforce\nmx: a.test\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n",
            "garbage",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            txt_id(&["v=STSv1; id=20240101T0000".into()]).as_deref(),
            Some("20240101T0000")
        );
        assert_eq!(
            txt_id(&["v=STSv1; id=a".into(), "v=STSv1; id=b".into()]),
            None
        );
        assert_eq!(txt_id(&["v=spf1 -all".into()]), None);
    }

    #[test]
    fn http_bodies() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloXX";
        assert_eq!(parse_http(ok, "h").unwrap(), "hello");
        let ch = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_http(ch, "h").unwrap(), "abcde");
        assert!(
            parse_http(b"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n", "h")
                .unwrap_err()
                .contains("no redirects")
        );
        assert!(parse_http(b"junk", "h").is_err());
    }
}
