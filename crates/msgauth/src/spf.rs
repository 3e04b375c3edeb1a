//! SPF, RFC 7208: check_host() for the HELO and MAIL FROM identities.
//!
//! The record parser and the macro expander are mail-auth's; the
//! evaluation is ours because mail-auth's does not say which mechanism
//! matched (what `yubin trace` must print) and does not enforce the
//! void-lookup limit (section 4.6.4).

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Mechanism, Qualifier, Spf, Variables};

use crate::dns::{Answer, Budget};

/// RFC 7208 section 2.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// The result keyword (RFC 8601 section 2.7.2, RFC 7208 section 2.6).
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which identity was checked (RFC 7208 section 2.3, 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    Helo,
    MailFrom,
}

/// RFC 7208 section 4.6.4: at most 10 DNS-querying terms, at most 2 void
/// lookups, at most 10 MX and PTR names looked at.
pub const MAX_DNS_TERMS: u32 = 10;
pub const MAX_VOID_LOOKUPS: u32 = 2;
pub const MAX_NAMES: usize = 10;

/// One check_host() run and how it came to its result.
#[derive(Debug, Clone)]
pub struct SpfCheck {
    pub identity: Identity,
    /// `<sender>` as used (postmaster@HELO for a null MAIL FROM).
    pub sender: String,
    /// The domain checked first.
    pub domain: String,
    pub result: SpfResult,
    /// The top-level record, as published.
    pub record: Option<String>,
    /// The terms that decided, outermost first, each with the domain whose
    /// record holds it (`include:b.test` in a.test, then `ip4:…` in b.test).
    pub matched: Vec<(String, String)>,
    /// Why an error or a default result happened.
    pub reason: Option<String>,
    /// Every step, for `yubin trace`.
    pub steps: Vec<String>,
    pub dns_terms: u32,
    pub void_lookups: u32,
}

/// Runs check_host() for one identity. `domain` is the identity's domain
/// (the HELO name, or MAIL FROM's domain), `sender` the full `<sender>`.
pub async fn check(
    budget: &Budget,
    identity: Identity,
    ip: IpAddr,
    helo: &str,
    sender: &str,
    domain: &str,
    receiver: &str,
) -> SpfCheck {
    // An IPv4-mapped IPv6 client is an IPv4 client (RFC 7208 section 5).
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let mut vars = Variables::new();
    vars.set_ip(&ip);
    vars.set_sender(sender.as_bytes().to_vec());
    vars.set_helo_domain(helo.as_bytes().to_vec());
    vars.set_host_domain(receiver.as_bytes().to_vec());
    // "p" needs a validated PTR name; RFC 7208 section 7.3 discourages it
    // and allows "unknown" when none was validated.
    vars.set_validated_domain(b"unknown".to_vec());
    let mut ev = Eval {
        budget,
        ip,
        vars,
        dns_terms: 0,
        void_lookups: 0,
        steps: Vec::new(),
        matched: Vec::new(),
        reason: None,
        top_record: None,
    };
    let result = ev
        .check_host(domain.trim_end_matches('.').to_string(), 0)
        .await;
    SpfCheck {
        identity,
        sender: sender.to_string(),
        domain: domain.to_string(),
        result,
        record: ev.top_record,
        matched: ev.matched.into_iter().rev().collect(),
        reason: ev.reason,
        steps: ev.steps,
        dns_terms: ev.dns_terms,
        void_lookups: ev.void_lookups,
    }
}

struct Eval<'a> {
    budget: &'a Budget,
    ip: IpAddr,
    vars: Variables<'static>,
    dns_terms: u32,
    void_lookups: u32,
    steps: Vec<String>,
    matched: Vec<(String, String)>,
    reason: Option<String>,
    top_record: Option<String>,
}

enum Term {
    Match,
    NoMatch,
    Error(SpfResult, String),
}

/// RFC 7208 section 4.3: a domain that is not a multi-label name of
/// valid labels gives "none" without a lookup.
fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.contains('.')
        && d.split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b > b' ' && b < 0x7f))
}

/// The record's mechanism terms in order (modifiers left out), so that
/// mail-auth's n-th directive can be shown as written.
fn mechanism_terms(record: &str) -> Vec<String> {
    record
        .split_ascii_whitespace()
        .skip(1)
        .filter(|t| {
            // A modifier is `name=value` with name = ALPHA *( ALPHA / DIGIT
            // / "-" / "_" / "." ) (section 4.6.1).
            match t.find('=') {
                Some(i) => !t[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                None => true,
            }
        })
        .map(str::to_string)
        .collect()
}

/// Checks the record against RFC 7208 section 12's grammar where
/// mail-auth's parser is lenient (unknown mechanisms taken as modifiers,
/// bad addresses, CIDR lengths out of range), then parses it with
/// mail-auth. A /0 prefix is parsed as /1 and patched after: mail-auth
/// computes its mask with a shift that overflows for 0.
pub fn parse_record(text: &str) -> Result<Spf, String> {
    let mut fixed = String::from("v=spf1");
    let mut zero: Vec<(bool, bool)> = Vec::new();
    for t in text.split_ascii_whitespace().skip(1) {
        let is_modifier = match t.find('=') {
            Some(i) => {
                let n = &t[..i];
                !n.is_empty()
                    && n.as_bytes()[0].is_ascii_alphabetic()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            }
            None => false,
        };
        if is_modifier {
            fixed.push(' ');
            fixed.push_str(t);
            continue;
        }
        let body = t.trim_start_matches(['+', '-', '~', '?']);
        if body.len() + 1 < t.len() {
            return Err(format!("bad qualifier in {t:?}"));
        }
        let name_end = body.find([':', '/']).unwrap_or(body.len());
        let name = body[..name_end].to_ascii_lowercase();
        let arg = &body[name_end..];
        let (v4, v6) = match name.as_str() {
            "all" if arg.is_empty() => (32, 128),
            "include" | "exists" if arg.len() > 1 && arg.starts_with(':') && !arg.contains('/') => {
                (32, 128)
            }
            "ptr" if arg.is_empty() || (arg.starts_with(':') && arg.len() > 1) => (32, 128),
            "ip4" | "ip6" => {
                let a = arg
                    .strip_prefix(':')
                    .ok_or_else(|| format!("{t:?} needs an address"))?;
                let (addr, cidr) = match a.split_once('/') {
                    Some((x, c)) => (x, Some(c)),
                    None => (a, None),
                };
                let max = if name == "ip4" { 32 } else { 128 };
                let ok = if name == "ip4" {
                    addr.parse::<std::net::Ipv4Addr>().is_ok()
                } else {
                    addr.parse::<std::net::Ipv6Addr>().is_ok()
                };
                if !ok {
                    return Err(format!("bad address in {t:?}"));
                }
                let c = match cidr {
                    Some(c) => {
                        cidr_len(c, max).ok_or_else(|| format!("bad prefix length in {t:?}"))?
                    }
                    None => max,
                };
                if name == "ip4" {
                    (c, 128)
                } else {
                    (32, c)
                }
            }
            "a" | "mx" => {
                // [ ":" domain-spec ] [ "/" ip4-cidr ] [ "//" ip6-cidr ]
                let (dom, cidrs) = match arg.find('/') {
                    Some(i) => (&arg[..i], &arg[i..]),
                    None => (arg, ""),
                };
                if dom == ":" {
                    return Err(format!("empty domain in {t:?}"));
                }
                if !dom.is_empty() && !dom.starts_with(':') {
                    return Err(format!("bad term {t:?}"));
                }
                let (mut v4, mut v6) = (32, 128);
                if let Some(rest) = cidrs.strip_prefix("//") {
                    v6 =
                        cidr_len(rest, 128).ok_or_else(|| format!("bad prefix length in {t:?}"))?;
                } else if let Some(rest) = cidrs.strip_prefix('/') {
                    let (a, b) = match rest.split_once("//") {
                        Some((a, b)) => (a, Some(b)),
                        None => (rest, None),
                    };
                    v4 = cidr_len(a, 32).ok_or_else(|| format!("bad prefix length in {t:?}"))?;
                    if let Some(b) = b {
                        v6 = cidr_len(b, 128)
                            .ok_or_else(|| format!("bad prefix length in {t:?}"))?;
                    }
                }
                (v4, v6)
            }
            _ => return Err(format!("unknown mechanism {t:?}")),
        };
        zero.push((v4 == 0, v6 == 0));
        fixed.push(' ');
        fixed.push_str(&t.replace("/0", "/1"));
    }
    let mut spf = Spf::parse(fixed.as_bytes()).map_err(|e| e.to_string())?;
    if spf.directives.len() == zero.len() {
        for (d, (z4, z6)) in spf.directives.iter_mut().zip(zero) {
            match &mut d.mechanism {
                Mechanism::Ip4 { mask, .. } if z4 => *mask = 0,
                Mechanism::Ip6 { mask, .. } if z6 => *mask = 0,
                Mechanism::A {
                    ip4_mask, ip6_mask, ..
                }
                | Mechanism::Mx {
                    ip4_mask, ip6_mask, ..
                } => {
                    if z4 {
                        *ip4_mask = 0;
                    }
                    if z6 {
                        *ip6_mask = 0;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(spf)
}

/// A prefix length: digits without a leading zero, at most `max`.
fn cidr_len(s: &str, max: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    let n: u32 = s.parse().ok()?;
    (n <= max).then_some(n)
}

fn qualifier_result(q: &Qualifier) -> SpfResult {
    match q {
        Qualifier::Pass => SpfResult::Pass,
        Qualifier::Fail => SpfResult::Fail,
        Qualifier::SoftFail => SpfResult::SoftFail,
        Qualifier::Neutral => SpfResult::Neutral,
    }
}

fn mask4(ip: [u8; 4], addr: [u8; 4], mask: u32) -> bool {
    u32::from_be_bytes(ip) & mask == u32::from_be_bytes(addr) & mask
}

fn mask6(ip: [u8; 16], addr: [u8; 16], mask: u128) -> bool {
    u128::from_be_bytes(ip) & mask == u128::from_be_bytes(addr) & mask
}

fn addr_matches(ip: IpAddr, addr: IpAddr, m4: u32, m6: u128) -> bool {
    match (ip, addr) {
        (IpAddr::V4(a), IpAddr::V4(b)) => mask4(a.octets(), b.octets(), m4),
        (IpAddr::V6(a), IpAddr::V6(b)) => mask6(a.octets(), b.octets(), m6),
        _ => false,
    }
}

impl Eval<'_> {
    fn check_host(
        &mut self,
        domain: String,
        depth: u32,
    ) -> Pin<Box<dyn Future<Output = SpfResult> + Send + '_>> {
        Box::pin(async move {
            let pad = "  ".repeat(depth as usize);
            if !valid_domain(&domain) {
                self.steps
                    .push(format!("{pad}{domain:?}: not a valid domain name: none"));
                self.reason
                    .get_or_insert_with(|| format!("{domain:?} is not a valid domain name"));
                return SpfResult::None;
            }
            // Section 4.4: the record lookup.
            let txt = match self.budget.txt(&domain).await {
                Answer::Records(v) => v,
                Answer::Void => {
                    self.steps.push(format!("{pad}{domain}: no TXT record"));
                    self.reason
                        .get_or_insert_with(|| format!("no SPF record at {domain}"));
                    return SpfResult::None;
                }
                Answer::TempFail(e) => {
                    self.steps.push(format!("{pad}{domain}: {e}"));
                    self.reason.get_or_insert(e);
                    return SpfResult::TempError;
                }
            };
            // Section 4.5: records that begin "v=spf1" followed by a space
            // or the end; none: "none"; more than one: permerror.
            let spf: Vec<&Vec<u8>> = txt
                .iter()
                .filter(|r| {
                    r.len() >= 6
                        && r[..6].eq_ignore_ascii_case(b"v=spf1")
                        && (r.len() == 6 || r[6] == b' ')
                })
                .collect();
            let raw = match spf.as_slice() {
                [] => {
                    self.steps.push(format!("{pad}{domain}: no SPF record"));
                    self.reason
                        .get_or_insert_with(|| format!("no SPF record at {domain}"));
                    return SpfResult::None;
                }
                [one] => *one,
                _ => {
                    let e = format!("{domain} publishes {} SPF records", spf.len());
                    self.steps.push(format!("{pad}{e}"));
                    self.reason.get_or_insert(e);
                    return SpfResult::PermError;
                }
            };
            let text = String::from_utf8_lossy(raw).into_owned();
            if depth == 0 {
                self.top_record = Some(text.clone());
            }
            self.steps.push(format!("{pad}{domain}: \"{text}\""));
            let record = match parse_record(&text) {
                Ok(r) => r,
                Err(e) => {
                    let e = format!("syntax error in the SPF record of {domain}: {e}");
                    self.steps.push(format!("{pad}  {e}"));
                    self.reason.get_or_insert(e);
                    return SpfResult::PermError;
                }
            };
            let terms = mechanism_terms(&text);
            for (i, d) in record.directives.iter().enumerate() {
                let shown = terms
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("{:?}", d.mechanism));
                match self.mechanism(&d.mechanism, &domain, depth, &pad).await {
                    Term::Match => {
                        let r = qualifier_result(&d.qualifier);
                        self.steps
                            .push(format!("{pad}  {shown}: matches, result {r}"));
                        // Pushed innermost first: an include's own match
                        // is already there.
                        self.matched.push((shown, domain.clone()));
                        return r;
                    }
                    Term::NoMatch => {
                        self.steps.push(format!("{pad}  {shown}: no match"));
                    }
                    Term::Error(r, e) => {
                        self.steps.push(format!("{pad}  {shown}: {e}: {r}"));
                        self.reason.get_or_insert(e);
                        return r;
                    }
                }
            }
            // Section 6.1: redirect= only when no mechanism matched.
            if let Some(m) = &record.redirect {
                if let Err(e) = self.count_term() {
                    self.steps.push(format!("{pad}  redirect: {e}: permerror"));
                    self.reason.get_or_insert(e);
                    return SpfResult::PermError;
                }
                let target = self.expand(m, &domain);
                self.steps.push(format!("{pad}  redirect={target}"));
                let r = self.check_host(target.clone(), depth + 1).await;
                if !self.matched.is_empty() {
                    self.matched
                        .push((format!("redirect={target}"), domain.clone()));
                }
                if r == SpfResult::None {
                    let e = format!("redirect target {target} has no SPF record");
                    self.reason = Some(e);
                    return SpfResult::PermError;
                }
                return r;
            }
            self.steps
                .push(format!("{pad}  no mechanism matched: neutral"));
            if depth == 0 {
                self.reason
                    .get_or_insert_with(|| "no mechanism matched".to_string());
            }
            SpfResult::Neutral
        })
    }

    fn expand(&self, m: &mail_auth::spf::Macro, domain: &str) -> String {
        let mut vars = self.vars.clone();
        vars.set_domain(domain.as_bytes().to_vec());
        let s = m.eval(&vars, domain, false).into_owned();
        // Section 7.3: a domain-spec longer than 253 characters loses
        // left-hand labels until it fits.
        let mut s = s.trim_end_matches('.').to_string();
        while s.len() > 253 {
            match s.find('.') {
                Some(i) => s = s[i + 1..].to_string(),
                None => break,
            }
        }
        s
    }

    fn count_term(&mut self) -> Result<(), String> {
        self.dns_terms += 1;
        if self.dns_terms > MAX_DNS_TERMS {
            Err(format!(
                "more than {MAX_DNS_TERMS} DNS-querying terms (RFC 7208 section 4.6.4)"
            ))
        } else {
            Ok(())
        }
    }

    fn void(&mut self, name: &str) -> Result<(), String> {
        self.void_lookups += 1;
        if self.void_lookups > MAX_VOID_LOOKUPS {
            Err(format!(
                "more than {MAX_VOID_LOOKUPS} void lookups, the last for {name} (RFC 7208 section 4.6.4)"
            ))
        } else {
            Ok(())
        }
    }

    async fn mechanism(&mut self, m: &Mechanism, domain: &str, depth: u32, pad: &str) -> Term {
        let v6 = self.ip.is_ipv6();
        match m {
            Mechanism::All => Term::Match,
            Mechanism::Ip4 { addr, mask } => match self.ip {
                IpAddr::V4(ip) => bool_term(mask4(ip.octets(), addr.octets(), *mask)),
                IpAddr::V6(_) => Term::NoMatch,
            },
            Mechanism::Ip6 { addr, mask } => match self.ip {
                IpAddr::V6(ip) => bool_term(mask6(ip.octets(), addr.octets(), *mask)),
                IpAddr::V4(_) => Term::NoMatch,
            },
            Mechanism::Include { macro_string } => {
                if let Err(e) = self.count_term() {
                    return Term::Error(SpfResult::PermError, e);
                }
                let target = self.expand(macro_string, domain);
                let mark = self.matched.len();
                // Section 5.2: pass matches; fail, softfail and neutral do
                // not; temperror stays; permerror and none are permerror.
                let r = self.check_host(target.clone(), depth + 1).await;
                match r {
                    SpfResult::Pass => Term::Match,
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => {
                        self.matched.truncate(mark);
                        Term::NoMatch
                    }
                    SpfResult::TempError => {
                        Term::Error(SpfResult::TempError, format!("include:{target} temperror"))
                    }
                    SpfResult::PermError => {
                        Term::Error(SpfResult::PermError, format!("include:{target} permerror"))
                    }
                    SpfResult::None => Term::Error(
                        SpfResult::PermError,
                        format!("include:{target} has no SPF record"),
                    ),
                }
            }
            Mechanism::A {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                if let Err(e) = self.count_term() {
                    return Term::Error(SpfResult::PermError, e);
                }
                let target = self.expand(macro_string, domain);
                match self.budget.addrs(&target, v6).await {
                    Answer::Records(v) => bool_term(
                        v.iter()
                            .any(|a| addr_matches(self.ip, *a, *ip4_mask, *ip6_mask)),
                    ),
                    Answer::Void => match self.void(&target) {
                        Ok(()) => Term::NoMatch,
                        Err(e) => Term::Error(SpfResult::PermError, e),
                    },
                    Answer::TempFail(e) => Term::Error(SpfResult::TempError, e),
                }
            }
            Mechanism::Mx {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                if let Err(e) = self.count_term() {
                    return Term::Error(SpfResult::PermError, e);
                }
                let target = self.expand(macro_string, domain);
                let hosts = match self.budget.mx(&target).await {
                    Answer::Records(v) => v,
                    Answer::Void => {
                        return match self.void(&target) {
                            Ok(()) => Term::NoMatch,
                            Err(e) => Term::Error(SpfResult::PermError, e),
                        }
                    }
                    Answer::TempFail(e) => return Term::Error(SpfResult::TempError, e),
                };
                if hosts.len() > MAX_NAMES {
                    return Term::Error(
                        SpfResult::PermError,
                        format!(
                            "{target} has {} MX records, over {MAX_NAMES} (RFC 7208 section 4.6.4)",
                            hosts.len()
                        ),
                    );
                }
                for h in hosts {
                    match self.budget.addrs(&h, v6).await {
                        Answer::Records(v) => {
                            if v.iter()
                                .any(|a| addr_matches(self.ip, *a, *ip4_mask, *ip6_mask))
                            {
                                self.steps
                                    .push(format!("{pad}    MX {h} has the client's address"));
                                return Term::Match;
                            }
                        }
                        Answer::Void => {}
                        Answer::TempFail(e) => return Term::Error(SpfResult::TempError, e),
                    }
                }
                Term::NoMatch
            }
            Mechanism::Ptr { macro_string } => {
                if let Err(e) = self.count_term() {
                    return Term::Error(SpfResult::PermError, e);
                }
                let target = self.expand(macro_string, domain).to_ascii_lowercase();
                // Section 5.5: DNS errors here make the mechanism not match.
                let names = match self.budget.ptr(self.ip).await {
                    Answer::Records(v) => v,
                    Answer::Void => {
                        return match self.void(&self.ip.to_string()) {
                            Ok(()) => Term::NoMatch,
                            Err(e) => Term::Error(SpfResult::PermError, e),
                        }
                    }
                    Answer::TempFail(_) => return Term::NoMatch,
                };
                for n in names.into_iter().take(MAX_NAMES) {
                    let n = n.to_ascii_lowercase();
                    if !(n == target || n.ends_with(&format!(".{target}"))) {
                        continue;
                    }
                    if let Answer::Records(v) = self.budget.addrs(&n, v6).await {
                        if v.contains(&self.ip) {
                            return Term::Match;
                        }
                    }
                }
                Term::NoMatch
            }
            Mechanism::Exists { macro_string } => {
                if let Err(e) = self.count_term() {
                    return Term::Error(SpfResult::PermError, e);
                }
                let target = self.expand(macro_string, domain);
                // Section 5.7: always an A query, whatever the client's family.
                match self.budget.addrs(&target, false).await {
                    Answer::Records(_) => Term::Match,
                    Answer::Void => match self.void(&target) {
                        Ok(()) => Term::NoMatch,
                        Err(e) => Term::Error(SpfResult::PermError, e),
                    },
                    Answer::TempFail(e) => Term::Error(SpfResult::TempError, e),
                }
            }
        }
    }
}

fn bool_term(b: bool) -> Term {
    if b {
        Term::Match
    } else {
        Term::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_skip_modifiers() {
        assert_eq!(
            mechanism_terms("v=spf1 ip4:1.2.3.4 redirect=x.test exists:%{i}.e=x.test -all"),
            vec!["ip4:1.2.3.4", "exists:%{i}.e=x.test", "-all"]
        );
    }

    #[test]
    fn strict_grammar_and_zero_prefixes() {
        assert!(parse_record("v=spf1 ip4:300.1.1.1 -all").is_err());
        assert!(parse_record("v=spf1 foo:bar -all").is_err());
        assert!(parse_record("v=spf1 ip4:1.2.3.4/33").is_err());
        assert!(parse_record("v=spf1 a:/24").is_err());
        assert!(parse_record("v=spf1 unknown=mod -all").is_ok());
        let r = parse_record("v=spf1 ip4:0.0.0.0/0 ip6:::/0 a/0//0 -all").unwrap();
        assert!(matches!(
            r.directives[0].mechanism,
            Mechanism::Ip4 { mask: 0, .. }
        ));
        assert!(matches!(
            r.directives[1].mechanism,
            Mechanism::Ip6 { mask: 0, .. }
        ));
        assert!(matches!(
            r.directives[2].mechanism,
            Mechanism::A {
                ip4_mask: 0,
                ip6_mask: 0,
                ..
            }
        ));
    }

    #[test]
    fn domains() {
        assert!(valid_domain("a.test"));
        assert!(!valid_domain("localhost"));
        assert!(!valid_domain("a..test"));
    }
}
