//! DKIM signing of outgoing mail (RFC 6376; Ed25519 per RFC 8463) with the
//! `mail-auth` crate: keys made by `yubin dkim keygen`, a signing table
//! from sender domain to `selector:keyfile` (like OpenDKIM's SigningTable
//! and KeyTable in one), relaxed/relaxed canonicalization, rsa-sha256 or
//! ed25519-sha256.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use yubin_table::Maps;

/// The headers signed when present (OpenDKIM's default set, less the
/// trace and list headers that lists rewrite).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// rsa-sha256 (every verifier knows it).
    Rsa { bits: usize },
    /// ed25519-sha256 (RFC 8463; sign with both where old verifiers matter).
    Ed25519,
}

/// A new key: the private key as PEM and the DNS TXT value for
/// `SELECTOR._domainkey.DOMAIN`.
pub struct NewKey {
    pub private_pem: String,
    pub txt: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Makes a key pair (RFC 6376 section 3.6.1 for the TXT record: the RSA
/// public key as SubjectPublicKeyInfo, the Ed25519 one as its 32 octets).
pub fn keygen(alg: Algorithm) -> Result<NewKey, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match alg {
        Algorithm::Rsa { bits } => {
            if !(1024..=4096).contains(&bits) {
                return Err(format!(
                    "RSA key size {bits}: use 1024 to 4096 (2048 recommended)"
                ));
            }
            let key = rsa::RsaPrivateKey::new(&mut rand_core(), bits).map_err(|e| e.to_string())?;
            let private = key.to_pkcs1_der().map_err(|e| e.to_string())?;
            let public = rsa::RsaPublicKey::from(&key)
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            Ok(NewKey {
                private_pem: pem("RSA PRIVATE KEY", private.as_bytes()),
                txt: format!("v=DKIM1; k=rsa; p={}", b64.encode(public.as_bytes())),
            })
        }
        Algorithm::Ed25519 => {
            let pair = mail_auth::dkim::generate::DkimKeyPair::generate_ed25519()
                .map_err(|e| e.to_string())?;
            Ok(NewKey {
                private_pem: pem("PRIVATE KEY", pair.private_key()),
                txt: format!("v=DKIM1; k=ed25519; p={}", pair.encoded_public_key()),
            })
        }
    }
}

fn rand_core() -> rsa::rand_core::OsRng {
    rsa::rand_core::OsRng
}

/// The ready signer (mail-auth's builder, completed once at load time).
enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// Signs for one domain with one selector and key.
pub struct Signer {
    pub domain: String,
    pub selector: String,
    pub key_file: PathBuf,
    key: Key,
}

fn complete<T: SigningKey>(key: T, domain: &str, selector: &str) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

impl Signer {
    /// Loads a PEM key: `RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY`
    /// (PKCS#8, RSA or Ed25519).
    pub fn load(domain: &str, selector: &str, key_file: &Path) -> Result<Signer, String> {
        let text = std::fs::read_to_string(key_file)
            .map_err(|e| format!("DKIM key {}: {e}", key_file.display()))?;
        let bad = |e: String| format!("DKIM key {}: {e}", key_file.display());
        let domain = domain.to_ascii_lowercase();
        let der = PrivateKeyDer::from_pem_slice(text.as_bytes())
            .map_err(|e| bad(format!("no PEM private key in the file ({e:?})")))?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(p8) => match Ed25519Key::from_pkcs8_der(p8.secret_pkcs8_der()) {
                Ok(k) => Key::Ed25519(complete(k, &domain, selector)),
                Err(_) => Key::Rsa(complete(
                    RsaKey::<Sha256>::from_key_der(der.clone_key())
                        .map_err(|e| bad(e.to_string()))?,
                    &domain,
                    selector,
                )),
            },
            _ => Key::Rsa(complete(
                RsaKey::<Sha256>::from_key_der(der.clone_key()).map_err(|e| bad(e.to_string()))?,
                &domain,
                selector,
            )),
        };
        Ok(Signer {
            domain,
            selector: selector.to_string(),
            key_file: key_file.to_path_buf(),
            key,
        })
    }

    /// The `DKIM-Signature:` header field (folded, CRLF-ended) for the
    /// message as it will be sent (CRLF line ends).
    pub fn sign(&self, message_crlf: &[u8]) -> Result<String, String> {
        let sig = match &self.key {
            Key::Rsa(s) => s.sign(message_crlf),
            Key::Ed25519(s) => s.sign(message_crlf),
        };
        sig.map(|s| s.to_header())
            .map_err(|e| format!("DKIM signing for {}: {e}", self.domain))
    }
}

/// The signing table (`yubin_dkim_signing_maps`): sender domain ->
/// `selector:/path/to/key`. Keys are loaded once, at start and reload.
#[derive(Default)]
pub struct SigningTable {
    signers: Vec<Signer>,
}

impl SigningTable {
    /// Every entry of the table(s): each value `selector:keyfile`.
    pub fn load(maps: &Maps) -> Result<SigningTable, String> {
        let mut signers = Vec::new();
        for t in &maps.tables {
            for (domain, value) in t.dump().map_err(|e| e.to_string())? {
                let (selector, file) = value.split_once(':').ok_or_else(|| {
                    format!("{}: {domain}: value must be selector:keyfile", t.spec())
                })?;
                signers.push(Signer::load(
                    &domain,
                    selector.trim(),
                    Path::new(file.trim()),
                )?);
            }
        }
        Ok(SigningTable { signers })
    }

    pub fn from_signers(signers: Vec<Signer>) -> SigningTable {
        SigningTable { signers }
    }

    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The signer for a sender address: its domain, then each parent
    /// domain (`mail.example.com`, `example.com`).
    pub fn for_sender(&self, sender: &str) -> Option<&Signer> {
        let domain = sender.rsplit_once('@')?.1.to_ascii_lowercase();
        let mut d = domain.as_str();
        loop {
            if let Some(s) = self.signers.iter().find(|s| s.domain == d) {
                return Some(s);
            }
            d = d.split_once('.')?.1;
        }
    }
}
