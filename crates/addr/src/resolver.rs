//! Address resolution as Postfix does it, split the way Postfix splits it:
//!
//! - `check`: what smtpd(8) decides at `RCPT TO` (the unlisted-recipient
//!   check of smtpd_check.c `check_rcpt_maps`): canonicalise, find the
//!   address class (trivial-rewrite(8)), accept anything virtual_alias_maps
//!   knows, else require the class's recipient table.
//! - `expand`: what cleanup(8), virtual(8) and local(8) do with an accepted
//!   address: virtual(5) alias expansion, then per final address its
//!   mailbox (virtual_mailbox_maps), aliases(5) and the local mailbox, or
//!   the relay transport.

use std::net::IpAddr;

use yubin_conf::Config;
use yubin_table::{Hit, Maps, Table, TableError, TableSpec};

use crate::address::{parse_address, Address};
use crate::domains::DomainList;
use crate::passwd;
use crate::resolution::{Agent, Class, Delivery, Mailbox, MailboxKind, Resolution, Step, Verdict};

/// One entry of `local_recipient_maps`: the system passwd file, or a table.
enum RecipientMap {
    Passwd,
    Table(Table),
}

/// Everything resolution needs, built once from the configuration. Building
/// it opens every table, so a configuration that names a missing table fails
/// here, before anything serves.
pub struct Resolver {
    myorigin: String,
    /// `Some(".$mydomain")` when append_dot_mydomain is on.
    append_dot: Option<String>,
    delimiter: String,
    mydestination: DomainList,
    interface_addrs: Vec<IpAddr>,
    virtual_alias_domains: DomainList,
    virtual_mailbox_domains: DomainList,
    relay_domains: DomainList,
    virtual_alias_maps: Maps,
    virtual_mailbox_maps: Maps,
    virtual_uid_maps: Maps,
    virtual_gid_maps: Maps,
    virtual_mailbox_base: String,
    virtual_minimum_uid: u64,
    alias_maps: Maps,
    /// `None`: local_recipient_maps is empty, so any local user is accepted.
    local_recipient_maps: Option<Vec<RecipientMap>>,
    relay_recipient_maps: Maps,
    home_mailbox: String,
    mail_spool_directory: String,
    recursion_limit: usize,
    expansion_limit: usize,
    double_bounce_sender: String,
    /// virtual_transport and mailbox_transport when they name another
    /// transport than the built-in virtual(8)/local(8) mailbox delivery.
    virtual_transport: Option<Agent>,
    mailbox_transport: Option<Agent>,
    origins: Origins,
}

/// A transport parameter's value (`lmtp:unix:/path`, `smtp:[host]`,
/// `virtual`): `None` for the built-in mailbox delivery, else the relay
/// agent with its next hop (transport(5): `transport:nexthop`).
fn transport_agent(value: &str, builtin: &str) -> Result<Option<Agent>, TableError> {
    let value = value.trim();
    let (name, nexthop) = value.split_once(':').unwrap_or((value, ""));
    match name {
        "" => Ok(None),
        n if n == builtin && nexthop.is_empty() => Ok(None),
        "lmtp" if !nexthop.is_empty() => Ok(Some(Agent::Lmtp {
            nexthop: nexthop.to_string(),
        })),
        "smtp" if !nexthop.is_empty() => Ok(Some(Agent::Smtp {
            nexthop: nexthop.to_string(),
        })),
        _ => Err(TableError::Spec(format!(
            "\"{value}\": yubin delivers with {builtin}, lmtp:NEXTHOP or smtp:NEXTHOP here"
        ))),
    }
}

/// Where the main parameters were set, for hints in the trace.
struct Origins {
    virtual_alias_maps: String,
    local_recipient_maps: String,
}

/// Errors building a resolver name the parameter and its origin.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {param}: {source}")]
pub struct ResolverError {
    pub origin: String,
    pub param: String,
    pub source: TableError,
}

impl Resolver {
    pub fn new(cfg: &Config) -> Result<Resolver, ResolverError> {
        let base = cfg.dir().to_path_buf();
        let dtype = cfg.get("default_database_type").to_string();
        let err = |param: &str| {
            let origin = cfg.origin_text(param);
            let param = param.to_string();
            move |source| ResolverError {
                origin,
                param,
                source,
            }
        };
        let list = |param: &str, parent: bool| {
            DomainList::new(
                param,
                &cfg.list(param),
                &cfg.origin_text(param),
                &base,
                &dtype,
                parent,
            )
            .map_err(err(param))
        };
        let maps = |param: &str| Maps::open(&cfg.list(param), &dtype, &base).map_err(err(param));
        let local_recipient_maps = {
            let items = cfg.list("local_recipient_maps");
            if items.is_empty() {
                None
            } else {
                let mut v = Vec::new();
                for item in items {
                    let inner = item.strip_prefix("proxy:").unwrap_or(&item);
                    if inner == "unix:passwd.byname" {
                        v.push(RecipientMap::Passwd);
                    } else {
                        let spec =
                            TableSpec::parse(inner, &dtype).map_err(err("local_recipient_maps"))?;
                        v.push(RecipientMap::Table(
                            Table::open(&spec, &base).map_err(err("local_recipient_maps"))?,
                        ));
                    }
                }
                Some(v)
            }
        };
        Ok(Resolver {
            myorigin: cfg.get("myorigin").to_ascii_lowercase(),
            append_dot: cfg
                .bool("append_dot_mydomain")
                .unwrap_or(false)
                .then(|| format!(".{}", cfg.get("mydomain").to_ascii_lowercase())),
            delimiter: cfg.get("recipient_delimiter").to_string(),
            mydestination: list("mydestination", false)?,
            interface_addrs: interface_addresses(cfg),
            virtual_alias_domains: list("virtual_alias_domains", false)?,
            virtual_mailbox_domains: list("virtual_mailbox_domains", false)?,
            relay_domains: list("relay_domains", true)?,
            virtual_alias_maps: maps("virtual_alias_maps")?,
            virtual_mailbox_maps: maps("virtual_mailbox_maps")?,
            virtual_uid_maps: maps("virtual_uid_maps")?,
            virtual_gid_maps: maps("virtual_gid_maps")?,
            virtual_mailbox_base: cfg.get("virtual_mailbox_base").to_string(),
            virtual_minimum_uid: cfg.u64("virtual_minimum_uid").unwrap_or(100),
            alias_maps: maps("alias_maps")?,
            local_recipient_maps,
            relay_recipient_maps: maps("relay_recipient_maps")?,
            home_mailbox: cfg.get("home_mailbox").to_string(),
            mail_spool_directory: cfg.get("mail_spool_directory").to_string(),
            recursion_limit: cfg.u64("virtual_alias_recursion_limit").unwrap_or(1000) as usize,
            expansion_limit: cfg.u64("virtual_alias_expansion_limit").unwrap_or(1000) as usize,
            double_bounce_sender: cfg.get("double_bounce_sender").to_ascii_lowercase(),
            virtual_transport: transport_agent(cfg.get("virtual_transport"), "virtual")
                .map_err(err("virtual_transport"))?,
            mailbox_transport: transport_agent(cfg.get("mailbox_transport"), "local")
                .map_err(err("mailbox_transport"))?,
            origins: Origins {
                virtual_alias_maps: cfg.origin_text("virtual_alias_maps"),
                local_recipient_maps: cfg.origin_text("local_recipient_maps"),
            },
        })
    }

    /// Whether any table the resolver searches is remote (pgsql:): its
    /// lookups block on the network, so async callers run it on a blocking
    /// thread (docs/ARCHITECTURE.md "Remote tables").
    pub fn is_remote(&self) -> bool {
        let tables = [
            &self.virtual_alias_maps,
            &self.virtual_mailbox_maps,
            &self.virtual_uid_maps,
            &self.virtual_gid_maps,
            &self.alias_maps,
            &self.relay_recipient_maps,
        ];
        let lists = [
            &self.mydestination,
            &self.virtual_alias_domains,
            &self.virtual_mailbox_domains,
            &self.relay_domains,
        ];
        tables.iter().any(|m| m.is_remote())
            || lists.iter().any(|l| l.is_remote())
            || self.local_recipient_maps.as_ref().is_some_and(|v| {
                v.iter()
                    .any(|m| matches!(m, RecipientMap::Table(t) if t.is_remote()))
            })
    }

    /// Appends `@$myorigin` to a bare local part (postconf(5)
    /// append_at_myorigin), then `.$mydomain` to a domain without a dot when
    /// append_dot_mydomain is on (trivial-rewrite(8); the default below
    /// compatibility_level 1, so `root@localhost` becomes
    /// `root@localhost.$mydomain`, as Postfix 3.7 does at level 0).
    pub fn canonical(&self, addr: &Address) -> Address {
        let mut out = if addr.domain.is_empty() {
            Address::new(&addr.local, &self.myorigin)
        } else {
            addr.clone()
        };
        if let Some(dot) = &self.append_dot {
            if !out.domain.is_empty() && !out.domain.contains('.') && !out.domain.starts_with('[') {
                out = Address::new(&out.local, &format!("{}{dot}", out.domain));
            }
        }
        out
    }

    /// Whether the domain is the local machine: `$mydestination`, or an
    /// address literal of `$inet_interfaces`/`$proxy_interfaces`.
    fn local_domain_reason(&self, domain: &str) -> Option<String> {
        if let Some(m) = self.mydestination.find(domain) {
            return Some(format!("mydestination lists {}", m.because));
        }
        let lit = domain.strip_prefix('[')?.strip_suffix(']')?;
        let lit = lit
            .strip_prefix("ipv6:")
            .or_else(|| lit.strip_prefix("IPv6:"))
            .unwrap_or(lit);
        let ip: IpAddr = lit.parse().ok()?;
        self.interface_addrs
            .contains(&ip)
            .then(|| format!("{ip} is an address of inet_interfaces/proxy_interfaces"))
    }

    /// The address class and why (trivial-rewrite's resolve order). A
    /// domain list that cannot answer reads as "not listed"; mail paths use
    /// `try_class_of`.
    pub fn class_of(&self, domain: &str) -> (Class, String) {
        self.try_class_of(domain).unwrap_or_else(|e| {
            (
                Class::Default,
                format!("domain lists could not be read: {e}"),
            )
        })
    }

    /// The address class, with a domain table's temporary failure as an
    /// error (trivial-rewrite's RESOLVE_FLAG_FAIL: smtpd defers, cleanup
    /// and the delivery agents defer).
    pub fn try_class_of(&self, domain: &str) -> Result<(Class, String), TableError> {
        if let Some(why) = self.local_domain_reason(domain) {
            return Ok((Class::Local, why));
        }
        if let Some(m) = self.virtual_alias_domains.try_find(domain)? {
            return Ok((
                Class::VirtualAlias,
                format!("virtual_alias_domains lists {}", m.because),
            ));
        }
        if let Some(m) = self.virtual_mailbox_domains.try_find(domain)? {
            return Ok((
                Class::VirtualMailbox,
                format!("virtual_mailbox_domains lists {}", m.because),
            ));
        }
        if let Some(m) = self.relay_domains.try_find(domain)? {
            return Ok((Class::Relay, format!("relay_domains lists {}", m.because)));
        }
        Ok((
            Class::Default,
            "not in mydestination, virtual_alias_domains, virtual_mailbox_domains or relay_domains"
                .into(),
        ))
    }

    /// Whether the `user` form of virtual(5) applies to this domain: it is
    /// `$myorigin`, `$mydestination`, `$inet_interfaces` or `$proxy_interfaces`.
    fn user_form_applies(&self, domain: &str) -> bool {
        domain == self.myorigin || self.local_domain_reason(domain).is_some()
    }

    /// Looks `addr` up in `maps` in virtual(5) order: `user+ext@domain`,
    /// `user@domain`, then (when `user_form`) `user+ext`, `user`, then
    /// `@domain`. Returns the hit, the key that matched and the unmatched
    /// extension (to propagate onto the result).
    fn search(
        &self,
        maps: &Maps,
        addr: &Address,
        user_form: bool,
        steps: &mut Vec<Step>,
        depth: usize,
        label: &str,
    ) -> Result<Option<(Hit, String, Option<String>)>, TableError> {
        let (user, ext) = addr.split_extension(&self.delimiter);
        let mut keys: Vec<(String, bool)> = Vec::new();
        if ext.is_some() {
            keys.push((format!("{}@{}", addr.local, addr.domain), false));
        }
        keys.push((format!("{user}@{}", addr.domain), ext.is_some()));
        if user_form {
            if ext.is_some() {
                keys.push((addr.local.clone(), false));
            }
            keys.push((user.clone(), ext.is_some()));
        }
        keys.push((format!("@{}", addr.domain), false));
        for (key, stripped) in keys {
            for table in &maps.tables {
                let probe = match table.probe(&key) {
                    Ok(p) => p,
                    Err(e) => {
                        steps.push(Step {
                            depth,
                            text: format!("{label}: key \"{key}\": {e}"),
                            source: None,
                        });
                        return Err(e);
                    }
                };
                if probe.hit.is_none() {
                    if let Some(q) = probe.query {
                        steps.push(Step {
                            depth,
                            text: format!(
                                "{label}: {} key \"{key}\": not found by {q}",
                                table.spec()
                            ),
                            source: None,
                        });
                    }
                }
                if let Some(hit) = probe.hit {
                    let line = hit.line.or_else(|| table.locate_line(&key));
                    let source = hit.file.as_ref().map(|f| match line {
                        Some(l) => format!("{}:{l}", f.display()),
                        None => f.display().to_string(),
                    });
                    let by = hit
                        .query
                        .as_ref()
                        .map(|q| format!(" (query: {q})"))
                        .unwrap_or_default();
                    steps.push(Step {
                        depth,
                        text: format!("{label}: {} key \"{key}\" -> {}{by}", hit.table, hit.value),
                        source,
                    });
                    let unmatched = if stripped { ext.clone() } else { None };
                    return Ok(Some((hit, key, unmatched)));
                }
            }
        }
        if !maps.is_empty() {
            let tried: Vec<String> = maps.tables.iter().map(|t| t.spec().to_string()).collect();
            steps.push(Step {
                depth,
                text: format!(
                    "{label}: no match for {} in {}",
                    addr.key(),
                    tried.join(", ")
                ),
                source: None,
            });
        }
        Ok(None)
    }

    /// Full resolution: the RCPT verdict and, when accepted, the deliveries.
    pub fn resolve(&self, addr: &Address) -> Resolution {
        let mut steps = Vec::new();
        let canonical = self.canonical(addr);
        if canonical != *addr {
            steps.push(Step {
                depth: 0,
                text: format!(
                    "canonical form {} ({})",
                    canonical.internal(),
                    if addr.domain.is_empty() {
                        format!("bare name gets @$myorigin = {}", self.myorigin)
                    } else {
                        "append_dot_mydomain = yes appends .$mydomain to a domain without a dot"
                            .to_string()
                    }
                ),
                source: None,
            });
        }
        let (class, verdict) = match self.try_class_of(&canonical.domain) {
            Ok((class, why)) => {
                steps.push(Step {
                    depth: 0,
                    text: format!("domain {}: {} class: {why}", canonical.domain, class.name()),
                    source: None,
                });
                (class, self.verdict(addr, &canonical, class, &mut steps))
            }
            Err(e) => {
                steps.push(Step {
                    depth: 0,
                    text: format!("domain {}: {e}", canonical.domain),
                    source: None,
                });
                (Class::Default, class_retry(addr, &e))
            }
        };
        let deliveries = if matches!(verdict, Verdict::Accept) {
            self.expand_into(&canonical, &mut steps)
        } else {
            Vec::new()
        };
        // The RCPT check and the expansion both start with the same lookup.
        steps.dedup();
        Resolution {
            address: addr.internal(),
            canonical: canonical.internal(),
            class,
            verdict,
            deliveries,
            steps,
        }
    }

    /// The RCPT verdict only (the smtpd hot path: no expansion).
    pub fn check(&self, addr: &Address) -> (Class, Verdict) {
        let mut steps = Vec::new();
        let canonical = self.canonical(addr);
        match self.try_class_of(&canonical.domain) {
            Ok((class, _)) => (class, self.verdict(addr, &canonical, class, &mut steps)),
            Err(e) => (Class::Default, class_retry(addr, &e)),
        }
    }

    fn verdict(
        &self,
        given: &Address,
        addr: &Address,
        class: Class,
        steps: &mut Vec<Step>,
    ) -> Verdict {
        let user_form = self.user_form_applies(&addr.domain);
        // smtpd_check.c reject_dict_retry: a table that cannot answer now
        // defers the recipient; the client retries.
        let retry = |e: TableError| Verdict::Reject {
            code: 451,
            enhanced: "4.3.0".into(),
            text: format!("<{}>: Temporary lookup failure", given.internal()),
            hint: format!(
                "{e}: make the database reachable; nothing was rejected, the client will retry"
            ),
        };
        match self.search(
            &self.virtual_alias_maps,
            addr,
            user_form,
            steps,
            0,
            "virtual_alias_maps",
        ) {
            Ok(Some(_)) => return Verdict::Accept,
            Ok(None) => {}
            Err(e) => return retry(e),
        }
        if given.domain.is_empty() && given.local.eq_ignore_ascii_case("postmaster") {
            // smtpd accepts a bare "postmaster" whatever the tables say
            // (RFC 5321 section 4.5.1 requires it).
            steps.push(Step {
                depth: 0,
                text: "bare \"postmaster\" is always accepted (RFC 5321 section 4.5.1)".into(),
                source: None,
            });
            return Verdict::Accept;
        }
        let reject = |table: &str, hint: String| Verdict::Reject {
            code: 550,
            enhanced: "5.1.1".into(),
            text: format!(
                "<{}>: Recipient address rejected: User unknown in {table}",
                given.internal()
            ),
            hint,
        };
        let (user, _) = addr.split_extension(&self.delimiter);
        match class {
            Class::Local => {
                // The whole local part: Postfix accepts postmaster@ but
                // not postmaster+ext@ without a table entry.
                let local = addr.local.to_lowercase();
                if local == "postmaster" || local == self.double_bounce_sender {
                    steps.push(Step {
                        depth: 0,
                        text: format!(
                            "{local}@ a local domain is always accepted (RFC 5321 section 4.5.1)"
                        ),
                        source: None,
                    });
                    return Verdict::Accept;
                }
                let Some(maps) = &self.local_recipient_maps else {
                    steps.push(Step {
                        depth: 0,
                        text: "local_recipient_maps is empty: every local name is accepted".into(),
                        source: None,
                    });
                    return Verdict::Accept;
                };
                for m in maps {
                    match m {
                        RecipientMap::Passwd => {
                            if let Some(u) = passwd::lookup(&local) {
                                steps.push(Step {
                                    depth: 0,
                                    text: format!(
                                        "local_recipient_maps: system user {} (uid {})",
                                        u.name, u.uid
                                    ),
                                    source: Some("/etc/passwd".into()),
                                });
                                return Verdict::Accept;
                            }
                        }
                        RecipientMap::Table(t) => {
                            for key in [
                                addr.key(),
                                format!("{user}@{}", addr.domain).to_lowercase(),
                                addr.local.to_lowercase(),
                                local.clone(),
                                format!("@{}", addr.domain),
                            ] {
                                let found = match t.try_lookup(&key) {
                                    Ok(f) => f,
                                    Err(e) => return retry(e),
                                };
                                if let Some(hit) = found {
                                    steps.push(Step {
                                        depth: 0,
                                        text: format!(
                                            "local_recipient_maps: {} key \"{key}\" found",
                                            hit.table
                                        ),
                                        source: hit.file.map(|f| f.display().to_string()),
                                    });
                                    return Verdict::Accept;
                                }
                            }
                        }
                    }
                }
                steps.push(Step {
                    depth: 0,
                    text: format!("local_recipient_maps: \"{local}\" not found"),
                    source: Some(self.origins.local_recipient_maps.clone()),
                });
                reject(
                    "local recipient table",
                    format!(
                        "add \"{user}  some-user@{}\" to a file in virtual_alias_maps ({}) and run yubin postmap on it, or create the user/alias that local_recipient_maps ({}) searches",
                        self.myorigin, self.origins.virtual_alias_maps, self.origins.local_recipient_maps
                    ),
                )
            }
            Class::VirtualAlias => reject(
                "virtual alias table",
                format!(
                    "add {} to virtual_alias_maps ({})",
                    addr.internal(),
                    self.origins.virtual_alias_maps
                ),
            ),
            Class::VirtualMailbox => {
                match self.search(
                    &self.virtual_mailbox_maps,
                    addr,
                    false,
                    steps,
                    0,
                    "virtual_mailbox_maps",
                ) {
                    Ok(Some(_)) => return Verdict::Accept,
                    Ok(None) => {}
                    Err(e) => return retry(e),
                }
                reject(
                    "virtual mailbox table",
                    format!(
                        "add \"{}  {}/{}/\" to virtual_mailbox_maps, or alias it in virtual_alias_maps ({}), then run yubin postmap",
                        addr.internal(), addr.domain, user, self.origins.virtual_alias_maps
                    ),
                )
            }
            Class::Relay => {
                if self.relay_recipient_maps.is_empty() {
                    return Verdict::Accept;
                }
                match self.search(
                    &self.relay_recipient_maps,
                    addr,
                    false,
                    steps,
                    0,
                    "relay_recipient_maps",
                ) {
                    Ok(Some(_)) => return Verdict::Accept,
                    Ok(None) => {}
                    Err(e) => return retry(e),
                }
                reject(
                    "relay recipient table",
                    format!("add {} to relay_recipient_maps", addr.internal()),
                )
            }
            Class::Default => Verdict::Accept,
        }
    }

    /// Expands an accepted, canonical address into its deliveries.
    pub fn expand(&self, addr: &Address) -> (Vec<Delivery>, Vec<Step>) {
        let mut steps = Vec::new();
        let d = self.expand_into(&self.canonical(addr), &mut steps);
        (d, steps)
    }

    fn expand_into(&self, addr: &Address, steps: &mut Vec<Step>) -> Vec<Delivery> {
        let mut out = Vec::new();
        let mut work = 0usize;
        self.expand_virtual(addr, 0, &mut work, &mut out, steps);
        out
    }

    /// virtual(5) recursion as cleanup(8)'s `cleanup_map1n_internal` does it:
    /// each result is looked up again, except an address that maps to itself,
    /// which is delivered as is. A loop (a -> b -> a) runs into
    /// virtual_alias_recursion_limit and defers the message, as in Postfix;
    /// `work` counts every address produced, against
    /// virtual_alias_expansion_limit, so a fan-out cannot explode.
    fn expand_virtual(
        &self,
        start: &Address,
        start_depth: usize,
        work: &mut usize,
        out: &mut Vec<Delivery>,
        steps: &mut Vec<Step>,
    ) {
        // Depth-first, iteratively: a loop can be 1000 levels deep.
        // (address, depth, deliver as is because it mapped to itself)
        let mut stack: Vec<(Address, usize, bool)> = vec![(start.clone(), start_depth, false)];
        while let Some((addr, depth, as_is)) = stack.pop() {
            if as_is {
                self.final_delivery(&addr, depth, out, steps);
                continue;
            }
            if depth > self.recursion_limit + start_depth {
                out.push(error_delivery(
                    &addr,
                    "4.3.0 unreasonable virtual_alias_maps map nesting",
                    true,
                ));
                return;
            }
            *work += 1;
            if *work > self.expansion_limit {
                out.push(error_delivery(
                    &addr,
                    "4.3.0 unreasonable virtual_alias_maps map expansion size",
                    true,
                ));
                return;
            }
            let user_form = self.user_form_applies(&addr.domain);
            let (hit, key, ext) = match self.search(
                &self.virtual_alias_maps,
                &addr,
                user_form,
                steps,
                depth,
                "virtual_alias_maps",
            ) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    self.final_delivery(&addr, depth, out, steps);
                    continue;
                }
                Err(e) => {
                    // cleanup(8) defers the message when virtual_alias_maps
                    // cannot answer; it stays queued and is retried.
                    out.push(retry_delivery(&addr, &e));
                    continue;
                }
            };
            let mut children = Vec::new();
            for t in split_targets(&hit.value) {
                let parsed = match parse_address(t.trim_matches(['<', '>']), true) {
                    Ok(a) => a,
                    Err(e) => {
                        steps.push(Step {
                            depth: depth + 1,
                            text: format!("bad address \"{t}\" in {}: {e}", hit.table),
                            source: None,
                        });
                        out.push(error_delivery(
                            &addr,
                            &format!("5.3.5 bad address \"{t}\" in virtual alias table"),
                            false,
                        ));
                        continue;
                    }
                };
                let mut next = self.canonical(&parsed);
                if let Some(ext) = &ext {
                    // propagate_unmatched_extensions includes "virtual".
                    next.local.push_str(ext);
                }
                steps.push(Step {
                    depth: depth + 1,
                    text: format!("-> {}", next.internal()),
                    source: None,
                });
                // "An address that maps to itself" is delivered, not looked up again.
                let as_is = next.key() == addr.key() || next.key() == key;
                children.push((next, depth + 1, as_is));
            }
            stack.extend(children.into_iter().rev());
        }
    }

    /// Delivery for an address that virtual_alias_maps does not rewrite.
    fn final_delivery(
        &self,
        addr: &Address,
        depth: usize,
        out: &mut Vec<Delivery>,
        steps: &mut Vec<Step>,
    ) {
        if out.iter().any(|d| d.recipient == addr.internal()) {
            return;
        }
        let (class, why) = match self.try_class_of(&addr.domain) {
            Ok(c) => c,
            Err(e) => {
                out.push(retry_delivery(addr, &e));
                return;
            }
        };
        if depth > 0 {
            steps.push(Step {
                depth,
                text: format!("{}: {} class: {why}", addr.internal(), class.name()),
                source: None,
            });
        }
        match class {
            // virtual_transport = lmtp:...: the mailboxes are another
            // server's (Dovecot's); it decides who exists.
            Class::VirtualMailbox => match &self.virtual_transport {
                Some(agent) => out.push(Delivery {
                    recipient: addr.internal(),
                    agent: agent.clone(),
                }),
                None => out.push(self.virtual_mailbox(addr, depth, steps)),
            },
            Class::Local => self.local_delivery(addr, depth, out, steps, 0),
            Class::VirtualAlias => out.push(error_delivery(
                addr,
                "5.1.1 User unknown in virtual alias table",
                false,
            )),
            Class::Relay | Class::Default => out.push(Delivery {
                recipient: addr.internal(),
                agent: Agent::Smtp {
                    nexthop: format!("[{}]", addr.domain),
                },
            }),
        }
    }

    /// virtual(8): the mailbox from virtual_mailbox_maps under
    /// virtual_mailbox_base, owned by virtual_uid_maps/virtual_gid_maps.
    fn virtual_mailbox(&self, addr: &Address, depth: usize, steps: &mut Vec<Step>) -> Delivery {
        let hit = match self.search(
            &self.virtual_mailbox_maps,
            addr,
            false,
            steps,
            depth + 1,
            "virtual_mailbox_maps",
        ) {
            Ok(Some((hit, _, _))) => hit,
            Ok(None) => {
                return error_delivery(
                    addr,
                    &format!("5.1.1 unknown user: \"{}\"", addr.key()),
                    false,
                )
            }
            Err(e) => return retry_delivery(addr, &e),
        };
        let path = format!(
            "{}/{}",
            self.virtual_mailbox_base.trim_end_matches('/'),
            hit.value.trim_start_matches('/')
        );
        let id = |maps: &Maps, what: &str, steps: &mut Vec<Step>| -> Result<u32, String> {
            let (hit, _, _) = self
                .search(maps, addr, false, steps, depth + 1, what)
                .map_err(|e| format!("4.3.0 {e}"))?
                .ok_or_else(|| format!("4.3.0 {what}: no match for {}", addr.key()))?;
            hit.value
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("4.3.0 {what}: bad number \"{}\"", hit.value))
        };
        let uid = id(&self.virtual_uid_maps, "virtual_uid_maps", steps);
        let gid = id(&self.virtual_gid_maps, "virtual_gid_maps", steps);
        let (uid, gid) = match (uid, gid) {
            (Ok(u), Ok(g)) => (u, g),
            (Err(e), _) | (_, Err(e)) => return error_delivery(addr, &e, true),
        };
        if (uid as u64) < self.virtual_minimum_uid {
            return error_delivery(addr, &format!("4.3.0 mail system configuration error: uid {uid} is below virtual_minimum_uid {}", self.virtual_minimum_uid), true);
        }
        mailbox_delivery(addr, MailboxKind::Virtual, path, uid, gid)
    }

    /// local(8): aliases(5) first, then the user's mailbox.
    fn local_delivery(
        &self,
        addr: &Address,
        depth: usize,
        out: &mut Vec<Delivery>,
        steps: &mut Vec<Step>,
        alias_depth: usize,
    ) {
        let (user, _) = addr.split_extension(&self.delimiter);
        let local = user.to_lowercase();
        if alias_depth < 20 {
            let found = match self.alias_maps.try_lookup(&local) {
                Ok(f) => f,
                Err(e) => {
                    out.push(retry_delivery(addr, &e));
                    return;
                }
            };
            if let Some(hit) = found {
                let line = hit.line.or_else(|| {
                    self.alias_maps
                        .tables
                        .iter()
                        .find_map(|t| t.locate_line(&local))
                });
                steps.push(Step {
                    depth: depth + 1,
                    text: format!("alias_maps: {} key \"{local}\" -> {}", hit.table, hit.value),
                    source: hit.file.as_ref().map(|f| match line {
                        Some(l) => format!("{}:{l}", f.display()),
                        None => f.display().to_string(),
                    }),
                });
                for t in split_targets(&hit.value) {
                    self.alias_target(addr, &local, &t, depth + 1, out, steps, alias_depth);
                }
                return;
            }
        }
        // local(8) hands mailbox delivery to mailbox_transport before it
        // looks the user up (local/mailbox.c deliver_mailbox).
        if let Some(agent) = &self.mailbox_transport {
            out.push(Delivery {
                recipient: addr.internal(),
                agent: agent.clone(),
            });
            return;
        }
        let Some(u) = passwd::lookup(&local) else {
            steps.push(Step {
                depth: depth + 1,
                text: format!("no alias and no system user \"{local}\""),
                source: None,
            });
            out.push(error_delivery(
                addr,
                &format!("5.1.1 unknown user: \"{local}\""),
                false,
            ));
            return;
        };
        let mailbox = if self.home_mailbox.is_empty() {
            format!(
                "{}/{}",
                self.mail_spool_directory.trim_end_matches('/'),
                u.name
            )
        } else {
            format!("{}/{}", u.home.trim_end_matches('/'), self.home_mailbox)
        };
        out.push(mailbox_delivery(
            addr,
            MailboxKind::Local,
            mailbox,
            u.uid,
            u.gid,
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn alias_target(
        &self,
        addr: &Address,
        local: &str,
        t: &str,
        depth: usize,
        out: &mut Vec<Delivery>,
        steps: &mut Vec<Step>,
        alias_depth: usize,
    ) {
        let special = |agent: Agent| Delivery {
            recipient: addr.internal(),
            agent,
        };
        if t.starts_with('|') || t.starts_with("\"|") {
            let command = t.trim_matches('"').trim_start_matches('|');
            out.push(special(Agent::Command(command.to_string())));
        } else if t.starts_with('/') {
            out.push(special(Agent::File(t.to_string())));
        } else if let Some(path) = t.strip_prefix(":include:") {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    steps.push(Step {
                        depth,
                        text: format!(":include:{path}"),
                        source: None,
                    });
                    for line in text
                        .lines()
                        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                    {
                        for inner in split_targets(line) {
                            self.alias_target(
                                addr,
                                local,
                                &inner,
                                depth + 1,
                                out,
                                steps,
                                alias_depth + 1,
                            );
                        }
                    }
                }
                Err(e) => out.push(error_delivery(
                    addr,
                    &format!("4.3.0 cannot open include file {path}: {e}"),
                    true,
                )),
            }
        } else {
            let Ok(a) = parse_address(t, true) else {
                out.push(error_delivery(
                    addr,
                    &format!("5.3.5 bad address \"{t}\" in alias_maps"),
                    false,
                ));
                return;
            };
            let next = self.canonical(&a);
            steps.push(Step {
                depth,
                text: format!("-> {}", next.internal()),
                source: None,
            });
            let class = match self.try_class_of(&next.domain) {
                Ok((c, _)) => c,
                Err(e) => {
                    out.push(retry_delivery(&next, &e));
                    return;
                }
            };
            let (next_user, _) = next.split_extension(&self.delimiter);
            if class == Class::Local && next_user.to_lowercase() == local {
                // An alias that names its own user delivers to the mailbox.
                self.mailbox_only(&next, depth, out, steps);
            } else if class == Class::Local {
                self.local_delivery(&next, depth, out, steps, alias_depth + 1);
            } else {
                self.expand_virtual(&next, depth, &mut 0, out, steps);
            }
        }
    }

    fn mailbox_only(
        &self,
        addr: &Address,
        depth: usize,
        out: &mut Vec<Delivery>,
        steps: &mut Vec<Step>,
    ) {
        self.local_delivery(addr, depth, out, steps, usize::MAX / 2);
    }
}

/// smtpd's answer when the address class could not be found (a domain
/// table did not answer): 451 4.3.0, the client retries.
fn class_retry(given: &Address, e: &TableError) -> Verdict {
    Verdict::Reject {
        code: 451,
        enhanced: "4.3.0".into(),
        text: format!("<{}>: Temporary lookup failure", given.internal()),
        hint: format!(
            "{e}: make the database reachable; nothing was rejected, the client will retry"
        ),
    }
}

/// A table that could not answer: the copy is deferred (Postfix's
/// "4.3.0 ... lookup failure"), never bounced.
fn retry_delivery(addr: &Address, e: &TableError) -> Delivery {
    error_delivery(addr, &format!("4.3.0 {e}"), true)
}

fn error_delivery(addr: &Address, reason: &str, temporary: bool) -> Delivery {
    Delivery {
        recipient: addr.internal(),
        agent: Agent::Error {
            reason: reason.to_string(),
            temporary,
        },
    }
}

/// A Maildir when the path ends in `/` (virtual(8), local(8)), else mbox.
fn mailbox_delivery(
    addr: &Address,
    kind: MailboxKind,
    path: String,
    uid: u32,
    gid: u32,
) -> Delivery {
    let mailbox = Mailbox {
        kind,
        path,
        uid,
        gid,
    };
    Delivery {
        recipient: addr.internal(),
        agent: if mailbox.path.ends_with('/') {
            Agent::Maildir(mailbox)
        } else {
            Agent::Mbox(mailbox)
        },
    }
}

/// Splits an alias value into targets on commas and white space, keeping
/// quoted strings (`"|command args"`) whole.
fn split_targets(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if !quoted && (c == ',' || c.is_whitespace()) => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The addresses `$inet_interfaces` and `$proxy_interfaces` stand for.
fn interface_addresses(cfg: &Config) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for item in cfg
        .list("inet_interfaces")
        .into_iter()
        .chain(cfg.list("proxy_interfaces"))
    {
        match item.as_str() {
            "all" => out.extend(all_interface_addresses()),
            "loopback-only" | "localhost" => out.extend(
                ["127.0.0.1".parse::<IpAddr>().ok(), "::1".parse().ok()]
                    .into_iter()
                    .flatten(),
            ),
            other => {
                if let Ok(ip) = other.trim_matches(['[', ']']).parse() {
                    out.push(ip);
                }
            }
        }
    }
    out
}

fn all_interface_addresses() -> Vec<IpAddr> {
    let out = yubin_sys::interface_addresses();
    if out.is_empty() {
        return vec!["127.0.0.1".parse().expect("literal")];
    }
    out
}
