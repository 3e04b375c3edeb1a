//! The lookups the checks make, through one per-message budget: a count
//! and a deadline (the "DNS lookups bounded in count and time";
//! RFC 7208 section 4.6.4 adds SPF's own limits on top, in `spf`).
//!
//! Two sources: the daemon's hickory resolver (`yubin-dns`, so
//! `dns_servers` and the lab DNS apply), or a static zone for tests and
//! fuzzing. A lookup never blocks a thread and never outlives the deadline.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use tokio::time::Instant;

/// The answer to one query, as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Records(Vec<T>),
    /// NXDOMAIN or no record of the type (RFC 7208 section 4.6.4's "void").
    Void,
    /// A server failure, a timeout, a truncated answer we could not fetch,
    /// or the budget spent: the caller's temperror.
    TempFail(String),
}

/// Where lookups go. Built once per message and moved into its Budget, so
/// the resolver handle's size does not matter.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Source {
    Hickory(TokioResolver),
    Static(Arc<StaticZone>),
}

/// An in-memory zone: names (lower case, no trailing dot) to records.
/// For unit tests and fuzzing; `TEMPFAIL` as a TXT value makes the name
/// fail temporarily.
#[derive(Default, Debug)]
pub struct StaticZone {
    pub txt: HashMap<String, Vec<Vec<u8>>>,
    pub a: HashMap<String, Vec<Ipv4Addr>>,
    pub aaaa: HashMap<String, Vec<Ipv6Addr>>,
    pub mx: HashMap<String, Vec<(u16, String)>>,
    pub ptr: HashMap<String, Vec<String>>,
    pub tempfail: Vec<String>,
}

impl StaticZone {
    pub fn txt(&mut self, name: &str, value: &str) -> &mut Self {
        self.txt
            .entry(norm(name))
            .or_default()
            .push(value.as_bytes().to_vec());
        self
    }
    pub fn a(&mut self, name: &str, ip: &str) -> &mut Self {
        self.a
            .entry(norm(name))
            .or_default()
            .push(ip.parse().expect("IPv4 address"));
        self
    }
    pub fn mx(&mut self, name: &str, pref: u16, host: &str) -> &mut Self {
        self.mx
            .entry(norm(name))
            .or_default()
            .push((pref, norm(host)));
        self
    }
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The per-message budget: at most `max_lookups` queries, none after
/// `deadline`. Shared by every check of one message.
pub struct Budget {
    source: Source,
    deadline: Instant,
    per_query: Duration,
    max_lookups: u32,
    used: AtomicU32,
}

/// The largest TXT answer we take (all strings of all records): a key of
/// 16 kB fits, a hostile answer of megabytes does not get copied around.
pub const MAX_TXT_BYTES: usize = 32 * 1024;

impl Budget {
    pub fn new(source: Source, max_lookups: u32, total: Duration, per_query: Duration) -> Budget {
        Budget {
            source,
            deadline: Instant::now() + total,
            per_query,
            max_lookups,
            used: AtomicU32::new(0),
        }
    }

    /// Queries made so far.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self) -> Result<Duration, String> {
        let n = self.used.fetch_add(1, Ordering::Relaxed);
        if n >= self.max_lookups {
            return Err(format!(
                "DNS lookup budget of {} queries per message spent",
                self.max_lookups
            ));
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("DNS time budget for this message spent".into());
        }
        Ok(left.min(self.per_query))
    }

    async fn run<T, F>(&self, name: &str, f: F) -> Answer<T>
    where
        F: std::future::Future<Output = Answer<T>>,
    {
        let limit = match self.take() {
            Ok(d) => d,
            Err(e) => return Answer::TempFail(e),
        };
        match tokio::time::timeout(limit, f).await {
            Ok(a) => a,
            Err(_) => Answer::TempFail(format!("DNS timeout for {name}")),
        }
    }

    /// TXT records of `name`, each record's strings joined (RFC 7208
    /// section 3.3, RFC 6376 section 3.6.2.2).
    pub async fn txt(&self, name: &str) -> Answer<Vec<u8>> {
        let name = norm(name);
        match &self.source {
            Source::Static(z) => {
                self.run(&name, async {
                    if z.tempfail.contains(&name) {
                        return Answer::TempFail(format!("SERVFAIL for {name}"));
                    }
                    match z.txt.get(&name) {
                        Some(v) => cap_txt(&name, v.clone()),
                        None => Answer::Void,
                    }
                })
                .await
            }
            Source::Hickory(r) => {
                self.run(&name, async {
                    match r.txt_lookup(format!("{name}.")).await {
                        Ok(l) => {
                            let mut out = Vec::new();
                            for rec in l.as_lookup().record_iter() {
                                if let RData::TXT(t) = rec.data() {
                                    out.push(t.txt_data().concat());
                                }
                            }
                            if out.is_empty() {
                                Answer::Void
                            } else {
                                cap_txt(&name, out)
                            }
                        }
                        Err(e) => hickory_err(&name, "TXT", e),
                    }
                })
                .await
            }
        }
    }

    /// Addresses of `name` of the client's family (A for IPv4, AAAA for IPv6).
    pub async fn addrs(&self, name: &str, v6: bool) -> Answer<IpAddr> {
        let name = norm(name);
        match &self.source {
            Source::Static(z) => {
                self.run(&name, async {
                    if z.tempfail.contains(&name) {
                        return Answer::TempFail(format!("SERVFAIL for {name}"));
                    }
                    let v: Vec<IpAddr> = if v6 {
                        z.aaaa
                            .get(&name)
                            .map(|v| v.iter().map(|a| IpAddr::V6(*a)).collect())
                            .unwrap_or_default()
                    } else {
                        z.a.get(&name)
                            .map(|v| v.iter().map(|a| IpAddr::V4(*a)).collect())
                            .unwrap_or_default()
                    };
                    records(v)
                })
                .await
            }
            Source::Hickory(r) => {
                self.run(&name, async {
                    let fq = format!("{name}.");
                    if v6 {
                        match r.ipv6_lookup(fq).await {
                            Ok(l) => records(l.iter().map(|a| IpAddr::V6(a.0)).collect()),
                            Err(e) => hickory_err(&name, "AAAA", e),
                        }
                    } else {
                        match r.ipv4_lookup(fq).await {
                            Ok(l) => records(l.iter().map(|a| IpAddr::V4(a.0)).collect()),
                            Err(e) => hickory_err(&name, "A", e),
                        }
                    }
                })
                .await
            }
        }
    }

    /// MX exchanges of `name`, by preference.
    pub async fn mx(&self, name: &str) -> Answer<String> {
        let name = norm(name);
        let a = match &self.source {
            Source::Static(z) => {
                self.run(&name, async {
                    if z.tempfail.contains(&name) {
                        return Answer::TempFail(format!("SERVFAIL for {name}"));
                    }
                    records(z.mx.get(&name).cloned().unwrap_or_default())
                })
                .await
            }
            Source::Hickory(r) => {
                self.run(&name, async {
                    match r.mx_lookup(format!("{name}.")).await {
                        Ok(l) => records(
                            l.iter()
                                .map(|m| (m.preference(), norm(&m.exchange().to_utf8())))
                                .collect(),
                        ),
                        Err(e) => hickory_err(&name, "MX", e),
                    }
                })
                .await
            }
        };
        match a {
            Answer::Records(mut v) => {
                v.sort_by_key(|(p, _)| *p);
                Answer::Records(v.into_iter().map(|(_, h)| h).collect())
            }
            Answer::Void => Answer::Void,
            Answer::TempFail(e) => Answer::TempFail(e),
        }
    }

    /// PTR names of `ip`.
    pub async fn ptr(&self, ip: IpAddr) -> Answer<String> {
        let key = ip.to_string();
        match &self.source {
            Source::Static(z) => {
                self.run(&key, async {
                    records(z.ptr.get(&key).cloned().unwrap_or_default())
                })
                .await
            }
            Source::Hickory(r) => {
                self.run(&key, async {
                    match r.reverse_lookup(ip).await {
                        Ok(l) => records(l.iter().map(|p| norm(&p.0.to_utf8())).collect()),
                        Err(e) => hickory_err(&key, "PTR", e),
                    }
                })
                .await
            }
        }
    }
}

fn records<T>(v: Vec<T>) -> Answer<T> {
    if v.is_empty() {
        Answer::Void
    } else {
        Answer::Records(v)
    }
}

fn cap_txt(name: &str, v: Vec<Vec<u8>>) -> Answer<Vec<u8>> {
    let total: usize = v.iter().map(Vec::len).sum();
    if total > MAX_TXT_BYTES {
        // RFC 7208 section 11.5.1 and RFC 6376 section 8.4 leave limits to
        // the receiver; an answer this size is no sane SPF, DKIM or DMARC
        // record, so it is a DNS failure, not a record to parse.
        return Answer::TempFail(format!(
            "TXT answer for {name} is {total} bytes, over the {MAX_TXT_BYTES}-byte limit"
        ));
    }
    Answer::Records(v)
}

fn hickory_err<T>(name: &str, ty: &str, e: hickory_resolver::ResolveError) -> Answer<T> {
    use hickory_resolver::proto::op::ResponseCode;
    use hickory_resolver::proto::ProtoErrorKind;
    // Only NXDOMAIN and an empty NOERROR answer are "no record": hickory
    // also reports REFUSED and SERVFAIL as "no records found", and those
    // are temporary failures (RFC 7208 section 4.4, 2.6.6).
    let void = matches!(
        e.proto().map(|p| p.kind()),
        Some(ProtoErrorKind::NoRecordsFound {
            response_code: ResponseCode::NXDomain | ResponseCode::NoError,
            ..
        })
    );
    if void {
        Answer::Void
    } else {
        Answer::TempFail(format!("{ty} lookup for {name}: {e}"))
    }
}
