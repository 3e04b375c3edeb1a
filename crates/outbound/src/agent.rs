//! The delivery agent, smtp(8)'s loop: find the servers for the nexthop,
//! try each address in order with `smtp_connect_timeout`, run the client
//! core over the connection with the per-stage timeouts, and turn the
//! outcomes into one typed result per recipient. Soft failures (4xx,
//! timeouts, refused connections) move on to the next server and end as a
//! deferral; hard failures (5xx) end at once with the remote reply.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use yubin_smtp::client::{
    bdat_bytes, crlf, data_bytes, is_eight_bit, Action, BodyMode, Client, ClientConfig,
    Credentials, Failure, LocalReason, Outcome, Rcpt, Ret, Stage, Transaction,
};
use yubin_smtp::{Enhanced, Reply};

use crate::dns::{Dns, RouteError, Shuffle};
use crate::nexthop::Nexthop;
use crate::settings::Settings;
use crate::tls::{server_name, TlsLevel};

/// One message for one nexthop.
pub struct Job<'a> {
    pub queue_id: &'a str,
    /// Empty for the null sender.
    pub sender: &'a str,
    pub recipients: Vec<Rcpt>,
    /// The message as queued (LF or CRLF line ends).
    pub message: &'a [u8],
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// The sender asked for SMTPUTF8 (or an address needs it).
    pub smtputf8: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Sent,
    Deferred,
    Bounced,
}

impl Status {
    /// As in the log's `status=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Deferred => "deferred",
            Status::Bounced => "bounced",
        }
    }
}

/// The result for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptResult {
    pub status: Status,
    pub dsn: Enhanced,
    /// `host[ip]:port`, or `none` when no server answered.
    pub relay: String,
    /// The log's text in parentheses after `status=...`.
    pub text: String,
    /// The remote reply, for the bounce's `Diagnostic-Code: smtp; ...`.
    pub reply: Option<Reply>,
    /// The remote host name, for the bounce's `Remote-MTA: dns; ...`.
    pub remote_mta: Option<String>,
    /// `delays=` c (connection setup: DNS, connect, greeting, EHLO, TLS,
    /// AUTH) and d (transmission).
    pub conn_setup: Duration,
    pub transmission: Duration,
}

impl RcptResult {
    /// The bounce's `Diagnostic-Code:` value (RFC 3464 section 2.3.6).
    pub fn diagnostic_code(&self) -> String {
        match &self.reply {
            Some(r) => format!("smtp; {}", r.wire_lines().join(" ")),
            None => format!("X-Postfix; {}", self.text),
        }
    }
}

/// What a delivery attempt produced: one result per recipient (same order
/// as the job's) and informational log lines (Postfix logs connection
/// failures and TLS sessions as separate `postfix/smtp` lines).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub results: Vec<RcptResult>,
    pub notes: Vec<String>,
}

/// Delivers one message to a nexthop. Never panics on peer input; every
/// wait is bounded by a timeout from `settings`.
pub async fn deliver(settings: &Settings, dns: &Dns, nexthop: &Nexthop, job: &Job<'_>) -> Delivery {
    let started = Instant::now();
    let n = job.recipients.len();
    let mut notes = Vec::new();
    let mut rng = Shuffle::from_clock();
    let servers = match dns
        .servers(
            nexthop,
            settings.protocols,
            settings.address_preference,
            &settings.my_addresses,
            &mut rng,
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return route_failure(&e, n, started.elapsed()),
    };
    // DKIM (RFC 6376) over the message exactly as it will be sent.
    let signed;
    let message: &[u8] = match settings.dkim.for_sender(job.sender) {
        Some(signer) => {
            let body = crlf(job.message);
            match signer.sign(&body) {
                Ok(header) => {
                    let mut m = header.into_bytes();
                    m.extend_from_slice(&body);
                    signed = m;
                    &signed
                }
                Err(e) => {
                    notes.push(format!("warning: {}: {e}; sent unsigned", job.queue_id));
                    job.message
                }
            }
        }
        None => job.message,
    };
    let (level, _why) = settings.tls_level_for(nexthop);
    let port = nexthop.port();
    let size = message.len() as u64;
    let tx_template = Transaction {
        sender: job.sender.to_string(),
        recipients: Vec::new(),
        size,
        eight_bit: is_eight_bit(message),
        smtputf8: job.smtputf8
            || !job.sender.is_ascii()
            || job.recipients.iter().any(|r| !r.address.is_ascii()),
        ret: job.ret,
        envid: job.envid.clone(),
    };

    let mut results: Vec<Option<RcptResult>> = vec![None; n];
    // The latest soft failure of each recipient, reported if no server
    // takes it.
    let mut soft: Vec<Option<RcptResult>> = vec![None; n];
    let mut addresses = 0usize;
    let mut sessions = 0usize;
    'servers: for server in &servers {
        for &ip in &server.addrs {
            let pending: Vec<usize> = (0..n).filter(|&i| results[i].is_none()).collect();
            if pending.is_empty() {
                break 'servers;
            }
            if (settings.mx_address_limit > 0 && addresses >= settings.mx_address_limit)
                || (settings.mx_session_limit > 0 && sessions >= settings.mx_session_limit)
            {
                break 'servers;
            }
            addresses += 1;
            let relay = format!("{}[{}]:{}", server.name, ip, port);
            let hostaddr = format!("{}[{}]", server.name, ip);
            let addr = SocketAddr::new(ip, port);
            let mut tls_level = level;
            // Under `may`, a failed handshake is retried once in plaintext.
            for _attempt in 0..2 {
                let conn_start = Instant::now();
                let tcp =
                    match tokio::time::timeout(settings.timeouts.connect, TcpStream::connect(addr))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            let text = format!("connect to {relay}: {}", io_text(&e));
                            notes.push(text.clone());
                            mark_soft(
                                &mut soft,
                                &pending,
                                "none",
                                &text,
                                Enhanced::new(4, 4, 1),
                                started.elapsed(),
                            );
                            break;
                        }
                        Err(_) => {
                            let text = format!("connect to {relay}: Connection timed out");
                            notes.push(text.clone());
                            mark_soft(
                                &mut soft,
                                &pending,
                                "none",
                                &text,
                                Enhanced::new(4, 4, 1),
                                started.elapsed(),
                            );
                            break;
                        }
                    };
                sessions += 1;
                let creds = settings
                    .credentials(&server.name, nexthop)
                    .map(|(user, password)| Credentials { user, password });
                let mut cfg = ClientConfig::new(settings.helo_name.clone());
                cfg.starttls = tls_level.starttls();
                cfg.auth = creds;
                cfg.auth_plaintext = settings.sasl_plaintext;
                cfg.chunking = settings.chunking;
                cfg.my_hostname = Some(settings.my_hostname.clone());
                let tls_name = match (tls_level, nexthop) {
                    (TlsLevel::Secure, Nexthop::Mx { domain, .. }) => domain.clone(),
                    _ => server.name.clone(),
                };
                let mut tx = tx_template.clone();
                tx.recipients = pending.iter().map(|&i| job.recipients[i].clone()).collect();
                let s = Session {
                    settings,
                    level: tls_level,
                    tls_name: &tls_name,
                    relay: &relay,
                    message,
                };
                let out = s.run(Conn::Plain(tcp), cfg, tx, conn_start).await;
                notes.extend(out.notes);
                let had_outcomes = !out.outcomes.is_empty();
                for (k, outcome) in out.outcomes {
                    let Some(&i) = pending.get(k) else { continue };
                    let r = rcpt_result(
                        outcome,
                        &relay,
                        &hostaddr,
                        &server.name,
                        out.setup,
                        out.xfer,
                    );
                    match r.status {
                        Status::Deferred => soft[i] = Some(r),
                        _ => results[i] = Some(r),
                    }
                }
                match out.close {
                    // A failure before any transaction (greeting, EHLO,
                    // STARTTLS, AUTH) applies to every pending recipient;
                    // one during a transaction was already given to each.
                    Some(f) if !had_outcomes => {
                        let mut r = rcpt_result(
                            Outcome::Failed(f.clone()),
                            &relay,
                            &hostaddr,
                            &server.name,
                            out.setup,
                            out.xfer,
                        );
                        if let Failure::Local {
                            reason: LocalReason::LoopsBack { .. },
                            ..
                        } = &f
                        {
                            // Postfix: a warning naming the host, and the
                            // status text naming the destination.
                            notes.push(format!("warning: {}", f.describe(&hostaddr)));
                            r.text = format!("mail for {} loops back to myself", nexthop.name());
                        }
                        for &i in &pending {
                            if r.status == Status::Bounced {
                                results[i] = Some(r.clone());
                            } else {
                                soft[i] = Some(r.clone());
                            }
                        }
                        if f.stage() == Stage::TlsHandshake && tls_level == TlsLevel::May {
                            // Postfix under `may`: the same host again, in plaintext.
                            notes.push(format!(
                                "{}: {} (trying again without TLS)",
                                job.queue_id, r.text
                            ));
                            tls_level = TlsLevel::None;
                            continue;
                        }
                        if r.status == Status::Deferred {
                            notes.push(format!("{}: {}", job.queue_id, r.text));
                        }
                        break;
                    }
                    _ => break,
                }
            }
        }
    }
    let results = (0..n)
        .map(|i| {
            results[i]
                .take()
                .or_else(|| soft[i].take())
                .unwrap_or_else(|| RcptResult {
                    status: Status::Deferred,
                    dsn: Enhanced::new(4, 4, 1),
                    relay: "none".into(),
                    text: "no server could be tried (smtp_mx_address_limit, smtp_mx_session_limit)"
                        .into(),
                    reply: None,
                    remote_mta: None,
                    conn_setup: started.elapsed(),
                    transmission: Duration::ZERO,
                })
        })
        .collect();
    Delivery { results, notes }
}

pub(crate) fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::TimedOut => "Connection timed out".into(),
        _ => {
            let s = e.to_string();
            // "No route to host (os error 113)" -> Postfix's strerror form.
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

fn mark_soft(
    soft: &mut [Option<RcptResult>],
    pending: &[usize],
    relay: &str,
    text: &str,
    dsn: Enhanced,
    setup: Duration,
) {
    for &i in pending {
        soft[i] = Some(RcptResult {
            status: Status::Deferred,
            dsn,
            relay: relay.to_string(),
            text: text.to_string(),
            reply: None,
            remote_mta: None,
            conn_setup: setup,
            transmission: Duration::ZERO,
        });
    }
}

fn route_failure(e: &RouteError, n: usize, setup: Duration) -> Delivery {
    let status = if e.is_permanent() {
        Status::Bounced
    } else {
        Status::Deferred
    };
    let r = RcptResult {
        status,
        dsn: e.enhanced(),
        relay: "none".into(),
        text: e.to_string(),
        reply: None,
        remote_mta: None,
        conn_setup: setup,
        transmission: Duration::ZERO,
    };
    Delivery {
        results: vec![r; n],
        notes: Vec::new(),
    }
}

pub(crate) fn rcpt_result(
    o: Outcome,
    relay: &str,
    hostaddr: &str,
    host: &str,
    setup: Duration,
    xfer: Duration,
) -> RcptResult {
    match o {
        Outcome::Delivered(reply) => RcptResult {
            status: Status::Sent,
            dsn: reply.enhanced.unwrap_or(Enhanced::new(2, 0, 0)),
            relay: relay.to_string(),
            text: reply.wire_lines().join(" "),
            reply: Some(reply),
            remote_mta: Some(host.to_string()),
            conn_setup: setup,
            transmission: xfer,
        },
        Outcome::Failed(f) => RcptResult {
            status: if f.is_permanent() {
                Status::Bounced
            } else {
                Status::Deferred
            },
            dsn: f.enhanced(),
            relay: relay.to_string(),
            text: f.describe(hostaddr),
            reply: f.reply().cloned(),
            remote_mta: Some(host.to_string()),
            conn_setup: setup,
            transmission: xfer,
        },
    }
}

/// A connection, plain or after STARTTLS, or LMTP's UNIX-domain socket.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(tokio::net::UnixStream),
    Gone,
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}

pub(crate) struct Session<'a> {
    pub settings: &'a Settings,
    pub level: TlsLevel,
    pub tls_name: &'a str,
    pub relay: &'a str,
    pub message: &'a [u8],
}

pub(crate) struct SessionOut {
    /// (index into the transaction's recipients, outcome)
    pub outcomes: Vec<(usize, Outcome)>,
    pub close: Option<Failure>,
    pub notes: Vec<String>,
    pub setup: Duration,
    pub xfer: Duration,
}

impl Session<'_> {
    fn stage_timeout(&self, stage: Stage) -> Duration {
        let t = &self.settings.timeouts;
        match stage {
            Stage::Greeting
            | Stage::Ehlo
            | Stage::Lhlo
            | Stage::Helo
            | Stage::Auth
            | Stage::Idle => t.helo,
            Stage::StartTls | Stage::TlsHandshake => t.starttls,
            Stage::Mail => t.mail,
            Stage::Rcpt => t.rcpt,
            Stage::Data => t.data_init,
            Stage::Message => t.data_xfer,
            Stage::DataDone => t.data_done,
            Stage::Rset => t.rset,
            Stage::Quit | Stage::Closed => t.quit,
        }
    }

    pub(crate) async fn run(
        &self,
        conn: Conn,
        cfg: ClientConfig,
        tx: Transaction,
        conn_start: Instant,
    ) -> SessionOut {
        let mut out = SessionOut {
            outcomes: Vec::new(),
            close: None,
            notes: Vec::new(),
            setup: Duration::ZERO,
            xfer: Duration::ZERO,
        };
        let mut tx = Some(tx);
        let mut conn = conn;
        let mut client = Client::new(cfg);
        let mut queue: std::collections::VecDeque<Action> = Default::default();
        let mut buf = vec![0u8; 4096];
        let mut stage = client.stage();
        let mut deadline = tokio::time::Instant::now() + self.stage_timeout(stage);
        let mut xfer_start: Option<Instant> = None;
        loop {
            if let Some(a) = queue.pop_front() {
                match a {
                    Action::Send(bytes) => {
                        let st = client.stage();
                        let d = tokio::time::Instant::now() + self.stage_timeout(st);
                        match timeout_at(d, conn.write_all(&bytes)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => queue.extend(client.closed()),
                            Err(_) => queue.extend(client.timeout()),
                        }
                    }
                    Action::StartTls => {
                        let tcp = match std::mem::replace(&mut conn, Conn::Gone) {
                            Conn::Plain(t) => t,
                            other => {
                                conn = other;
                                queue.extend(client.tls_failed("TLS already active"));
                                continue;
                            }
                        };
                        let connector = TlsConnector::from(self.settings.tls.config(self.level));
                        let d = tokio::time::Instant::now() + self.settings.timeouts.starttls;
                        match timeout_at(d, connector.connect(server_name(self.tls_name), tcp))
                            .await
                        {
                            Ok(Ok(tls)) => {
                                let (_, c) = tls.get_ref();
                                let version = c
                                    .protocol_version()
                                    .and_then(|v| v.as_str())
                                    .unwrap_or("TLS")
                                    .replace("TLSv1_", "TLSv1.");
                                let cipher = c
                                    .negotiated_cipher_suite()
                                    .map(|s| format!("{:?}", s.suite()))
                                    .unwrap_or_default();
                                let trust = if self.level.verifies() {
                                    "Verified"
                                } else {
                                    "Untrusted"
                                };
                                out.notes.push(format!(
                                    "{trust} TLS connection established to {}: {version} with cipher {cipher}",
                                    self.relay
                                ));
                                conn = Conn::Tls(Box::new(tls));
                                queue.extend(client.tls_established());
                            }
                            Ok(Err(e)) => queue.extend(client.tls_failed(e.to_string())),
                            Err(_) => queue.extend(client.tls_failed("handshake timed out")),
                        }
                    }
                    Action::SendMessage(mode) => {
                        let bytes = match mode {
                            BodyMode::Data => data_bytes(self.message),
                            BodyMode::Bdat => bdat_bytes(self.message),
                        };
                        let d = tokio::time::Instant::now() + self.settings.timeouts.data_xfer;
                        match timeout_at(d, conn.write_all(&bytes)).await {
                            Ok(Ok(())) => queue.extend(client.message_sent()),
                            Ok(Err(_)) => queue.extend(client.closed()),
                            Err(_) => queue.extend(client.timeout()),
                        }
                    }
                    Action::Ready => match tx.take() {
                        Some(t) => {
                            out.setup = conn_start.elapsed();
                            xfer_start = Some(Instant::now());
                            queue.extend(client.begin(t));
                        }
                        None => queue.extend(client.quit()),
                    },
                    Action::Recipient { index, outcome } => {
                        out.outcomes.push((index, outcome));
                    }
                    Action::TransactionDone => {
                        out.xfer = xfer_start.map(|s| s.elapsed()).unwrap_or_default();
                        queue.extend(client.quit());
                    }
                    Action::Close(why) => {
                        if out.setup.is_zero() {
                            out.setup = conn_start.elapsed();
                        }
                        out.close = why;
                        let _ = tokio::time::timeout(Duration::from_secs(1), conn.shutdown()).await;
                        return out;
                    }
                }
                continue;
            }
            // Waiting for the server: one deadline per stage.
            let now_stage = client.stage();
            if now_stage != stage {
                stage = now_stage;
                deadline = tokio::time::Instant::now() + self.stage_timeout(stage);
            }
            match timeout_at(deadline, conn.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => queue.extend(client.closed()),
                Ok(Ok(k)) => queue.extend(client.feed(&buf[..k])),
                Err(_) => queue.extend(client.timeout()),
            }
            if queue.is_empty() && client.stage() == Stage::Closed {
                return out;
            }
        }
    }
}
