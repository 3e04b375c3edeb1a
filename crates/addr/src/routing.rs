//! Which transport and nexthop an address gets, as trivial-rewrite(8)'s
//! resolve.c decides it:
//!
//! 1. the class's transport: local class `local_transport`, virtual
//!    mailbox class `virtual_transport`, relay class `relay_transport`,
//!    default class `sender_dependent_default_transport_maps` (by sender)
//!    else `default_transport`;
//! 2. the nexthop for the relay and default classes:
//!    `sender_dependent_relayhost_maps` (by sender; `DUNNO` stops the
//!    search), else `relayhost`, else the recipient domain (an MX lookup:
//!    Postfix's nexthop is the bare domain, never `[domain]`); a
//!    `transport:nexthop` parameter value overrides it;
//! 3. `transport_maps` last, overriding both by transport(5)'s rules.
//!
//! Every value is parsed into a type once: parameters when the resolver is
//! built (a bad one stops the start with its name), listable tables when
//! opened (a bad entry names table, key and line), and values returned by
//! regexp tables when looked up (a bad one defers the mail with the same
//! detail).

use yubin_conf::Config;
use yubin_table::{Maps, TableError};

use crate::address::Address;
use crate::nexthop::{LmtpNexthop, Nexthop, SMTP_PORT};
use crate::resolution::{Agent, Class, SmtpService, Step};
use crate::resolver::ResolverError;
use crate::transport::{self, Route, Service, Spec};

/// A `*_transport` parameter, parsed, with where it was set.
struct Param {
    spec: Spec,
    /// `transport_maps`-style text for trace: `default_transport = smtp (main.cf:3)`.
    text: String,
}

pub struct Routing {
    local_transport: Param,
    virtual_transport: Param,
    relay_transport: Param,
    default_transport: Param,
    /// `relayhost`, checked as an smtp nexthop (empty: none).
    relayhost: Option<(String, String)>,
    myhostname: String,
    transport_maps: Maps,
    sender_relayhost: Maps,
    sender_transport: Maps,
    null_relayhost_key: String,
    null_transport_key: String,
}

impl Routing {
    pub fn new(cfg: &Config) -> Result<Routing, ResolverError> {
        let err = |param: &str, why: String| ResolverError {
            origin: cfg.origin_text(param),
            param: param.to_string(),
            source: TableError::Spec(why),
        };
        let param = |name: &str| -> Result<Param, ResolverError> {
            let value = cfg.get(name);
            let spec = Spec::parse(value).map_err(|e| err(name, e))?;
            if spec.service.is_none() {
                return Err(err(
                    name,
                    format!("\"{value}\" names no transport (transport:nexthop)"),
                ));
            }
            Ok(Param {
                spec,
                text: format!("{name} = {value} ({})", cfg.origin_text(name)),
            })
        };
        let relayhost = match cfg.get("relayhost").trim() {
            "" => None,
            r => {
                Service::Smtp
                    .check_nexthop(r)
                    .map_err(|e| err("relayhost", e))?;
                Some((
                    r.to_string(),
                    format!("relayhost = {r} ({})", cfg.origin_text("relayhost")),
                ))
            }
        };
        let dtype = cfg.get("default_database_type");
        let maps = |name: &str, check: &dyn Fn(&str) -> Result<(), String>| {
            let m =
                Maps::open(&cfg.list(name), dtype, cfg.dir()).map_err(|source| ResolverError {
                    origin: cfg.origin_text(name),
                    param: name.to_string(),
                    source,
                })?;
            transport::check_tables(&m, check).map_err(|e| err(name, e))?;
            Ok::<Maps, ResolverError>(m)
        };
        let check_spec = |v: &str| Spec::parse(v).map(|_| ());
        let check_relayhost = |v: &str| {
            if v.trim().eq_ignore_ascii_case("DUNNO") {
                return Ok(());
            }
            Service::Smtp.check_nexthop(v.trim())
        };
        let check_transport = |v: &str| match Spec::parse(v)? {
            Spec { service: None, .. } => Err(format!("\"{v}\" names no transport")),
            _ => Ok(()),
        };
        Ok(Routing {
            local_transport: param("local_transport")?,
            virtual_transport: param("virtual_transport")?,
            relay_transport: param("relay_transport")?,
            default_transport: param("default_transport")?,
            relayhost,
            myhostname: cfg.get("myhostname").to_ascii_lowercase(),
            transport_maps: maps("transport_maps", &check_spec)?,
            sender_relayhost: maps("sender_dependent_relayhost_maps", &check_relayhost)?,
            sender_transport: maps("sender_dependent_default_transport_maps", &check_transport)?,
            null_relayhost_key: cfg
                .get("empty_address_relayhost_maps_lookup_key")
                .to_string(),
            null_transport_key: cfg
                .get("empty_address_default_transport_maps_lookup_key")
                .to_string(),
        })
    }

    /// The transport and nexthop for a final address of `class` (not the
    /// virtual alias class), with the steps that chose them. `Err`: a table
    /// value that does not parse, with the table, key and line.
    pub fn route(
        &self,
        addr: &Address,
        class: Class,
        sender: Option<&str>,
        delimiter: &str,
        depth: usize,
        steps: &mut Vec<Step>,
    ) -> Result<Route, String> {
        let domain = addr.domain.to_ascii_lowercase();
        let mut mine: Vec<Step> = Vec::new();
        let step = |text: String, source: Option<String>| Step {
            depth: depth + 1,
            text,
            source,
        };
        let (param, class_nexthop, natural) = match class {
            Class::Local => (
                &self.local_transport,
                self.myhostname.clone(),
                Service::Local,
            ),
            Class::VirtualMailbox => (&self.virtual_transport, domain.clone(), Service::Virtual),
            Class::VirtualAlias | Class::Relay | Class::Default => {
                let nexthop = self.relay_nexthop(sender, delimiter, &domain, &mut mine, depth)?;
                if class == Class::Relay {
                    (&self.relay_transport, nexthop, Service::Relay)
                } else {
                    match self.sender_transport(sender, delimiter)? {
                        Some((spec, why, source)) => {
                            let mut r = Route {
                                service: Service::Smtp,
                                nexthop,
                            };
                            // A sender-dependent value replaces
                            // default_transport, nexthop rules included.
                            if let Some(s) = spec.service {
                                r.service = s;
                            }
                            if let Some(h) = &spec.nexthop {
                                r.nexthop = h.clone();
                            }
                            mine.push(step(why, Some(source)));
                            return self.finish(
                                addr,
                                r,
                                Service::Smtp,
                                delimiter,
                                mine,
                                depth,
                                steps,
                            );
                        }
                        None => (&self.default_transport, nexthop, Service::Smtp),
                    }
                }
            }
        };
        let route = Route::from_param(&param.spec, &class_nexthop)
            .expect("checked when built: every *_transport names a transport");
        mine.push(step(param.text.clone(), None));
        self.finish(addr, route, natural, delimiter, mine, depth, steps)
    }

    /// transport_maps over the class's route, then the trace steps.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        addr: &Address,
        mut route: Route,
        natural: Service,
        delimiter: &str,
        mut mine: Vec<Step>,
        depth: usize,
        steps: &mut Vec<Step>,
    ) -> Result<Route, String> {
        let domain = addr.domain.to_ascii_lowercase();
        let mut overridden = false;
        if !self.transport_maps.is_empty() {
            // The recipient without its extension (transport.c strip_addr),
            // only when there is one.
            let (user, ext) = addr.split_extension(delimiter);
            let stripped = ext.map(|_| user);
            let keys = transport::transport_keys(&addr.local, stripped.as_deref(), &domain);
            let found = transport::search(&self.transport_maps, &keys)
                .map_err(|e| format!("transport_maps lookup failure: {e}"))?;
            match found {
                Some(found) => {
                    let spec = Spec::parse(&found.hit.value).map_err(|e| {
                        format!(
                            "transport_maps {} key \"{}\" ({}): {e}",
                            found.hit.table, found.key, found.source
                        )
                    })?;
                    route.apply(&spec, &domain);
                    mine.push(Step {
                        depth: depth + 1,
                        text: format!(
                            "transport_maps: {} key \"{}\" -> {}",
                            found.hit.table, found.key, found.hit.value
                        ),
                        source: Some(found.source),
                    });
                    overridden = true;
                }
                None => mine.push(Step {
                    depth: depth + 1,
                    text: format!(
                        "transport_maps: no match for {} (keys {})",
                        addr.key(),
                        keys.iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    source: None,
                }),
            }
        }
        // Local and virtual mailbox mail keeps its old, quiet trace unless
        // something re-routed it.
        let remote = matches!(natural, Service::Smtp | Service::Relay);
        if remote || overridden || route.service != natural {
            mine.push(Step {
                depth: depth + 1,
                text: format!(
                    "route: transport {}, nexthop {}",
                    route.service, route.nexthop
                ),
                source: None,
            });
            steps.extend(mine);
        }
        // A value from a regexp table was not checked when the table was
        // opened: check the nexthop for the service now.
        route.service.check_nexthop(&route.nexthop).or_else(|e| {
            // The recipient's own domain as nexthop is fine even where it is
            // not a plain DNS name (an IDN in UTF-8): DNS decides.
            if route.nexthop == domain {
                Ok(())
            } else {
                Err(format!("{} nexthop: {e}", route.service))
            }
        })?;
        Ok(route)
    }

    /// The nexthop of the relay and default classes.
    fn relay_nexthop(
        &self,
        sender: Option<&str>,
        delimiter: &str,
        domain: &str,
        mine: &mut Vec<Step>,
        depth: usize,
    ) -> Result<String, String> {
        if let Some(sender) = sender {
            if !self.sender_relayhost.is_empty() {
                let keys = transport::sender_keys(sender, delimiter, &self.null_relayhost_key);
                let found = transport::search(&self.sender_relayhost, &keys)
                    .map_err(|e| format!("sender_dependent_relayhost_maps lookup failure: {e}"))?;
                if let Some(f) = found {
                    let v = f.hit.value.trim();
                    let text = format!(
                        "sender_dependent_relayhost_maps: {} key \"{}\" -> {v}",
                        f.hit.table, f.key
                    );
                    mine.push(Step {
                        depth: depth + 1,
                        text,
                        source: Some(f.source.clone()),
                    });
                    // postconf(5): DUNNO ends the search without an override.
                    if !v.eq_ignore_ascii_case("DUNNO") {
                        Service::Smtp.check_nexthop(v).map_err(|e| {
                            format!(
                                "sender_dependent_relayhost_maps {} key \"{}\" ({}): {e}",
                                f.hit.table, f.key, f.source
                            )
                        })?;
                        return Ok(v.to_string());
                    }
                }
            }
        }
        if let Some((r, text)) = &self.relayhost {
            mine.push(Step {
                depth: depth + 1,
                text: text.clone(),
                source: None,
            });
            return Ok(r.clone());
        }
        mine.push(Step {
            depth: depth + 1,
            text: format!("no relayhost: nexthop is the recipient domain {domain} (MX lookup)"),
            source: None,
        });
        Ok(domain.to_string())
    }

    /// sender_dependent_default_transport_maps for the default class.
    fn sender_transport(
        &self,
        sender: Option<&str>,
        delimiter: &str,
    ) -> Result<Option<(Spec, String, String)>, String> {
        let Some(sender) = sender else {
            return Ok(None);
        };
        if self.sender_transport.is_empty() {
            return Ok(None);
        }
        let keys = transport::sender_keys(sender, delimiter, &self.null_transport_key);
        let found = transport::search(&self.sender_transport, &keys)
            .map_err(|e| format!("sender_dependent_default_transport_maps lookup failure: {e}"))?;
        let Some(f) = found else {
            return Ok(None);
        };
        let why = |e: String| {
            format!(
                "sender_dependent_default_transport_maps {} key \"{}\" ({}): {e}",
                f.hit.table, f.key, f.source
            )
        };
        let spec = Spec::parse(&f.hit.value).map_err(why)?;
        if spec.service.is_none() {
            return Err(why("names no transport".into()));
        }
        let text = format!(
            "sender_dependent_default_transport_maps: {} key \"{}\" -> {}",
            f.hit.table, f.key, f.hit.value
        );
        Ok(Some((spec, text, f.source)))
    }
}

/// The agent for a routed service other than local and virtual (those
/// expand further in the resolver). The nexthop was checked by
/// [`Routing::route`].
pub fn agent(service: Service, nexthop: &str, rcpt_domain: &str) -> Agent {
    let smtp = |service| {
        let nexthop = if nexthop.eq_ignore_ascii_case(rcpt_domain) && !nexthop.starts_with('[') {
            // The recipient domain by MX, as written (it may be an IDN that
            // is not a plain DNS name).
            Nexthop::Mx {
                domain: rcpt_domain.trim_end_matches('.').to_ascii_lowercase(),
                port: SMTP_PORT,
            }
        } else {
            match Nexthop::parse(nexthop) {
                Ok(n) => n,
                Err(e) => {
                    return Agent::Error {
                        reason: format!("4.3.5 {e}"),
                        temporary: true,
                    }
                }
            }
        };
        Agent::Smtp { service, nexthop }
    };
    match service {
        Service::Smtp => smtp(SmtpService::Smtp),
        Service::Relay => smtp(SmtpService::Relay),
        Service::Lmtp => match LmtpNexthop::parse(nexthop) {
            Ok(n) => Agent::Lmtp {
                nexthop: n.to_string(),
            },
            Err(e) => Agent::Error {
                reason: format!("4.3.5 {e}"),
                temporary: true,
            },
        },
        Service::Error | Service::Retry => {
            let temporary = service == Service::Retry;
            Agent::Error {
                reason: error_reason(nexthop, temporary),
                temporary,
            }
        }
        Service::Discard => Agent::Discard(nexthop.to_string()),
        // Handled by the resolver (aliases, mailboxes); never reaches here.
        Service::Local | Service::Virtual => Agent::Error {
            reason: format!("4.3.0 internal error: {service} routed as an agent"),
            temporary: true,
        },
    }
}

/// error(8): the nexthop is the reason; a leading `X.Y.Z` is its status
/// code, with the class forced to 5 (error) or 4 (retry); without one,
/// 5.0.0 / 4.0.0.
fn error_reason(text: &str, temporary: bool) -> String {
    let class = if temporary { '4' } else { '5' };
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<&str> = first.split('.').collect();
    let is_code = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && matches!(parts[0], "2" | "4" | "5");
    if is_code {
        let rest = if rest.is_empty() {
            transport::UNDELIVERABLE
        } else {
            rest
        };
        format!("{class}.{}.{} {rest}", parts[1], parts[2])
    } else {
        format!("{class}.0.0 {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reasons() {
        assert_eq!(error_reason("5.1.1 gone", false), "5.1.1 gone");
        assert_eq!(error_reason("4.1.1 gone", false), "5.1.1 gone");
        assert_eq!(
            error_reason("mail for x is off", false),
            "5.0.0 mail for x is off"
        );
        assert_eq!(error_reason("try later", true), "4.0.0 try later");
        assert_eq!(
            error_reason("5.7.1", false),
            "5.7.1 Address is undeliverable"
        );
    }

    #[test]
    fn agents() {
        assert_eq!(
            agent(Service::Smtp, "example.org", "example.org"),
            Agent::Smtp {
                service: SmtpService::Smtp,
                nexthop: Nexthop::parse("example.org").unwrap()
            }
        );
        assert_eq!(
            agent(Service::Relay, "[gw.test]:2525", "example.org"),
            Agent::Smtp {
                service: SmtpService::Relay,
                nexthop: Nexthop::parse("[gw.test]:2525").unwrap()
            }
        );
        assert_eq!(
            agent(Service::Lmtp, "unix:private/dovecot-lmtp", "x.test"),
            Agent::Lmtp {
                nexthop: "unix:private/dovecot-lmtp".into()
            }
        );
        assert_eq!(
            agent(Service::Discard, "x.test", "x.test"),
            Agent::Discard("x.test".into())
        );
    }
}
