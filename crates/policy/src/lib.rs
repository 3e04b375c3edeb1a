//! smtpd's access policy: the `smtpd_*_restrictions` lists (client, HELO,
//! sender, relay, recipient) evaluated when the SMTP session asks, with the
//! lookups they need (address resolution, access(5) tables, DNS lists,
//! policy servers). It answers with a verdict; it must not speak SMTP to the
//! client or touch the client's socket.

pub mod access;
pub mod config;
pub mod restrict;
pub mod service;
pub mod table;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use yubin_addr::{Address, Class, Resolver, Verdict};
use yubin_dns::{Dns, DomainStatus, Lookup};
use yubin_smtp::{ClientInfo, MailQuery, PolicyVerdict, RecipientQuery, Reply};
use yubin_table::{Maps, TableError};

use access::{dsn_fix, dsn_split, AccessAction, ReplyClass};
pub use restrict::{is_fqdn_address, Loader, Restriction, RestrictionError};
use restrict::{Access, DnsList};

/// The lists in Postfix's order. With smtpd_delay_reject = yes (the
/// default) all of them are evaluated at RCPT TO.
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    pub client: Vec<Restriction>,
    pub helo: Vec<Restriction>,
    pub sender: Vec<Restriction>,
    pub relay: Vec<Restriction>,
    pub recipient: Vec<Restriction>,
    /// smtpd_relay_before_recipient_restrictions (Postfix 3.6): relay
    /// restrictions first; `no` (compatibility_level < 3.6) evaluates
    /// smtpd_recipient_restrictions before smtpd_relay_restrictions.
    pub relay_before_recipient: bool,
}

impl Restrictions {
    /// Builds the lists and refuses an accidental open relay as Postfix's
    /// smtpd_check.c does.
    pub fn new(
        sender: Vec<Restriction>,
        relay: Vec<Restriction>,
        recipient: Vec<Restriction>,
    ) -> Result<Restrictions, RestrictionError> {
        let guards = |l: &[Restriction]| {
            l.iter().any(|r| {
                matches!(
                    r,
                    Restriction::RejectUnauthDestination
                        | Restriction::DeferUnauthDestination
                        | Restriction::Reject
                        | Restriction::Defer
                        | Restriction::DeferIfPermit
                )
            })
        };
        // yubin-msgauth's names judge the message: only the end of DATA
        // has one (docs/msgauth.md).
        if let Some(r) = [&sender, &relay, &recipient]
            .iter()
            .flat_map(|l| l.iter())
            .find(|r| r.is_end_of_data_only())
        {
            return Err(RestrictionError(format!(
                "{r:?} judges the message: use it in smtpd_end_of_data_restrictions only"
            )));
        }
        if !guards(&relay) && !guards(&recipient) {
            // Postfix 3.7's wording (smtpd_check.c), with yubin's list.
            return Err(RestrictionError("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject_unauth_destination, defer_unauth_destination, reject or defer".into()));
        }
        Ok(Restrictions {
            client: Vec::new(),
            helo: Vec::new(),
            sender,
            relay,
            recipient,
            relay_before_recipient: true,
        })
    }

    fn all(&self) -> impl Iterator<Item = &Restriction> {
        [
            &self.client,
            &self.helo,
            &self.sender,
            &self.relay,
            &self.recipient,
        ]
        .into_iter()
        .flatten()
    }

    /// Whether any list needs DNS (lists, names, or the client's name).
    pub fn uses_dns(&self) -> bool {
        self.all().any(|r| r.uses_dns() || r.uses_client_name())
    }

    /// Whether any list needs the client's DNS names.
    pub fn uses_client_name(&self) -> bool {
        self.all().any(Restriction::uses_client_name)
    }
}

/// The reply codes and texts the restrictions use (postconf(5)).
#[derive(Clone)]
pub struct Settings {
    pub delay_reject: bool,
    pub reject_code: u16,
    pub defer_code: u16,
    pub access_map_reject_code: u16,
    pub access_map_defer_code: u16,
    pub unknown_client_reject_code: u16,
    pub unknown_hostname_reject_code: u16,
    pub unknown_address_reject_code: u16,
    pub invalid_hostname_reject_code: u16,
    pub non_fqdn_reject_code: u16,
    pub maps_rbl_reject_code: u16,
    /// default_rbl_reply, unexpanded.
    pub default_rbl_reply: String,
    pub rbl_reply_maps: Arc<Maps>,
    /// smtpd_null_access_lookup_key.
    pub null_access_key: String,
    /// `smtpd_access_maps` in parent_domain_matches_subdomains: the pattern
    /// `example.com` also matches subdomains (else `.example.com` does).
    pub parent_domain_matches: bool,
    /// recipient_delimiter (each character is a delimiter).
    pub recipient_delimiter: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            delay_reject: true,
            reject_code: 554,
            defer_code: 450,
            access_map_reject_code: 554,
            access_map_defer_code: 450,
            unknown_client_reject_code: 450,
            unknown_hostname_reject_code: 450,
            unknown_address_reject_code: 450,
            invalid_hostname_reject_code: 501,
            non_fqdn_reject_code: 504,
            maps_rbl_reject_code: 554,
            default_rbl_reply: "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}".into(),
            rbl_reply_maps: Arc::new(Maps::default()),
            null_access_key: "<>".into(),
            parent_domain_matches: true,
            recipient_delimiter: String::new(),
        }
    }
}

/// What DNS says about a client's name (Postfix's name_status and
/// reverse_name_status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameStatus {
    Ok,
    /// No such name, or the forward lookup does not give the address back.
    Perm,
    /// DNS failed for now.
    Temp,
}

/// The client's host names (Postfix's smtpd_peer.c): `reverse_name` is the
/// PTR name; `name` is it only when it resolves back to the address.
/// `unknown` when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientNames {
    pub name: String,
    pub name_status: NameStatus,
    pub reverse_name: String,
    pub reverse_status: NameStatus,
}

impl ClientNames {
    /// The names as the session already knows them (no DNS).
    pub fn from_info(info: &ClientInfo) -> ClientNames {
        let status = if info.name == "unknown" {
            NameStatus::Perm
        } else {
            NameStatus::Ok
        };
        ClientNames {
            name: info.name.clone(),
            name_status: status,
            reverse_name: info.name.clone(),
            reverse_status: status,
        }
    }
}

/// The connected client as the restrictions see it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub info: ClientInfo,
    pub names: ClientNames,
    /// `DEFER_IF_PERMIT` results of the lists evaluated before RCPT
    /// (smtpd_delay_reject = no), applied when a recipient would be
    /// accepted.
    pub defer_if_permit: Option<Reply>,
    /// The SASL mechanism after AUTH, for policy servers.
    pub sasl_method: Option<String>,
    /// Counts MAIL commands: policy servers tell transactions apart by the
    /// `instance` attribute (postfix-policyd-spf-python checks once per
    /// instance).
    pub transaction: u64,
}

impl Peer {
    pub fn new(info: ClientInfo, names: ClientNames) -> Peer {
        Peer {
            info,
            names,
            defer_if_permit: None,
            sasl_method: None,
            transaction: 0,
        }
    }
}

/// The lookups the restrictions need.
pub struct Policy {
    pub resolver: Arc<Resolver>,
    pub sender_login_maps: Arc<Maps>,
    pub dns: Option<Arc<Dns>>,
    pub restrictions: Restrictions,
    pub settings: Arc<Settings>,
}

/// A restriction's result (Postfix's SMTPD_CHECK_DUNNO/OK/REJECT).
enum Status {
    Dunno,
    Ok,
    Reject(Reply),
}

/// Everything known when a list is evaluated.
struct Ctx<'a> {
    peer: &'a Peer,
    helo: Option<&'a str>,
    /// `None`: no MAIL yet; `Some(None)`: the null sender.
    sender: Option<&'a Option<Address>>,
    recipient: Option<&'a Address>,
    sasl_user: Option<&'a str>,
    /// CONNECT, EHLO, MAIL, RCPT, VRFY: for policy servers.
    stage: &'static str,
    /// The MAIL FROM address as written.
    sender_given: &'a str,
    /// For policy servers: protocol name, queue id, recipients so far, SIZE.
    protocol: &'a str,
    queue_id: Option<&'a str>,
    recipient_count: usize,
    size: Option<u64>,
}

impl Ctx<'_> {
    /// The sender as the client wrote it, for replies.
    fn sender_name(&self, a: &Address) -> String {
        if self.sender_given.eq_ignore_ascii_case(&a.internal()) {
            self.sender_given.to_string()
        } else {
            a.internal()
        }
    }

    fn sender_text(&self) -> Option<String> {
        self.sender
            .map(|s| s.as_ref().map(|a| a.internal()).unwrap_or_default())
    }
}

/// The evaluation's memory (Postfix keeps it in SMTPD_STATE).
#[derive(Default)]
struct Eval {
    defer_if_permit: Option<Reply>,
    defer_if_reject: Option<Reply>,
    verdict: PolicyVerdict,
    discard: bool,
    /// The transaction is already held: HOLD is not repeated.
    held: bool,
}

type Fut<'a> = Pin<Box<dyn Future<Output = Status> + Send + 'a>>;

fn ipv6_nibbles(ip: std::net::Ipv6Addr) -> String {
    let mut out = Vec::with_capacity(32);
    for b in ip.octets().iter().rev() {
        out.push(format!("{:x}", b & 0xf));
        out.push(format!("{:x}", b >> 4));
    }
    out.join(".")
}

/// smtpd_expansion_filter's default: printable ASCII and blanks pass,
/// anything else becomes `_`, so a DNS TXT text cannot inject into a reply.
fn filter_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c == '\t' || c.is_ascii_graphic() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// mac_expand for reply templates: `$name`, `${name}`, `${name?text}`,
/// `${name:text}`. Values are inserted as they are (never expanded again).
fn expand_template(t: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = t[i..].find('$').map(|p| i + p).unwrap_or(b.len());
            out.push_str(&t[i..next]);
            i = next;
            continue;
        }
        i += 1;
        match b.get(i) {
            Some(b'$') => {
                out.push('$');
                i += 1;
            }
            Some(b'{') | Some(b'(') => {
                let close = if b[i] == b'{' { '}' } else { ')' };
                let open = b[i] as char;
                // Find the matching close, allowing nesting.
                let mut depth = 0;
                let mut end = None;
                for (j, c) in t[i..].char_indices() {
                    if c == open {
                        depth += 1;
                    } else if c == close {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + j);
                            break;
                        }
                    }
                }
                let end = end.ok_or_else(|| format!("unterminated ${open} in \"{t}\""))?;
                let inner = &t[i + 1..end];
                i = end + 1;
                let name_end = inner.find(['?', ':']).unwrap_or(inner.len());
                let name = &inner[..name_end];
                let value = lookup(name).ok_or_else(|| format!("unknown name \"{name}\""))?;
                match inner[name_end..].chars().next() {
                    None => out.push_str(&value),
                    Some('?') => {
                        if !value.is_empty() {
                            out.push_str(&expand_template(&inner[name_end + 1..], lookup)?)
                        }
                    }
                    _ => {
                        if value.is_empty() {
                            out.push_str(&expand_template(&inner[name_end + 1..], lookup)?)
                        }
                    }
                }
            }
            _ => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = &t[start..i];
                if name.is_empty() {
                    out.push('$');
                    continue;
                }
                out.push_str(&lookup(name).ok_or_else(|| format!("unknown name \"{name}\""))?);
            }
        }
    }
    Ok(out)
}

impl Policy {
    /// The same restrictions for a local submission (`sendmail -bs`): no
    /// smtpd_sender_login_maps, no DNS.
    pub fn local(&self) -> Policy {
        Policy {
            resolver: self.resolver.clone(),
            sender_login_maps: Arc::new(Maps::default()),
            dns: None,
            restrictions: self.restrictions.clone(),
            settings: self.settings.clone(),
        }
    }

    /// smtpd_sender_login_maps: Postfix's search order for the sender is
    /// `user@domain`, then `@domain`; the value lists the owning logins,
    /// separated by commas or spaces. `None` when the map does not list it.
    /// A table that cannot answer now is an error (the caller defers).
    pub fn sender_owners(&self, sender: &Address) -> Result<Option<Vec<String>>, TableError> {
        if self.sender_login_maps.is_empty() {
            return Ok(None);
        }
        let maps = &self.sender_login_maps;
        let hit = match maps.try_lookup(&sender.key())? {
            Some(h) => h,
            None => match maps.try_lookup(&format!("@{}", sender.domain))? {
                Some(h) => h,
                None => return Ok(None),
            },
        };
        Ok(Some(
            hit.value
                .split([',', ' ', '\t'])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ))
    }

    /// `sender_owners` off the async worker when the map is remote.
    async fn sender_owners_async(
        &self,
        sender: &Address,
    ) -> Result<Option<Vec<String>>, TableError> {
        if !self.sender_login_maps.is_remote() {
            return self.sender_owners(sender);
        }
        let maps = self.sender_login_maps.clone();
        let me = Policy {
            resolver: self.resolver.clone(),
            sender_login_maps: maps,
            dns: None,
            restrictions: Restrictions::default(),
            settings: self.settings.clone(),
        };
        let sender = sender.clone();
        tokio::task::spawn_blocking(move || me.sender_owners(&sender))
            .await
            .unwrap_or_else(|e| {
                Err(TableError::Temporary {
                    table: "smtpd_sender_login_maps".into(),
                    msg: e.to_string(),
                })
            })
    }

    /// The resolver's verdict; on a blocking thread when a table is remote
    /// (a pgsql: lookup must not stall the async workers).
    async fn check(&self, addr: &Address) -> (Class, Verdict) {
        if !self.resolver.is_remote() {
            return self.resolver.check(addr);
        }
        let r = self.resolver.clone();
        let a = addr.clone();
        tokio::task::spawn_blocking(move || r.check(&a))
            .await
            .unwrap_or_else(|e| {
                (
                    Class::Default,
                    Verdict::Reject {
                        code: 451,
                        enhanced: "4.3.0".into(),
                        text: format!("<{}>: Temporary lookup failure", addr.internal()),
                        hint: e.to_string(),
                    },
                )
            })
    }

    /// The client's names, looked up in DNS when a restriction needs them
    /// (smtpd_peer.c: PTR, then the name's addresses must include the
    /// client's). Loopback clients are `localhost`, as /etc/hosts says.
    pub async fn client_names(&self, info: &ClientInfo) -> ClientNames {
        let ip = info.addr;
        let dns = match &self.dns {
            Some(d) if self.restrictions.uses_client_name() && !ip.is_loopback() => d,
            _ => return ClientNames::from_info(info),
        };
        let unknown = |reverse: &str, rs, ns| ClientNames {
            name: "unknown".into(),
            name_status: ns,
            reverse_name: reverse.to_string(),
            reverse_status: rs,
        };
        let reverse = match dns.ptr(ip).await {
            Lookup::Found(names) => names[0].to_ascii_lowercase(),
            Lookup::NotFound => return unknown("unknown", NameStatus::Perm, NameStatus::Perm),
            Lookup::TempFail(_) => return unknown("unknown", NameStatus::Temp, NameStatus::Temp),
        };
        match dns.addresses(&reverse).await {
            Lookup::Found(addrs) if addrs.iter().any(|a| a.to_canonical() == ip) => ClientNames {
                name: reverse.clone(),
                name_status: NameStatus::Ok,
                reverse_name: reverse,
                reverse_status: NameStatus::Ok,
            },
            Lookup::TempFail(_) => unknown(&reverse, NameStatus::Ok, NameStatus::Temp),
            _ => unknown(&reverse, NameStatus::Ok, NameStatus::Perm),
        }
    }

    /// reject_unknown_sender_domain / reject_unknown_helo_hostname: a name
    /// DNS does not know is refused with the configured code; a temporary
    /// DNS failure becomes a 450 only if the client is later permitted
    /// (Postfix's defer_if_permit), with the same text. `codes`: (reject
    /// code, its enhanced code, the temporary failure's enhanced code).
    fn unknown_name(
        &self,
        ev: &mut Eval,
        status: DomainStatus,
        (code, dsn, temp_dsn): (u16, &str, &str),
        text: String,
    ) -> Status {
        match status {
            DomainStatus::Exists => Status::Dunno,
            DomainStatus::NotFound => self.reject(ev, code, dsn, text),
            DomainStatus::TempFail(_) => {
                ev.defer_if_permit
                    .get_or_insert(Reply::new(450, temp_dsn, text));
                Status::Dunno
            }
        }
    }

    /// smtpd_check_reject: the reply, its code class forced onto the status
    /// code, or an earlier DEFER_IF_REJECT in place of a 5xx.
    fn reject(&self, ev: &mut Eval, code: u16, dsn: &str, text: String) -> Status {
        let (code, dsn, text) = if !(400..=599).contains(&code) {
            ev.verdict.events.push((
                "warning".into(),
                format!("SMTP reply code configuration error: {code} {dsn} {text}"),
            ));
            (450, "4.7.1".to_string(), "Service unavailable".to_string())
        } else {
            let mut d = dsn.to_string();
            d.replace_range(0..1, &code.to_string()[..1]);
            (code, d, text)
        };
        if code >= 500 {
            if let Some(r) = ev.defer_if_reject.take() {
                return Status::Reject(r);
            }
        }
        let text: String = filter_text(&text).chars().take(500).collect();
        Status::Reject(Reply::new(code, &dsn, text))
    }

    fn config_error(&self, ev: &mut Eval, warning: String) -> Status {
        ev.verdict.events.push(("warning".into(), warning));
        Status::Reject(Reply::new(451, "4.3.5", "Server configuration error"))
    }

    /// check_table_result: what a table value (or a policy server's
    /// action) means.
    #[allow(clippy::too_many_arguments)]
    fn table_result<'a>(
        &'a self,
        ev: &'a mut Eval,
        ctx: &'a Ctx<'a>,
        origin: String,
        action: Result<AccessAction, access::ActionError>,
        rn: &'a str,
        class: ReplyClass,
        depth: u32,
    ) -> Fut<'a> {
        Box::pin(async move {
            let action = match action {
                Ok(a) => a,
                Err(e) => return self.config_error(ev, format!("access table {origin}: {e}")),
            };
            let cname = class.name();
            let or = |t: &str, d: &str| {
                if t.is_empty() {
                    d.to_string()
                } else {
                    t.to_string()
                }
            };
            // HOLD, DISCARD and PREPEND act on a transaction: there is none
            // at CONNECT or HELO (Postfix's not_in_client_helo).
            let no_transaction = |ev: &mut Eval, what: &str| {
                if ctx.sender.is_none() {
                    ev.verdict.events.push(("warning".into(), format!(
                        "access table {origin}: with smtpd_delay_reject=no, action {what} is always skipped in client or helo restrictions"
                    )));
                    true
                } else {
                    false
                }
            };
            match action {
                AccessAction::Ok => Status::Ok,
                AccessAction::Dunno => Status::Dunno,
                AccessAction::Reject(t) => {
                    let (dsn, t) = dsn_split("5.7.1", &t);
                    let text = format!("<{rn}>: {cname} rejected: {}", or(t, "Access denied"));
                    self.reject(
                        ev,
                        self.settings.access_map_reject_code,
                        &dsn_fix(&dsn, class),
                        text,
                    )
                }
                AccessAction::Defer(t) => {
                    let (dsn, t) = dsn_split("4.7.1", &t);
                    let text = format!("<{rn}>: {cname} rejected: {}", or(t, "Access denied"));
                    self.reject(
                        ev,
                        self.settings.access_map_defer_code,
                        &dsn_fix(&dsn, class),
                        text,
                    )
                }
                AccessAction::Code { code, text } => {
                    let default = if code >= 500 { "5.7.1" } else { "4.7.1" };
                    let (dsn, t) = dsn_split(default, &text);
                    let text = format!("<{rn}>: {cname} rejected: {}", or(t, "Access denied"));
                    self.reject(ev, code, &dsn_fix(&dsn, class), text)
                }
                AccessAction::DeferIfPermit(t) => {
                    let (dsn, t) = dsn_split("4.7.1", &t);
                    let r = Reply::new(
                        self.settings.access_map_defer_code,
                        &dsn_fix(&dsn, class),
                        format!("<{rn}>: {cname} rejected: {}", or(t, "Service unavailable")),
                    );
                    ev.defer_if_permit.get_or_insert(r);
                    Status::Dunno
                }
                AccessAction::DeferIfReject(t) => {
                    let (dsn, t) = dsn_split("4.7.1", &t);
                    let r = Reply::new(
                        self.settings.access_map_defer_code,
                        &dsn_fix(&dsn, class),
                        format!("<{rn}>: {cname} rejected: {}", or(t, "Service unavailable")),
                    );
                    ev.defer_if_reject.get_or_insert(r);
                    Status::Dunno
                }
                AccessAction::Prepend(h) => {
                    if !no_transaction(ev, "PREPEND") {
                        ev.verdict.prepend.push(h);
                    }
                    Status::Dunno
                }
                AccessAction::Hold(_) if ev.held => Status::Dunno,
                AccessAction::Hold(t) => {
                    if !no_transaction(ev, "HOLD") {
                        ev.held = true;
                        ev.verdict.events.push((
                            "hold".into(),
                            format!("<{rn}>: {cname} {}", or(&t, "triggers HOLD action")),
                        ));
                        ev.verdict.hold = true;
                    }
                    Status::Dunno
                }
                AccessAction::Discard(t) => {
                    if no_transaction(ev, "DISCARD") {
                        return Status::Dunno;
                    }
                    ev.verdict.events.push((
                        "discard".into(),
                        format!("<{rn}>: {cname} {}", or(&t, "triggers DISCARD action")),
                    ));
                    ev.verdict.discard = true;
                    ev.discard = true;
                    Status::Ok
                }
                AccessAction::Warn(t) => {
                    ev.verdict.events.push(("warn".into(), t));
                    Status::Dunno
                }
                AccessAction::Info(t) => {
                    ev.verdict.events.push(("info".into(), t));
                    Status::Dunno
                }
                AccessAction::Restrictions(names) => {
                    if depth > 100 {
                        return self.config_error(
                            ev,
                            format!("access table {origin} entry causes unreasonable recursion"),
                        );
                    }
                    match Restriction::parse_list(&names) {
                        Ok(list) if list.iter().any(Restriction::is_end_of_data_only) => self
                            .config_error(
                                ev,
                                format!("access table {origin}: yubin-msgauth restrictions belong in smtpd_end_of_data_restrictions"),
                            ),
                        Ok(list) => self.generic(ev, ctx, &list, rn, class, depth + 1).await,
                        Err(e) => self.config_error(ev, format!("access table {origin}: {e}")),
                    }
                }
            }
        })
    }
}

/// How the stages call the evaluation: the list, the name a refusal quotes
/// and what it calls it.
struct ListCall<'a> {
    list: &'a [Restriction],
    reply_name: String,
    class: ReplyClass,
}

impl Policy {
    /// generic_checks: the restrictions of one list in order until one
    /// permits or rejects.
    fn generic<'a>(
        &'a self,
        ev: &'a mut Eval,
        ctx: &'a Ctx<'a>,
        list: &'a [Restriction],
        rn: &'a str,
        class: ReplyClass,
        depth: u32,
    ) -> Fut<'a> {
        Box::pin(async move {
            for r in list {
                if ev.discard {
                    break;
                }
                let st = self.one(ev, ctx, r, rn, class, depth).await;
                if !matches!(st, Status::Dunno) {
                    return st;
                }
            }
            Status::Dunno
        })
    }

    async fn one(
        &self,
        ev: &mut Eval,
        ctx: &Ctx<'_>,
        r: &Restriction,
        rn: &str,
        class: ReplyClass,
        depth: u32,
    ) -> Status {
        let s = &self.settings;
        let cname = class.name();
        let client = &ctx.peer.info;
        let names = &ctx.peer.names;
        let label = format!("{}[{}]", names.name, client.addr);
        match r {
            Restriction::Permit => Status::Ok,
            Restriction::Reject => self.reject(
                ev,
                s.reject_code,
                "5.7.1",
                format!("<{rn}>: {cname} rejected: Access denied"),
            ),
            Restriction::Defer => self.reject(
                ev,
                s.defer_code,
                "4.3.2",
                format!("<{rn}>: {cname} rejected: Try again later"),
            ),
            Restriction::DeferIfPermit => {
                let r = Reply::new(
                    450,
                    "4.7.0",
                    format!("<{rn}>: {cname} rejected: defer_if_permit requested"),
                );
                ev.defer_if_permit.get_or_insert(r);
                Status::Dunno
            }
            Restriction::DeferIfReject => {
                let r = Reply::new(
                    450,
                    "4.7.0",
                    format!("<{rn}>: {cname} rejected: defer_if_reject requested"),
                );
                ev.defer_if_reject.get_or_insert(r);
                Status::Dunno
            }
            Restriction::PermitMynetworks => ok_if(client.in_mynetworks),
            Restriction::PermitSaslAuthenticated => ok_if(ctx.sasl_user.is_some()),
            Restriction::RejectSenderLoginMismatch => self.sender_login_mismatch(ctx).await,
            Restriction::RejectUnauthDestination | Restriction::DeferUnauthDestination => {
                let Some(rcpt) = ctx.recipient else {
                    return Status::Dunno;
                };
                if self.check(rcpt).await.0.is_authorized_destination() {
                    return Status::Dunno;
                }
                let (code, dsn) = if *r == Restriction::RejectUnauthDestination {
                    (554, "5.7.1")
                } else {
                    (454, "4.7.1")
                };
                self.reject(
                    ev,
                    code,
                    dsn,
                    format!("<{}>: Relay access denied", rcpt.internal()),
                )
            }
            Restriction::RejectUnlistedRecipient => match ctx.recipient {
                Some(rcpt) => match self.check(rcpt).await.1 {
                    Verdict::Accept => Status::Dunno,
                    Verdict::Reject {
                        code,
                        enhanced,
                        text,
                        ..
                    } => Status::Reject(Reply::new(code, &enhanced, text)),
                },
                None => Status::Dunno,
            },
            Restriction::RejectNonFqdnRecipient => match ctx.recipient {
                Some(a) if a.domain.is_empty() || !is_fqdn_address(&a.domain) => self.reject(
                    ev,
                    s.non_fqdn_reject_code,
                    "4.5.2",
                    format!(
                        "<{}>: Recipient address rejected: need fully-qualified address",
                        a.internal()
                    ),
                ),
                _ => Status::Dunno,
            },
            Restriction::RejectNonFqdnSender => match ctx.sender {
                Some(Some(a)) if a.domain.is_empty() || !is_fqdn_address(&a.domain) => self.reject(
                    ev,
                    s.non_fqdn_reject_code,
                    "4.5.2",
                    format!(
                        "<{}>: Sender address rejected: need fully-qualified address",
                        ctx.sender_name(a)
                    ),
                ),
                _ => Status::Dunno,
            },
            Restriction::RejectUnknownRecipientDomain => match ctx.recipient {
                Some(a) if !self.check(a).await.0.is_final_destination() => {
                    self.unknown_recipient_domain(ev, a).await
                }
                _ => Status::Dunno,
            },
            Restriction::RejectUnknownSenderDomain => match ctx.sender {
                Some(Some(a))
                    if !a.domain.starts_with('[')
                        && !a.domain.is_empty()
                        && !self.check(a).await.0.is_final_destination() =>
                {
                    let what = ctx.sender_name(a);
                    let status = self.dns_status(&a.domain).await;
                    self.unknown_name(
                        ev,
                        status,
                        (s.unknown_address_reject_code, "4.1.8", "4.4.3"),
                        format!("<{what}>: Sender address rejected: Domain not found"),
                    )
                }
                _ => Status::Dunno,
            },
            Restriction::RejectUnknownClientHostname => match names.name_status {
                NameStatus::Ok => Status::Dunno,
                st => self.reject(
                    ev,
                    if st == NameStatus::Perm {
                        s.unknown_client_reject_code
                    } else {
                        450
                    },
                    // RFC 7372's code, as Postfix 3.7 gives it.
                    "4.7.25",
                    format!(
                        "Client host rejected: cannot find your hostname, [{}]",
                        client.addr
                    ),
                ),
            },
            Restriction::RejectUnknownReverseClientHostname => match names.reverse_status {
                NameStatus::Ok => Status::Dunno,
                st => self.reject(
                    ev,
                    if st == NameStatus::Perm {
                        s.unknown_client_reject_code
                    } else {
                        450
                    },
                    "4.7.1",
                    format!(
                        "Client host rejected: cannot find your reverse hostname, [{}]",
                        client.addr
                    ),
                ),
            },
            Restriction::RejectInvalidHeloHostname
            | Restriction::RejectNonFqdnHeloHostname
            | Restriction::RejectUnknownHeloHostname => {
                let Some(helo) = ctx.helo else {
                    return Status::Dunno;
                };
                if helo.starts_with('[') {
                    let inner = helo.trim_start_matches('[').trim_end_matches(']');
                    let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
                    if helo.ends_with(']') && inner.parse::<IpAddr>().is_ok() {
                        return Status::Dunno;
                    }
                    return self.reject(
                        ev,
                        s.invalid_hostname_reject_code,
                        "5.5.2",
                        format!("<{helo}>: Helo command rejected: invalid ip address"),
                    );
                }
                let name = helo
                    .strip_suffix('.')
                    .filter(|n| !n.ends_with('.'))
                    .unwrap_or(helo);
                let valid = valid_hostname(name) || name.parse::<IpAddr>().is_ok();
                match r {
                    Restriction::RejectInvalidHeloHostname if !valid => self.reject(
                        ev,
                        s.invalid_hostname_reject_code,
                        "5.5.2",
                        format!("<{helo}>: Helo command rejected: Invalid name"),
                    ),
                    Restriction::RejectNonFqdnHeloHostname
                        if !valid_hostname(name) || !name.contains('.') =>
                    {
                        self.reject(
                            ev,
                            s.non_fqdn_reject_code,
                            "5.5.2",
                            format!(
                                "<{helo}>: Helo command rejected: need fully-qualified hostname"
                            ),
                        )
                    }
                    Restriction::RejectUnknownHeloHostname => {
                        let status = self.dns_status(name).await;
                        self.unknown_name(
                            ev,
                            status,
                            (s.unknown_hostname_reject_code, "4.7.1", "4.7.1"),
                            format!("<{helo}>: Helo command rejected: Host not found"),
                        )
                    }
                    _ => Status::Dunno,
                }
            }
            Restriction::CheckClientAccess(t) => {
                let found = self
                    .domain_lookup(t, &names.name, true)
                    .or_else(|| addr_lookup(t, &client.addr.to_string()));
                self.found(ev, ctx, found, &label, ReplyClass::Client, depth)
                    .await
            }
            Restriction::CheckHeloAccess(t) => match ctx.helo {
                Some(h) => {
                    let found = self.domain_lookup(t, h, true);
                    self.found(ev, ctx, found, h, ReplyClass::Helo, depth).await
                }
                None => Status::Dunno,
            },
            Restriction::CheckSenderAccess(t) => match ctx.sender {
                Some(Some(a)) => {
                    let found = self.mail_lookup(t, a);
                    let rn = ctx.sender_name(a);
                    self.found(ev, ctx, found, &rn, ReplyClass::Sender, depth)
                        .await
                }
                Some(None) => {
                    let found = t.0.lookup(&s.null_access_key);
                    self.found(ev, ctx, found, "", ReplyClass::Sender, depth)
                        .await
                }
                None => Status::Dunno,
            },
            Restriction::CheckRecipientAccess(t) => match ctx.recipient {
                Some(a) => {
                    let found = self.mail_lookup(t, a);
                    self.found(ev, ctx, found, &a.internal(), ReplyClass::Recipient, depth)
                        .await
                }
                None => Status::Dunno,
            },
            Restriction::RejectRblClient(l) => {
                let what = client.addr.to_string();
                let query = match client.addr {
                    IpAddr::V4(v4) => {
                        let o = v4.octets();
                        format!("{}.{}.{}.{}.{}", o[3], o[2], o[1], o[0], l.domain)
                    }
                    IpAddr::V6(v6) => format!("{}.{}", ipv6_nibbles(v6), l.domain),
                };
                self.rbl(ev, ctx, l, &query, &what, ReplyClass::Client)
                    .await
            }
            Restriction::PermitDnswlClient(l) => {
                let query = match client.addr {
                    IpAddr::V4(v4) => {
                        let o = v4.octets();
                        format!("{}.{}.{}.{}.{}", o[3], o[2], o[1], o[0], l.domain)
                    }
                    IpAddr::V6(v6) => format!("{}.{}", ipv6_nibbles(v6), l.domain),
                };
                match self.rbl_listed(ev, l, &query).await {
                    Some(_) => Status::Ok,
                    None => Status::Dunno,
                }
            }
            Restriction::RejectRhsblClient(l) => {
                if names.name == "unknown" {
                    return Status::Dunno;
                }
                let q = format!("{}.{}", names.name, l.domain);
                self.rbl(ev, ctx, l, &q, &names.name, ReplyClass::Client)
                    .await
            }
            Restriction::RejectRhsblReverseClient(l) => {
                if names.reverse_name == "unknown" {
                    return Status::Dunno;
                }
                let q = format!("{}.{}", names.reverse_name, l.domain);
                self.rbl(ev, ctx, l, &q, &names.reverse_name, ReplyClass::Client)
                    .await
            }
            Restriction::RejectRhsblHelo(l) => match ctx.helo {
                Some(h) if !h.starts_with('[') && !h.is_empty() => {
                    let q = format!("{}.{}", h.trim_end_matches('.'), l.domain);
                    self.rbl(ev, ctx, l, &q, h, ReplyClass::Helo).await
                }
                _ => Status::Dunno,
            },
            Restriction::RejectRhsblSender(l) => match ctx.sender {
                Some(Some(a)) if !a.domain.is_empty() && !a.domain.starts_with('[') => {
                    let q = format!("{}.{}", a.domain, l.domain);
                    self.rbl(ev, ctx, l, &q, &ctx.sender_name(a), ReplyClass::Sender)
                        .await
                }
                _ => Status::Dunno,
            },
            // Refused outside smtpd_end_of_data_restrictions at load
            // (Restrictions::new, config::restrictions, table values).
            Restriction::RejectSpfFail
            | Restriction::DeferSpfTemperror
            | Restriction::RejectDmarcPolicy => Status::Dunno,
            Restriction::CheckPolicyService(svc) => {
                let request = self.policy_request(ctx);
                let (origin, action) = match svc.0.query(&request).await {
                    Ok(a) => (svc.0.endpoint().to_string(), a),
                    Err(why) => {
                        ev.verdict
                            .events
                            .push(("warning".into(), format!("problem talking to server {why}")));
                        (
                            "smtpd_policy_service_default_action".to_string(),
                            svc.0.default_action().to_string(),
                        )
                    }
                };
                let parsed = AccessAction::parse(&action, &Restriction::is_known);
                self.table_result(ev, ctx, origin, parsed, rn, class, depth)
                    .await
            }
        }
    }

    /// A table hit turned into a status; a miss is DUNNO.
    async fn found(
        &self,
        ev: &mut Eval,
        ctx: &Ctx<'_>,
        found: Option<table::Found>,
        rn: &str,
        class: ReplyClass,
        depth: u32,
    ) -> Status {
        match found {
            None => Status::Dunno,
            Some(f) => {
                let origin = f.origin();
                self.table_result(ev, ctx, origin, f.action, rn, class, depth)
                    .await
            }
        }
    }

    /// check_domain_access: the name, then its parent domains (`example.com`
    /// or `.example.com` style, parent_domain_matches_subdomains); pattern
    /// tables only see the whole name; never for an address.
    fn domain_lookup(&self, t: &Access, domain: &str, full_first: bool) -> Option<table::Found> {
        let low = domain.to_ascii_lowercase();
        let pattern = t.0.is_pattern();
        let mut name: &str = &low;
        let mut first = full_first;
        let numeric = domain.parse::<IpAddr>().is_ok();
        while !name.is_empty() {
            if first || !pattern {
                if let Some(f) = t.0.lookup(name) {
                    return Some(f);
                }
            }
            if numeric {
                break;
            }
            let Some(dot) = name[1..].find('.').map(|p| p + 1) else {
                break;
            };
            name = if self.settings.parent_domain_matches {
                &name[dot + 1..]
            } else {
                &name[dot..]
            };
            first = false;
        }
        None
    }

    /// check_mail_access: `user+ext@domain`, `user@domain`, the domain and
    /// its parents, `user+ext@`, `user@` (access(5) "EMAIL ADDRESS
    /// PATTERNS"); pattern tables only see the whole address.
    fn mail_lookup(&self, t: &Access, a: &Address) -> Option<table::Found> {
        let full = a.internal().to_lowercase();
        if let Some(f) = t.0.lookup(&full) {
            return Some(f);
        }
        if t.0.is_pattern() {
            return None;
        }
        let local = a.local.to_lowercase();
        let delim = &self.settings.recipient_delimiter;
        let bare = (!delim.is_empty())
            .then(|| {
                local
                    .find(|c| delim.contains(c))
                    .map(|i| local[..i].to_string())
            })
            .flatten()
            .filter(|b| !b.is_empty());
        let domain = a.domain.to_lowercase();
        if let Some(b) = &bare {
            if let Some(f) = t.0.lookup(&format!("{b}@{domain}")) {
                return Some(f);
            }
        }
        if !domain.is_empty() {
            if let Some(f) = self.domain_lookup(t, &domain, true) {
                return Some(f);
            }
        }
        if let Some(f) = t.0.lookup(&format!("{local}@")) {
            return Some(f);
        }
        bare.and_then(|b| t.0.lookup(&format!("{b}@")))
    }

    async fn dns_status(&self, name: &str) -> DomainStatus {
        match &self.dns {
            Some(d) => d.host_or_mail_domain(name).await,
            None => DomainStatus::Exists,
        }
    }

    /// The A records of a DNS list query when they count as listed (the
    /// `=127.0.0.N` filter); a lookup failure lets the client pass with a
    /// warning, as Postfix does.
    async fn rbl_listed(
        &self,
        ev: &mut Eval,
        l: &DnsList,
        query: &str,
    ) -> Option<Vec<std::net::Ipv4Addr>> {
        let dns = self.dns.as_ref()?;
        match dns.a(query).await {
            Lookup::Found(v) => match l.filter {
                Some(f) if !v.contains(&f) => None,
                _ => Some(v),
            },
            Lookup::NotFound => None,
            Lookup::TempFail(e) => {
                ev.verdict
                    .events
                    .push(("warning".into(), format!("{query}: RBL lookup error: {e}")));
                None
            }
        }
    }

    /// reject_rbl_client and the reject_rhsbl_* checks: listed means the
    /// rbl_reply_maps (or default_rbl_reply) reply.
    async fn rbl(
        &self,
        ev: &mut Eval,
        ctx: &Ctx<'_>,
        l: &DnsList,
        query: &str,
        what: &str,
        class: ReplyClass,
    ) -> Status {
        if self.rbl_listed(ev, l, query).await.is_none() {
            return Status::Dunno;
        }
        let txt = match &self.dns {
            Some(d) => match d.txt(query).await {
                Lookup::Found(t) => t.join(" / "),
                _ => String::new(),
            },
            None => String::new(),
        };
        let s = &self.settings;
        let listed_domain = match l.filter {
            Some(f) => format!("{}={f}", l.domain),
            None => l.domain.clone(),
        };
        let template = s
            .rbl_reply_maps
            .lookup(&listed_domain)
            .map(|h| h.value)
            .unwrap_or_else(|| s.default_rbl_reply.clone());
        let names = &ctx.peer.names;
        let client = &ctx.peer.info;
        let lookup = |name: &str| -> Option<String> {
            Some(match name {
                "rbl_code" => s.maps_rbl_reject_code.to_string(),
                "rbl_domain" => l.domain.clone(),
                "rbl_reason" | "rbl_txt" => filter_text(&txt),
                "rbl_what" => what.to_string(),
                "rbl_class" => class.name().to_string(),
                "client" => format!("{}[{}]", names.name, client.addr),
                "client_address" => client.addr.to_string(),
                "client_name" => names.name.clone(),
                "reverse_client_name" => names.reverse_name.clone(),
                "helo_name" => ctx.helo.unwrap_or("").to_string(),
                "sender" => ctx
                    .sender_text()
                    .map(|s| if s.is_empty() { "<>".into() } else { s })
                    .unwrap_or_default(),
                "sender_name" => ctx
                    .sender_text()
                    .map(|s| s.rsplit_once('@').map(|(l, _)| l.to_string()).unwrap_or(s))
                    .unwrap_or_default(),
                "sender_domain" => ctx
                    .sender_text()
                    .and_then(|s| s.rsplit_once('@').map(|(_, d)| d.to_string()))
                    .unwrap_or_default(),
                "recipient" => ctx.recipient.map(|a| a.internal()).unwrap_or_default(),
                "recipient_name" => ctx.recipient.map(|a| a.local.clone()).unwrap_or_default(),
                "recipient_domain" => ctx.recipient.map(|a| a.domain.clone()).unwrap_or_default(),
                _ => return None,
            })
        };
        let why = match expand_template(&template, &lookup) {
            Ok(w) => w,
            Err(e) => {
                ev.verdict.events.push((
                    "warning".into(),
                    format!(
                        "bad rbl reply template for domain {}: {template}: {e}",
                        l.domain
                    ),
                ));
                expand_template(&s.default_rbl_reply, &lookup).unwrap_or_default()
            }
        };
        let b = why.as_bytes();
        if b.len() < 4
            || !matches!(b[0], b'4' | b'5')
            || !b[1].is_ascii_digit()
            || !b[2].is_ascii_digit()
            || b[3] != b' '
        {
            ev.verdict.events.push((
                "warning".into(),
                format!("rbl response code configuration error: {why}"),
            ));
            return self.reject(ev, 450, "4.7.1", "Service unavailable".into());
        }
        let code: u16 = why[..3].parse().unwrap_or(450);
        let (dsn, text) = dsn_split("4.7.1", &why[4..]);
        let text = if text.is_empty() {
            "Service unavailable"
        } else {
            text
        };
        self.reject(ev, code, &dsn_fix(&dsn, class), text.to_string())
    }

    /// SMTPD_POLICY_README's request attributes.
    fn policy_request(&self, ctx: &Ctx<'_>) -> Vec<u8> {
        let names = &ctx.peer.names;
        let addr = ctx.peer.info.addr.to_string();
        let sender = ctx.sender_text().unwrap_or_default();
        let rcpt = ctx.recipient.map(|a| a.internal()).unwrap_or_default();
        let instance = format!(
            "{:x}.{}",
            std::ptr::from_ref(ctx.peer) as usize,
            ctx.peer.transaction
        );
        let count = ctx.recipient_count.to_string();
        let size = ctx.size.unwrap_or(0).to_string();
        let protocol = if ctx.protocol.is_empty() {
            "SMTP"
        } else {
            ctx.protocol
        };
        service::encode_request(&[
            ("request", "smtpd_access_policy"),
            ("protocol_state", ctx.stage),
            ("protocol_name", protocol),
            ("client_address", &addr),
            ("client_name", &names.name),
            ("reverse_client_name", &names.reverse_name),
            ("helo_name", ctx.helo.unwrap_or("")),
            ("sender", &sender),
            ("recipient", &rcpt),
            ("recipient_count", &count),
            ("queue_id", ctx.queue_id.unwrap_or("")),
            ("instance", &instance),
            ("size", &size),
            ("etrn_domain", ""),
            ("stress", ""),
            ("sasl_method", ctx.peer.sasl_method.as_deref().unwrap_or("")),
            ("sasl_username", ctx.sasl_user.unwrap_or("")),
            ("sasl_sender", ""),
            ("ccert_subject", ""),
            ("ccert_issuer", ""),
            ("ccert_fingerprint", ""),
            ("ccert_pubkey_fingerprint", ""),
            ("encryption_protocol", ""),
            ("encryption_cipher", ""),
            ("encryption_keysize", "0"),
            ("policy_context", ""),
        ])
    }

    /// reject_sender_login_mismatch (postconf(5)): the sender must be owned
    /// by the SASL login according to smtpd_sender_login_maps; an address
    /// the map lists needs a login.
    async fn sender_login_mismatch(&self, ctx: &Ctx<'_>) -> Status {
        let Some(Some(sender)) = ctx.sender else {
            return Status::Dunno;
        };
        let s = sender.internal();
        let owners = match self.sender_owners_async(sender).await {
            Ok(o) => o,
            // smtpd_check.c reject_dict_retry.
            Err(_) => {
                return Status::Reject(Reply::new(
                    451,
                    "4.3.0",
                    format!("<{s}>: Temporary lookup failure"),
                ))
            }
        };
        match (ctx.sasl_user, owners) {
            (Some(user), Some(owners)) if owners.iter().any(|o| o.eq_ignore_ascii_case(user)) => {
                Status::Dunno
            }
            (Some(user), _) => Status::Reject(Reply::new(
                553,
                "5.7.1",
                format!("<{s}>: Sender address rejected: not owned by user {user}"),
            )),
            (None, Some(_)) => Status::Reject(Reply::new(
                553,
                "5.7.1",
                format!("<{s}>: Sender address rejected: not logged in"),
            )),
            (None, None) => Status::Dunno,
        }
    }

    async fn unknown_recipient_domain(&self, ev: &mut Eval, a: &Address) -> Status {
        let given = a.internal();
        let status = match &self.dns {
            Some(dns) => dns.domain(&a.domain).await,
            None => DomainStatus::Exists,
        };
        match status {
            DomainStatus::Exists => Status::Dunno,
            DomainStatus::NotFound => self.reject(
                ev,
                self.settings.unknown_address_reject_code,
                "4.1.2",
                format!("<{given}>: Recipient address rejected: Domain not found"),
            ),
            DomainStatus::TempFail(_) => Status::Reject(Reply::new(
                450,
                "4.4.3",
                format!("<{given}>: Recipient address rejected: Temporary DNS lookup failure"),
            )),
        }
    }

    /// VRFY (and the implicit smtpd_reject_unlisted_recipient): the
    /// resolver's verdict alone.
    pub async fn verify(&self, addr: &Address) -> Option<Reply> {
        match self.check(addr).await.1 {
            Verdict::Accept => None,
            Verdict::Reject {
                code,
                enhanced,
                text,
                ..
            } => Some(Reply::new(code, &enhanced, text)),
        }
    }

    /// The address class, for callers that only need it.
    pub async fn class(&self, addr: &Address) -> Class {
        self.check(addr).await.0
    }

    /// Runs lists in order until one rejects; each list starts with a
    /// fresh DEFER_IF_REJECT (Postfix's SMTPD_CHECK_RESET).
    async fn lists(&self, ev: &mut Eval, ctx: &Ctx<'_>, calls: &[ListCall<'_>]) -> Option<Reply> {
        for c in calls {
            ev.defer_if_reject = None;
            if let Status::Reject(r) = self
                .generic(ev, ctx, c.list, &c.reply_name, c.class, 0)
                .await
            {
                return Some(r);
            }
        }
        None
    }

    fn client_call<'a>(&'a self, peer: &Peer) -> ListCall<'a> {
        ListCall {
            list: &self.restrictions.client,
            reply_name: format!("{}[{}]", peer.names.name, peer.info.addr),
            class: ReplyClass::Client,
        }
    }

    /// smtpd_client_restrictions at connect (smtpd_delay_reject = no).
    pub async fn connect(&self, peer: &mut Peer) -> PolicyVerdict {
        let mut ev = Eval::default();
        let ctx = Ctx {
            peer,
            helo: None,
            sender: None,
            recipient: None,
            sasl_user: None,
            stage: "CONNECT",
            sender_given: "",
            protocol: "SMTP",
            queue_id: None,
            recipient_count: 0,
            size: None,
        };
        let calls = [self.client_call(peer)];
        ev.verdict.reply = self.lists(&mut ev, &ctx, &calls).await;
        let dip = ev.defer_if_permit.take();
        if peer.defer_if_permit.is_none() {
            peer.defer_if_permit = dip;
        }
        ev.verdict
    }

    /// smtpd_helo_restrictions at HELO/EHLO (smtpd_delay_reject = no).
    pub async fn helo(&self, peer: &mut Peer, helo: &str) -> PolicyVerdict {
        let mut ev = Eval::default();
        let ctx = Ctx {
            peer,
            helo: Some(helo),
            sender: None,
            recipient: None,
            sasl_user: None,
            stage: "EHLO",
            sender_given: "",
            protocol: "SMTP",
            queue_id: None,
            recipient_count: 0,
            size: None,
        };
        let calls = [ListCall {
            list: &self.restrictions.helo,
            reply_name: helo.to_string(),
            class: ReplyClass::Helo,
        }];
        ev.verdict.reply = self.lists(&mut ev, &ctx, &calls).await;
        let dip = ev.defer_if_permit.take();
        if peer.defer_if_permit.is_none() {
            peer.defer_if_permit = dip;
        }
        ev.verdict
    }

    /// smtpd_sender_restrictions at MAIL FROM (smtpd_delay_reject = no).
    pub async fn mail(
        &self,
        peer: &mut Peer,
        q: &MailQuery,
        helo: Option<&str>,
        sasl_user: Option<&str>,
    ) -> PolicyVerdict {
        let mut ev = Eval::default();
        let ctx = Ctx {
            peer,
            helo,
            sender: Some(&q.sender),
            recipient: None,
            sasl_user,
            stage: "MAIL",
            sender_given: &q.sender_given,
            protocol: &q.protocol,
            queue_id: None,
            recipient_count: 0,
            size: q.size,
        };
        let calls = [ListCall {
            list: &self.restrictions.sender,
            reply_name: q
                .sender
                .as_ref()
                .map(|_| q.sender_given.clone())
                .unwrap_or_default(),
            class: ReplyClass::Sender,
        }];
        ev.verdict.reply = self.lists(&mut ev, &ctx, &calls).await;
        let dip = ev.defer_if_permit.take();
        if peer.defer_if_permit.is_none() {
            peer.defer_if_permit = dip;
        }
        ev.verdict
    }

    /// RCPT TO (and VRFY): with smtpd_delay_reject = yes the client, HELO
    /// and sender lists first, then smtpd_relay_restrictions and
    /// smtpd_recipient_restrictions; a pending DEFER_IF_PERMIT turns an
    /// accept into its deferral; then the implicit unlisted-recipient
    /// check (smtpd_reject_unlisted_recipient).
    pub async fn rcpt(
        &self,
        peer: &Peer,
        q: &RecipientQuery,
        stage: &'static str,
    ) -> PolicyVerdict {
        // After DISCARD nothing more is checked (generic_checks stops at
        // state->discard): every recipient is taken.
        if q.discarding {
            return PolicyVerdict::default();
        }
        // A table that could not answer (the class or the recipient):
        // "451 4.3.0 Temporary lookup failure" before any restriction
        // decides on a guess (smtpd_check.c reject_dict_retry).
        if let Verdict::Reject {
            code: 451,
            enhanced,
            text,
            ..
        } = self.check(&q.recipient).await.1
        {
            if enhanced == "4.3.0" {
                return PolicyVerdict {
                    reply: Some(Reply::new(451, &enhanced, text)),
                    ..Default::default()
                };
            }
        }
        let mut ev = Eval {
            defer_if_permit: peer.defer_if_permit.clone(),
            held: q.holding,
            ..Default::default()
        };
        let sender = q.sender.clone();
        let has_mail = stage == "RCPT";
        let ctx = Ctx {
            peer,
            helo: q.helo.as_deref(),
            sender: has_mail.then_some(&sender),
            recipient: Some(&q.recipient),
            sasl_user: q.sasl_user.as_deref(),
            stage,
            sender_given: &q.sender_given,
            protocol: &q.protocol,
            queue_id: q.queue_id.as_deref(),
            recipient_count: q.recipient_count,
            size: q.size,
        };
        let mut calls = Vec::new();
        if self.settings.delay_reject {
            calls.push(self.client_call(peer));
            if let Some(h) = &q.helo {
                calls.push(ListCall {
                    list: &self.restrictions.helo,
                    reply_name: h.clone(),
                    class: ReplyClass::Helo,
                });
            }
            if has_mail {
                calls.push(ListCall {
                    list: &self.restrictions.sender,
                    reply_name: sender
                        .as_ref()
                        .map(|a| ctx.sender_name(a))
                        .unwrap_or_default(),
                    class: ReplyClass::Sender,
                });
            }
        }
        if let Some(r) = self.lists(&mut ev, &ctx, &calls).await {
            ev.verdict.reply = Some(r);
            return ev.verdict;
        }
        if ev.discard {
            return ev.verdict;
        }
        ev.defer_if_reject = None;
        let rn = q.recipient.internal();
        let mut reply = None;
        // smtpd_relay_before_recipient_restrictions (Postfix 3.6) orders
        // the two recipient lists.
        let r = &self.restrictions;
        let lists = if r.relay_before_recipient {
            [&r.relay, &r.recipient]
        } else {
            [&r.recipient, &r.relay]
        };
        for list in lists {
            ev.defer_if_reject = None;
            if let Status::Reject(r) = self
                .generic(&mut ev, &ctx, list, &rn, ReplyClass::Recipient, 0)
                .await
            {
                reply = Some(r);
                break;
            }
            if ev.discard {
                return ev.verdict;
            }
        }
        if reply.is_none() {
            reply = ev.defer_if_permit.take();
        }
        if reply.is_none() {
            reply = self.verify(&q.recipient).await;
        }
        ev.verdict.reply = reply;
        ev.verdict
    }

    /// The recipient verdict alone, for callers without a connection's
    /// memory (`sendmail -bs`, VRFY).
    pub async fn recipient(&self, client: &ClientInfo, q: &RecipientQuery) -> Option<Reply> {
        let peer = Peer::new(client.clone(), ClientNames::from_info(client));
        self.rcpt(&peer, q, "RCPT").await.reply
    }
}

fn ok_if(b: bool) -> Status {
    if b {
        Status::Ok
    } else {
        Status::Dunno
    }
}

/// check_addr_access: the address, then shorter networks by whole octets
/// (`1.2.3.4`, `1.2.3`, `1.2`, `1`; IPv6 by `:` groups); pattern tables
/// (cidr) only see the whole address.
fn addr_lookup(t: &Access, addr: &str) -> Option<table::Found> {
    let delim = if addr.contains(':') { ':' } else { '.' };
    let mut key = addr;
    let mut first = true;
    loop {
        if first || !t.0.is_pattern() {
            if let Some(f) = t.0.lookup(key) {
                return Some(f);
            }
        }
        first = false;
        match key.rfind(delim) {
            Some(i) => key = &key[..i],
            None => return None,
        }
        if key.is_empty() {
            return None;
        }
    }
}

/// Postfix's valid_hostname(): labels of letters, digits, `-` and `_`, not
/// starting or ending with `-`, at most 63 octets each and 255 in all, and
/// not all numeric.
pub fn valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    name.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let l = |n: &str| match n {
            "rbl_code" => Some("554".to_string()),
            "rbl_reason" => Some(String::new()),
            "rbl_domain" => Some("bl.example".into()),
            _ => None,
        };
        assert_eq!(
            expand_template(
                "$rbl_code x ${rbl_domain}${rbl_reason?; $rbl_reason}${rbl_reason:!}",
                &l
            )
            .unwrap(),
            "554 x bl.example!"
        );
        assert!(expand_template("$nope", &l).is_err());
        assert!(expand_template("${rbl_code", &l).is_err());
        assert_eq!(filter_text("a\u{1}b"), "a_b");
        assert_eq!(ipv6_nibbles("2001:db8::1".parse().unwrap()).len(), 63);
    }
}
