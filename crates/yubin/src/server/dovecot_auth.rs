//! `smtpd_sasl_type = dovecot`: SMTP AUTH answered by a running Dovecot
//! through its auth socket, as Postfix's xsasl_dovecot_server.c does. The
//! protocol lines are `yubin_auth::dovecot`'s; this file connects, writes
//! and reads. It runs on smtpd's blocking SASL thread (see smtpd.rs), so
//! plain blocking sockets with timeouts are right here.
//!
//! One connection per AUTH exchange (Postfix keeps one per smtpd process;
//! yubin has no processes to keep it in, and Dovecot's handshake costs one
//! round trip on a local socket). Every connection refreshes the mechanism
//! list EHLO offers.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use yubin_auth::dovecot::{
    auth_command, client_hello, cont_command, parse_line, Handshake, LineReader, Mech, RequestInfo,
    SecurityOptions, ServerLine,
};
use yubin_conf::Config;
use yubin_smtp::{Authenticator, SaslContext, SaslExchange, SaslStep};

/// Postfix's reply text when the auth server cannot be reached or goes
/// away mid-exchange (`454 4.7.0 Temporary authentication failure: ...`).
const LOST: &str = "Connection lost to authentication server";

/// How long a connect or one reply may take. Dovecot delays failed logins
/// by auth_failure_delay (2 s by default) before it answers FAIL, so a
/// reply gets more time than a connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// After a failed connect, EHLO does not try again for this long (it keeps
/// offering the last list it had, or none).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Learning the mechanisms at a session's start delays its greeting: a
/// Dovecot that accepts but does not answer costs at most this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where Dovecot listens: smtpd_sasl_path as Postfix reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSocket {
    Unix(PathBuf),
    /// `inet:host:port`.
    Inet(String),
}

impl AuthSocket {
    /// `inet:host:port`, else a UNIX-domain socket path, relative to
    /// queue_directory unless absolute (postconf(5) smtpd_sasl_path).
    pub fn parse(value: &str, queue_directory: &Path) -> anyhow::Result<AuthSocket> {
        if let Some(rest) = value.strip_prefix("inet:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| anyhow!("smtpd_sasl_path = {value}: expected inet:host:port"))?;
            port.parse::<u16>()
                .map_err(|_| anyhow!("smtpd_sasl_path = {value}: bad port \"{port}\""))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            return Ok(AuthSocket::Inet(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }));
        }
        let value = value.strip_prefix("unix:").unwrap_or(value);
        if value.is_empty() {
            return Err(anyhow!("smtpd_sasl_path is empty"));
        }
        let p = Path::new(value);
        Ok(AuthSocket::Unix(if p.is_absolute() {
            p.to_path_buf()
        } else {
            queue_directory.join(p)
        }))
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn connect(socket: &AuthSocket, wait: Duration) -> std::io::Result<Stream> {
        let s = match socket {
            AuthSocket::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_read_timeout(Some(wait))?;
                s.set_write_timeout(Some(wait))?;
                Stream::Unix(s)
            }
            AuthSocket::Inet(a) => {
                use std::net::ToSocketAddrs;
                let addr = a
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| std::io::Error::other("no address"))?;
                let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(wait))?;
                s.set_read_timeout(Some(wait))?;
                s.set_write_timeout(Some(wait))?;
                Stream::Tcp(s)
            }
        };
        Ok(s)
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(b),
            Stream::Tcp(s) => s.write_all(b),
        }
    }
}

/// A connection past Dovecot's handshake.
struct Connection {
    stream: Stream,
    reader: LineReader,
    /// Complete lines read but not yet used.
    lines: std::collections::VecDeque<Vec<u8>>,
}

impl Connection {
    /// Connects and reads the handshake; `wait` bounds each read and write.
    fn open(socket: &AuthSocket, wait: Duration) -> Result<(Connection, Handshake), String> {
        let mut stream = Stream::connect(socket, wait).map_err(|e| e.to_string())?;
        stream
            .write_all(&client_hello(std::process::id()))
            .map_err(|e| e.to_string())?;
        let mut c = Connection {
            stream,
            reader: LineReader::default(),
            lines: Default::default(),
        };
        let mut hs = Handshake::default();
        loop {
            let line = c.line()?;
            let parsed = parse_line(&line).map_err(|e| e.to_string())?;
            if hs.push(parsed).map_err(|e| e.to_string())? {
                return Ok((c, hs));
            }
        }
    }

    fn line(&mut self) -> Result<Vec<u8>, String> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(l) = self.lines.pop_front() {
                return Ok(l);
            }
            let n = self.stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            let got = self.reader.push(&buf[..n]).map_err(|e| e.to_string())?;
            self.lines.extend(got);
        }
    }

    /// Sends a command and reads until the answer for `id`.
    fn ask(&mut self, command: &[u8], id: u32) -> Result<ServerLine, String> {
        self.stream.write_all(command).map_err(|e| e.to_string())?;
        loop {
            let line = self.line()?;
            match parse_line(&line).map_err(|e| e.to_string())? {
                l @ (ServerLine::Cont { id: i, .. }
                | ServerLine::Ok { id: i, .. }
                | ServerLine::Fail { id: i, .. })
                    if i == id =>
                {
                    return Ok(l)
                }
                // Other ids or commands: not ours (the protocol allows
                // several requests on one connection).
                _ => {}
            }
        }
    }
}

struct Cache {
    mechanisms: Vec<Mech>,
    /// The last connect attempt that failed, to space out retries.
    failed_at: Option<Instant>,
    known: bool,
}

pub struct DovecotAuth {
    socket: AuthSocket,
    /// smtpd_sasl_security_options, smtpd_sasl_tls_security_options.
    plain: SecurityOptions,
    tls: SecurityOptions,
    cache: Mutex<Cache>,
    next_id: AtomicU32,
    service: String,
}

impl DovecotAuth {
    pub fn from_config(cfg: &Config) -> anyhow::Result<DovecotAuth> {
        let path = match cfg.get("smtpd_sasl_path") {
            // Postfix's default (`smtpd`, the Cyrus application name) means
            // nothing to Dovecot: its documented socket instead.
            "smtpd" => "private/auth",
            p => p,
        };
        let socket = AuthSocket::parse(path, Path::new(cfg.get("queue_directory")))?;
        let opts = |name: &str| {
            SecurityOptions::parse(&cfg.list(name))
                .map_err(|e| anyhow!("{}: {name}: {e}", cfg.origin_text(name)))
        };
        let auth = DovecotAuth {
            socket,
            plain: opts("smtpd_sasl_security_options")?,
            tls: opts("smtpd_sasl_tls_security_options")?,
            cache: Mutex::new(Cache {
                mechanisms: Vec::new(),
                failed_at: None,
                known: false,
            }),
            next_id: AtomicU32::new(1),
            service: cfg.get("smtpd_sasl_service").to_string(),
        };
        // The mechanisms are learnt by the first session (on smtpd's
        // blocking thread, not here: a reload must not wait for Dovecot).
        // Dovecot down is not a configuration error: EHLO offers no AUTH
        // until it is back.
        Ok(auth)
    }

    fn remember(&self, hs: &Handshake) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.mechanisms = hs.mechanisms.clone();
        c.failed_at = None;
        c.known = true;
    }

    /// Connects for the mechanism list unless a recent attempt failed.
    fn refresh(&self) {
        {
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if c.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                return;
            }
        }
        match Connection::open(&self.socket, HANDSHAKE_TIMEOUT) {
            Ok((_, hs)) => self.remember(&hs),
            Err(_) => {
                let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                c.failed_at = Some(Instant::now());
            }
        }
    }

    fn listed(&self, opts: &SecurityOptions) -> Vec<String> {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        opts.filter(&c.mechanisms)
    }
}

struct Exchange {
    conn: Connection,
    id: u32,
    /// The last challenge, which Postfix logs when Dovecot fails without a
    /// reason (`SASL LOGIN authentication failed: UGFzc3dvcmQ6`).
    last_challenge: Option<Vec<u8>>,
}

impl Exchange {
    fn outcome(&mut self, line: Result<ServerLine, String>) -> SaslStep {
        match line {
            Ok(ServerLine::Cont { data, .. }) => {
                self.last_challenge = Some(data.clone());
                SaslStep::Challenge(data)
            }
            Ok(ServerLine::Ok { user: Some(u), .. }) if !u.is_empty() => SaslStep::Success(u),
            Ok(ServerLine::Ok { .. }) => {
                SaslStep::Failure("authentication server sent no user name".into())
            }
            Ok(ServerLine::Fail {
                reason, temp: true, ..
            }) => SaslStep::TempFailure(reason.unwrap_or_else(|| LOST.into())),
            Ok(ServerLine::Fail { reason, .. }) => {
                SaslStep::Failure(match (reason, &self.last_challenge) {
                    (Some(r), _) => r,
                    (None, Some(c)) => yubin_smtp::sasl::b64_encode(c),
                    (None, None) => "authentication failure".into(),
                })
            }
            Ok(_) | Err(_) => SaslStep::TempFailure(LOST.into()),
        }
    }
}

impl SaslExchange for Exchange {
    fn step(&mut self, response: &[u8]) -> SaslStep {
        let line = self.conn.ask(&cont_command(self.id, response), self.id);
        self.outcome(line)
    }
}

impl Authenticator for DovecotAuth {
    fn mechanisms(&self) -> Vec<String> {
        self.listed(&self.plain)
    }

    fn mechanisms_tls(&self) -> Vec<String> {
        self.listed(&self.tls)
    }

    fn live(&self) -> bool {
        true
    }

    fn refresh(&self) {
        let known = self.cache.lock().map(|c| c.known).unwrap_or(false);
        if !known {
            DovecotAuth::refresh(self);
        }
    }

    fn start(
        &self,
        mechanism: &str,
        initial: Option<&[u8]>,
        context: &SaslContext,
    ) -> Option<(Box<dyn SaslExchange>, SaslStep)> {
        let opts = if context.tls { &self.tls } else { &self.plain };
        let (conn, hs) = match Connection::open(&self.socket, REPLY_TIMEOUT) {
            Ok(x) => x,
            // The session offered it from the last list we had: the
            // server went away since (Postfix: XSASL_AUTH_TEMP).
            Err(_) => return Some((Box::new(Refused), SaslStep::TempFailure(LOST.into()))),
        };
        self.remember(&hs);
        if !hs
            .mechanisms
            .iter()
            .any(|m| m.name == mechanism && opts.allows(m))
        {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = RequestInfo {
            service: self.service.clone(),
            remote_ip: Some(canonical(context.remote)),
            local_ip: context.local.map(canonical),
            secured: context.tls,
        };
        let mut x = Exchange {
            conn,
            id,
            last_challenge: None,
        };
        let line = x.conn.ask(&auth_command(id, mechanism, initial, &info), id);
        let step = x.outcome(line);
        Some((Box::new(x), step))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The exchange of an AUTH that could not reach Dovecot (never stepped:
/// its first answer already ended it).
struct Refused;

impl SaslExchange for Refused {
    fn step(&mut self, _: &[u8]) -> SaslStep {
        SaslStep::TempFailure(LOST.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_as_postfix_reads_them() {
        let q = Path::new("/var/spool/yubin");
        assert_eq!(
            AuthSocket::parse("private/auth", q).unwrap(),
            AuthSocket::Unix(PathBuf::from("/var/spool/yubin/private/auth"))
        );
        assert_eq!(
            AuthSocket::parse("/run/dovecot/auth-client", q).unwrap(),
            AuthSocket::Unix(PathBuf::from("/run/dovecot/auth-client"))
        );
        assert_eq!(
            AuthSocket::parse("inet:127.0.0.1:12345", q).unwrap(),
            AuthSocket::Inet("127.0.0.1:12345".into())
        );
        assert_eq!(
            AuthSocket::parse("inet:[::1]:12345", q).unwrap(),
            AuthSocket::Inet("[::1]:12345".into())
        );
        assert!(AuthSocket::parse("inet:host", q).is_err());
        assert!(AuthSocket::parse("inet:host:port", q).is_err());
    }
}
