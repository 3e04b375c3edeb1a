//! The TLS client (RFC 3207 STARTTLS and TLS-on-connect, RFC 8314) with
//! rustls. Like swaks, the server certificate is not verified unless
//! `--tls-verify` is given (swaks(1): "By default, Swaks does not attempt
//! certificate verification"); then the system store (or `--tls-ca-path`)
//! is used.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    StreamOwned,
};

use crate::certname::subject_oneline;
use crate::conn::Link;

/// The `--tls-*` options.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub verify: bool,
    pub ca_path: Option<PathBuf>,
    pub sni: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What swaks prints after a handshake.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// `TLSv1.3:TLS_AES_256_GCM_SHA384:256` (version:cipher:bits, OpenSSL names).
    pub cipher: String,
    pub peer_dn: String,
    pub local_dn: Option<String>,
}

/// Accepts any server certificate but still checks the handshake
/// signatures, so the session is at least bound to the presented key.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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

fn roots(opts: &TlsOptions) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = match &opts.ca_path {
        Some(path) if path.is_dir() => {
            let mut all = Vec::new();
            let entries =
                std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for entry in entries.flatten() {
                if let Ok(iter) = CertificateDer::pem_file_iter(entry.path()) {
                    all.extend(iter.flatten());
                }
            }
            all
        }
        Some(path) => CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("Unable to read CA file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("Unable to parse CA file {}: {e}", path.display()))?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err("no usable CA certificates for --tls-verify".into());
    }
    Ok(store)
}

fn config(opts: &TlsOptions) -> Result<(ClientConfig, Option<String>), String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if opts.verify {
        builder.with_root_certificates(roots(opts)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    };
    match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| format!("Unable to add cert file {}: {e}", cert.display()))?;
            let local_dn = chain.first().and_then(|c| subject_oneline(c));
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("Unable to add key file {}: {e}", key.display()))?;
            let cfg = builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?;
            Ok((cfg, local_dn))
        }
        (None, None) => Ok((builder.with_no_client_auth(), None)),
        _ => Err("--tls-cert and --tls-key require each other".into()),
    }
}

/// Wraps a link in TLS after the handshake.
struct TlsLink(StreamOwned<ClientConnection, Box<dyn Link>>);

impl io::Read for TlsLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl io::Write for TlsLink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Link for TlsLink {
    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.0.sock.set_timeout(t)
    }
}

/// OpenSSL's name for a rustls cipher suite, so the transcript reads as
/// swaks' does.
fn openssl_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    if let Some(rest) = name.strip_prefix("TLS13_") {
        return format!("TLS_{rest}");
    }
    if let Some(rest) = name.strip_prefix("TLS_ECDHE_") {
        let (kx, cipher) = rest.split_once("_WITH_").unwrap_or((rest, ""));
        let cipher = cipher
            .replace("AES_128_GCM", "AES128-GCM")
            .replace("AES_256_GCM", "AES256-GCM")
            .replace("CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305")
            .replace('_', "-");
        let kx = if kx == "RSA" {
            "ECDHE-RSA".to_string()
        } else {
            format!("ECDHE-{kx}")
        };
        return format!("{kx}-{cipher}");
    }
    name
}

/// Runs the handshake over `link` and returns the encrypted link.
pub fn start(
    mut link: Box<dyn Link>,
    host: &str,
    opts: &TlsOptions,
) -> Result<(Box<dyn Link>, TlsInfo), String> {
    let (cfg, local_dn) = config(opts)?;
    let name_text = opts.sni.clone().unwrap_or_else(|| host.to_string());
    let name = ServerName::try_from(name_text.clone())
        .or_else(|_| ServerName::try_from("localhost".to_string()))
        .map_err(|e| format!("bad server name {name_text}: {e}"))?;
    let mut conn = ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut link)
            .map_err(|e| crate::conn::describe(&e))?;
    }
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    let suite = conn
        .negotiated_cipher_suite()
        .ok_or("empty response from get_cipher()")?
        .suite();
    let bits = if format!("{suite:?}").contains("AES_128") {
        128
    } else {
        256
    };
    let peer_dn = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| subject_oneline(c))
        .ok_or("error response from get_peer_certificate()")?;
    let info = TlsInfo {
        cipher: format!("{version}:{}:{bits}", openssl_name(suite)),
        peer_dn,
        local_dn,
    };
    Ok((Box::new(TlsLink(StreamOwned::new(conn, link))), info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_follow_openssl() {
        assert_eq!(
            openssl_name(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            openssl_name(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
            "ECDHE-RSA-AES256-GCM-SHA384"
        );
    }

    #[test]
    fn cert_without_key_is_an_error() {
        let opts = TlsOptions {
            cert: Some("/nonexistent".into()),
            ..TlsOptions::default()
        };
        assert!(config(&opts).unwrap_err().contains("require each other"));
    }
}
