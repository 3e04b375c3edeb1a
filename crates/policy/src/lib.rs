//! smtpd's access policy: the `smtpd_*_restrictions` lists evaluated for a
//! recipient the SMTP session asks about, with the lookups they need
//! (address resolution, smtpd_sender_login_maps, DNS). It answers with the
//! reject reply or nothing; it must not speak SMTP or touch a socket.

pub mod restrict;

use std::sync::Arc;

use yubin_addr::{Address, Class, Resolver, Verdict};
use yubin_dns::{Dns, DomainStatus};
use yubin_smtp::{ClientInfo, RecipientQuery, Reply};
use yubin_table::Maps;

pub use restrict::{is_fqdn_address, Restriction, RestrictionError};

/// The three lists, in the order smtpd evaluates them at RCPT time
/// (smtpd_delay_reject = yes: sender restrictions wait for RCPT).
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    pub sender: Vec<Restriction>,
    pub relay: Vec<Restriction>,
    pub recipient: Vec<Restriction>,
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
            return Err(RestrictionError("parameters smtpd_relay_restrictions and smtpd_recipient_restrictions: specify at least one working instance of: reject_unauth_destination, defer_unauth_destination, reject, defer".into()));
        }
        Ok(Restrictions {
            sender,
            relay,
            recipient,
        })
    }

    /// Whether any list needs DNS.
    pub fn uses_dns(&self) -> bool {
        [&self.sender, &self.relay, &self.recipient]
            .iter()
            .any(|l| l.contains(&Restriction::RejectUnknownRecipientDomain))
    }
}

/// The lookups the restrictions need.
pub struct Policy {
    pub resolver: Arc<Resolver>,
    pub sender_login_maps: Arc<Maps>,
    pub dns: Option<Arc<Dns>>,
    pub restrictions: Restrictions,
}

fn reject(code: u16, enhanced: &str, text: String) -> Option<Option<Reply>> {
    Some(Some(Reply::new(code, enhanced, text)))
}

impl Policy {
    /// smtpd_sender_login_maps: Postfix's search order for the sender is
    /// `user@domain`, then `@domain`; the value lists the owning logins,
    /// separated by commas or spaces. `None` when the map does not list it.
    pub fn sender_owners(&self, sender: &Address) -> Option<Vec<String>> {
        if self.sender_login_maps.is_empty() {
            return None;
        }
        let hit = self.sender_login_maps.lookup(&sender.key()).or_else(|| {
            self.sender_login_maps
                .lookup(&format!("@{}", sender.domain))
        })?;
        Some(
            hit.value
                .split([',', ' ', '\t'])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// reject_sender_login_mismatch (postconf(5)): the sender must be owned
    /// by the SASL login according to smtpd_sender_login_maps; an address
    /// the map lists needs a login.
    fn sender_login_mismatch(&self, q: &RecipientQuery) -> Option<Option<Reply>> {
        let Some(sender) = &q.sender else {
            return None;
        };
        let owners = self.sender_owners(sender);
        let s = sender.internal();
        match (&q.sasl_user, owners) {
            (Some(user), Some(owners)) if owners.iter().any(|o| o.eq_ignore_ascii_case(user)) => {
                None
            }
            (Some(user), _) => reject(
                553,
                "5.7.1",
                format!("<{s}>: Sender address rejected: not owned by user {user}"),
            ),
            (None, Some(_)) => reject(
                553,
                "5.7.1",
                format!("<{s}>: Sender address rejected: not logged in"),
            ),
            (None, None) => None,
        }
    }

    /// VRFY (and the implicit smtpd_reject_unlisted_recipient): the
    /// resolver's verdict alone.
    pub fn verify(&self, addr: &Address) -> Option<Reply> {
        match self.resolver.check(addr).1 {
            Verdict::Accept => None,
            Verdict::Reject {
                code,
                enhanced,
                text,
                ..
            } => Some(Reply::new(code, &enhanced, text)),
        }
    }

    /// smtpd_sender_restrictions, smtpd_relay_restrictions, then
    /// smtpd_recipient_restrictions, then the implicit unlisted-recipient
    /// check (smtpd_reject_unlisted_recipient). `None`: accepted.
    pub async fn recipient(&self, client: &ClientInfo, q: &RecipientQuery) -> Option<Reply> {
        let addr = &q.recipient;
        let (class, verdict) = self.resolver.check(addr);
        let given = addr.internal();
        let unlisted = || match &verdict {
            Verdict::Reject {
                code,
                enhanced,
                text,
                ..
            } => Some(Reply::new(*code, enhanced, text.clone())),
            Verdict::Accept => None,
        };
        let r = &self.restrictions;
        for list in [&r.sender, &r.relay, &r.recipient] {
            for restriction in list.iter() {
                let decision = match restriction {
                    Restriction::Permit => Some(None),
                    Restriction::Reject => reject(554, "5.7.1", format!("<{given}>: Recipient address rejected: Access denied")),
                    Restriction::Defer => reject(450, "4.7.1", format!("<{given}>: Recipient address rejected: Access denied")),
                    Restriction::PermitMynetworks => client.in_mynetworks.then_some(None),
                    Restriction::PermitSaslAuthenticated => q.sasl_user.is_some().then_some(None),
                    Restriction::RejectSenderLoginMismatch => self.sender_login_mismatch(q),
                    // Only where this server is not the final destination (postconf(5)).
                    Restriction::RejectUnknownRecipientDomain if !class.is_final_destination() => {
                        self.unknown_domain(&addr.domain, &given).await
                    }
                    Restriction::RejectUnknownRecipientDomain => None,
                    Restriction::RejectUnauthDestination => (!class.is_authorized_destination())
                        .then(|| Some(Reply::new(554, "5.7.1", format!("<{given}>: Relay access denied")))),
                    Restriction::DeferUnauthDestination => (!class.is_authorized_destination())
                        .then(|| Some(Reply::new(454, "4.7.1", format!("<{given}>: Relay access denied")))),
                    Restriction::RejectUnlistedRecipient => unlisted().map(Some),
                    Restriction::RejectNonFqdnRecipient => (addr.domain.is_empty() || !is_fqdn_address(&addr.domain))
                        .then(|| Some(Reply::new(504, "5.5.2", format!("<{given}>: Recipient address rejected: need fully-qualified address")))),
                    Restriction::RejectNonFqdnSender => match &q.sender {
                        Some(s) if s.domain.is_empty() || !is_fqdn_address(&s.domain) => reject(
                            504,
                            "5.5.2",
                            format!("<{}>: Sender address rejected: need fully-qualified address", s.internal()),
                        ),
                        _ => None,
                    },
                    // Refused in these lists by Restrictions::new.
                    Restriction::RejectSpfFail
                    | Restriction::DeferSpfTemperror
                    | Restriction::RejectDmarcPolicy => None,
                };
                match decision {
                    Some(Some(reply)) => return Some(reply),
                    Some(None) => break, // permit ends this list
                    None => {}
                }
            }
        }
        unlisted()
    }

    async fn unknown_domain(&self, domain: &str, given: &str) -> Option<Option<Reply>> {
        let status = match &self.dns {
            Some(dns) => dns.domain(domain).await,
            None => DomainStatus::Exists,
        };
        match status {
            DomainStatus::Exists => None,
            DomainStatus::NotFound => reject(
                450,
                "4.1.2",
                format!("<{given}>: Recipient address rejected: Domain not found"),
            ),
            DomainStatus::TempFail(_) => reject(
                450,
                "4.4.3",
                format!("<{given}>: Recipient address rejected: Temporary DNS lookup failure"),
            ),
        }
    }

    /// The address class, for callers that only need it.
    pub fn class(&self, addr: &Address) -> Class {
        self.resolver.check(addr).0
    }
}
