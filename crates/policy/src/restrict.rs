//! smtpd access restrictions (postconf(5) smtpd_relay_restrictions,
//! smtpd_recipient_restrictions, smtpd_sender_restrictions): a list of
//! restrictions evaluated in order until one permits or rejects.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    Permit,
    Reject,
    Defer,
    PermitMynetworks,
    PermitSaslAuthenticated,
    RejectUnauthDestination,
    DeferUnauthDestination,
    RejectUnlistedRecipient,
    RejectNonFqdnRecipient,
    RejectNonFqdnSender,
    RejectSenderLoginMismatch,
    RejectUnknownRecipientDomain,
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

impl Restriction {
    /// Parses one restriction name; unknown or unimplemented ones are a
    /// configuration error, never silently skipped (an ignored
    /// reject_* would turn into an open door).
    pub fn parse(name: &str) -> Result<Restriction, RestrictionError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "permit" => Restriction::Permit,
            "reject" => Restriction::Reject,
            "defer" => Restriction::Defer,
            "permit_mynetworks" => Restriction::PermitMynetworks,
            "permit_sasl_authenticated" => Restriction::PermitSaslAuthenticated,
            "reject_unauth_destination" => Restriction::RejectUnauthDestination,
            "defer_unauth_destination" => Restriction::DeferUnauthDestination,
            "reject_unlisted_recipient" | "check_recipient_maps" => Restriction::RejectUnlistedRecipient,
            "reject_non_fqdn_recipient" => Restriction::RejectNonFqdnRecipient,
            "reject_non_fqdn_sender" => Restriction::RejectNonFqdnSender,
            "reject_sender_login_mismatch" => Restriction::RejectSenderLoginMismatch,
            "reject_unknown_recipient_domain" => Restriction::RejectUnknownRecipientDomain,
            "reject_spf_fail" => Restriction::RejectSpfFail,
            "defer_spf_temperror" => Restriction::DeferSpfTemperror,
            "reject_dmarc_policy" => Restriction::RejectDmarcPolicy,
            other => {
                return Err(RestrictionError(format!(
                    "unsupported restriction \"{other}\"; yubin implements permit, reject, defer, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, defer_unauth_destination, reject_unlisted_recipient, reject_non_fqdn_recipient, reject_non_fqdn_sender, reject_sender_login_mismatch, reject_unknown_recipient_domain, reject_spf_fail, defer_spf_temperror, reject_dmarc_policy"
                )))
            }
        })
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

    pub fn parse_list(items: &[String]) -> Result<Vec<Restriction>, RestrictionError> {
        items.iter().map(|i| Restriction::parse(i)).collect()
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
        let e = Restriction::parse("check_policy_service").unwrap_err().0;
        assert!(e.contains("unsupported restriction"));
        // Every name the error message offers really parses.
        let offered = e.split("yubin implements ").nth(1).unwrap();
        for name in offered.split(", ") {
            assert!(Restriction::parse(name).is_ok(), "{name}");
        }
        assert!(
            is_fqdn_address("mydomain.com")
                && !is_fqdn_address("localhost")
                && is_fqdn_address("[1.2.3.4]")
        );
    }
}
