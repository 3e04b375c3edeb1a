//! A client connection that starts in the clear and may switch to TLS
//! (STARTTLS), or starts in TLS (wrapped mode, port 465); or standard
//! input and output (`sendmail -bs`).

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

pub enum Conn {
    Plain(TcpStream),
    /// A UNIX-domain socket (yubin's `lmtpd` as a master.cf `unix` service).
    Unix(tokio::net::UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
    Stdio(tokio::io::Stdin, tokio::io::Stdout),
    /// Between states (a failed handshake consumed the stream).
    Closed,
}

impl Conn {
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Unix(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Stdio(i, _) => i.read(buf).await,
            Conn::Closed => Ok(0),
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Unix(s) => s.write_all(bytes).await,
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Stdio(_, o) => {
                o.write_all(bytes).await?;
                o.flush().await
            }
            Conn::Closed => Err(io::Error::new(io::ErrorKind::NotConnected, "closed")),
        }
    }

    pub async fn shutdown(&mut self) {
        match self {
            Conn::Plain(s) => {
                let _ = s.shutdown().await;
            }
            Conn::Unix(s) => {
                let _ = s.shutdown().await;
            }
            Conn::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Conn::Stdio(_, o) => {
                let _ = o.flush().await;
            }
            Conn::Closed => {}
        }
    }

    /// Runs the server side of the TLS handshake; returns the summary
    /// (`TLSv1.3 with cipher ...`). The plain stream's unread bytes are not
    /// carried over: only what arrives inside TLS counts (RFC 3207 section 4.2).
    pub async fn upgrade(&mut self, config: Arc<rustls::ServerConfig>) -> io::Result<String> {
        let tcp = match std::mem::replace(self, Conn::Closed) {
            Conn::Plain(tcp) => tcp,
            other => {
                let why = match other {
                    Conn::Unix(_) => "TLS over a UNIX-domain socket",
                    _ => "TLS already active",
                };
                *self = other;
                return Err(io::Error::other(why));
            }
        };
        let tls = TlsAcceptor::from(config).accept(tcp).await?;
        let summary = summary(tls.get_ref().1);
        *self = Conn::Tls(Box::new(tls));
        Ok(summary)
    }
}

/// `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`: the words
/// Postfix uses in its log line and Received: header.
pub fn summary(conn: &rustls::ServerConnection) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let (cipher, bits) = match conn.negotiated_cipher_suite() {
        Some(cs) => {
            let name = format!("{:?}", cs.suite());
            let name = name
                .strip_prefix("TLS13_")
                .map(|n| format!("TLS_{n}"))
                .unwrap_or(name);
            let bits = if name.contains("256") || name.contains("CHACHA20") {
                256
            } else {
                128
            };
            (name, bits)
        }
        None => ("unknown".to_string(), 0),
    };
    format!("{version} with cipher {cipher} ({bits}/{bits} bits)")
}
