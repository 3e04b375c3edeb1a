//! DKIM verification, RFC 6376: every signature, up to a limit.
//!
//! mail-auth parses the signatures, canonicalises and checks the crypto.
//! Its key lookups never reach its own resolver: we fetch each key record
//! through the message's budget first and hand mail-auth the answers as
//! its cache, so one count and one deadline cover all DNS.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{
    AuthenticatedMessage, DkimResult as MaResult, Error, MessageAuthenticator, Parameters,
    ResolverCache, Txt, MX,
};

use crate::dns::{Answer, Budget};

/// RFC 8601 section 2.7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimResult {
    None,
    Pass,
    Fail,
    Policy,
    Neutral,
    TempError,
    PermError,
}

impl DkimResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimResult::None => "none",
            DkimResult::Pass => "pass",
            DkimResult::Fail => "fail",
            DkimResult::Policy => "policy",
            DkimResult::Neutral => "neutral",
            DkimResult::TempError => "temperror",
            DkimResult::PermError => "permerror",
        }
    }
}

/// One DKIM-Signature header's verdict.
#[derive(Debug, Clone)]
pub struct DkimCheck {
    pub result: DkimResult,
    /// d=, s=, i= (empty when the header did not parse).
    pub domain: String,
    pub selector: String,
    pub identity: String,
    /// The first 8 characters of b= (RFC 6008) to tell signatures apart.
    pub b_prefix: String,
    pub algorithm: String,
    pub canonicalization: String,
    /// l= if present.
    pub body_length: Option<u64>,
    /// Why it did not pass.
    pub reason: Option<String>,
}

/// All signatures of one message.
#[derive(Debug, Clone, Default)]
pub struct DkimChecks {
    pub signatures: Vec<DkimCheck>,
    /// Signatures beyond the limit, not evaluated (RFC 6376 section 6.1
    /// lets a verifier limit how many it tries).
    pub skipped: usize,
}

struct Cache(Mutex<HashMap<String, Txt>>);

impl ResolverCache<String, Txt> for Cache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        String: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        String: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name)
    }
    fn insert(&self, key: String, value: Txt, _valid_until: StdInstant) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, value);
        }
    }
}

/// Counts the header fields named DKIM-Signature and, above `max`, hides
/// the rest from the verifier (renamed in a copy) so that body hashes and
/// key lookups stay bounded for a message with 1,000 signatures.
fn limit_signatures(message: &[u8], max: usize) -> (std::borrow::Cow<'_, [u8]>, usize) {
    let end = crate::results::header_end(message);
    let mut starts = Vec::new();
    let mut at = 0;
    while at < end {
        let line_end = message[at..end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(end, |i| at + i + 1);
        // The field name, then optional WSP before the colon (RFC 5322
        // section 4.5 obsolete syntax, which parsers accept).
        let line = &message[at..line_end];
        if line.len() > 14 && line[..14].eq_ignore_ascii_case(b"dkim-signature") {
            let rest = &line[14..];
            let colon = rest.iter().position(|&b| b != b' ' && b != b'\t');
            if colon.map(|i| rest[i] == b':').unwrap_or(false) {
                starts.push(at);
            }
        }
        at = line_end;
    }
    if starts.len() <= max {
        return (std::borrow::Cow::Borrowed(message), 0);
    }
    let mut copy = message.to_vec();
    for &s in &starts[max..] {
        // Same length, so offsets stay valid.
        copy[s..s + 14].copy_from_slice(b"X-Dkim-Ignored");
    }
    (std::borrow::Cow::Owned(copy), starts.len() - max)
}

/// Verifies every DKIM signature of `message` (at most `max` of them).
pub async fn verify(budget: &Budget, message: &[u8], max: usize) -> DkimChecks {
    let (message, skipped) = limit_signatures(message, max);
    // Not strict: signatures with l= are verified (RFC 6376 section 3.5
    // allows them; dkimpy does too). What follows l= is unsigned, which
    // the A-R and trace show as l=.
    let Some(parsed) = AuthenticatedMessage::parse_with_opts(&message, false) else {
        return DkimChecks {
            signatures: vec![],
            skipped,
        };
    };
    // Fetch every key record the signatures name, once each.
    let cache = Cache(Mutex::new(HashMap::new()));
    for h in &parsed.dkim_headers {
        if let Ok(sig) = &h.header {
            let name = format!("{}._domainkey.{}.", sig.s, sig.d).to_ascii_lowercase();
            if cache.get(&name).is_some() {
                continue;
            }
            let txt = match budget.txt(&name).await {
                Answer::Records(recs) => {
                    // mail-auth takes the first record that parses.
                    let mut r = Txt::Error(Error::InvalidRecordType);
                    for rec in &recs {
                        // RFC 6376 section 3.6.1: an empty p= is a revoked
                        // key (mail-auth would only say the check failed).
                        if revoked(rec) {
                            r = Txt::Error(Error::RevokedPublicKey);
                            break;
                        }
                        // RFC 8301 section 3.2: 1024 to 4096 bits must be
                        // supported; ring takes up to 8192. Larger keys
                        // (a 16 kB record) are refused by size, with a
                        // reason, before any parsing or arithmetic.
                        if key_bytes(rec) > MAX_KEY_BYTES {
                            r = Txt::Error(Error::CryptoError(format!(
                                "key of {} bytes, larger than an 8192-bit key",
                                key_bytes(rec)
                            )));
                            break;
                        }
                        match DomainKey::parse(rec) {
                            Ok(k) => {
                                r = Txt::DomainKey(Arc::new(k));
                                break;
                            }
                            Err(e) => r = Txt::Error(e),
                        }
                    }
                    r
                }
                Answer::Void => Txt::Error(Error::DnsRecordNotFound(ResponseCode::NXDomain)),
                Answer::TempFail(e) => Txt::Error(Error::DnsError(e)),
            };
            cache.insert(name, txt, StdInstant::now());
        }
    }
    let Some(ma) = no_servers() else {
        return DkimChecks {
            signatures: vec![],
            skipped,
        };
    };
    let params = Parameters::new(&parsed).with_txt_cache(&cache);
    let params: Parameters<'_, _, Cache, NoMx, NoV4, NoV6, NoPtr> = params;
    let out = ma.verify_dkim(params).await;
    let mut signatures = Vec::with_capacity(out.len());
    for o in &out {
        let sig = o.signature();
        let (result, reason) = classify(o.result());
        signatures.push(DkimCheck {
            result,
            domain: sig.map(|s| s.d.clone()).unwrap_or_default(),
            selector: sig.map(|s| s.s.clone()).unwrap_or_default(),
            identity: sig.map(|s| s.i.clone()).unwrap_or_default(),
            b_prefix: sig
                .map(|s| {
                    let b = base64(&s.b);
                    b.chars().take(8).collect()
                })
                .unwrap_or_default(),
            algorithm: sig.map(|s| format!("{:?}", s.a)).unwrap_or_default(),
            canonicalization: sig
                .map(|s| format!("{}/{}", canon(s.ch), canon(s.cb)))
                .unwrap_or_default(),
            body_length: sig.and_then(|s| (s.l > 0).then_some(s.l)),
            reason,
        });
    }
    DkimChecks {
        signatures,
        skipped,
    }
}

/// An 8192-bit RSA key in SubjectPublicKeyInfo DER is about 1,060 bytes.
const MAX_KEY_BYTES: usize = 1100;

/// Decoded size of the p= tag's base64 (whitespace ignored).
fn key_bytes(rec: &[u8]) -> usize {
    String::from_utf8_lossy(rec)
        .split(';')
        .find_map(|tag| {
            let (k, v) = tag.split_once('=')?;
            (k.trim() == "p").then(|| {
                v.bytes()
                    .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
                    .count()
                    * 3
                    / 4
            })
        })
        .unwrap_or(0)
}

/// The key record's p= tag is present and empty.
fn revoked(rec: &[u8]) -> bool {
    String::from_utf8_lossy(rec).split(';').any(|tag| {
        let mut kv = tag.splitn(2, '=');
        let k = kv.next().unwrap_or("").trim();
        let v = kv.next().map(|v| v.trim());
        k == "p" && v == Some("")
    })
}

/// mail-auth's verifier with a resolver that has no servers: anything
/// not in our cache fails at once instead of leaving the budget.
fn no_servers() -> Option<&'static MessageAuthenticator> {
    use mail_auth::hickory_resolver::config::{
        NameServerConfigGroup, ResolverConfig, ResolverOpts,
    };
    static MA: std::sync::OnceLock<Option<MessageAuthenticator>> = std::sync::OnceLock::new();
    MA.get_or_init(|| {
        MessageAuthenticator::new(
            ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::with_capacity(0)),
            ResolverOpts::default(),
        )
        .ok()
    })
    .as_ref()
}

type NoMx = mail_auth::common::cache::NoCache<String, Arc<Vec<MX>>>;
type NoV4 = mail_auth::common::cache::NoCache<String, Arc<Vec<Ipv4Addr>>>;
type NoV6 = mail_auth::common::cache::NoCache<String, Arc<Vec<Ipv6Addr>>>;
type NoPtr = mail_auth::common::cache::NoCache<IpAddr, Arc<Vec<String>>>;

fn canon(c: mail_auth::dkim::Canonicalization) -> &'static str {
    match c {
        mail_auth::dkim::Canonicalization::Relaxed => "relaxed",
        mail_auth::dkim::Canonicalization::Simple => "simple",
    }
}

/// Maps mail-auth's verdict to RFC 8601's words with RFC 6376's reasons:
/// a bad signature or body hash and an expired signature fail (section
/// 6.1.1 and 6.3 PERMFAIL "signature did not verify"/"signature
/// expired"); a signature or key that cannot be used is permerror; a DNS
/// failure is temperror.
fn classify(r: &MaResult) -> (DkimResult, Option<String>) {
    let (res, e) = match r {
        MaResult::Pass => return (DkimResult::Pass, None),
        MaResult::None => return (DkimResult::None, None),
        MaResult::Neutral(e) | MaResult::Fail(e) | MaResult::PermError(e) => {
            let res = match e {
                Error::FailedBodyHashMatch
                | Error::FailedVerification
                | Error::SignatureExpired
                | Error::FailedAuidMatch
                | Error::RevokedPublicKey => DkimResult::Fail,
                Error::DnsError(_) => DkimResult::TempError,
                _ => DkimResult::PermError,
            };
            (res, e)
        }
        MaResult::TempError(e) => (DkimResult::TempError, e),
    };
    let why = match e {
        Error::FailedBodyHashMatch => "body hash did not verify".to_string(),
        Error::FailedVerification => "signature did not verify".to_string(),
        Error::SignatureExpired => "signature expired".to_string(),
        Error::FailedAuidMatch => "i= is not in d= (t=s key)".to_string(),
        Error::RevokedPublicKey => "key revoked".to_string(),
        Error::DnsRecordNotFound(_) => "no key for signature".to_string(),
        Error::DnsError(e) => format!("key lookup failed: {e}"),
        Error::ParseError => "signature or key syntax error".to_string(),
        Error::MissingParameters => "signature lacks a required tag".to_string(),
        Error::SignatureLength => "l= is longer than the body".to_string(),
        Error::CryptoError(e) => format!("key unusable: {e}"),
        e => e.to_string(),
    };
    (res, Some(why))
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3).take(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_renames_only_the_excess() {
        let m = b"DKIM-Signature: a\r\nFrom: x\r\ndkim-signature: b\r\nDKIM-Signature\t : c\r\nDKIM-Signatures: d\r\n\r\nDKIM-Signature: body\r\n";
        let (c, n) = limit_signatures(m, 1);
        assert_eq!(n, 2);
        assert_eq!(
            &c[..],
            &b"DKIM-Signature: a\r\nFrom: x\r\nX-Dkim-Ignored: b\r\nX-Dkim-Ignored\t : c\r\nDKIM-Signatures: d\r\n\r\nDKIM-Signature: body\r\n"[..]
        );
        assert_eq!(limit_signatures(m, 3).1, 0);
    }
}
