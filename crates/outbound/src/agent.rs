//! The delivery agent, smtp(8)'s loop: find the servers for the nexthop,
//! try each address in order with `smtp_connect_timeout`, run the client
//! core over the connection with the per-stage timeouts, and turn the
//! outcomes into one typed result per recipient. Soft failures (4xx,
//! timeouts, refused connections) move on to the next server and end as a
//! deferral; hard failures (5xx) end at once with the remote reply.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
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

use crate::cache::{ConnCache, Idle};
use crate::dane;
use crate::dns::{Dns, RouteError, Shuffle};
use crate::mta_sts;
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
    /// Which transaction of its connection carried this recipient (1 for
    /// a new connection); Postfix logs `conn_use=N` when N > 1.
    pub conn_use: u32,
}

impl RcptResult {
    /// The log's `relay=` value with Postfix's `conn_use=N` for a reused
    /// connection: `mx.example[192.0.2.1]:25, conn_use=2`.
    pub fn relay_field(&self) -> String {
        if self.conn_use > 1 {
            format!("{}, conn_use={}", self.relay, self.conn_use)
        } else {
            self.relay.clone()
        }
    }

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

/// Delivers one message to a nexthop on new connections (no connection
/// cache). Never panics on peer input; every wait is bounded by a timeout
/// from `settings`.
pub async fn deliver(settings: &Settings, dns: &Dns, nexthop: &Nexthop, job: &Job<'_>) -> Delivery {
    deliver_with(settings, dns, None, nexthop, job).await
}

/// As [`deliver`], first on an idle session from `cache` when there is one
/// for this nexthop, and parking the session afterwards when
/// `settings.cache` says so (Postfix's connection cache).
pub async fn deliver_with(
    settings: &Settings,
    dns: &Dns,
    cache: Option<&ConnCache>,
    nexthop: &Nexthop,
    job: &Job<'_>,
) -> Delivery {
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
    let (mut level, _why) = settings.tls_level_for(nexthop);
    // DANE (RFC 7672 section 2.2.1): TLSA records count only below an
    // authenticated MX RRset.
    let resolvers = if level.is_dane() {
        dane::resolvers(&settings.dns_servers)
    } else {
        Vec::new()
    };
    let dns_limit = settings.timeouts.connect;
    let mut mx_insecure = false;
    if let (true, Nexthop::Mx { domain, .. }) = (level.is_dane(), nexthop) {
        match dane::mx_secure(&resolvers, domain, dns_limit).await {
            Ok(secure) => mx_insecure = !secure,
            Err(e) => {
                let e = RouteError::TryAgain {
                    name: domain.clone(),
                    rtype: "MX",
                    why: e,
                };
                return route_failure(&e, n, started.elapsed());
            }
        }
    }
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

    // MTA-STS (RFC 8461) for MX delivery where no stricter level is set:
    // `enforce` keeps only the MX hosts the policy names and requires
    // verified TLS with its CA file.
    let mut servers = servers;
    let mut sts_config: Option<Arc<rustls::ClientConfig>> = None;
    if let (Some(sts), Nexthop::Mx { domain, .. }) = (&settings.mta_sts, nexthop) {
        if matches!(level, TlsLevel::None | TlsLevel::May | TlsLevel::Encrypt) {
            match sts
                .cache
                .lookup(dns, &sts.tls.verified, domain, settings.timeouts.connect)
                .await
            {
                mta_sts::Decision::Policy(p, why) if p.mode == mta_sts::Mode::Enforce => {
                    servers.retain(|s| p.allows(&s.name));
                    if servers.is_empty() {
                        let text = format!(
                            "MTA-STS policy of {domain} ({why}): no MX host matches its mx patterns ({})",
                            p.mx.join(", ")
                        );
                        notes.push(format!("{}: {text}", job.queue_id));
                        let r = RcptResult {
                            status: Status::Deferred,
                            dsn: Enhanced::new(4, 7, 5),
                            relay: "none".into(),
                            text,
                            reply: None,
                            remote_mta: None,
                            conn_setup: started.elapsed(),
                            transmission: Duration::ZERO,
                            conn_use: 0,
                        };
                        return Delivery {
                            results: vec![r; n],
                            notes,
                        };
                    }
                    level = TlsLevel::Verify;
                    sts_config = Some(sts.tls.verified.clone());
                }
                mta_sts::Decision::Failed(why) => {
                    notes.push(format!("warning: {}: {why}", job.queue_id))
                }
                mta_sts::Decision::Policy(p, why) if p.mode == mta_sts::Mode::Testing => {
                    let off: Vec<&str> = servers
                        .iter()
                        .filter(|s| !p.allows(&s.name))
                        .map(|s| s.name.as_str())
                        .collect();
                    if !off.is_empty() {
                        notes.push(format!(
                            "{}: MTA-STS policy of {domain} ({why}) in testing mode would refuse MX {}",
                            job.queue_id,
                            off.join(", ")
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    let mut results: Vec<Option<RcptResult>> = vec![None; n];
    // The latest soft failure of each recipient, reported if no server
    // takes it.
    let mut soft: Vec<Option<RcptResult>> = vec![None; n];
    let cache = cache.filter(|_| settings.cache.applies(nexthop));
    // A cached session first: RSET, then the transaction. One that fails
    // its RSET (the server closed it while idle, or refuses) is dropped
    // and the next one, or a new connection, is used: that is no failure
    // of the destination.
    while let Some(idle) = cache.and_then(|c| c.take(nexthop, &settings.cache)) {
        let pending: Vec<usize> = (0..n).filter(|&i| results[i].is_none()).collect();
        let mut tx = tx_template.clone();
        tx.recipients = pending.iter().map(|&i| job.recipients[i].clone()).collect();
        let Idle {
            conn,
            client,
            server,
            relay,
            hostaddr,
            born,
            uses,
        } = idle;
        let s = Session {
            settings,
            level,
            dane: None,
            tls_name: &server,
            relay: &relay,
            message,
        };
        let out = s
            .run(Start::Reused(conn, client), tx, Instant::now(), true)
            .await;
        if matches!(&out.close, Some(f) if f.stage() == Stage::Rset) {
            continue;
        }
        notes.extend(out.notes);
        let uses = uses + 1;
        for (k, outcome) in out.outcomes {
            let Some(&i) = pending.get(k) else { continue };
            let mut r = rcpt_result(outcome, &relay, &hostaddr, &server, out.setup, out.xfer);
            r.conn_use = uses;
            match r.status {
                Status::Deferred => soft[i] = Some(r),
                _ => results[i] = Some(r),
            }
        }
        if let (Some(c), Some((conn, client))) = (cache, out.idle) {
            let idle = Idle {
                conn,
                client,
                server,
                relay,
                hostaddr,
                born,
                uses,
            };
            c.put(nexthop, idle, &settings.cache, settings.timeouts.quit);
        }
        break;
    }
    let mut addresses = 0usize;
    let mut sessions = 0usize;
    'servers: for server in &servers {
        let (host_level, dane_config) = if level.is_dane() {
            match dane_policy(
                level,
                mx_insecure,
                nexthop,
                &resolvers,
                &server.name,
                port,
                dns_limit,
            )
            .await
            {
                Ok(p) => p,
                Err(text) => {
                    // This host cannot be used under the policy: the next
                    // one may; the recipients defer if none can.
                    let pending: Vec<usize> = (0..n).filter(|&i| results[i].is_none()).collect();
                    notes.push(format!("{}: {text}", job.queue_id));
                    mark_soft(
                        &mut soft,
                        &pending,
                        "none",
                        &text,
                        Enhanced::new(4, 7, 5),
                        started.elapsed(),
                    );
                    continue 'servers;
                }
            }
        } else {
            (level, sts_config.clone())
        };
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
            let mut tls_level = host_level;
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
                    dane: dane_config.clone(),
                    tls_name: &tls_name,
                    relay: &relay,
                    message,
                };
                let mut out = s
                    .run(
                        Start::Fresh(Conn::Plain(tcp), cfg),
                        tx,
                        conn_start,
                        cache.is_some(),
                    )
                    .await;
                notes.extend(std::mem::take(&mut out.notes));
                if let (Some(c), Some((conn, client))) = (cache, out.idle.take()) {
                    let idle = Idle {
                        conn,
                        client,
                        server: server.name.clone(),
                        relay: relay.clone(),
                        hostaddr: hostaddr.clone(),
                        born: conn_start,
                        uses: 1,
                    };
                    c.put(nexthop, idle, &settings.cache, settings.timeouts.quit);
                }
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
                    conn_use: 0,
                })
        })
        .collect();
    Delivery { results, notes }
}

/// The TLS policy for one server under `dane` / `dane-only` (see the
/// `dane` module): the level to use and, when the server has usable
/// authenticated TLSA records, the configuration that checks them. `Err`:
/// this server may not be used (the text is the deferral reason).
async fn dane_policy(
    level: TlsLevel,
    mx_insecure: bool,
    nexthop: &Nexthop,
    resolvers: &[SocketAddr],
    host: &str,
    port: u16,
    limit: Duration,
) -> Result<(TlsLevel, Option<Arc<rustls::ClientConfig>>), String> {
    let only = level == TlsLevel::DaneOnly;
    let fallback = |why: String| {
        if only {
            Err(why)
        } else {
            Ok((TlsLevel::May, None))
        }
    };
    if mx_insecure {
        return fallback(format!(
            "no DNSSEC-authenticated MX records for {} (smtp_tls_security_level = dane-only)",
            nexthop.name()
        ));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return fallback(format!(
            "no TLSA records for an address literal [{host}] (smtp_tls_security_level = dane-only)"
        ));
    }
    match dane::tlsa(resolvers, host, port, limit).await {
        Err(e) => Err(format!("TLSA lookup error for _{port}._tcp.{host}: {e}")),
        Ok(dane::TlsaAnswer::Secure(records)) if !records.is_empty() => {
            if records.iter().any(dane::Tlsa::usable) {
                Ok((level, Some(dane::client_config(records)?)))
            } else {
                // RFC 7672 section 2.2: TLS without authentication.
                Ok((TlsLevel::Encrypt, None))
            }
        }
        Ok(_) => fallback(format!(
            "no DNSSEC-authenticated TLSA records for _{port}._tcp.{host} (smtp_tls_security_level = dane-only)"
        )),
    }
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
            conn_use: 0,
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
        conn_use: 0,
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
            conn_use: 1,
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
            conn_use: 1,
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
    /// The DANE client configuration (TLSA-matching verifier) for this host.
    pub dane: Option<Arc<rustls::ClientConfig>>,
    pub tls_name: &'a str,
    pub relay: &'a str,
    pub message: &'a [u8],
}

/// How a session starts: a new TCP connection (greeting, EHLO, TLS, AUTH
/// first; TCP, or LMTP's UNIX-domain socket), or an idle one from the
/// connection cache.
pub(crate) enum Start {
    Fresh(Conn, ClientConfig),
    Reused(Conn, Box<Client>),
}

pub(crate) struct SessionOut {
    /// (index into the transaction's recipients, outcome)
    pub outcomes: Vec<(usize, Outcome)>,
    /// The session, idle after its transaction, when it is to be kept.
    pub idle: Option<(Conn, Box<Client>)>,
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

    /// Runs one transaction; with `keep`, a session still idle after it
    /// is handed back in `idle` instead of ending with QUIT.
    pub(crate) async fn run(
        &self,
        start: Start,
        tx: Transaction,
        conn_start: Instant,
        keep: bool,
    ) -> SessionOut {
        let mut out = SessionOut {
            outcomes: Vec::new(),
            idle: None,
            close: None,
            notes: Vec::new(),
            setup: Duration::ZERO,
            xfer: Duration::ZERO,
        };
        let mut tx = Some(tx);
        let mut queue: std::collections::VecDeque<Action> = Default::default();
        let mut xfer_start: Option<Instant> = None;
        let (mut conn, mut client) = match start {
            Start::Fresh(conn, cfg) => (conn, Box::new(Client::new(cfg))),
            Start::Reused(conn, mut client) => {
                // RSET first (Client::reuse), then the transaction at once.
                client.reuse();
                xfer_start = Some(Instant::now());
                if let Some(t) = tx.take() {
                    queue.extend(client.begin(t));
                }
                (conn, client)
            }
        };
        let mut buf = vec![0u8; 4096];
        let mut stage = client.stage();
        let mut deadline = tokio::time::Instant::now() + self.stage_timeout(stage);
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
                        let connector = TlsConnector::from(
                            self.dane
                                .clone()
                                .unwrap_or_else(|| self.settings.tls.config(self.level)),
                        );
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
                        if keep && client.is_idle() && queue.is_empty() {
                            out.idle = Some((conn, client));
                            return out;
                        }
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
