//! The driver loop. A core turns input into [`Step`]s; the driver performs
//! them in order: writes, sleeps (error tarpits), log lines, the TLS
//! handshake, closing; and hands each request ("check this recipient",
//! "verify these credentials", "queue this message") to the [`Handler`],
//! whose answer the core turns into more steps. The next read happens only
//! when every step is done, so pipelined commands are answered in order
//! (RFC 2920 section 3.1).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::stream::Conn;

/// One thing the driver must do.
#[derive(Debug)]
pub enum Step<A> {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Wait before going on.
    Delay(Duration),
    /// A log line of the protocol's daemon (`smtpd`, `imap`).
    Log(String),
    /// Run the server side of the TLS handshake, then tell the core.
    StartTls,
    /// Close after what came before.
    Close,
    /// A request for the handler; its answer goes back to the core.
    Ask(A),
}

/// An I/O-free protocol core as the driver sees it.
pub trait Core {
    type Ask;
    fn feed(&mut self, input: &[u8]) -> Vec<Step<Self::Ask>>;
    /// The read timeout fired.
    fn timeout(&mut self) -> Vec<Step<Self::Ask>>;
    /// The TLS handshake finished with this summary (`TLSv1.3 with ...`).
    fn tls_started(&mut self, summary: String) -> Vec<Step<Self::Ask>>;
    fn is_closed(&self) -> bool;
    /// The last command, for `lost connection after DATA`.
    fn last_command(&self) -> &'static str;
}

/// The server side: answers requests and writes the log.
pub trait Handler<C: Core> {
    fn answer(
        &mut self,
        core: &mut C,
        ask: C::Ask,
    ) -> impl Future<Output = Vec<Step<C::Ask>>> + Send;
    fn log(&self, text: &str);
}

/// How a connection is driven.
pub struct Options {
    /// The read timeout (smtpd_timeout) and the TLS handshake's.
    pub timeout: Duration,
    /// For STARTTLS; `None` when TLS is not offered.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `name[addr]` for the log lines.
    pub label: String,
    /// Log the established TLS session (smtpd_tls_loglevel >= 1).
    pub log_tls: bool,
    /// Ends the session with `shutdown_reply` when notified.
    pub shutdown: Option<Arc<tokio::sync::Notify>>,
    pub shutdown_reply: Vec<u8>,
    /// Bytes read at once.
    pub read_size: usize,
}

/// How the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The core closed it (QUIT, too many errors, timeout).
    Closed,
    /// The client went away (EOF, reset, a failed write).
    Lost,
    /// TLS could not be started.
    TlsFailed,
    /// The server is stopping.
    Shutdown,
}

/// The wrapped-mode handshake (SMTPS, IMAPS) before the greeting.
pub async fn wrapped_handshake<C: Core, H: Handler<C>>(
    conn: &mut Conn,
    core: &mut C,
    handler: &H,
    opts: &Options,
) -> Result<(), End> {
    let Some(config) = opts.tls.clone() else {
        return Err(End::TlsFailed);
    };
    match tokio::time::timeout(opts.timeout, conn.upgrade(config)).await {
        Ok(Ok(summary)) => {
            log_tls(handler, opts, &summary);
            let _ = core.tls_started(summary);
            Ok(())
        }
        _ => {
            handler.log(&format!(
                "SSL_accept error from {}: lost connection",
                opts.label
            ));
            handler.log(&format!(
                "lost connection after CONNECT from {}",
                opts.label
            ));
            Err(End::TlsFailed)
        }
    }
}

fn log_tls<C: Core, H: Handler<C>>(handler: &H, opts: &Options, summary: &str) {
    if opts.log_tls {
        handler.log(&format!(
            "Anonymous TLS connection established from {}: {summary}",
            opts.label
        ));
    }
}

/// Runs the session until it ends: performs `first` (the greeting), then
/// reads, feeds and performs, until the core closes or the client leaves.
pub async fn drive<C: Core + Send, H: Handler<C>>(
    conn: &mut Conn,
    core: &mut C,
    handler: &mut H,
    first: Vec<Step<C::Ask>>,
    opts: &Options,
) -> End {
    let label = opts.label.as_str();
    let mut pending = first;
    let mut buf = vec![0u8; opts.read_size.max(512)];
    loop {
        while !pending.is_empty() {
            let mut next = Vec::new();
            for step in std::mem::take(&mut pending) {
                match step {
                    Step::Write(bytes) => {
                        if conn.write_all(&bytes).await.is_err() {
                            handler.log(&format!(
                                "lost connection after {} from {label}",
                                core.last_command()
                            ));
                            return End::Lost;
                        }
                    }
                    Step::Delay(d) => tokio::time::sleep(d).await,
                    Step::Log(text) => handler.log(&text),
                    Step::Close => return End::Closed,
                    Step::Ask(ask) => next.extend(handler.answer(core, ask).await),
                    Step::StartTls => {
                        let Some(config) = opts.tls.clone() else {
                            return End::TlsFailed;
                        };
                        match tokio::time::timeout(opts.timeout, conn.upgrade(config)).await {
                            Ok(Ok(summary)) => {
                                log_tls(handler, opts, &summary);
                                next.extend(core.tls_started(summary));
                            }
                            Ok(Err(e)) => {
                                handler.log(&format!("SSL_accept error from {label}: {e}"));
                                handler
                                    .log(&format!("lost connection after STARTTLS from {label}"));
                                return End::TlsFailed;
                            }
                            Err(_) => {
                                handler.log(&format!("timeout after STARTTLS from {label}"));
                                return End::TlsFailed;
                            }
                        }
                    }
                }
            }
            pending = next;
        }
        if core.is_closed() {
            return End::Closed;
        }
        let read = match &opts.shutdown {
            Some(stop) => tokio::select! {
                r = tokio::time::timeout(opts.timeout, conn.read(&mut buf)) => r,
                _ = stop.notified() => {
                    let _ = conn.write_all(&opts.shutdown_reply).await;
                    return End::Shutdown;
                }
            },
            None => tokio::time::timeout(opts.timeout, conn.read(&mut buf)).await,
        };
        match read {
            Err(_) => pending = core.timeout(),
            Ok(Ok(0)) | Ok(Err(_)) => {
                handler.log(&format!(
                    "lost connection after {} from {label}",
                    core.last_command()
                ));
                return End::Lost;
            }
            Ok(Ok(n)) => pending = core.feed(&buf[..n]),
        }
    }
}
