//! IMAP listeners: master.cf services whose command is `imap` (`imap inet
//! n - n - - imap` on 143 with STARTTLS, `imaps ... imap` on 993 with TLS
//! from the first byte). This file is the I/O around `yubin_imap`'s session:
//! sockets, TLS (smtpd's certificates), passwords from smtpd's passwd-file,
//! the Maildir store (`imap_store`), the failed-login delay and Dovecot's
//! log lines. The protocol lives in the `imap` crate.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use yubin_auth::passwd_file::SharedUserDb;
use yubin_conf::{Config, MasterCf};
use yubin_imap::{Action, AuthOutcome, Credentials, Session};

use super::imap_store::MaildirStore;
use super::runtime::Shared;
use yubin_conn::Conn;

/// One `imap` service of master.cf.
pub struct ImapService {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    /// TLS from the first byte (imaps).
    pub wrapped: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
    session: yubin_imap::Config,
    process_limit: usize,
    /// Dovecot's auth_failure_delay: a failed login is answered this late.
    failure_delay: Duration,
    idle_poll: Duration,
    timeout: Duration,
    users: Arc<SharedUserDb>,
}

pub struct Bound {
    pub service: Arc<ImapService>,
    pub addr: SocketAddr,
    listener: TcpListener,
}

/// The `imap` services of master.cf, with their settings. None when
/// master.cf has none.
pub fn services(cfg: &Config) -> anyhow::Result<Vec<Arc<ImapService>>> {
    let master = MasterCf::load(cfg.dir())?;
    let mut out = Vec::new();
    for svc in master.imap_services() {
        let context = || format!("master.cf:{}: service {}", svc.line, svc.name);
        let scfg = cfg
            .with_overrides(&svc.name, &svc.overrides)
            .with_context(context)?;
        let (host, port) = svc
            .listen()
            .ok_or_else(|| anyhow!("master.cf:{}: bad service address {}", svc.line, svc.name))?;
        let wrapped = port == 993 || scfg.bool("imapd_tls_wrappermode")?;
        // The certificates are smtpd's (smtpd_tls_cert_file/key_file or
        // smtpd_tls_chain_files); IMAP always offers TLS when they exist.
        let tls_cfg = scfg.with_overrides(
            &svc.name,
            &[
                ("smtpd_tls_security_level".into(), "may".into()),
                (
                    "smtpd_tls_wrappedmode".into(),
                    if wrapped { "yes" } else { "no" }.into(),
                ),
            ],
        )?;
        let have_cert = !scfg.get("smtpd_tls_cert_file").is_empty()
            || !scfg.list("smtpd_tls_chain_files").is_empty();
        let tls = if have_cert {
            super::tls::policy(&tls_cfg).with_context(context)?.config
        } else {
            None
        };
        if wrapped && tls.is_none() {
            bail!("{}: TLS-wrapped IMAP needs smtpd_tls_cert_file", context());
        }
        if scfg.get("smtpd_sasl_type") == "dovecot" {
            // smtpd_sasl_path then names Dovecot's socket, not a user file.
            bail!(
                "{}: yubin's IMAP reads its users from a passwd-file or PostgreSQL (smtpd_sasl_type = passwd-file); with smtpd_sasl_type = dovecot, Dovecot serves IMAP: remove this service (see docs/dovecot.md)",
                context()
            );
        }
        // passwd-file, or users in PostgreSQL (smtpd_sasl_path = pgsql:FILE).
        let users = Arc::new(
            crate::userdb::open(cfg.dir(), scfg.get("smtpd_sasl_path")).with_context(context)?,
        );
        let addrs = listen_addrs(&scfg, host, port).with_context(context)?;
        let session = yubin_imap::Config {
            server_name: scfg.get("myhostname").to_string(),
            tls_active: wrapped,
            starttls_available: tls.is_some() && !wrapped,
            plaintext_auth: !scfg.bool("imapd_disable_plaintext_auth")?,
            max_line: scfg.u64("imap_max_line_length")?.max(1024) as usize,
            max_literal: 64 * 1024,
            append_limit: match scfg.u64("imapd_append_limit")? {
                0 => u32::MAX as usize,
                n => n as usize,
            },
            ..yubin_imap::Config::default()
        };
        out.push(Arc::new(ImapService {
            name: svc.name.clone(),
            addrs,
            wrapped,
            tls,
            session,
            process_limit: scfg.u64("default_process_limit").unwrap_or(100).max(1) as usize,
            failure_delay: Duration::from_secs(scfg.time("imapd_auth_failure_delay", 's')?),
            idle_poll: Duration::from_millis(500),
            timeout: Duration::from_secs(scfg.time("imapd_timeout", 's')?),
            users,
        }));
    }
    Ok(out)
}

fn listen_addrs(cfg: &Config, host: Option<String>, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    let hosts: Vec<String> = match host {
        Some(h) => vec![h],
        None => cfg
            .list("inet_interfaces")
            .into_iter()
            .map(|i| match i.as_str() {
                "all" => "0.0.0.0".to_string(),
                "loopback-only" | "localhost" => "127.0.0.1".to_string(),
                other => other.trim_matches(['[', ']']).to_string(),
            })
            .collect(),
    };
    hosts
        .iter()
        .map(|h| {
            let ip: IpAddr = h
                .parse()
                .map_err(|_| anyhow!("bad listen address \"{h}\""))?;
            Ok(SocketAddr::new(ip, port))
        })
        .collect()
}

/// Binds every IMAP listener (before privileges are dropped: 143, 993).
pub async fn bind(cfg: &Config) -> anyhow::Result<Vec<Bound>> {
    let mut out = Vec::new();
    for svc in services(cfg)? {
        for addr in &svc.addrs {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("service {}: bind {addr}", svc.name))?;
            out.push(Bound {
                addr: listener.local_addr()?,
                service: svc.clone(),
                listener,
            });
        }
    }
    Ok(out)
}

/// Starts the accept loops; abort the handle to stop them.
pub fn serve(shared: Arc<Shared>, bound: Vec<Bound>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        for b in bound {
            let shared = shared.clone();
            let slots = Arc::new(Semaphore::new(b.service.process_limit));
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (stream, peer) = match b.listener.accept().await {
                        Ok(x) => x,
                        Err(e) => {
                            shared.log.log("imap-login", &format!("Error: accept: {e}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let shared = shared.clone();
                    let svc = b.service.clone();
                    let local = b.addr;
                    tokio::spawn(async move {
                        handle(shared, svc, stream, peer, local).await;
                        drop(permit);
                    });
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    })
}

/// Where a user's Maildir is: the passwd-file `mail` (Dovecot's
/// `userdb_mail`, `maildir:~/Maildir`) field, else the Maildir the
/// resolver delivers the address to (virtual_mailbox_maps), else
/// `home/Maildir`.
fn maildir_of(shared: &Shared, user: &yubin_auth::User) -> Option<PathBuf> {
    let home = user.home.clone().filter(|h| !h.is_empty());
    for (k, v) in &user.extra {
        if k == "mail" || k == "userdb_mail" {
            let loc = v.strip_prefix("maildir:").unwrap_or(v);
            let loc = loc.split(':').next().unwrap_or(loc);
            let loc = match (loc.strip_prefix("~/"), &home) {
                (Some(rest), Some(h)) => format!("{h}/{rest}"),
                _ => loc.to_string(),
            };
            return Some(PathBuf::from(loc));
        }
    }
    if let Ok(addr) = yubin_addr::parse_address(&user.name, true) {
        let rt = shared.current();
        let (deliveries, _) = rt.resolver.expand(&addr);
        if let [d] = deliveries.as_slice() {
            if let yubin_addr::Agent::Maildir(m) = &d.agent {
                return Some(PathBuf::from(&m.path));
            }
        }
    }
    home.map(|h| PathBuf::from(h).join("Maildir"))
}

/// Checks a password: the user's store on success, `None` on failure.
fn verify(
    shared: &Shared,
    users: &SharedUserDb,
    creds: &Credentials,
) -> Result<Option<(String, MaildirStore)>, String> {
    let Some(user) = users.get(&creds.user) else {
        return Ok(None);
    };
    match yubin_auth::hash::verify(&user.password, &creds.password) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) => return Err(format!("user {}: stored password unusable: {e}", user.name)),
    }
    let dir = maildir_of(shared, &user).ok_or_else(|| {
        format!(
            "user {}: no mail location (no mail field, home or virtual mailbox)",
            user.name
        )
    })?;
    let store = MaildirStore::open(&dir)
        .map_err(|e| format!("user {}: {}: {e}", user.name, dir.display()))?;
    Ok(Some((user.name.clone(), store)))
}

async fn handle(
    shared: Arc<Shared>,
    svc: Arc<ImapService>,
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let started = Instant::now();
    let rip = peer.ip().to_canonical();
    let lip = local.ip().to_canonical();
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn::Plain(tcp);
    let mut cfg = svc.session.clone();
    if svc.wrapped {
        let Some(tls) = svc.tls.clone() else { return };
        match tokio::time::timeout(svc.timeout, conn.upgrade(tls)).await {
            Ok(Ok(_)) => cfg.tls_active = true,
            _ => {
                shared.log.log(
                    "imap-login",
                    &format!("Disconnected (no auth attempts in {} secs): user=<>, rip={rip}, lip={lip}, TLS handshaking failed", started.elapsed().as_secs()),
                );
                return;
            }
        }
    }
    let mut session = Session::new(cfg);
    let mut store: Option<MaildirStore> = None;
    let mut last_user = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut stamp = None;
    let reason: String = 'conn: loop {
        while let Some(action) = session.next_action() {
            match action {
                Action::Write(b) => {
                    if conn.write_all(&b).await.is_err() {
                        break 'conn "Connection closed".into();
                    }
                }
                Action::Close => break 'conn "Logged out".into(),
                Action::StartTls => {
                    let Some(tls) = svc.tls.clone() else {
                        break 'conn "TLS unavailable".into();
                    };
                    match tokio::time::timeout(svc.timeout, conn.upgrade(tls)).await {
                        Ok(Ok(_)) => session.tls_established(),
                        _ => break 'conn "TLS handshaking failed".into(),
                    }
                }
                Action::Authenticate(creds) => {
                    last_user = creds.user.clone();
                    let sh = shared.clone();
                    let users = svc.users.clone();
                    let c = creds.clone();
                    let r = tokio::task::spawn_blocking(move || verify(&sh, &users, &c))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                    match r {
                        Ok(Some((name, st))) => {
                            shared.log.log(
                                "imap-login",
                                &format!(
                                    "Login: user=<{name}>, method={}, rip={rip}, lip={lip}{}",
                                    creds.method.log_name(),
                                    if session_tls(&conn) { ", TLS" } else { "" }
                                ),
                            );
                            store = Some(st);
                            session.auth_result(&name, AuthOutcome::Success);
                        }
                        Ok(None) => {
                            // Dovecot's auth penalty: the answer to a failed
                            // login waits (auth_failure_delay).
                            tokio::time::sleep(svc.failure_delay).await;
                            session.auth_result(&creds.user, AuthOutcome::Failure);
                        }
                        Err(e) => {
                            shared.log.log("imap-login", &format!("Error: {e}"));
                            session.auth_result(&creds.user, AuthOutcome::TemporaryFailure);
                        }
                    }
                }
                Action::Store(req) => {
                    let Some(mut st) = store.take() else {
                        break 'conn "Internal error".into();
                    };
                    let (st, reply) = match tokio::task::spawn_blocking(move || {
                        let r = st.execute(req);
                        (st, r)
                    })
                    .await
                    {
                        Ok(x) => x,
                        Err(_) => break 'conn "Internal error".into(),
                    };
                    if let yubin_imap::store::Reply::Failed(yubin_imap::store::StoreError::Io(e)) =
                        &reply
                    {
                        shared
                            .log
                            .log(&format!("imap({last_user})"), &format!("Error: {e}"));
                    }
                    store = Some(st);
                    session.store_reply(reply);
                }
                Action::Idle => {
                    stamp = match (&store, session.selected_mailbox()) {
                        (Some(st), Some(m)) => st.stamp(m),
                        _ => None,
                    };
                }
            }
        }
        if session.is_closed() {
            break "Logged out".into();
        }
        let read = if session.is_idle() {
            // New mail and other sessions' changes show up in IDLE: the
            // folder's directories are checked (a stat each) twice a second.
            let mut tick = tokio::time::interval(svc.idle_poll);
            tick.tick().await;
            let deadline = tokio::time::sleep(Duration::from_secs(30 * 60));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    r = conn.read(&mut buf) => break Some(r),
                    _ = tick.tick() => {
                        let now = match (&store, session.selected_mailbox()) {
                            (Some(st), Some(m)) => st.stamp(m),
                            _ => None,
                        };
                        if now != stamp {
                            stamp = now;
                            session.mailbox_changed();
                            break None;
                        }
                    }
                    _ = &mut deadline => break Some(Ok(0)),
                    _ = shared.shutdown.notified() => break Some(Ok(0)),
                }
            }
        } else {
            tokio::select! {
                r = tokio::time::timeout(svc.timeout, conn.read(&mut buf)) => match r {
                    Ok(r) => Some(r),
                    Err(_) => {
                        let _ = conn.write_all(b"* BYE Disconnected for inactivity.\r\n").await;
                        break "Disconnected for inactivity".into();
                    }
                },
                _ = shared.shutdown.notified() => {
                    let _ = conn.write_all(b"* BYE Server shutting down.\r\n").await;
                    break "Server shutting down".into();
                }
            }
        };
        match read {
            None => {}
            Some(Ok(0)) | Some(Err(_)) => break "Connection closed".into(),
            Some(Ok(n)) => session.feed(&buf[..n]),
        }
    };
    conn.shutdown().await;
    let secs = started.elapsed().as_secs();
    match session.user() {
        Some(u) => shared
            .log
            .log(&format!("imap({u})"), &format!("Disconnected: {reason}")),
        None if session.auth_failures() > 0 => {
            // Dovecot's login process line, which fail2ban's dovecot filter
            // and yubin guard count.
            shared.log.log(
                "imap-login",
                &format!(
                    "Disconnected (auth failed, {} attempts in {secs} secs): user=<{last_user}>, method={}, rip={rip}, lip={lip}{}",
                    session.auth_failures(),
                    session.last_auth_method().map(|m| m.log_name()).unwrap_or("PLAIN"),
                    if session_tls(&conn) { ", TLS" } else { "" }
                ),
            );
        }
        None => shared.log.log(
            "imap-login",
            &format!(
                "Disconnected (no auth attempts in {secs} secs): user=<>, rip={rip}, lip={lip}"
            ),
        ),
    }
}

fn session_tls(conn: &Conn) -> bool {
    matches!(conn, Conn::Tls(_))
}
