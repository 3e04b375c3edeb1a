//! One SMTP connection: the I/O around the sans-I/O session. Reads with
//! `smtpd_timeout`, writes replies, sleeps where the session asks, hands
//! finished messages to cleanup and feeds the queue's answer back.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::conn::Conn;
use yubin_smtp::{Action, ClientInfo, Session};

use super::runtime::Shared;

/// The client's name: `localhost` for loopback, otherwise `unknown` (no
/// reverse lookup yet; Postfix prints the same word when a name does not
/// resolve).
fn client_name(ip: IpAddr) -> String {
    if ip.is_loopback() || ip.to_canonical().is_loopback() {
        "localhost".into()
    } else {
        "unknown".into()
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    service_index: usize,
    mut tcp: TcpStream,
    peer: SocketAddr,
) {
    let rt = shared.current();
    let Some(svc) = rt.services.get(service_index).cloned() else {
        return;
    };
    let ip = peer.ip().to_canonical();
    let in_mynetworks = rt.in_mynetworks(ip);
    let client = ClientInfo {
        name: client_name(ip),
        addr: ip,
        in_mynetworks,
    };
    let label = client.label();
    let count = shared.session_started(ip);
    shared.log.log("smtpd", &format!("connect from {label}"));
    let _ = tcp.set_nodelay(true);
    if !in_mynetworks && rt.client_connection_limit > 0 && count > rt.client_connection_limit {
        shared.log.log(
            "smtpd",
            &format!("warning: Connection concurrency limit exceeded: {count} from {label} for service {}", svc.name),
        );
        let _ = tcp
            .write_all(
                format!(
                    "421 4.7.0 {} Error: too many connections from {ip}\r\n",
                    rt.hostname
                )
                .as_bytes(),
            )
            .await;
        shared
            .log
            .log("smtpd", &format!("disconnect from {label} commands=0/0"));
        shared.session_ended(ip);
        return;
    }
    let policy = Arc::new(super::runtime::ResolverPolicy(
        rt.resolver.clone(),
        rt.sender_login_maps.clone(),
        rt.dns.clone(),
    ));
    // Password checks (SHA512-CRYPT, bcrypt, Argon2) take milliseconds of
    // CPU: with AUTH on, the session runs where blocking is allowed.
    let blocking = svc.session.auth.is_some() || rt.dns.is_some();
    let timeout = Duration::from_secs(rt.cfg.time("smtpd_timeout", 's').unwrap_or(300));
    let mut session = Session::new(svc.session.clone(), policy, client.clone());
    let mut stream = Conn::Plain(tcp);
    if let (true, Some(config)) = (svc.tls.wrapped, svc.tls.config.clone()) {
        match tokio::time::timeout(timeout, stream.upgrade(config)).await {
            Ok(Ok(summary)) => {
                log_tls(&shared, &svc.tls, &label, &summary);
                session.tls_started(summary);
            }
            _ => {
                shared.log.log(
                    "smtpd",
                    &format!("SSL_accept error from {label}: lost connection"),
                );
                shared.log.log(
                    "smtpd",
                    &format!("lost connection after CONNECT from {label}"),
                );
                shared.log.log("smtpd", &session.disconnect_log());
                shared.session_ended(ip);
                return;
            }
        }
    }
    let mut pending = session.start();
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        while !pending.is_empty() {
            let mut next = Vec::new();
            for action in std::mem::take(&mut pending) {
                match action {
                    Action::Send(bytes) => {
                        if stream.write_all(&bytes).await.is_err() {
                            shared.log.log(
                                "smtpd",
                                &format!(
                                    "lost connection after {} from {label}",
                                    session.last_verb()
                                ),
                            );
                            break 'conn;
                        }
                    }
                    Action::Delay(d) => tokio::time::sleep(d).await,
                    Action::Log(text) => shared.log.log("smtpd", &text),
                    Action::Deliver { envelope, data } => {
                        let result =
                            super::cleanup::enqueue(&shared, &rt, &client, *envelope, data).await;
                        next.extend(session.queued(result));
                    }
                    Action::Close => break 'conn,
                    Action::StartTls => {
                        let Some(config) = svc.tls.config.clone() else {
                            break 'conn;
                        };
                        match tokio::time::timeout(timeout, stream.upgrade(config)).await {
                            Ok(Ok(summary)) => {
                                log_tls(&shared, &svc.tls, &label, &summary);
                                next.extend(session.tls_started(summary));
                            }
                            Ok(Err(e)) => {
                                shared
                                    .log
                                    .log("smtpd", &format!("SSL_accept error from {label}: {e}"));
                                shared.log.log(
                                    "smtpd",
                                    &format!("lost connection after STARTTLS from {label}"),
                                );
                                break 'conn;
                            }
                            Err(_) => {
                                shared
                                    .log
                                    .log("smtpd", &format!("timeout after STARTTLS from {label}"));
                                break 'conn;
                            }
                        }
                    }
                }
            }
            pending = next;
        }
        if session.is_closed() {
            break;
        }
        let read = tokio::select! {
            r = tokio::time::timeout(timeout, stream.read(&mut buf)) => r,
            _ = shared.shutdown.notified() => {
                let _ = stream.write_all(format!("421 4.3.2 {} Service shutting down, closing transmission channel\r\n", rt.hostname).as_bytes()).await;
                break;
            }
        };
        match read {
            Err(_) => pending = session.timeout(),
            Ok(Ok(0)) | Ok(Err(_)) => {
                shared.log.log(
                    "smtpd",
                    &format!("lost connection after {} from {label}", session.last_verb()),
                );
                break;
            }
            Ok(Ok(n)) if blocking => {
                pending = tokio::task::block_in_place(|| session.feed(&buf[..n]))
            }
            Ok(Ok(n)) => pending = session.feed(&buf[..n]),
        }
    }
    let _ = stream.shutdown().await;
    shared.log.log("smtpd", &session.disconnect_log());
    if let Some(notice) = session.notice() {
        let sh = shared.clone();
        let rt = rt.clone();
        let label = label.clone();
        // Queueing the notice waits for a disk flush: not on this task's thread.
        tokio::task::spawn_blocking(move || {
            let report = yubin_notify::SessionReport {
                classes: notice
                    .classes
                    .iter()
                    .filter_map(|c| yubin_notify::Class::parse(c))
                    .collect(),
                transcript: notice.transcript,
                rejected: notice.rejected,
            };
            let notify = yubin_notify::Notify {
                settings: &rt.queue.notify,
                queue: &*sh,
                log: &sh.log,
            };
            sh.notices
                .session_ended(&notify, &label, report, yubin_maillog::clock::now_secs())
        });
    }
    shared.session_ended(ip);
}

/// Postfix's `smtpd_tls_loglevel = 1` line.
fn log_tls(shared: &Shared, tls: &super::tls::TlsPolicy, label: &str, summary: &str) {
    if tls.loglevel >= 1 {
        shared.log.log(
            "smtpd",
            &format!("Anonymous TLS connection established from {label}: {summary}"),
        );
    }
}
