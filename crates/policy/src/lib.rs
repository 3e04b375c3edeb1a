//! smtpd's access policy: the `smtpd_*_restrictions` lists evaluated for a
//! recipient the SMTP session asks about, with the lookups they need
//! (address resolution, smtpd_sender_login_maps, DNS). It answers with the
//! reject reply or nothing; it must not speak SMTP or touch a socket.

pub mod restrict;

use std::sync::Arc;

use yubin_addr::{Address, Class, Resolver, Verdict};
use yubin_dns::{Dns, DomainStatus};
use yubin_smtp::{ClientInfo, RecipientQuery, Reply};
use yubin_table::{Maps, TableError};

pub use restrict::{is_fqdn_address, Restriction, RestrictionError};

/// The three lists, in the order smtpd evaluates them at RCPT time
/// (smtpd_delay_reject = yes: sender restrictions wait for RCPT).
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
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
            sender,
            relay,
            recipient,
            relay_before_recipient: true,
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

    /// reject_sender_login_mismatch (postconf(5)): the sender must be owned
    /// by the SASL login according to smtpd_sender_login_maps; an address
    /// the map lists needs a login.
    async fn sender_login_mismatch(&self, q: &RecipientQuery) -> Option<Option<Reply>> {
        let Some(sender) = &q.sender else {
            return None;
        };
        let s = sender.internal();
        let owners = match self.sender_owners_async(sender).await {
            Ok(o) => o,
            // smtpd_check.c reject_dict_retry.
            Err(_) => return reject(451, "4.3.0", format!("<{s}>: Temporary lookup failure")),
        };
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

    /// smtpd_sender_restrictions, smtpd_relay_restrictions, then
    /// smtpd_recipient_restrictions (or those two swapped, see
    /// `relay_before_recipient`), then the implicit unlisted-recipient
    /// check (smtpd_reject_unlisted_recipient). `None`: accepted.
    pub async fn recipient(&self, client: &ClientInfo, q: &RecipientQuery) -> Option<Reply> {
        let addr = &q.recipient;
        let (class, verdict) = self.check(addr).await;
        // A table that could not answer (the class or the recipient):
        // "451 4.3.0 Temporary lookup failure" before any restriction
        // decides on a guess (smtpd_check.c reject_dict_retry).
        if let Verdict::Reject {
            code: 451,
            enhanced,
            text,
            ..
        } = &verdict
        {
            if enhanced == "4.3.0" {
                return Some(Reply::new(451, enhanced, text.clone()));
            }
        }
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
        let lists = if r.relay_before_recipient {
            [&r.sender, &r.relay, &r.recipient]
        } else {
            [&r.sender, &r.recipient, &r.relay]
        };
        for list in lists {
            for restriction in list.iter() {
                let decision = match restriction {
                    Restriction::Permit => Some(None),
                    Restriction::Reject => reject(554, "5.7.1", format!("<{given}>: Recipient address rejected: Access denied")),
                    Restriction::Defer => reject(450, "4.7.1", format!("<{given}>: Recipient address rejected: Access denied")),
                    Restriction::PermitMynetworks => client.in_mynetworks.then_some(None),
                    Restriction::PermitSaslAuthenticated => q.sasl_user.is_some().then_some(None),
                    Restriction::RejectSenderLoginMismatch => self.sender_login_mismatch(q).await,
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
    pub async fn class(&self, addr: &Address) -> Class {
        self.check(addr).await.0
    }
}
