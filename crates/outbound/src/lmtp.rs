//! lmtp(8): delivery by LMTP (RFC 2033) to a mail store such as Dovecot's
//! `lmtp` service, over a UNIX-domain socket or TCP. The same client core
//! (`yubin_smtp::client` with `lmtp` set) and the same session driver as
//! smtp(8); what differs is the next hop (no MX, no relayhost, no TLS, no
//! loop check, no DKIM signing: the store is the final destination) and
//! that the replies after the final dot are per recipient.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::{TcpStream, UnixStream};
use yubin_smtp::client::{is_eight_bit, ClientConfig, Outcome, StartTls, Transaction};
use yubin_smtp::Enhanced;

use crate::agent::{io_text, rcpt_result, Conn, Delivery, Job, RcptResult, Session, Status};
use crate::settings::Settings;
use crate::tls::TlsLevel;

/// LMTP's well-known port (RFC 2033 section 5: not 25; IANA assigned 24).
pub const LMTP_PORT: u16 = 24;

/// Where lmtp(8) connects, from the next hop of `lmtp:NEXTHOP`
/// (lmtp(8) "SMTP DESTINATION SYNTAX").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpTarget {
    /// `unix:PATH`; `shown` is the path as configured, for `relay=`.
    Unix { path: PathBuf, shown: String },
    /// `inet:host:port`, `host:port`, `[addr]:port`, `host` (port 24).
    Inet { host: String, port: u16 },
}

impl LmtpTarget {
    /// A relative UNIX path is relative to queue_directory, as Postfix's
    /// `lmtp:unix:private/dovecot-lmtp`.
    pub fn parse(nexthop: &str, queue_directory: &Path) -> Result<LmtpTarget, String> {
        let n = nexthop.trim();
        if let Some(p) = n.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(format!("lmtp destination \"{nexthop}\": empty socket path"));
            }
            let path = if Path::new(p).is_absolute() {
                PathBuf::from(p)
            } else {
                queue_directory.join(p)
            };
            return Ok(LmtpTarget::Unix {
                path,
                shown: p.to_string(),
            });
        }
        let rest = n.strip_prefix("inet:").unwrap_or(n);
        if rest.is_empty() {
            return Err(format!("lmtp destination \"{nexthop}\": no host"));
        }
        let (host, port) = if let Some(b) = rest.strip_prefix('[') {
            let (h, after) = b
                .split_once(']')
                .ok_or_else(|| format!("lmtp destination \"{nexthop}\": missing ]"))?;
            (h, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                _ => (rest, None),
            }
        };
        let port = match port {
            None => LMTP_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("lmtp destination \"{nexthop}\": bad port \"{p}\""))?,
        };
        if host.is_empty() {
            return Err(format!("lmtp destination \"{nexthop}\": no host"));
        }
        Ok(LmtpTarget::Inet {
            host: host.to_string(),
            port,
        })
    }
}

fn failure(n: usize, relay: &str, text: String, dsn: Enhanced, setup: Duration) -> Delivery {
    let r = RcptResult {
        status: Status::Deferred,
        dsn,
        relay: relay.to_string(),
        text,
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

/// Delivers one message by LMTP: one result per recipient, each the
/// server's own reply for it. A connection failure defers everybody.
pub async fn deliver(settings: &Settings, target: &LmtpTarget, job: &Job<'_>) -> Delivery {
    let started = Instant::now();
    let n = job.recipients.len();
    let connect = settings.timeouts.connect;
    // Postfix logs a socket as `myhostname[path]` (smtp_connect_local).
    let (conn, relay, hostaddr, host) = match target {
        LmtpTarget::Unix { path, shown } => {
            let relay = format!("{}[{shown}]", settings.my_hostname);
            match tokio::time::timeout(connect, UnixStream::connect(path)).await {
                Ok(Ok(s)) => (
                    Conn::Unix(s),
                    relay.clone(),
                    relay,
                    settings.my_hostname.clone(),
                ),
                Ok(Err(e)) => {
                    let text = format!("connect to {shown}: {}", io_text(&e));
                    return failure(n, "none", text, Enhanced::new(4, 4, 1), started.elapsed());
                }
                Err(_) => {
                    let text = format!("connect to {shown}: Connection timed out");
                    return failure(n, "none", text, Enhanced::new(4, 4, 1), started.elapsed());
                }
            }
        }
        LmtpTarget::Inet { host, port } => {
            let ip = match host.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| a.ip()),
            };
            let Some(ip) = ip else {
                let text = format!("Host or domain name not found. Name service error for name={host} type=A: Host not found");
                return failure(n, "none", text, Enhanced::new(4, 4, 3), started.elapsed());
            };
            let relay = format!("{host}[{ip}]:{port}");
            let addr = SocketAddr::new(ip, *port);
            match tokio::time::timeout(connect, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    (Conn::Plain(s), relay, format!("{host}[{ip}]"), host.clone())
                }
                Ok(Err(e)) => {
                    let text = format!("connect to {relay}: {}", io_text(&e));
                    return failure(n, "none", text, Enhanced::new(4, 4, 1), started.elapsed());
                }
                Err(_) => {
                    let text = format!("connect to {relay}: Connection timed out");
                    return failure(n, "none", text, Enhanced::new(4, 4, 1), started.elapsed());
                }
            }
        }
    };
    let mut cfg = ClientConfig::new(settings.helo_name.clone());
    cfg.lmtp = true;
    cfg.starttls = StartTls::Never;
    cfg.chunking = false;
    // No "loops back to myself" check: LMTP to this host's own store is
    // the point (Postfix sets SMTP_MISC_FLAG_LOOP_DETECT for smtp only).
    cfg.my_hostname = None;
    let tx = Transaction {
        sender: job.sender.to_string(),
        recipients: job.recipients.clone(),
        size: job.message.len() as u64,
        eight_bit: is_eight_bit(job.message),
        smtputf8: job.smtputf8
            || !job.sender.is_ascii()
            || job.recipients.iter().any(|r| !r.address.is_ascii()),
        ret: job.ret,
        envid: job.envid.clone(),
    };
    let s = Session {
        settings,
        level: TlsLevel::None,
        tls_name: &host,
        relay: &relay,
        message: job.message,
    };
    let out = s.run(conn, cfg, tx, started).await;
    let mut results: Vec<Option<RcptResult>> = vec![None; n];
    for (k, outcome) in out.outcomes {
        if let Some(slot) = results.get_mut(k) {
            *slot = Some(rcpt_result(
                outcome, &relay, &hostaddr, &host, out.setup, out.xfer,
            ));
        }
    }
    // One destination, nothing to fall back to: a session failure is told
    // by each recipient's status line only (Postfix logs a separate line
    // only when it moves on to another host).
    let notes = out.notes;
    let close = out.close;
    let results = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                let f = close.clone().unwrap_or(yubin_smtp::client::Failure::Local {
                    stage: yubin_smtp::client::Stage::Closed,
                    reason: yubin_smtp::client::LocalReason::Lost,
                });
                rcpt_result(
                    Outcome::Failed(f),
                    &relay,
                    &hostaddr,
                    &host,
                    out.setup,
                    out.xfer,
                )
            })
        })
        .collect::<Vec<_>>();
    Delivery { results, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_as_lmtp_8_reads_them() {
        let q = Path::new("/var/spool/yubin");
        assert_eq!(
            LmtpTarget::parse("unix:private/dovecot-lmtp", q).unwrap(),
            LmtpTarget::Unix {
                path: PathBuf::from("/var/spool/yubin/private/dovecot-lmtp"),
                shown: "private/dovecot-lmtp".into()
            }
        );
        assert_eq!(
            LmtpTarget::parse("unix:/run/dovecot/lmtp", q).unwrap(),
            LmtpTarget::Unix {
                path: PathBuf::from("/run/dovecot/lmtp"),
                shown: "/run/dovecot/lmtp".into()
            }
        );
        let inet = |h: &str, p| LmtpTarget::Inet {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            LmtpTarget::parse("inet:127.0.0.1:2424", q).unwrap(),
            inet("127.0.0.1", 2424)
        );
        assert_eq!(
            LmtpTarget::parse("mail.example.com", q).unwrap(),
            inet("mail.example.com", 24)
        );
        assert_eq!(
            LmtpTarget::parse("[::1]:2424", q).unwrap(),
            inet("::1", 2424)
        );
        assert_eq!(
            LmtpTarget::parse("inet:[192.0.2.1]", q).unwrap(),
            inet("192.0.2.1", 24)
        );
        for bad in ["unix:", "inet:", "host:0", "host:x", "[::1", ":24"] {
            assert!(LmtpTarget::parse(bad, q).is_err(), "{bad}");
        }
    }

    /// A socket nobody listens on: every recipient deferred with Postfix's
    /// text, relay=none.
    #[tokio::test]
    async fn no_listener_defers_everybody() {
        let dir = tempfile::tempdir().unwrap();
        let target = LmtpTarget::parse(
            &format!("unix:{}/lmtp", dir.path().display()),
            Path::new("/"),
        )
        .unwrap();
        let settings = Settings::new("mail.example.com");
        let job = Job {
            queue_id: "ABC",
            sender: "a@example.com",
            recipients: vec![
                yubin_smtp::client::Rcpt::new("x@example.com"),
                yubin_smtp::client::Rcpt::new("y@example.com"),
            ],
            message: b"Subject: t\n\nbody\n",
            ret: None,
            envid: None,
            smtputf8: false,
        };
        let d = deliver(&settings, &target, &job).await;
        assert_eq!(d.results.len(), 2);
        for r in &d.results {
            assert_eq!(r.status, Status::Deferred);
            assert_eq!(r.relay, "none");
            assert!(r.text.starts_with("connect to "), "{}", r.text);
            assert!(
                r.text.ends_with("/lmtp: No such file or directory"),
                "{}",
                r.text
            );
        }
    }
}
