//! transport(5) values and tables, parsed into types once: the delivery
//! services yubin has, `transport:nexthop` with its "empty means do not
//! change" rules (Postfix's transport.c `update_entry`), and the lookup
//! order of transport_maps (full address, address without extension,
//! domain, `.parent` domains, `*`). Routing itself (which parameter applies
//! to which address class) is in the resolver.

use std::fmt;

use yubin_table::spec::Kind;
use yubin_table::{Hit, Maps, Table};

use crate::nexthop::{LmtpNexthop, Nexthop};

/// The master.cf services yubin can hand a recipient to. A transport(5)
/// value naming anything else (Postfix sites add services such as `slow`
/// or `uucp` in master.cf) is an error, never silently re-routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// local(8): aliases(5), then the user's mailbox.
    Local,
    /// virtual(8): virtual_mailbox_maps.
    Virtual,
    /// smtp(8).
    Smtp,
    /// Postfix's `relay` service: smtp(8) under another name, so that
    /// relay_domains mail has its own queue and limits.
    Relay,
    /// lmtp(8).
    Lmtp,
    /// error(8): bounce with the nexthop as the reason.
    Error,
    /// error(8) as `retry`: defer with the nexthop as the reason.
    Retry,
    /// discard(8): drop, logging the nexthop as the reason.
    Discard,
}

impl Service {
    pub const ALL: [Service; 8] = [
        Service::Local,
        Service::Virtual,
        Service::Smtp,
        Service::Relay,
        Service::Lmtp,
        Service::Error,
        Service::Retry,
        Service::Discard,
    ];

    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Local => "local",
            Service::Virtual => "virtual",
            Service::Smtp => "smtp",
            Service::Relay => "relay",
            Service::Lmtp => "lmtp",
            Service::Error => "error",
            Service::Retry => "retry",
            Service::Discard => "discard",
        }
    }

    /// Checks a nexthop for this service, so that a bad one is found where
    /// it is written (main.cf, a table line), not at delivery.
    pub fn check_nexthop(self, nexthop: &str) -> Result<(), String> {
        match self {
            Service::Smtp | Service::Relay => {
                if nexthop.contains([',', ' ', '\t']) {
                    // Postfix 3.5 accepts a list of nexthops here.
                    return Err(format!(
                        "nexthop \"{nexthop}\": lists of nexthops are not supported by yubin; give one"
                    ));
                }
                Nexthop::parse(nexthop)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Service::Lmtp => LmtpNexthop::parse(nexthop)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            // local(8) and virtual(8) ignore the nexthop; error/retry/discard
            // take any text.
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `transport:nexthop` value (transport(5) RESULT FORMAT, and the
/// `*_transport` parameters). `service: None` is the empty transport
/// field; an empty nexthop is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub service: Option<Service>,
    pub nexthop: Option<String>,
}

impl Spec {
    /// Splits at the first `:` as Postfix's `split_at` does (so
    /// `smtp:[ipv6:::1]:25` keeps its colons in the nexthop). A value
    /// without `:` is a transport name alone.
    pub fn parse(value: &str) -> Result<Spec, String> {
        let value = value.trim();
        let (name, nexthop) = match value.split_once(':') {
            Some((n, h)) => (n.trim(), h.trim()),
            None => (value, ""),
        };
        let service = match name {
            "" => None,
            n => Some(Service::parse(n).ok_or_else(|| {
                format!(
                    "unknown transport \"{n}\" (yubin has: {})",
                    Service::ALL.map(Service::name).join(", ")
                )
            })?),
        };
        let nexthop = (!nexthop.is_empty()).then(|| nexthop.to_string());
        if let (Some(s), Some(h)) = (service, &nexthop) {
            s.check_nexthop(h)?;
        }
        Ok(Spec { service, nexthop })
    }
}

/// A route being decided: the service and nexthop, as trivial-rewrite's
/// `channel` and `nexthop` strings, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub service: Service,
    pub nexthop: String,
}

/// The default nexthop error(8) and retry get when none is given
/// (transport.c).
pub const UNDELIVERABLE: &str = "Address is undeliverable";

impl Route {
    /// transport(5): an empty transport and nexthop change nothing; an
    /// empty transport with a nexthop changes only the nexthop; a
    /// transport with an empty nexthop resets the nexthop to the recipient
    /// domain (for error and retry: "Address is undeliverable").
    pub fn apply(&mut self, spec: &Spec, rcpt_domain: &str) {
        match spec.service {
            None => {
                if let Some(h) = &spec.nexthop {
                    self.nexthop = h.clone();
                }
            }
            Some(s) => {
                self.service = s;
                self.nexthop = match (&spec.nexthop, s) {
                    (Some(h), _) => h.clone(),
                    (None, Service::Error | Service::Retry) => UNDELIVERABLE.to_string(),
                    (None, _) => rcpt_domain.to_string(),
                };
            }
        }
    }

    /// A `*_transport` parameter as trivial-rewrite uses it: the service,
    /// and its nexthop when one is written (`smtp:[relay]:587`), else the
    /// nexthop the class gives.
    pub fn from_param(spec: &Spec, class_nexthop: &str) -> Option<Route> {
        Some(Route {
            service: spec.service?,
            nexthop: spec
                .nexthop
                .clone()
                .unwrap_or_else(|| class_nexthop.to_string()),
        })
    }
}

/// Where a table value came from, for errors and `yubin trace`.
pub fn hit_source(table: &Table, hit: &Hit, key: &str) -> String {
    let line = hit.line.or_else(|| table.locate_line(key));
    match (&hit.file, line) {
        (Some(f), Some(l)) => format!("{}:{l}", f.display()),
        (Some(f), None) => f.display().to_string(),
        _ => hit.table.clone(),
    }
}

/// A table hit: its value, the key that matched and where it is written.
#[derive(Debug, Clone)]
pub struct Found {
    pub hit: Hit,
    pub key: String,
    pub source: String,
}

/// Searches `maps` key by key, every table for one key before the next key
/// (Postfix's maps_find). Partial keys (`partial`) skip regexp and pcre
/// tables, which only ever see the full address (transport(5) REGULAR
/// EXPRESSION TABLES; DICT_FLAG_FIXED). A remote table that cannot answer
/// (pgsql down) is an error: the caller defers, as Postfix does on a
/// lookup failure, rather than routing as if the key were absent.
pub fn search(maps: &Maps, keys: &[(String, bool)]) -> Result<Option<Found>, String> {
    for (key, partial) in keys {
        for table in &maps.tables {
            if *partial && table.spec().kind == Kind::Regexp {
                continue;
            }
            if let Some(hit) = table.try_lookup(key).map_err(|e| e.to_string())? {
                let source = hit_source(table, &hit, key);
                return Ok(Some(Found {
                    hit,
                    key: key.clone(),
                    source,
                }));
            }
        }
    }
    Ok(None)
}

/// transport_maps keys for a recipient in transport.c's order: the full
/// address, the address without its extension, the domain, each parent
/// as `.parent` (transport_maps is not in parent_domain_matches_subdomains),
/// then `*`.
pub fn transport_keys(local: &str, stripped: Option<&str>, domain: &str) -> Vec<(String, bool)> {
    let domain = domain.to_ascii_lowercase();
    let mut keys = vec![(format!("{local}@{domain}").to_lowercase(), false)];
    if let Some(user) = stripped {
        keys.push((format!("{user}@{domain}").to_lowercase(), true));
    }
    if !domain.is_empty() {
        keys.push((domain.clone(), true));
        let mut rest = domain.as_str();
        while let Some(dot) = rest[1..].find('.') {
            rest = &rest[dot + 1..];
            keys.push((rest.to_string(), true));
        }
    }
    keys.push(("*".to_string(), true));
    keys
}

/// Keys for the sender-dependent tables (mail_addr_find): the sender, the
/// sender without extension, `@domain`. The null sender is looked up as
/// `null_key` (`empty_address_*_lookup_key`, default `<>`).
pub fn sender_keys(sender: &str, delimiter: &str, null_key: &str) -> Vec<(String, bool)> {
    if sender.is_empty() {
        return vec![(null_key.to_string(), false)];
    }
    let a = crate::address::Address::from_internal(sender);
    let mut keys = vec![(a.key(), false)];
    let (user, ext) = a.split_extension(delimiter);
    if ext.is_some() {
        keys.push((format!("{user}@{}", a.domain).to_lowercase(), true));
    }
    if !a.domain.is_empty() {
        keys.push((format!("@{}", a.domain.to_ascii_lowercase()), true));
    }
    keys
}

/// Checks every entry of the listable tables in `maps` with `check`, so a
/// bad value is reported at start with its table, key and line.
pub fn check_tables(maps: &Maps, check: impl Fn(&str) -> Result<(), String>) -> Result<(), String> {
    for table in &maps.tables {
        let Ok(entries) = table.dump() else {
            continue; // regexp/cidr: checked when a lookup returns the value
        };
        for (key, value) in entries {
            if let Err(e) = check(&value) {
                let src = table
                    .lookup(&key)
                    .and_then(|h| h.line)
                    .or_else(|| table.locate_line(&key))
                    .map(|l| format!(" (line {l})"))
                    .unwrap_or_default();
                return Err(format!("{} key \"{key}\"{src}: {e}", table.spec()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_forms() {
        let s = Spec::parse("smtp:[relay.test]:587").unwrap();
        assert_eq!(s.service, Some(Service::Smtp));
        assert_eq!(s.nexthop.as_deref(), Some("[relay.test]:587"));
        assert_eq!(
            Spec::parse(":").unwrap(),
            Spec {
                service: None,
                nexthop: None
            }
        );
        assert_eq!(Spec::parse(":[gw.test]").unwrap().service, None);
        assert_eq!(Spec::parse("relay").unwrap().nexthop, None);
        let e = Spec::parse("error:5.1.1 no such user: really").unwrap();
        assert_eq!(e.nexthop.as_deref(), Some("5.1.1 no such user: really"));
        assert_eq!(
            Spec::parse("lmtp:unix:private/dovecot-lmtp")
                .unwrap()
                .nexthop
                .as_deref(),
            Some("unix:private/dovecot-lmtp")
        );
        assert!(Spec::parse("smtp:[ipv6:::1]:25").is_ok());
        let bad = Spec::parse("uucp:example").unwrap_err();
        assert!(bad.contains("unknown transport \"uucp\""), "{bad}");
        assert!(Spec::parse("smtp:[x").is_err());
        assert!(Spec::parse("smtp:a.test, b.test").is_err());
        assert!(Spec::parse("lmtp:unix:").is_err());
    }

    #[test]
    fn update_entry_rules() {
        let mut r = Route {
            service: Service::Smtp,
            nexthop: "[smart.test]".into(),
        };
        r.apply(&Spec::parse(":").unwrap(), "d.test");
        assert_eq!(r.nexthop, "[smart.test]", "null: no change");
        r.apply(&Spec::parse(":[gw.test]").unwrap(), "d.test");
        assert_eq!(
            (r.service, r.nexthop.as_str()),
            (Service::Smtp, "[gw.test]")
        );
        r.apply(&Spec::parse("relay:").unwrap(), "d.test");
        assert_eq!((r.service, r.nexthop.as_str()), (Service::Relay, "d.test"));
        r.apply(&Spec::parse("error").unwrap(), "d.test");
        assert_eq!(
            (r.service, r.nexthop.as_str()),
            (Service::Error, UNDELIVERABLE)
        );
    }

    #[test]
    fn key_order() {
        let k: Vec<String> = transport_keys("u+x", Some("u"), "A.b.Example.com")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            k,
            [
                "u+x@a.b.example.com",
                "u@a.b.example.com",
                "a.b.example.com",
                ".b.example.com",
                ".example.com",
                ".com",
                "*"
            ]
        );
        let s: Vec<String> = sender_keys("Me+x@Ex.test", "+", "<>")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(s, ["me+x@ex.test", "me@ex.test", "@ex.test"]);
        assert_eq!(sender_keys("", "+", "<>")[0].0, "<>");
    }
}
