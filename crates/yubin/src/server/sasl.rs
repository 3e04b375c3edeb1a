//! SMTP AUTH backed by the `auth` crate: Dovecot's passwd-file user
//! database (`smtpd_sasl_type = passwd-file`, `smtpd_sasl_path = FILE`,
//! Postfix's own parameters with a new type) and its SASL mechanisms; or a
//! running Dovecot's auth socket (`smtpd_sasl_type = dovecot`, Postfix's
//! xsasl_dovecot), whose protocol lines `yubin_auth::dovecot` builds and
//! parses; this file only moves them over the socket.

use std::sync::Arc;

use anyhow::bail;
use yubin_auth::passwd_file::SharedUserDb;
use yubin_auth::sasl::{FailureReason, Mechanism, SaslServer, Step};
use yubin_conf::Config;
use yubin_smtp::{Authenticator, SaslContext, SaslExchange, SaslStep};

struct PasswdFileAuth {
    db: Arc<SharedUserDb>,
    hostname: String,
    mechanisms: Vec<Mechanism>,
}

struct Exchange {
    server: SaslServer,
    db: Arc<SharedUserDb>,
}

/// The log text of a failure, in the form Postfix logs with Dovecot SASL
/// (`SASL LOGIN authentication failed: UGFzc3dvcmQ6`), which fail2ban's
/// postfix-sasl filter and yubin guard match. The precise reason (unknown
/// user or wrong password) is never shown to the client.
fn log_reason(mech: Mechanism, reason: &FailureReason) -> String {
    match (mech, reason) {
        (Mechanism::Login, _) => "UGFzc3dvcmQ6".into(),
        (_, FailureReason::BadBase64)
        | (_, FailureReason::Malformed(_))
        | (_, FailureReason::TooLong) => "bad protocol".into(),
        _ => "authentication failure".into(),
    }
}

fn convert(mech: Mechanism, step: Step) -> SaslStep {
    match step {
        Step::Challenge(c) => SaslStep::Challenge(c),
        Step::Success { authcid } => SaslStep::Success(authcid),
        Step::Failure(r) => SaslStep::Failure(log_reason(mech, &r)),
    }
}

impl SaslExchange for Exchange {
    fn step(&mut self, response: &[u8]) -> SaslStep {
        let mech = self.server.mechanism();
        convert(mech, self.server.step(response, &*self.db))
    }
}

impl Authenticator for PasswdFileAuth {
    fn mechanisms(&self) -> Vec<String> {
        self.mechanisms
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }

    fn start(
        &self,
        mechanism: &str,
        initial: Option<&[u8]>,
        _context: &SaslContext,
    ) -> Option<(Box<dyn SaslExchange>, SaslStep)> {
        let mech = Mechanism::from_name(mechanism).filter(|m| self.mechanisms.contains(m))?;
        let (server, step) = SaslServer::start(mech, initial, &self.hostname, &*self.db);
        Some((
            Box::new(Exchange {
                server,
                db: self.db.clone(),
            }),
            convert(mech, step),
        ))
    }
}

/// The authenticator of a service, or `None` when smtpd_sasl_auth_enable = no.
pub fn authenticator(cfg: &Config) -> anyhow::Result<Option<Arc<dyn Authenticator>>> {
    if !cfg.bool("smtpd_sasl_auth_enable")? {
        return Ok(None);
    }
    match cfg.get("smtpd_sasl_type") {
        "passwd-file" => {}
        "dovecot" => return Ok(Some(Arc::new(super::dovecot_auth::DovecotAuth::from_config(cfg)?))),
        other => bail!(
            "{}: smtpd_sasl_type = {other}: yubin supports dovecot (Dovecot's auth socket) and passwd-file (Dovecot's user file format)",
            cfg.origin_text("smtpd_sasl_type")
        ),
    }
    // passwd-file, or users in PostgreSQL (smtpd_sasl_path = pgsql:FILE).
    let db = Arc::new(crate::userdb::open(cfg.dir(), cfg.get("smtpd_sasl_path"))?);
    let mut mechanisms = Vec::new();
    for name in cfg.list("smtpd_sasl_mechanisms") {
        match Mechanism::from_name(&name) {
            Some(m) => mechanisms.push(m),
            None => bail!("{}: smtpd_sasl_mechanisms: unknown mechanism {name} (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256)", cfg.origin_text("smtpd_sasl_mechanisms")),
        }
    }
    for opt in cfg.list("smtpd_sasl_security_options") {
        if opt != "noanonymous" {
            bail!("smtpd_sasl_security_options = {opt}: yubin implements noanonymous (it never offers ANONYMOUS); use smtpd_tls_auth_only for TLS-only AUTH");
        }
    }
    Ok(Some(Arc::new(PasswdFileAuth {
        db,
        hostname: cfg.get("myhostname").to_string(),
        mechanisms,
    })))
}
