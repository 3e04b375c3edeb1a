//! TLS for smtpd with rustls: the server configuration from Postfix's
//! parameters (postconf(5) smtpd_tls_*), and the self-signed certificate the
//! embedded default makes for itself.
//!
//! rustls speaks only TLS 1.2 and 1.3, so SSLv2/v3 and TLS 1.0/1.1 are never
//! negotiated whatever `smtpd_tls_protocols` says; `!TLSv1.2` removes 1.2.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use yubin_conf::Config;

/// What a service does with TLS.
#[derive(Clone)]
pub struct TlsPolicy {
    pub config: Option<Arc<ServerConfig>>,
    /// STARTTLS offered.
    pub offered: bool,
    /// smtpd_tls_security_level = encrypt.
    pub required: bool,
    /// smtpd_tls_wrappedmode = yes (SMTPS, port 465).
    pub wrapped: bool,
    pub loglevel: u64,
}

fn versions(spec: &str) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let excluded = |name: &str| {
        spec.split([',', ' ', ':'])
            .any(|w| w.trim() == format!("!{name}"))
    };
    let mut v = Vec::new();
    if !excluded("TLSv1.3") {
        v.push(&rustls::version::TLS13);
    }
    if !excluded("TLSv1.2") {
        v.push(&rustls::version::TLS12);
    }
    v
}

fn load_pem(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("smtpd_tls_cert_file {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("smtpd_tls_cert_file {}: bad PEM", cert.display()))?;
    if certs.is_empty() {
        bail!(
            "smtpd_tls_cert_file {}: no certificate in the file",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "smtpd_tls_key_file {}: no usable private key",
            key.display()
        )
    })?;
    Ok((certs, key))
}

/// Builds the TLS policy of one service from its (overridden) configuration.
pub fn policy(cfg: &Config) -> anyhow::Result<TlsPolicy> {
    let level = cfg.get("smtpd_tls_security_level").to_ascii_lowercase();
    let wrapped = cfg.bool("smtpd_tls_wrappedmode")?;
    let want = wrapped || matches!(level.as_str(), "may" | "encrypt");
    if !matches!(level.as_str(), "" | "none" | "may" | "encrypt") {
        bail!(
            "{}: smtpd_tls_security_level = {level}: expected none, may or encrypt",
            cfg.origin_text("smtpd_tls_security_level")
        );
    }
    let mut p = TlsPolicy {
        config: None,
        offered: false,
        required: level == "encrypt",
        wrapped,
        loglevel: cfg.u64("smtpd_tls_loglevel").unwrap_or(0),
    };
    if !want {
        p.required = false;
        return Ok(p);
    }
    let (cert, key) = {
        let chain = cfg.list("smtpd_tls_chain_files");
        if let Some(first) = chain.first() {
            (
                first.clone(),
                chain.get(1).cloned().unwrap_or_else(|| first.clone()),
            )
        } else {
            (
                cfg.get("smtpd_tls_cert_file").to_string(),
                cfg.get("smtpd_tls_key_file").to_string(),
            )
        }
    };
    if cert.is_empty() {
        if p.required || wrapped {
            bail!("smtpd_tls_security_level = encrypt (or wrapped mode) needs smtpd_tls_cert_file");
        }
        // Postfix: "cannot get RSA certificate ...: disabling TLS support".
        eprintln!("yubin: warning: smtpd_tls_security_level = may without smtpd_tls_cert_file: TLS support disabled");
        return Ok(p);
    }
    let (certs, key) = load_pem(Path::new(&cert), Path::new(&key))?;
    let protocols = if p.required {
        cfg.get("smtpd_tls_mandatory_protocols")
    } else {
        cfg.get("smtpd_tls_protocols")
    };
    let versions = versions(protocols);
    if versions.is_empty() {
        bail!("smtpd_tls_protocols excludes both TLSv1.2 and TLSv1.3");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| anyhow!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("smtpd_tls_cert_file {cert}: {e}"))?;
    p.config = Some(Arc::new(config));
    p.offered = !wrapped;
    Ok(p)
}

/// Writes a self-signed certificate for `hostname` (the embedded default).
pub fn self_signed(dir: &Path, hostname: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let key = rcgen::KeyPair::generate().map_err(|e| anyhow!("generate key: {e}"))?;
    let params = rcgen::CertificateParams::new(vec![hostname.to_string(), "localhost".to_string()])
        .map_err(|e| anyhow!("certificate parameters: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| anyhow!("self-sign: {e}"))?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640))?;
    }
    Ok(())
}
