//! One SMTP connection: wiring only. The session core (yubin-smtp) speaks
//! the protocol, the driver (yubin-conn) does the I/O, the policy
//! (yubin-policy) judges recipients; this file answers the core's requests
//! with them, with SASL, the queue's free space and cleanup.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpStream;
use yubin_conn::smtp::{SmtpAsk, SmtpCore};
use yubin_conn::{drive, Conn, End, Handler, Options, Step};
use yubin_smtp::{
    Answer, AuthRequest, ClientInfo, RecipientQuery, Reply, Request, SaslContext, SaslExchange,
    SaslStep, Session,
};

use super::runtime::{Runtime, Service, Shared};

/// The client's name before any DNS: `localhost` for 127.0.0.1 and ::1
/// (what /etc/hosts says), otherwise `unknown` (Postfix's word when a name
/// does not resolve); the policy looks names up in DNS when a restriction
/// needs them.
fn client_name(ip: IpAddr) -> String {
    let ip = ip.to_canonical();
    if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST) {
        "localhost".into()
    } else {
        "unknown".into()
    }
}

fn conn_local_ip(conn: &Conn) -> Option<IpAddr> {
    match conn {
        Conn::Plain(t) => t.local_addr().ok().map(|a| a.ip().to_canonical()),
        _ => None,
    }
}

fn conn_local_port(conn: &Conn) -> Option<u16> {
    match conn {
        Conn::Plain(t) => t.local_addr().ok().map(|a| a.port()),
        _ => None,
    }
}

/// Answers the session's requests for one connection.
struct Smtpd {
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
    svc: Arc<Service>,
    client: ClientInfo,
    /// The address the client connected to (Dovecot's `lip=`).
    local: Option<IpAddr>,
    /// The SASL exchange in progress (its state: SCRAM's nonces, ...).
    exchange: Option<Box<dyn SaslExchange>>,
    /// The client as the restrictions see it (names, earlier verdicts).
    peer: yubin_policy::Peer,
    // milter: begin
    /// smtpd_milters' connections for this session.
    milters: Option<super::milter::SessionMilters>,
    // milter: end
}

impl Smtpd {
    /// Runs a SASL step where blocking is allowed: password schemes
    /// (SHA512-CRYPT, bcrypt, Argon2) take milliseconds of CPU.
    async fn sasl(&mut self, req: AuthRequest) -> SaslStep {
        let Some(auth) = self.svc.auth.clone() else {
            return SaslStep::Failure("authentication not enabled".into());
        };
        let exchange = self.exchange.take();
        let (remote, local) = (self.client.addr, self.local);
        let done = tokio::task::spawn_blocking(move || match req {
            AuthRequest::Start {
                mechanism,
                initial,
                tls,
            } => {
                let context = SaslContext { remote, local, tls };
                match auth.start(&mechanism, initial.as_deref(), &context) {
                    Some((x, step)) => (Some(x), step),
                    None => (None, SaslStep::Failure("authentication failure".into())),
                }
            }
            AuthRequest::Response(bytes) => match exchange {
                Some(mut x) => {
                    let step = x.step(&bytes);
                    (Some(x), step)
                }
                None => (None, SaslStep::Failure("authentication failure".into())),
            },
        })
        .await;
        match done {
            Ok((x, step)) => {
                if matches!(step, SaslStep::Challenge(_)) {
                    self.exchange = x;
                }
                step
            }
            Err(_) => SaslStep::Failure("authentication failure".into()),
        }
    }
}

impl Handler<SmtpCore> for Smtpd {
    async fn answer(&mut self, core: &mut SmtpCore, ask: SmtpAsk) -> Vec<Step<SmtpAsk>> {
        match ask {
            SmtpAsk::Request(Request::Mail(q)) => {
                if let Some(r) = self.svc.queue_space.check(&self.shared, q.size) {
                    return core.answer(Answer::Verdict(Some(r)));
                }
                self.peer.transaction += 1;
                // smtpd_delay_reject = no: the sender restrictions now.
                let policy = &self.svc.policy;
                let v = if policy.settings.delay_reject {
                    yubin_smtp::PolicyVerdict::default()
                } else {
                    policy
                        .mail(
                            &mut self.peer,
                            &q,
                            q.helo.as_deref(),
                            q.sasl_user.as_deref(),
                        )
                        .await
                };
                // milter: begin
                if let (None, Some(m)) = (&v.reply, self.milters.as_mut()) {
                    let log = |l: &str| self.shared.log.log(self.svc.daemon(), l);
                    if let Some(r) = m.mail(&core.0, &q, &log).await {
                        return core.answer(Answer::Milter(r));
                    }
                }
                // milter: end
                core.answer(Answer::Policy(v))
            }
            SmtpAsk::Request(Request::Recipient(q)) => {
                let v = self.svc.policy.rcpt(&self.peer, &q, "RCPT").await;
                // milter: begin
                if let (None, Some(m)) = (&v.reply, self.milters.as_mut()) {
                    let log = |l: &str| self.shared.log.log(self.svc.daemon(), l);
                    if let Some(r) = m.rcpt(&core.0, &q, &log).await {
                        return core.answer(Answer::Milter(r));
                    }
                }
                // milter: end
                core.answer(Answer::Policy(v))
            }
            SmtpAsk::Request(Request::Connect) => {
                let v = self.svc.policy.connect(&mut self.peer).await;
                core.answer(Answer::Policy(v))
            }
            SmtpAsk::Request(Request::Helo(q)) => {
                let v = self.svc.policy.helo(&mut self.peer, &q.helo).await;
                core.answer(Answer::Policy(v))
            }
            // Postfix's vrfy_cmd runs the recipient restrictions
            // (smtpd_check_rcpt): from outside mynetworks, VRFY of a remote
            // address is "454 4.7.1 Relay access denied".
            SmtpAsk::Request(Request::Verify(addr)) => {
                let q = RecipientQuery {
                    recipient: addr,
                    sender: None,
                    sasl_user: None,
                    helo: None,
                    sender_given: String::new(),
                    holding: false,
                    discarding: false,
                    protocol: String::new(),
                    queue_id: None,
                    recipient_count: 0,
                    size: None,
                };
                let verdict = self.svc.policy.rcpt(&self.peer, &q, "VRFY").await.reply;
                core.answer(Answer::Verdict(verdict))
            }
            SmtpAsk::Request(Request::Auth(req)) => {
                if let AuthRequest::Start { mechanism, .. } = &req {
                    self.peer.sasl_method = Some(mechanism.clone());
                }
                let step = self.sasl(req).await;
                core.answer(Answer::Sasl(step))
            }
            SmtpAsk::Deliver { envelope, data } => {
                // --- msgauth (issue 14): judge, mark or refuse before queueing
                // (and before the milters, which then see its header).
                let data = match &self.svc.msgauth {
                    Some(ma) => {
                        let r = super::msgauth::end_of_data(
                            ma,
                            &self.shared,
                            &self.client,
                            &envelope,
                            data,
                        );
                        match r.await {
                            Ok(d) => d,
                            Err(reply) => return core.refused(reply),
                        }
                    }
                    None => data,
                };
                // --- end msgauth
                // milter: begin
                if let Some(m) = self.milters.as_mut() {
                    return match m
                        .deliver(&self.shared, &self.rt, &self.client, *envelope, data)
                        .await
                    {
                        Ok(result) => core.queued(result),
                        Err(reply) => core.refused(reply),
                    };
                }
                // milter: end
                let result =
                    super::cleanup::enqueue(&self.shared, &self.rt, &self.client, *envelope, data)
                        .await;
                core.queued(result)
            }
        }
    }

    fn log(&self, text: &str) {
        self.shared.log.log(self.svc.daemon(), text);
    }
}

/// queue_minfree and the free-space check Postfix's smtpd makes at MAIL
/// FROM (smtpd_check.c smtpd_check_queue and smtpd_check_size): refuse when
/// the queue's file system has less than queue_minfree plus the announced
/// SIZE free, or less than 1.5 times message_size_limit.
#[derive(Debug, Clone, Copy)]
pub struct QueueSpace {
    pub queue_minfree: u64,
    pub message_size_limit: u64,
}

impl QueueSpace {
    pub fn check(&self, shared: &Shared, size: Option<u64>) -> Option<Reply> {
        let free = yubin_sys::free_bytes(&shared.spool.dir(yubin_queue::State::Incoming))?;
        let need_min = self.queue_minfree.saturating_add(size.unwrap_or(0));
        let need_limit = (self.message_size_limit as f64 * 1.5) as u64;
        if free <= need_min || (self.message_size_limit > 0 && free <= need_limit) {
            shared.log.log(
                "smtpd",
                &format!(
                    "warning: not enough free space in mail queue: {free} bytes < 1.5*message_size_limit"
                ),
            );
            return Some(Reply::new(452, "4.3.1", "Insufficient system storage"));
        }
        None
    }
}

pub async fn handle(shared: Arc<Shared>, service_index: usize, tcp: TcpStream, peer: SocketAddr) {
    let rt = shared.current();
    let Some(svc) = rt.services.get(service_index).cloned() else {
        return;
    };
    let ip = peer.ip().to_canonical();
    let client = ClientInfo {
        name: client_name(ip),
        addr: ip,
        in_mynetworks: rt.in_mynetworks(ip),
    };
    let _ = tcp.set_nodelay(true);
    let conn = Conn::Plain(tcp);
    session(shared, rt, svc, conn, client, peer).await
}

/// A connection to a master.cf `unix` service (lmtpd). The client is
/// `localhost[127.0.0.1]`, as Postfix's smtpd_peer.c names a peer that is
/// not on the Internet.
pub async fn handle_unix(
    shared: Arc<Shared>,
    service_index: usize,
    stream: tokio::net::UnixStream,
) {
    let rt = shared.current();
    let Some(svc) = rt.services.get(service_index).cloned() else {
        return;
    };
    let ip = IpAddr::from([127, 0, 0, 1]);
    let client = ClientInfo {
        name: "localhost".into(),
        addr: ip,
        in_mynetworks: rt.in_mynetworks(ip),
    };
    // Milters see the same name and address, port 0.
    let peer = SocketAddr::from((ip, 0));
    session(shared, rt, svc, Conn::Unix(stream), client, peer).await
}

async fn session(
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
    svc: Arc<Service>,
    mut conn: Conn,
    mut client: ClientInfo,
    peer: SocketAddr,
) {
    let daemon = svc.daemon();
    let ip = client.addr;
    // The client's DNS names, when a restriction needs them.
    let names = svc.policy.client_names(&client).await;
    client.name = names.name.clone();
    let policy_peer = yubin_policy::Peer::new(client.clone(), names);
    let label = client.label();
    let count = shared.session_started(ip);
    shared.log.log(daemon, &format!("connect from {label}"));
    if !client.in_mynetworks && rt.client_connection_limit > 0 && count > rt.client_connection_limit
    {
        shared.log.log(
            daemon,
            &format!("warning: Connection concurrency limit exceeded: {count} from {label} for service {}", svc.name),
        );
        let reply = Reply::new(
            421,
            "4.7.0",
            format!("{} Error: too many connections from {ip}", rt.hostname),
        );
        let _ = conn.write_all(&reply.to_wire()).await;
        shared
            .log
            .log(daemon, &format!("disconnect from {label} commands=0/0"));
        shared.session_ended(ip);
        return;
    }
    let opts = Options {
        timeout: svc.timeout,
        tls: svc.tls.config.clone(),
        label: label.clone(),
        log_tls: svc.tls.loglevel >= 1,
        shutdown: Some(shared.shutdown.clone()),
        shutdown_reply: Reply::new(
            421,
            "4.3.2",
            format!(
                "{} Service shutting down, closing transmission channel",
                rt.hostname
            ),
        )
        .to_wire(),
        read_size: 16 * 1024,
    };
    let local = conn_local_ip(&conn);
    // milter: begin
    // The connect event comes before the greeting (smtpd.c); a 421 from a
    // milter ends the session here.
    let mut milters = None;
    if let Some(ms) = &svc.milters {
        let local_sock = local.zip(conn_local_port(&conn)).map(SocketAddr::from);
        let log = |l: &str| shared.log.log(daemon, l);
        match super::milter::SessionMilters::connect(ms, &client, peer, local_sock, &log).await {
            Ok(m) => milters = Some(m),
            Err(reply) => {
                let _ = conn.write_all(&reply.to_wire()).await;
                log(&format!("disconnect from {label} commands=0/0"));
                shared.session_ended(ip);
                return;
            }
        }
    }
    // milter: end
    let mut session = svc.session.clone();
    if let Some(auth) = svc.auth.clone().filter(|a| a.live()) {
        // Dovecot's mechanisms as it announces them now (smtpd_sasl_type =
        // dovecot); asking may connect, so not on this task's thread.
        if let Ok((plain, tls)) = tokio::task::spawn_blocking(move || {
            auth.refresh();
            (auth.mechanisms(), auth.mechanisms_tls())
        })
        .await
        {
            session.auth_mechanisms = Some(plain);
            session.auth_mechanisms_tls = Some(tls);
        }
    }
    let mut core = SmtpCore(Session::new(session, client.clone()));
    let mut handler = Smtpd {
        shared: shared.clone(),
        rt: rt.clone(),
        svc: svc.clone(),
        client,
        local,
        exchange: None,
        peer: policy_peer,
        // milter: begin
        milters,
        // milter: end
    };
    if svc.tls.wrapped
        && yubin_conn::driver::wrapped_handshake(&mut conn, &mut core, &handler, &opts)
            .await
            .is_err()
    {
        shared.log.log(daemon, &core.0.disconnect_log());
        shared.session_ended(ip);
        return;
    }
    let first = core.start();
    let _end: End = drive(&mut conn, &mut core, &mut handler, first, &opts).await;
    conn.shutdown().await;
    // milter: begin
    if let Some(m) = handler.milters.as_mut() {
        m.quit().await;
    }
    // milter: end
    shared.log.log(daemon, &core.0.disconnect_log());
    if let Some(notice) = core.0.notice() {
        let sh = shared.clone();
        let rt = rt.clone();
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
            let now = yubin_maillog::clock::now_secs();
            sh.notices
                .session_ended(&sh.notify(&rt), &label, report, now)
        });
    }
    shared.session_ended(ip);
}
