//! TLS for the SMTP client with rustls, by `smtp_tls_security_level`
//! (postconf(5), TLS_README "Client-side TLS security levels"):
//!
//! - `none`: no STARTTLS.
//! - `may`: STARTTLS when offered, certificate not checked; a failed
//!   handshake makes the driver try the same host again in plaintext.
//! - `encrypt`: STARTTLS mandatory, certificate not checked.
//! - `verify`: mandatory, the chain must lead to `smtp_tls_CAfile` and the
//!   certificate must name the server host (the MX name, or the `[host]`).
//! - `secure`: as verify, but the certificate must name the nexthop
//!   domain (Postfix's default `smtp_tls_secure_cert_match = nexthop, dot-nexthop`).
//! - `dane`, `dane-only`: RFC 7672, decided per server in the `dane` module.
//!
//! As in Postfix (`tls_append_default_CA = no`), the system's CA bundle is
//! not trusted unless `smtp_tls_CAfile` names it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use yubin_smtp::client::StartTls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsLevel {
    None,
    May,
    Encrypt,
    Verify,
    Secure,
    /// RFC 7672: DANE where the server has DNSSEC-authenticated TLSA
    /// records, else opportunistic (`may`).
    Dane,
    /// DANE or no delivery.
    DaneOnly,
}

impl TlsLevel {
    /// `""` is `none` (Postfix's default; Debian's main.cf sets `may`).
    pub fn parse(s: &str) -> Result<TlsLevel, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(TlsLevel::None),
            "may" => Ok(TlsLevel::May),
            "encrypt" => Ok(TlsLevel::Encrypt),
            "verify" => Ok(TlsLevel::Verify),
            "secure" => Ok(TlsLevel::Secure),
            "dane" => Ok(TlsLevel::Dane),
            "dane-only" => Ok(TlsLevel::DaneOnly),
            "fingerprint" => Err(format!(
                "smtp_tls_security_level = {s}: not supported by yubin (use may, encrypt, verify, secure or dane)"
            )),
            o => Err(format!("smtp_tls_security_level: unknown level {o:?}")),
        }
    }

    pub fn starttls(self) -> StartTls {
        match self {
            TlsLevel::None => StartTls::Never,
            TlsLevel::May => StartTls::IfOffered,
            _ => StartTls::Required,
        }
    }

    pub fn verifies(self) -> bool {
        matches!(
            self,
            TlsLevel::Verify | TlsLevel::Secure | TlsLevel::Dane | TlsLevel::DaneOnly
        )
    }

    pub fn is_dane(self) -> bool {
        matches!(self, TlsLevel::Dane | TlsLevel::DaneOnly)
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsLevel::None => "none",
            TlsLevel::May => "may",
            TlsLevel::Encrypt => "encrypt",
            TlsLevel::Verify => "verify",
            TlsLevel::Secure => "secure",
            TlsLevel::Dane => "dane",
            TlsLevel::DaneOnly => "dane-only",
        }
    }
}

/// The two client configurations: one that checks nothing (may, encrypt;
/// signatures are still checked so the session keys are the peer's) and
/// one that verifies against the CA file.
#[derive(Clone)]
pub struct TlsClient {
    pub unverified: Arc<ClientConfig>,
    pub verified: Arc<ClientConfig>,
}

impl TlsClient {
    pub fn new(ca_file: Option<&Path>) -> Result<TlsClient, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        if let Some(path) = ca_file {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("smtp_tls_CAfile {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("smtp_tls_CAfile {}: bad PEM: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "smtp_tls_CAfile {}: no certificate in the file",
                    path.display()
                ));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("smtp_tls_CAfile {}: {e}", path.display()))?;
            }
        }
        let verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth();
        Ok(TlsClient {
            unverified: Arc::new(unverified),
            verified: Arc::new(verified),
        })
    }

    pub fn config(&self, level: TlsLevel) -> Arc<ClientConfig> {
        if level.verifies() {
            self.verified.clone()
        } else {
            self.unverified.clone()
        }
    }
}

/// The name the certificate must carry (SNI is sent for it too).
pub fn server_name(name: &str) -> ServerName<'static> {
    match name.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(name.to_string())
            .unwrap_or_else(|_| ServerName::IpAddress(IpAddr::from([0, 0, 0, 0]).into())),
    }
}

/// Opportunistic TLS (RFC 7435): any certificate, valid signatures.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(TlsLevel::parse("").unwrap(), TlsLevel::None);
        assert_eq!(
            TlsLevel::parse("MAY").unwrap().starttls(),
            StartTls::IfOffered
        );
        assert_eq!(
            TlsLevel::parse("verify").unwrap().starttls(),
            StartTls::Required
        );
        assert_eq!(TlsLevel::parse("dane-only").unwrap(), TlsLevel::DaneOnly);
        assert!(TlsLevel::parse("fingerprint")
            .unwrap_err()
            .contains("not supported"));
        assert!(TlsLevel::parse("maybe").is_err());
    }

    #[test]
    fn ca_file_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("empty.pem");
        std::fs::write(&f, "").unwrap();
        assert!(TlsClient::new(Some(&f))
            .err()
            .unwrap()
            .contains("no certificate"));
        assert!(TlsClient::new(Some(&dir.path().join("missing"))).is_err());
        assert!(TlsClient::new(None).is_ok());
    }
}
