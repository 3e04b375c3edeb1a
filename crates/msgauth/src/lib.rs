//! Message authentication of received mail: SPF (RFC 7208), DKIM (RFC 6376),
//! DMARC (RFC 7489), judged once per message and written as one
//! Authentication-Results header (RFC 8601). It must not speak SMTP or touch queues.

pub mod dkim;
pub mod dmarc;
pub mod dns;
pub mod results;
pub mod spf;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

pub use dkim::{DkimCheck, DkimChecks, DkimResult};
pub use dmarc::{Disposition, DmarcCheck, DmarcResult};
pub use dns::{Budget, Source, StaticZone};
pub use spf::{Identity, SpfCheck, SpfResult};

/// How the checks run (yubin's `msgauth_*` parameters, docs/msgauth.md).
#[derive(Debug, Clone)]
pub struct Settings {
    /// RFC 8601 authserv-id (default $myhostname).
    pub authserv_id: String,
    /// Whole-message DNS time budget.
    pub time_limit: Duration,
    /// One query's timeout.
    pub query_timeout: Duration,
    /// Whole-message DNS query budget (SPF's own limits come first).
    pub max_lookups: u32,
    /// DKIM signatures verified per message.
    pub max_signatures: usize,
}

impl Settings {
    pub fn new(authserv_id: &str) -> Settings {
        Settings {
            authserv_id: authserv_id.to_string(),
            time_limit: Duration::from_secs(20),
            query_timeout: Duration::from_secs(5),
            max_lookups: 60,
            max_signatures: 10,
        }
    }
}

/// What the SMTP session knows about the sender.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub client_ip: IpAddr,
    /// The HELO/EHLO argument as given.
    pub helo: String,
    /// MAIL FROM's address, empty for the null reverse-path.
    pub mail_from: String,
}

/// Every verdict for one message; computed once, then used for the header,
/// the restrictions and the log.
#[derive(Debug, Clone)]
pub struct Report {
    pub authserv_id: String,
    /// None when HELO is an address literal or not a domain (RFC 7208
    /// section 2.3 checks a HELO that is a FQDN).
    pub spf_helo: Option<SpfCheck>,
    pub spf_mailfrom: SpfCheck,
    pub dkim: DkimChecks,
    pub dmarc: DmarcCheck,
    /// DNS queries made for this message.
    pub dns_queries: u32,
}

fn helo_domain(helo: &str) -> Option<&str> {
    let h = helo.trim().trim_end_matches('.');
    (!h.starts_with('[') && h.contains('.') && h.parse::<IpAddr>().is_err()).then_some(h)
}

/// Runs all checks for `message` (header and body as received, CRLF or
/// LF line ends), with every DNS query through one budget.
pub async fn authenticate(
    source: Source,
    settings: &Settings,
    env: &Envelope,
    message: &[u8],
) -> Report {
    let budget = Budget::new(
        source,
        settings.max_lookups,
        settings.time_limit,
        settings.query_timeout,
    );
    let receiver = settings.authserv_id.as_str();
    let helo = helo_domain(&env.helo);
    // SPF for HELO, SPF for MAIL FROM and DKIM are independent: their DNS
    // queries go out together (one budget still bounds them all), so a
    // message waits for the slowest, not the sum (issue 14's speed with
    // one client). DMARC needs all three and comes after.
    let spf_helo = async {
        match helo {
            Some(h) => Some(
                spf::check(
                    &budget,
                    Identity::Helo,
                    env.client_ip,
                    &env.helo,
                    &format!("postmaster@{h}"),
                    h,
                    receiver,
                )
                .await,
            ),
            None => None,
        }
    };
    let spf_mail = async {
        match env.mail_from.rsplit_once('@') {
            Some((_, d)) if !env.mail_from.is_empty() => Some(
                spf::check(
                    &budget,
                    Identity::MailFrom,
                    env.client_ip,
                    &env.helo,
                    &env.mail_from,
                    d,
                    receiver,
                )
                .await,
            ),
            _ => None,
        }
    };
    // DKIM canonicalisation is defined on CRLF lines (RFC 6376 section
    // 3.4); a queue file or a trace file may have bare LF.
    let crlf = to_crlf(message);
    let message: &[u8] = &crlf;
    let (spf_helo, spf_mail, dkim) = tokio::join!(
        spf_helo,
        spf_mail,
        dkim::verify(&budget, message, settings.max_signatures)
    );
    // RFC 7208 section 2.4: a null MAIL FROM is checked as postmaster@HELO,
    // and that result is the HELO one.
    let spf_mailfrom = match spf_mail {
        Some(c) => c,
        None => match &spf_helo {
            Some(h) => {
                let mut c = h.clone();
                c.identity = Identity::MailFrom;
                c
            }
            None => SpfCheck {
                identity: Identity::MailFrom,
                sender: env.mail_from.clone(),
                domain: String::new(),
                result: SpfResult::None,
                record: None,
                matched: vec![],
                reason: Some("null sender and no HELO domain to check".into()),
                steps: vec![],
                dns_terms: 0,
                void_lookups: 0,
            },
        },
    };
    let sample = random_percent();
    let dmarc = dmarc::check(&budget, message, Some(&spf_mailfrom), &dkim, sample).await;
    Report {
        authserv_id: settings.authserv_id.clone(),
        spf_helo,
        spf_mailfrom,
        dkim,
        dmarc,
        dns_queries: budget.used(),
    }
}

/// Bare LF line ends as CRLF; CRLF kept.
pub fn to_crlf(m: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let bare = m
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || m[i - 1] != b'\r'));
    if !bare {
        return std::borrow::Cow::Borrowed(m);
    }
    let mut out = Vec::with_capacity(m.len() + m.len() / 32);
    for (i, &b) in m.iter().enumerate() {
        if b == b'\n' && (i == 0 || m[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    std::borrow::Cow::Owned(out)
}

/// 0..100 for DMARC's pct= sampling; std's hasher keys are random per
/// process and per call.
fn random_percent() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() % 100) as u8
}

impl Report {
    /// The Authentication-Results field, folded, ending in CRLF (RFC 8601
    /// section 2.2).
    pub fn header(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let m = &self.spf_mailfrom;
        if !m.domain.is_empty() {
            let mut s = format!("spf={}", m.result);
            if let Some(r) = &m.reason {
                if m.result != SpfResult::Pass {
                    let _ = write!(s, " reason={}", results::quoted(r));
                }
            }
            let _ = write!(s, " smtp.mailfrom={}", results::pvalue(&m.sender));
            parts.push(s);
        }
        if let Some(h) = &self.spf_helo {
            parts.push(format!(
                "spf={} smtp.helo={}",
                h.result,
                results::pvalue(&h.domain)
            ));
        }
        for d in &self.dkim.signatures {
            let mut s = format!("dkim={}", d.result.as_str());
            if let Some(r) = &d.reason {
                let _ = write!(s, " reason={}", results::quoted(r));
            }
            if !d.domain.is_empty() {
                let _ = write!(s, " header.d={}", results::pvalue(&d.domain));
                let _ = write!(s, " header.s={}", results::pvalue(&d.selector));
                if !d.identity.is_empty() {
                    let _ = write!(s, " header.i={}", results::pvalue(&d.identity));
                }
                if !d.b_prefix.is_empty() {
                    let _ = write!(s, " header.b={}", results::pvalue(&d.b_prefix));
                }
            }
            parts.push(s);
        }
        if self.dkim.skipped > 0 {
            parts.push(format!(
                "dkim=policy reason={}",
                results::quoted(&format!(
                    "{} more signatures not verified (limit)",
                    self.dkim.skipped
                ))
            ));
        }
        if self.dkim.signatures.is_empty() && self.dkim.skipped == 0 {
            parts.push("dkim=none".into());
        }
        let d = &self.dmarc;
        if !d.from_domain.is_empty() {
            let mut s = format!("dmarc={}", d.result.as_str());
            if d.record.is_some() {
                let _ = write!(
                    s,
                    " (p={} dis={})",
                    d.policy.as_str(),
                    d.disposition.as_str()
                );
            }
            let _ = write!(s, " header.from={}", results::pvalue(&d.from_domain));
            parts.push(s);
        } else {
            parts.push("dmarc=none".into());
        }
        let mut out = format!("Authentication-Results: {}", self.authserv_id);
        for p in parts {
            out.push_str(";\r\n\t");
            out.push_str(&p);
        }
        out.push_str("\r\n");
        out
    }

    /// One log line's text: every verdict, short.
    pub fn log_text(&self) -> String {
        let mut s = format!(
            "spf={} smtp.mailfrom=<{}>",
            self.spf_mailfrom.result, self.spf_mailfrom.sender
        );
        if let Some(h) = &self.spf_helo {
            let _ = write!(s, " spf_helo={} helo={}", h.result, h.domain);
        }
        if self.dkim.signatures.is_empty() {
            s.push_str(" dkim=none");
        }
        for d in &self.dkim.signatures {
            let _ = write!(
                s,
                " dkim={} d={} s={}",
                d.result.as_str(),
                d.domain,
                d.selector
            );
        }
        let _ = write!(
            s,
            " dmarc={} from={} policy={} disposition={}",
            self.dmarc.result.as_str(),
            self.dmarc.from_domain,
            self.dmarc.policy.as_str(),
            self.dmarc.disposition.as_str()
        );
        let _ = write!(s, " dns_queries={}", self.dns_queries);
        s
    }

    /// `yubin trace`'s explanation: each check, step by step.
    pub fn explain(&self) -> String {
        let mut o = String::new();
        let spf = |o: &mut String, title: &str, c: &SpfCheck| {
            let _ = writeln!(
                o,
                "{title}: {} (sender <{}>, domain {})",
                c.result, c.sender, c.domain
            );
            if let Some(r) = &c.record {
                let _ = writeln!(o, "  record: \"{r}\"");
            }
            if !c.matched.is_empty() {
                let chain: Vec<String> = c
                    .matched
                    .iter()
                    .map(|(t, d)| format!("{t} (in {d})"))
                    .collect();
                let _ = writeln!(o, "  matched: {}", chain.join(" -> "));
            }
            if let Some(r) = &c.reason {
                let _ = writeln!(o, "  reason: {r}");
            }
            let _ = writeln!(
                o,
                "  DNS-querying terms {} of {}, void lookups {} of {}",
                c.dns_terms,
                spf::MAX_DNS_TERMS,
                c.void_lookups,
                spf::MAX_VOID_LOOKUPS
            );
            for s in &c.steps {
                let _ = writeln!(o, "    {s}");
            }
        };
        match &self.spf_helo {
            Some(h) => spf(&mut o, "SPF (HELO identity)", h),
            None => o.push_str("SPF (HELO identity): not checked (HELO is not a domain)\n"),
        }
        spf(&mut o, "SPF (MAIL FROM identity)", &self.spf_mailfrom);
        if self.dkim.signatures.is_empty() {
            o.push_str("DKIM: none (no DKIM-Signature header)\n");
        }
        for (i, d) in self.dkim.signatures.iter().enumerate() {
            let _ = writeln!(
                o,
                "DKIM signature {}: {} d={} s={} a={} c={}{}{}",
                i + 1,
                d.result.as_str(),
                d.domain,
                d.selector,
                d.algorithm,
                d.canonicalization,
                d.body_length.map(|l| format!(" l={l}")).unwrap_or_default(),
                d.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        if self.dkim.skipped > 0 {
            let _ = writeln!(
                o,
                "DKIM: {} further signatures not verified (limit {})",
                self.dkim.skipped,
                self.dkim.signatures.len()
            );
        }
        let d = &self.dmarc;
        let _ = writeln!(
            o,
            "DMARC: {} (From domain {}, organisational domain {})",
            d.result.as_str(),
            if d.from_domain.is_empty() {
                "-"
            } else {
                &d.from_domain
            },
            if d.from_domain.is_empty() {
                "-".to_string()
            } else {
                dmarc::organizational_domain(&d.from_domain)
            }
        );
        if let (Some(r), Some(at)) = (&d.record, &d.record_domain) {
            let _ = writeln!(o, "  record at _dmarc.{at}: \"{r}\"");
            let _ = writeln!(
                o,
                "  policy {}, to apply: {}",
                d.policy.as_str(),
                d.disposition.as_str()
            );
            let _ = writeln!(o, "  {}", d.spf_alignment);
            let _ = writeln!(o, "  {}", d.dkim_alignment);
        }
        if let Some(r) = &d.reason {
            let _ = writeln!(o, "  reason: {r}");
        }
        let _ = writeln!(o, "DNS queries: {}", self.dns_queries);
        o
    }
}
