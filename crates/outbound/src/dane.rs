//! DANE for SMTP (RFC 7672), `smtp_tls_security_level = dane | dane-only`.
//!
//! Trust model, as Postfix's (`smtp_dns_support_level = dnssec`): yubin
//! does not validate DNSSEC itself. It asks the resolver of resolv.conf (or
//! `dns_servers`) with the AD bit set (RFC 6840 section 5.7) and treats an
//! answer as authenticated only when the reply carries AD. That resolver
//! must therefore validate and be trusted (on this host). An answer without
//! AD is insecure: never used to authenticate a server.
//!
//! The per-host decision (RFC 7672 section 2.2, Postfix TLS_README "dane"):
//! - the MX RRset is insecure: `dane` behaves as `may`; `dane-only` defers;
//! - the TLSA lookup fails (SERVFAIL, timeout): that host is skipped with a
//!   deferral (a possible downgrade attack);
//! - no TLSA records, securely: `dane` is `may`; `dane-only` defers;
//! - TLSA records, insecure: as no records;
//! - secure TLSA records, none usable: TLS is mandatory, unauthenticated;
//! - usable ones (DANE-TA(2), DANE-EE(3); selector 0/1; matching 0/1/2):
//!   TLS is mandatory and the certificate must match them. PKIX-TA/EE
//!   (0, 1) are unusable for SMTP (RFC 7672 section 3.1.3).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One TLSA record (RFC 6698 section 2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// Usable for SMTP: DANE-TA or DANE-EE, known selector and matching
    /// type, data of the right length for a digest.
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3)
            && matches!(self.selector, 0 | 1)
            && match self.matching {
                0 => !self.data.is_empty(),
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// Whether `cert` (DER) matches this record's selector and matching type.
    pub fn matches(&self, cert: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert,
            1 => match spki(cert) {
                Some(s) => s,
                None => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == self.data,
            2 => ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == self.data,
            _ => false,
        }
    }
}

/// One DER element: (tag, contents, the whole element, the rest).
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn der(input: &[u8]) -> Option<Element<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((tag, &rest[..len], &input[..header + len], &rest[len..]))
}

/// The SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 section
/// 4.1): the seventh field of tbsCertificate when the version is present.
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, outer, _, _) = der(cert)? else {
        return None;
    };
    let (0x30, mut tbs, _, _) = der(outer)? else {
        return None;
    };
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs)?.3; // [0] EXPLICIT version
    }
    for _ in 0..5 {
        tbs = der(tbs)?.3; // serial, signature, issuer, validity, subject
    }
    let (tag, _, whole, _) = der(tbs)?;
    (tag == 0x30).then_some(whole)
}

/// A DNS answer and whether the resolver vouched for it (AD).
#[derive(Debug, Clone)]
pub struct Answer {
    pub authentic: bool,
    pub rcode: ResponseCode,
    pub records: Vec<RData>,
}

/// The resolvers to ask: `dns_servers`, else the `nameserver` lines of
/// /etc/resolv.conf.
pub fn resolvers(dns_servers: &[SocketAddr]) -> Vec<SocketAddr> {
    if !dns_servers.is_empty() {
        return dns_servers.to_vec();
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next()?.parse::<IpAddr>().ok())
                .flatten()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Asks for `name`/`rtype` with AD and DO set, over UDP, then TCP when the
/// answer is truncated; the first server that answers other than SERVFAIL
/// wins. Each server gets at most `limit`.
pub async fn query(
    servers: &[SocketAddr],
    name: &str,
    rtype: RecordType,
    limit: Duration,
) -> Result<Answer, String> {
    let qname = Name::from_ascii(name).map_err(|e| format!("bad name {name}: {e}"))?;
    let id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7)
        ^ std::process::id()) as u16;
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .set_authentic_data(true);
    msg.add_query(Query::query(qname, rtype));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true).set_max_payload(1232);
    msg.set_edns(edns);
    let wire = msg.to_vec().map_err(|e| e.to_string())?;
    let mut last = format!("no resolver to ask for {name} type={rtype}");
    for &server in servers {
        match tokio::time::timeout(limit, ask(server, &wire, id)).await {
            Ok(Ok(m)) if m.response_code() != ResponseCode::ServFail => {
                return Ok(Answer {
                    authentic: m.authentic_data(),
                    rcode: m.response_code(),
                    records: m
                        .answers()
                        .iter()
                        .filter(|r| r.record_type() == rtype)
                        .map(|r| r.data().clone())
                        .collect(),
                });
            }
            Ok(Ok(_)) => last = format!("{server}: SERVFAIL for {name} type={rtype}"),
            Ok(Err(e)) => last = format!("{server}: {e}"),
            Err(_) => last = format!("{server}: timeout for {name} type={rtype}"),
        }
    }
    Err(last)
}

async fn ask(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(wire).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
        let Ok(m) = Message::from_vec(&buf[..n]) else {
            continue; // not a DNS message: keep waiting (the timeout bounds it)
        };
        if m.id() != id || m.message_type() != MessageType::Response {
            continue;
        }
        if !m.truncated() {
            return Ok(m);
        }
        break;
    }
    // Truncated: the same question over TCP (RFC 7766).
    let mut tcp = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(wire);
    tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    tcp.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    let m = Message::from_vec(&body).map_err(|e| e.to_string())?;
    if m.id() != id {
        return Err("TCP answer with a wrong id".into());
    }
    Ok(m)
}

/// The TLSA records of a host, as far as DANE may use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaAnswer {
    /// Authenticated records (possibly none: a secure denial).
    Secure(Vec<Tlsa>),
    /// An answer without AD: not usable for DANE.
    Insecure,
}

/// `_port._tcp.host` TLSA.
pub async fn tlsa(
    servers: &[SocketAddr],
    host: &str,
    port: u16,
    limit: Duration,
) -> Result<TlsaAnswer, String> {
    let name = format!("_{port}._tcp.{}.", host.trim_end_matches('.'));
    let a = query(servers, &name, RecordType::TLSA, limit).await?;
    if !matches!(a.rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Err(format!("TLSA lookup error for {name}: {}", a.rcode));
    }
    if !a.authentic {
        return Ok(TlsaAnswer::Insecure);
    }
    let records = a
        .records
        .iter()
        .filter_map(|r| match r {
            RData::TLSA(t) => Some(Tlsa {
                usage: u8::from(t.cert_usage()),
                selector: u8::from(t.selector()),
                matching: u8::from(t.matching()),
                data: t.cert_data().to_vec(),
            }),
            _ => None,
        })
        .collect();
    Ok(TlsaAnswer::Secure(records))
}

/// Whether the MX RRset (or its denial) of `domain` is authenticated.
pub async fn mx_secure(
    servers: &[SocketAddr],
    domain: &str,
    limit: Duration,
) -> Result<bool, String> {
    let a = query(
        servers,
        &format!("{}.", domain.trim_end_matches('.')),
        RecordType::MX,
        limit,
    )
    .await?;
    Ok(a.authentic)
}

/// A client configuration that accepts exactly the certificates the usable
/// `records` allow (DANE-EE: the end entity matches, no name or expiry
/// check, RFC 7672 section 3.1.1; DANE-TA: a certificate of the chain
/// matches and the chain verifies up to it, naming the server, section
/// 3.1.2).
pub fn client_config(records: Vec<Tlsa>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = DaneVerifier {
        records: records.into_iter().filter(Tlsa::usable).collect(),
        provider: provider.clone(),
    };
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct DaneVerifier {
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .records
            .iter()
            .any(|r| r.usage == 3 && r.matches(end_entity))
        {
            return Ok(ServerCertVerified::assertion());
        }
        for r in self.records.iter().filter(|r| r.usage == 2) {
            for ta in intermediates.iter().filter(|c| r.matches(c)) {
                let mut roots = RootCertStore::empty();
                if roots.add(ta.clone().into_owned()).is_err() {
                    continue;
                }
                let v = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
                if v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .is_ok()
                {
                    return Ok(ServerCertVerified::assertion());
                }
            }
        }
        Err(rustls::Error::General(
            "no certificate of the server matches its DANE TLSA records".into(),
        ))
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_of_a_certificate_and_matching() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        let spki_der = key.public_key_der();
        assert_eq!(spki(&der), Some(spki_der.as_slice()));
        let digest = |alg, d: &[u8]| ring::digest::digest(alg, d).as_ref().to_vec();
        for (sel, m, data) in [
            (1, 1, digest(&ring::digest::SHA256, &spki_der)),
            (1, 2, digest(&ring::digest::SHA512, &spki_der)),
            (0, 1, digest(&ring::digest::SHA256, &der)),
            (0, 0, der.clone()),
            (1, 0, spki_der.clone()),
        ] {
            let t = Tlsa {
                usage: 3,
                selector: sel,
                matching: m,
                data,
            };
            assert!(t.usable() && t.matches(&der), "{sel} {m}");
        }
        let wrong = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: vec![0; 32],
        };
        assert!(!wrong.matches(&der));
        assert!(
            !Tlsa {
                usage: 1,
                ..wrong.clone()
            }
            .usable(),
            "PKIX-EE"
        );
        assert!(
            !Tlsa {
                data: vec![0; 31],
                ..wrong
            }
            .usable(),
            "short digest"
        );
        // Garbage never panics.
        for n in 0..der.len().min(64) {
            let _ = spki(&der[..n]);
        }
        assert_eq!(spki(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
