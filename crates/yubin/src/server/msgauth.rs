//! The end of DATA with yubin-msgauth (issue 14, docs/msgauth.md): wiring
//! only. When `msgauth_enable = yes`, each message received by smtpd is
//! judged once (SPF, DKIM, DMARC), any Authentication-Results header that
//! claims our authserv-id is removed (RFC 8601 section 5), ours is
//! prepended, the verdict is logged, and `smtpd_end_of_data_restrictions`
//! may refuse the message before it is queued.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use yubin_conf::Config;
use yubin_dns::Dns;
use yubin_msgauth::{Disposition, DmarcResult, Envelope as AuthEnvelope, Settings, SpfResult};
use yubin_policy::restrict::Restriction;
use yubin_smtp::{ClientInfo, Envelope, Reply};

use super::runtime::Shared;

/// One service's message authentication: its settings, the resolver, and
/// the end-of-data restrictions.
pub struct MsgAuth {
    pub settings: Settings,
    pub dns: Arc<Dns>,
    pub end_of_data: Vec<Restriction>,
}

/// `None` when msgauth_enable = no (Postfix's behaviour: no checks).
pub fn from_config(cfg: &Config, dns: &Arc<Dns>) -> Result<Option<Arc<MsgAuth>>> {
    let end_of_data = Restriction::parse_list(&cfg.list("smtpd_end_of_data_restrictions"))
        .map_err(|e| anyhow!("smtpd_end_of_data_restrictions: {e}"))?;
    for r in &end_of_data {
        if !matches!(
            r,
            Restriction::Permit
                | Restriction::PermitMynetworks
                | Restriction::PermitSaslAuthenticated
                | Restriction::Reject
                | Restriction::Defer
                | Restriction::RejectSpfFail
                | Restriction::DeferSpfTemperror
                | Restriction::RejectDmarcPolicy
        ) {
            bail!("smtpd_end_of_data_restrictions: {r:?} is not evaluated at the end of DATA by yubin (permit, permit_mynetworks, permit_sasl_authenticated, reject, defer, reject_spf_fail, defer_spf_temperror, reject_dmarc_policy are)");
        }
    }
    if !cfg.bool("msgauth_enable")? {
        // Never ignored in silence: yubin evaluates the list where it
        // judges the message.
        if !end_of_data.is_empty() {
            bail!("smtpd_end_of_data_restrictions is evaluated by yubin with msgauth_enable = yes only (docs/msgauth.md)");
        }
        return Ok(None);
    }
    let mut settings = Settings::new(cfg.get("msgauth_authserv_id"));
    settings.time_limit = Duration::from_secs(cfg.time("msgauth_time_limit", 's')?.max(1));
    settings.query_timeout = settings.time_limit.min(Duration::from_secs(5));
    settings.max_signatures = cfg.u64("msgauth_max_signatures")? as usize;
    Ok(Some(Arc::new(MsgAuth {
        settings,
        dns: dns.clone(),
        end_of_data,
    })))
}

/// Judges `data`, logs, and returns the message to queue (our header in,
/// forged ones out) or the refusal.
pub async fn end_of_data(
    ma: &MsgAuth,
    shared: &Shared,
    client: &ClientInfo,
    env: &Envelope,
    data: Vec<u8>,
) -> Result<Vec<u8>, Reply> {
    let id = &env.queue_id;
    // A SASL-authenticated client is our own user submitting: SPF and DMARC
    // judge the path from the author's domain to us, which submission is
    // not (OpenDKIM and OpenDMARC skip authenticated clients likewise).
    if env.auth_user.is_some() {
        shared.log.log(
            "smtpd",
            &format!("{id}: msgauth: skipped, SASL-authenticated client"),
        );
        return Ok(data);
    }
    let (data, forged) = {
        let (d, n) = yubin_msgauth::results::strip_ours(&data, &ma.settings.authserv_id);
        (d.into_owned(), n)
    };
    if forged > 0 {
        shared.log.log(
            "smtpd",
            &format!("{id}: msgauth: removed {forged} Authentication-Results header(s) claiming authserv-id {}", ma.settings.authserv_id),
        );
    }
    let auth_env = AuthEnvelope {
        client_ip: client.addr,
        helo: env.helo.clone(),
        mail_from: env
            .sender
            .as_ref()
            .map(|a| a.internal())
            .unwrap_or_default(),
    };
    let source = yubin_msgauth::Source::Hickory(ma.dns.resolver().clone());
    let report = yubin_msgauth::authenticate(source, &ma.settings, &auth_env, &data).await;
    shared
        .log
        .log("smtpd", &format!("{id}: msgauth: {}", report.log_text()));
    let sender = auth_env.mail_from.as_str();
    if let Some((_, reply)) =
        restriction_verdict(ma, &report, client.addr, client.in_mynetworks, sender)
    {
        // Postfix's form for an end-of-data refusal (smtpd_check.c).
        let rcpt = env
            .recipients
            .first()
            .map(|r| r.address.internal())
            .unwrap_or_default();
        shared.log.log(
            "smtpd",
            &format!(
                "{id}: reject: END-OF-MESSAGE from {}: {} {} {}; from=<{sender}> to=<{rcpt}> proto={} helo=<{}>",
                client.label(),
                reply.code,
                reply.enhanced.map(|e| e.to_string()).unwrap_or_default(),
                reply.text.join(" "),
                env.protocol,
                env.helo
            ),
        );
        return Err(reply);
    }
    // The queue file keeps LF line ends, as the rest of the message.
    let mut out = report.header().replace("\r\n", "\n").into_bytes();
    out.extend_from_slice(&data);
    Ok(out)
}

/// The first of smtpd_end_of_data_restrictions that decides, with its
/// reply; None: accepted.
pub fn restriction_verdict(
    ma: &MsgAuth,
    report: &yubin_msgauth::Report,
    client: std::net::IpAddr,
    in_mynetworks: bool,
    sender: &str,
) -> Option<(Restriction, Reply)> {
    for r in &ma.end_of_data {
        let reply = match r {
            Restriction::Permit => return None,
            Restriction::PermitMynetworks if in_mynetworks => return None,
            // SASL-authenticated clients are not judged at all (above).
            Restriction::Reject => Some(Reply::new(554, "5.7.1", "<END-OF-MESSAGE>: End-of-data rejected: Access denied")),
            Restriction::Defer => Some(Reply::new(450, "4.7.1", "<END-OF-MESSAGE>: End-of-data rejected: Access denied")),
            // RFC 7372 section 3.2: 5.7.23 "SPF validation failed".
            Restriction::RejectSpfFail if report.spf_mailfrom.result == SpfResult::Fail => Some(Reply::new(
                550,
                "5.7.23",
                format!("<{sender}>: SPF validation failed: {} does not permit {client} to send its mail", report.spf_mailfrom.domain),
            )),
            // RFC 7372 section 3.2: 4.7.24 "SPF validation error".
            Restriction::DeferSpfTemperror if report.spf_mailfrom.result == SpfResult::TempError => Some(Reply::new(
                451,
                "4.7.24",
                format!("<{sender}>: SPF validation error: temporary DNS failure for {}", report.spf_mailfrom.domain),
            )),
            // p=reject honoured (after pct=); quarantine is marked in the
            // header (dis=quarantine), not refused.
            Restriction::RejectDmarcPolicy
                if report.dmarc.result == DmarcResult::Fail
                    && report.dmarc.disposition == Disposition::Reject =>
            {
                Some(Reply::new(
                    550,
                    "5.7.1",
                    format!("Message rejected per DMARC policy for {}", report.dmarc.from_domain),
                ))
            }
            _ => None,
        };
        if let Some(reply) = reply {
            return Some((r.clone(), reply));
        }
    }
    None
}
