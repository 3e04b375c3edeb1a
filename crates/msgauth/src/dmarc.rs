//! DMARC, RFC 7489: policy discovery (section 6.6.3: the author domain,
//! then its organisational domain from the public suffix list, section
//! 3.2), identifier alignment (section 3.1) and the policy to apply.
//!
//! mail-auth parses the record; discovery and alignment are ours because
//! mail-auth walks the tree of DMARCbis drafts instead of RFC 7489's two
//! lookups and switches to sp= on a relaxed match rather than for a
//! subdomain.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Alignment, Dmarc, Policy};

use crate::dkim::{DkimChecks, DkimResult};
use crate::dns::{Answer, Budget};
use crate::spf::{SpfCheck, SpfResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcResult {
    None,
    Pass,
    Fail,
    TempError,
    PermError,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::None => "none",
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

/// What the domain owner asks for a failing message (after pct=).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    None,
    Quarantine,
    Reject,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DmarcCheck {
    pub result: DmarcResult,
    /// The RFC5322.From domain (empty if none could be found).
    pub from_domain: String,
    /// Where the record was found.
    pub record_domain: Option<String>,
    pub record: Option<String>,
    /// p= or sp=, as published.
    pub policy: Disposition,
    /// The policy to apply to this message: `policy` for a failing
    /// message that pct= sampled in, else none.
    pub disposition: Disposition,
    /// "spf: pass, aligned (relaxed) with mail.example.test" etc.
    pub spf_alignment: String,
    pub dkim_alignment: String,
    pub reason: Option<String>,
}

impl DmarcCheck {
    fn none(from: &str, reason: String) -> DmarcCheck {
        DmarcCheck {
            result: DmarcResult::None,
            from_domain: from.to_string(),
            record_domain: None,
            record: None,
            policy: Disposition::None,
            disposition: Disposition::None,
            spf_alignment: String::new(),
            dkim_alignment: String::new(),
            reason: Some(reason),
        }
    }
}

/// The organisational domain (RFC 7489 section 3.2): the public suffix
/// plus one label; a name that is itself a public suffix stands alone.
pub fn organizational_domain(domain: &str) -> String {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    match psl::domain_str(&d) {
        Some(o) => o.to_string(),
        None => d,
    }
}

fn aligned(a: &str, b: &str, mode: &Alignment) -> bool {
    let a = a.trim_end_matches('.').to_ascii_lowercase();
    let b = b.trim_end_matches('.').to_ascii_lowercase();
    match mode {
        Alignment::Strict => a == b,
        Alignment::Relaxed => organizational_domain(&a) == organizational_domain(&b),
    }
}

fn disposition(p: &Policy) -> Disposition {
    match p {
        Policy::Reject => Disposition::Reject,
        Policy::Quarantine => Disposition::Quarantine,
        Policy::None | Policy::Unspecified => Disposition::None,
    }
}

/// Section 6.6.3 step 1-3 for one name: Ok(None) when there is no usable
/// record (none, or more than one).
async fn fetch(budget: &Budget, domain: &str) -> Result<Option<(String, Dmarc)>, String> {
    match budget.txt(&format!("_dmarc.{domain}")).await {
        Answer::Records(v) => {
            let recs: Vec<&Vec<u8>> = v
                .iter()
                .filter(|r| {
                    let t = String::from_utf8_lossy(r);
                    let t = t.trim_start();
                    t.len() >= 8 && t[..8].eq_ignore_ascii_case("v=DMARC1")
                })
                .collect();
            if recs.len() != 1 {
                return Ok(None);
            }
            match Dmarc::parse(recs[0]) {
                Ok(d) => Ok(Some((String::from_utf8_lossy(recs[0]).into_owned(), d))),
                // Section 6.6.3: a record with a syntax error is no record.
                Err(_) => Ok(None),
            }
        }
        Answer::Void => Ok(None),
        Answer::TempFail(e) => Err(e),
    }
}

/// The author domain: the one From header's one address's domain.
pub fn from_domain(message: &[u8]) -> Result<String, String> {
    let froms = crate::results::header_values(message, "from");
    if froms.len() != 1 {
        return Err(format!("{} From header fields", froms.len()));
    }
    let domains = crate::results::address_domains(&froms[0]);
    let mut uniq: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    uniq.dedup();
    match uniq.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("no domain in the From header".into()),
        // Section 6.6.1: several authors in different domains; we do not
        // guess which one's policy to apply.
        _ => Err("From header names several domains".into()),
    }
}

pub async fn check(
    budget: &Budget,
    message: &[u8],
    spf_mailfrom: Option<&SpfCheck>,
    dkim: &DkimChecks,
    sample: u8,
) -> DmarcCheck {
    let from = match from_domain(message) {
        Ok(d) => d,
        Err(e) => return DmarcCheck::none("", e),
    };
    let org = organizational_domain(&from);
    let (found_at, text, rec) = match fetch(budget, &from).await {
        Ok(Some((t, r))) => (from.clone(), t, r),
        Ok(None) if org != from => match fetch(budget, &org).await {
            Ok(Some((t, r))) => (org.clone(), t, r),
            Ok(None) => return DmarcCheck::none(&from, format!("no DMARC record for {from}")),
            Err(e) => return temp(&from, e),
        },
        Ok(None) => return DmarcCheck::none(&from, format!("no DMARC record for {from}")),
        Err(e) => return temp(&from, e),
    };
    // Section 6.3: sp= applies to subdomains when the record came from the
    // organisational domain; p= otherwise.
    let policy = if found_at != from {
        disposition(&rec.sp)
    } else {
        disposition(&rec.p)
    };
    let mode = |a: &Alignment| match a {
        Alignment::Strict => "strict",
        Alignment::Relaxed => "relaxed",
    };
    let mut spf_ok = false;
    let spf_alignment = match spf_mailfrom {
        Some(s) if s.result == SpfResult::Pass => {
            let d = s.sender.rsplit_once('@').map_or(s.domain.as_str(), |x| x.1);
            spf_ok = aligned(d, &from, &rec.aspf);
            format!(
                "spf pass for {d}, {} ({})",
                if spf_ok { "aligned" } else { "not aligned" },
                mode(&rec.aspf)
            )
        }
        Some(s) => format!("spf {} for {}", s.result, s.domain),
        None => "spf not checked".to_string(),
    };
    let mut dkim_ok = false;
    let mut dkim_notes = Vec::new();
    for s in dkim
        .signatures
        .iter()
        .filter(|s| s.result == DkimResult::Pass)
    {
        let a = aligned(&s.domain, &from, &rec.adkim);
        dkim_ok |= a;
        dkim_notes.push(format!(
            "d={} {}",
            s.domain,
            if a { "aligned" } else { "not aligned" }
        ));
    }
    let dkim_alignment = if dkim_notes.is_empty() {
        "no passing DKIM signature".to_string()
    } else {
        format!(
            "dkim pass: {} ({})",
            dkim_notes.join(", "),
            mode(&rec.adkim)
        )
    };
    let pass = spf_ok || dkim_ok;
    // A failure that a temporary DNS error may have caused is not a fail:
    // the policy is not applied to it (RFC 7489 section 6.6.2: a receiver
    // may defer; rejecting on it would refuse mail that passes next time).
    let temp = !pass
        && (spf_mailfrom.is_some_and(|s| s.result == SpfResult::TempError)
            || dkim
                .signatures
                .iter()
                .any(|s| s.result == DkimResult::TempError));
    if temp {
        return DmarcCheck {
            result: DmarcResult::TempError,
            from_domain: from,
            record_domain: Some(found_at),
            record: Some(text),
            policy,
            disposition: Disposition::None,
            spf_alignment,
            dkim_alignment,
            reason: Some("SPF or a DKIM key lookup failed temporarily".into()),
        };
    }
    // Section 6.6.4: pct= samples which failing messages get the policy;
    // the others get the next weaker one.
    let disposition = if pass {
        Disposition::None
    } else if sample < rec.pct.min(100) || rec.pct >= 100 {
        policy
    } else {
        match policy {
            Disposition::Reject => Disposition::Quarantine,
            _ => Disposition::None,
        }
    };
    DmarcCheck {
        result: if pass {
            DmarcResult::Pass
        } else {
            DmarcResult::Fail
        },
        from_domain: from,
        record_domain: Some(found_at),
        record: Some(text),
        policy,
        disposition,
        spf_alignment,
        dkim_alignment,
        reason: (!pass).then(|| "neither SPF nor DKIM aligned with a pass".to_string()),
    }
}

fn temp(from: &str, e: String) -> DmarcCheck {
    let mut c = DmarcCheck::none(from, e);
    c.result = DmarcResult::TempError;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_domain_uses_the_public_suffix_list() {
        assert_eq!(organizational_domain("mail.example.co.uk"), "example.co.uk");
        assert_eq!(organizational_domain("a.b.example.com"), "example.com");
        assert_eq!(organizational_domain("co.uk"), "co.uk");
        // Unlisted TLDs (the lab's .test): the last two labels.
        assert_eq!(organizational_domain("mail.example.test"), "example.test");
    }
}
