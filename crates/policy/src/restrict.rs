//! smtpd access restrictions (postconf(5) smtpd_client_restrictions,
//! smtpd_helo_restrictions, smtpd_sender_restrictions,
//! smtpd_relay_restrictions, smtpd_recipient_restrictions): a list of
//! restrictions evaluated in order until one permits or rejects. Names that
//! take an argument (`check_sender_access hash:/etc/postfix/access`,
//! `reject_rbl_client zen.example=127.0.0.2`) take the next word.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use crate::table::AccessTable;

/// An access table as a restriction argument; two are equal when they
/// name the same table.
#[derive(Clone)]
pub struct Access(pub Arc<AccessTable>);

impl PartialEq for Access {
    fn eq(&self, other: &Access) -> bool {
        self.0.spec() == other.0.spec()
    }
}
impl Eq for Access {}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.spec())
    }
}

/// A DNS list argument: `domain` or `domain=127.0.0.N` (postconf(5)
/// reject_rbl_client: only a listed address equal to the filter counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsList {
    pub domain: String,
    pub filter: Option<Ipv4Addr>,
}

impl DnsList {
    pub fn parse(arg: &str) -> Result<DnsList, RestrictionError> {
        let (domain, filter) = match arg.split_once('=') {
            Some((d, f)) => (
                d,
                Some(f.parse::<Ipv4Addr>().map_err(|_| {
                    RestrictionError(format!(
                        "bad DNS list reply filter \"{f}\" in \"{arg}\": need an IPv4 address such as 127.0.0.2"
                    ))
                })?),
            ),
            None => (arg, None),
        };
        if domain.is_empty() || domain.contains(':') {
            return Err(RestrictionError(format!("bad DNS list domain \"{arg}\"")));
        }
        Ok(DnsList {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            filter,
        })
    }
}

/// A policy server endpoint (`inet:host:port`, `unix:/path`), shared by the
/// sessions that use it.
#[derive(Clone)]
pub struct Service(pub Arc<crate::service::PolicyClient>);

impl PartialEq for Service {
    fn eq(&self, other: &Service) -> bool {
        self.0.endpoint() == other.0.endpoint()
    }
}
impl Eq for Service {}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.endpoint())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    Permit,
    Reject,
    Defer,
    DeferIfPermit,
    DeferIfReject,
    PermitMynetworks,
    PermitSaslAuthenticated,
    RejectUnauthDestination,
    DeferUnauthDestination,
    RejectUnlistedRecipient,
    RejectNonFqdnRecipient,
    RejectNonFqdnSender,
    RejectSenderLoginMismatch,
    RejectUnknownRecipientDomain,
    RejectUnknownSenderDomain,
    RejectUnknownClientHostname,
    RejectUnknownReverseClientHostname,
    RejectUnknownHeloHostname,
    RejectInvalidHeloHostname,
    RejectNonFqdnHeloHostname,
    CheckClientAccess(Access),
    CheckHeloAccess(Access),
    CheckSenderAccess(Access),
    CheckRecipientAccess(Access),
    RejectRblClient(DnsList),
    RejectRhsblClient(DnsList),
    RejectRhsblReverseClient(DnsList),
    RejectRhsblSender(DnsList),
    RejectRhsblHelo(DnsList),
    PermitDnswlClient(DnsList),
    CheckPolicyService(Service),
    // yubin extensions (issue 14, docs/msgauth.md): verdicts of
    // yubin-msgauth, for smtpd_end_of_data_restrictions.
    RejectSpfFail,
    DeferSpfTemperror,
    RejectDmarcPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionError(pub String);

impl fmt::Display for RestrictionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What parsing a list needs to open the tables and policy clients its
/// restrictions name.
pub struct Loader<'a> {
    /// The configuration directory (relative table names).
    pub base: &'a Path,
    pub default_type: &'a str,
    /// Opens (or reuses) a policy client for an endpoint.
    pub policy: &'a dyn Fn(&str) -> Result<Arc<crate::service::PolicyClient>, String>,
}

/// Restriction names without an argument.
const SIMPLE: &[(&str, Restriction)] = &[
    ("permit", Restriction::Permit),
    ("reject", Restriction::Reject),
    ("defer", Restriction::Defer),
    ("defer_if_permit", Restriction::DeferIfPermit),
    ("defer_if_reject", Restriction::DeferIfReject),
    ("permit_mynetworks", Restriction::PermitMynetworks),
    (
        "permit_sasl_authenticated",
        Restriction::PermitSaslAuthenticated,
    ),
    (
        "reject_unauth_destination",
        Restriction::RejectUnauthDestination,
    ),
    (
        "defer_unauth_destination",
        Restriction::DeferUnauthDestination,
    ),
    (
        "reject_unlisted_recipient",
        Restriction::RejectUnlistedRecipient,
    ),
    ("check_recipient_maps", Restriction::RejectUnlistedRecipient),
    (
        "reject_non_fqdn_recipient",
        Restriction::RejectNonFqdnRecipient,
    ),
    ("reject_non_fqdn_sender", Restriction::RejectNonFqdnSender),
    (
        "reject_sender_login_mismatch",
        Restriction::RejectSenderLoginMismatch,
    ),
    (
        "reject_unknown_recipient_domain",
        Restriction::RejectUnknownRecipientDomain,
    ),
    (
        "reject_unknown_sender_domain",
        Restriction::RejectUnknownSenderDomain,
    ),
    (
        "reject_unknown_client_hostname",
        Restriction::RejectUnknownClientHostname,
    ),
    (
        "reject_unknown_client",
        Restriction::RejectUnknownClientHostname,
    ),
    (
        "reject_unknown_reverse_client_hostname",
        Restriction::RejectUnknownReverseClientHostname,
    ),
    (
        "reject_unknown_helo_hostname",
        Restriction::RejectUnknownHeloHostname,
    ),
    (
        "reject_unknown_hostname",
        Restriction::RejectUnknownHeloHostname,
    ),
    (
        "reject_invalid_helo_hostname",
        Restriction::RejectInvalidHeloHostname,
    ),
    (
        "reject_invalid_hostname",
        Restriction::RejectInvalidHeloHostname,
    ),
    (
        "reject_non_fqdn_helo_hostname",
        Restriction::RejectNonFqdnHeloHostname,
    ),
    (
        "reject_non_fqdn_hostname",
        Restriction::RejectNonFqdnHeloHostname,
    ),
    // yubin extensions (docs/msgauth.md), smtpd_end_of_data_restrictions only.
    ("reject_spf_fail", Restriction::RejectSpfFail),
    ("defer_spf_temperror", Restriction::DeferSpfTemperror),
    ("reject_dmarc_policy", Restriction::RejectDmarcPolicy),
];

/// Restriction names that take the next word as their argument.
const WITH_ARGUMENT: &[&str] = &[
    "check_client_access",
    "check_helo_access",
    "check_sender_access",
    "check_recipient_access",
    "reject_rbl_client",
    "reject_rbl",
    "reject_rhsbl_client",
    "reject_rhsbl_reverse_client",
    "reject_rhsbl_sender",
    "reject_rhsbl_helo",
    "permit_dnswl_client",
    "check_policy_service",
];

impl Restriction {
    /// Whether `name` is a restriction yubin knows (for access table values
    /// that list restrictions).
    pub fn is_known(name: &str) -> bool {
        let l = name.to_ascii_lowercase();
        SIMPLE.iter().any(|(n, _)| *n == l) || WITH_ARGUMENT.contains(&l.as_str())
    }

    /// Parses one restriction name without an argument; unknown or
    /// unimplemented ones are a configuration error, never silently
    /// skipped (an ignored reject_* would turn into an open door).
    pub fn parse(name: &str) -> Result<Restriction, RestrictionError> {
        let l = name.to_ascii_lowercase();
        if let Some((_, r)) = SIMPLE.iter().find(|(n, _)| *n == l) {
            return Ok(r.clone());
        }
        if WITH_ARGUMENT.contains(&l.as_str()) {
            return Err(RestrictionError(format!(
                "restriction {l} needs an argument"
            )));
        }
        let mut names: Vec<&str> = SIMPLE.iter().map(|(n, _)| *n).collect();
        names.extend(WITH_ARGUMENT);
        Err(RestrictionError(format!(
            "unsupported restriction \"{l}\"; yubin implements {}",
            names.join(", ")
        )))
    }

    /// yubin-msgauth's restrictions, which need the message.
    pub fn is_end_of_data_only(&self) -> bool {
        matches!(
            self,
            Restriction::RejectSpfFail
                | Restriction::DeferSpfTemperror
                | Restriction::RejectDmarcPolicy
        )
    }

    /// A list without tables or policy services (restriction lists inside
    /// access table values, and callers that open no tables).
    pub fn parse_list(items: &[String]) -> Result<Vec<Restriction>, RestrictionError> {
        items.iter().map(|i| Restriction::parse(i)).collect()
    }

    /// A configured list: names with their arguments.
    pub fn parse_list_with(
        items: &[String],
        loader: &Loader<'_>,
    ) -> Result<Vec<Restriction>, RestrictionError> {
        let mut out = Vec::new();
        let mut it = items.iter();
        while let Some(item) = it.next() {
            let l = item.to_ascii_lowercase();
            if !WITH_ARGUMENT.contains(&l.as_str()) {
                // A bare type:table is short for the list's own check_*_access
                // (postconf(5)); yubin asks for the explicit form.
                if item.contains(':') {
                    return Err(RestrictionError(format!(
                        "\"{item}\": name the restriction before the table, e.g. check_sender_access {item}"
                    )));
                }
                out.push(Restriction::parse(item)?);
                continue;
            }
            let arg = it
                .next()
                .ok_or_else(|| RestrictionError(format!("restriction {l} needs an argument")))?;
            let table = |arg: &str| -> Result<Access, RestrictionError> {
                if !arg.contains(':') {
                    return Err(RestrictionError(format!(
                        "restriction {l}: bad argument \"{arg}\": need maptype:mapname"
                    )));
                }
                AccessTable::open(arg, loader.default_type, loader.base)
                    .map(|t| Access(Arc::new(t)))
                    .map_err(|e| RestrictionError(format!("{l} {arg}: {e}")))
            };
            out.push(match l.as_str() {
                "check_client_access" => Restriction::CheckClientAccess(table(arg)?),
                "check_helo_access" => Restriction::CheckHeloAccess(table(arg)?),
                "check_sender_access" => Restriction::CheckSenderAccess(table(arg)?),
                "check_recipient_access" => Restriction::CheckRecipientAccess(table(arg)?),
                "reject_rbl_client" | "reject_rbl" => {
                    Restriction::RejectRblClient(DnsList::parse(arg)?)
                }
                "reject_rhsbl_client" => Restriction::RejectRhsblClient(DnsList::parse(arg)?),
                "reject_rhsbl_reverse_client" => {
                    Restriction::RejectRhsblReverseClient(DnsList::parse(arg)?)
                }
                "reject_rhsbl_sender" => Restriction::RejectRhsblSender(DnsList::parse(arg)?),
                "reject_rhsbl_helo" => Restriction::RejectRhsblHelo(DnsList::parse(arg)?),
                "permit_dnswl_client" => Restriction::PermitDnswlClient(DnsList::parse(arg)?),
                _ => {
                    if !arg.contains(':') {
                        return Err(RestrictionError(format!(
                            "restriction check_policy_service must be followed by transport:server, not \"{arg}\""
                        )));
                    }
                    Restriction::CheckPolicyService(Service(
                        (loader.policy)(arg).map_err(|e| {
                            RestrictionError(format!("check_policy_service {arg}: {e}"))
                        })?,
                    ))
                }
            });
        }
        Ok(out)
    }

    /// Needs DNS answers.
    pub fn uses_dns(&self) -> bool {
        matches!(
            self,
            Restriction::RejectUnknownRecipientDomain
                | Restriction::RejectUnknownSenderDomain
                | Restriction::RejectUnknownClientHostname
                | Restriction::RejectUnknownReverseClientHostname
                | Restriction::RejectUnknownHeloHostname
                | Restriction::RejectRblClient(_)
                | Restriction::RejectRhsblClient(_)
                | Restriction::RejectRhsblReverseClient(_)
                | Restriction::RejectRhsblSender(_)
                | Restriction::RejectRhsblHelo(_)
                | Restriction::PermitDnswlClient(_)
        )
    }

    /// Needs the client's host name from DNS (reverse and forward lookups
    /// at connect time).
    pub fn uses_client_name(&self) -> bool {
        matches!(
            self,
            Restriction::RejectUnknownClientHostname
                | Restriction::RejectUnknownReverseClientHostname
                | Restriction::CheckClientAccess(_)
                | Restriction::RejectRhsblClient(_)
                | Restriction::RejectRhsblReverseClient(_)
                | Restriction::CheckPolicyService(_)
        )
    }
}

/// The domain part is a fully-qualified name (has a dot) or an address literal.
pub fn is_fqdn_address(domain: &str) -> bool {
    domain.starts_with('[') || (domain.contains('.') && !domain.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        let l = Restriction::parse_list(&[
            "permit_mynetworks".into(),
            "reject_unauth_destination".into(),
        ])
        .unwrap();
        assert_eq!(l[1], Restriction::RejectUnauthDestination);
        let e = Restriction::parse("check_fantasy").unwrap_err().0;
        assert!(e.contains("unsupported restriction"));
        // Every name the error message offers really parses (with its argument).
        let offered = e.split("yubin implements ").nth(1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let no_policy = |_: &str| Err("none".to_string());
        let loader = Loader {
            base: dir.path(),
            default_type: "hash",
            policy: &no_policy,
        };
        for name in offered.split(", ") {
            let items = if WITH_ARGUMENT.contains(&name) {
                if name.starts_with("check_policy") {
                    continue;
                }
                let arg = if name.starts_with("check_") {
                    "inline:{x=OK}"
                } else {
                    "list.example"
                };
                vec![name.to_string(), arg.to_string()]
            } else {
                vec![name.to_string()]
            };
            assert!(
                Restriction::parse_list_with(&items, &loader).is_ok(),
                "{name}"
            );
        }
        assert!(
            is_fqdn_address("mydomain.com")
                && !is_fqdn_address("localhost")
                && is_fqdn_address("[1.2.3.4]")
        );
        assert_eq!(
            DnsList::parse("zen.example=127.0.0.4").unwrap().filter,
            Some("127.0.0.4".parse().unwrap())
        );
        assert!(DnsList::parse("zen.example=x").is_err());
        assert!(Restriction::parse_list_with(&["check_sender_access".into()], &loader).is_err());
        assert!(Restriction::parse_list_with(
            &["check_sender_access".into(), "nocolon".into()],
            &loader
        )
        .is_err());
    }
}
