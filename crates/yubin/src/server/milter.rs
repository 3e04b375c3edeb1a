//! smtpd_milters wiring: the sockets to the milters, the timeouts, and the
//! loop that feeds the yubin-milter core; the protocol is the core's. One
//! [`Milters`] lives as long as one SMTP session, as in Postfix smtpd.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use yubin_milter::client::body_chunks;
use yubin_milter::{Client, Config, Edit, Event, Message, Outcome, Step, Verdict};
use yubin_smtp::Reply;

use super::settings::{MilterEndpoint, MilterSettings};

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(b).await,
            Stream::Unix(s) => s.write_all(b).await,
        }
    }

    async fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(b).await,
            Stream::Unix(s) => s.read(b).await,
        }
    }
}

struct Conn {
    client: Client,
    stream: Option<Stream>,
    command_timeout: Duration,
    content_timeout: Duration,
    /// Read buffer, kept for the session (one read per header otherwise
    /// allocates).
    buf: Vec<u8>,
}

/// The milters of one session, in configuration order, and the macro
/// values known so far.
pub struct Milters {
    conns: Vec<Conn>,
    /// Macro values (`j`, `{client_addr}`, `{mail_addr}`, `i`, ...).
    pub macros: BTreeMap<String, String>,
    /// mail.log lines (warnings) waiting for the caller to write.
    pub warnings: Vec<String>,
}

/// Merges one milter's outcome into the running one: the first refusal
/// wins; a hold is kept.
fn merge(acc: &mut Outcome, o: Outcome) {
    if acc.hold.is_none() {
        acc.hold = o.hold;
    }
    acc.edits.extend(o.edits);
    if acc.verdict == Verdict::Continue || acc.verdict == Verdict::Skip {
        acc.verdict = o.verdict;
    }
}

/// The SMTP reply of a milter's refusal text (`554 5.7.1 ...`, possibly
/// multi-line with CRLF between lines).
pub fn smtp_reply(text: &str) -> Reply {
    let mut wire = text.replace("\r\n", "\n").replace('\n', "\r\n");
    wire.push_str("\r\n");
    match yubin_smtp::parse_reply(wire.as_bytes()) {
        Ok(Some((r, _))) => r,
        // The core checked the form; a text the parser still refuses gets
        // the generic rejection rather than a made-up reply.
        _ => Reply::new(550, "5.7.1", "Command rejected"),
    }
}

impl Milters {
    /// Connects to every milter and negotiates; a milter that cannot be
    /// reached is logged and then answers with milter_default_action.
    pub async fn open(settings: Arc<MilterSettings>) -> Milters {
        let mut conns = Vec::new();
        let mut warnings = Vec::new();
        for spec in &settings.milters {
            let name = &spec.name;
            let mut client = Client::new(Config {
                name: name.clone(),
                version: spec.protocol,
                default_action: spec.default_action,
                macros: settings.macros.clone(),
            });
            let (command_timeout, content_timeout) = (spec.command_timeout, spec.content_timeout);
            let connected = tokio::time::timeout(spec.connect_timeout, async {
                match &spec.endpoint {
                    MilterEndpoint::Inet { host, port } => {
                        TcpStream::connect((host.as_str(), *port)).await.map(|s| {
                            let _ = s.set_nodelay(true);
                            Stream::Tcp(s)
                        })
                    }
                    MilterEndpoint::Unix(p) => UnixStream::connect(p).await.map(Stream::Unix),
                }
            })
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            let mut conn = match connected {
                Ok(s) => Conn {
                    client,
                    stream: Some(s),
                    command_timeout,
                    content_timeout,
                    buf: vec![0u8; 16 * 1024],
                },
                Err(e) => {
                    warnings.push(format!("warning: connect to Milter service {name}: {e}"));
                    client.fail();
                    conns.push(Conn {
                        client,
                        stream: None,
                        command_timeout,
                        content_timeout,
                        buf: Vec::new(),
                    });
                    continue;
                }
            };
            let hello = conn.client.negotiate();
            let timeout = conn.command_timeout;
            exchange(
                &mut conn,
                Step::Wait(hello),
                timeout,
                "SMFIC_OPTNEG",
                &mut warnings,
            )
            .await;
            conns.push(conn);
        }
        Milters {
            conns,
            macros: BTreeMap::new(),
            warnings,
        }
    }

    /// Reports an SMTP event to each milter in turn; the first that does
    /// not say continue decides (Postfix milter.c).
    pub async fn event(&mut self, ev: Event<'_>) -> Outcome {
        let mut acc = Outcome::verdict(Verdict::Continue);
        for conn in &mut self.conns {
            let timeout = conn.command_timeout;
            let macros = |n: &str| self.macros.get(n).cloned();
            let step = conn.client.event(ev.clone(), &macros);
            let o = exchange(conn, step, timeout, ev.name(), &mut self.warnings).await;
            merge(&mut acc, o);
            if !matches!(acc.verdict, Verdict::Continue) {
                break;
            }
        }
        acc
    }

    /// DATA, the headers, the body and the end of message, milter by
    /// milter; each sees the message as the ones before it left it
    /// (Postfix's cleanup runs them in order on the queue file). Returns
    /// the decision, the edited message, and the envelope edits.
    pub async fn message(&mut self, message: &[u8]) -> (Outcome, Vec<u8>, Vec<Edit>) {
        let mut msg = Message::parse(message);
        let mut acc = Outcome::verdict(Verdict::Continue);
        let mut envelope = Vec::new();
        'milters: for conn in &mut self.conns {
            let (cmd, content) = (conn.command_timeout, conn.content_timeout);
            let macros = |n: &str| self.macros.get(n).cloned();
            let w = &mut self.warnings;
            let step_in = |conn: &mut Conn, ev: Event<'_>, t: Duration| {
                let step = conn.client.event(ev.clone(), &macros);
                (step, t, ev.name())
            };
            // One exchange; a decision other than continue ends the message
            // for every milter.
            macro_rules! ask {
                ($ev:expr, $t:expr) => {{
                    let (s, t, n) = step_in(conn, $ev, $t);
                    let o = exchange(conn, s, t, n, w).await;
                    let stop = !o.is_continue();
                    merge(&mut acc, o);
                    if stop {
                        break 'milters;
                    }
                }};
            }
            ask!(Event::Data, cmd);
            for (name, value) in &msg.headers {
                ask!(Event::Header(name, value), content);
            }
            ask!(Event::Eoh, content);
            if conn.client.wants_body() {
                for chunk in body_chunks(&msg.body) {
                    let (s, t, n) = step_in(conn, Event::Body(&chunk), content);
                    let o = exchange(conn, s, t, n, w).await;
                    match o.verdict {
                        Verdict::Continue => merge(&mut acc, o),
                        // SMFIR_SKIP: no more body for this milter.
                        Verdict::Skip => break,
                        _ => {
                            merge(&mut acc, o);
                            break 'milters;
                        }
                    }
                }
            }
            let (s, t, n) = step_in(conn, Event::Eom, content);
            let o = exchange(conn, s, t, n, w).await;
            let leadspc = conn
                .client
                .negotiated()
                .2
                .has(yubin_milter::ProtoFlags::HDR_LEADSPC);
            for e in &o.edits {
                match e {
                    Edit::AddRcpt(..) | Edit::DelRcpt(_) | Edit::ChangeFrom(..) => {
                        envelope.push(e.clone())
                    }
                    _ => msg.apply(e, leadspc),
                }
            }
            let stop = !o.is_continue();
            merge(
                &mut acc,
                Outcome {
                    edits: Vec::new(),
                    ..o
                },
            );
            if stop {
                break;
            }
        }
        (acc, msg.to_bytes(), envelope)
    }

    /// The end of the session: QUIT to each milter still talking.
    pub async fn quit(&mut self) {
        for conn in &mut self.conns {
            let bytes = conn.client.quit();
            if let Some(s) = conn.stream.as_mut() {
                if !bytes.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(&bytes)).await;
                }
            }
            conn.stream = None;
        }
    }
}

/// Writes a step's bytes and, when a reply is due, reads until the core
/// has one. The whole exchange is bounded by `timeout`: a milter that
/// stalls, or keeps sending PROGRESS, gets milter_default_action.
async fn exchange(
    conn: &mut Conn,
    step: Step,
    timeout: Duration,
    event: &str,
    warnings: &mut Vec<String>,
) -> Outcome {
    let (bytes, done) = match step {
        Step::Done(b, o) => (b, Some(o)),
        Step::Wait(b) => (b, None),
    };
    let Some(stream) = conn.stream.as_mut() else {
        return done.unwrap_or_else(|| conn.client.fail());
    };
    let client = &mut conn.client;
    let buf = &mut conn.buf;
    let name = client.name().to_string();
    let r = tokio::time::timeout(timeout, async {
        if !bytes.is_empty() {
            stream
                .write_all(&bytes)
                .await
                .map_err(|e| format!("error writing command: {e}"))?;
        }
        if let Some(o) = done {
            return Ok(o);
        }
        loop {
            let n = stream
                .read(buf)
                .await
                .map_err(|e| format!("can't read {event} reply packet header: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "can't read {event} reply packet header: Connection closed"
                ));
            }
            match client.feed(&buf[..n]) {
                Ok(Some(o)) => return Ok(o),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    let why = match r {
        Ok(Ok(o)) => {
            if conn.client.is_done() {
                // Accepted or refused for the whole connection: Postfix
                // closes the socket too (libmilter would).
                conn.stream = None;
            }
            return o;
        }
        Ok(Err(why)) => why,
        Err(_) => format!("can't read {event} reply packet header: Connection timed out"),
    };
    warnings.push(format!("warning: milter {name}: {why}"));
    conn.stream = None;
    conn.client.fail()
}

/// `_`: Sendmail's client macro, `name [addr]`.
pub fn connect_macros(
    m: &mut BTreeMap<String, String>,
    settings: &MilterSettings,
    client_name: &str,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
) {
    m.insert("j".into(), settings.hostname.clone());
    m.insert("{daemon_name}".into(), settings.daemon_name.clone());
    m.insert("v".into(), settings.v.clone());
    if let Some(l) = local {
        m.insert("{daemon_addr}".into(), l.ip().to_canonical().to_string());
        m.insert("{daemon_port}".into(), l.port().to_string());
    }
    m.insert("{client_name}".into(), client_name.to_string());
    m.insert("{client_ptr}".into(), client_name.to_string());
    if let Some(p) = peer {
        let ip = p.ip().to_canonical();
        m.insert("{client_addr}".into(), ip.to_string());
        m.insert("{client_port}".into(), p.port().to_string());
        m.insert("_".into(), format!("{client_name} [{ip}]"));
    }
}

/// `{tls_version}`, `{cipher}`, `{cipher_bits}` from yubin's TLS summary
/// (`TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`).
pub fn tls_macros(m: &mut BTreeMap<String, String>, summary: Option<&str>) {
    let Some(s) = summary else { return };
    let mut words = s.split_whitespace();
    if let Some(v) = words.next() {
        m.insert("{tls_version}".into(), v.to_string());
    }
    let rest: Vec<&str> = words.collect();
    if let Some(i) = rest.iter().position(|w| *w == "cipher") {
        if let Some(c) = rest.get(i + 1) {
            m.insert("{cipher}".into(), c.to_string());
        }
        if let Some(b) = rest.get(i + 2) {
            let bits = b.trim_start_matches('(').split('/').next().unwrap_or("");
            m.insert("{cipher_bits}".into(), bits.to_string());
        }
    }
}

/// Writes a queue file straight into `hold/` (a quarantined message: the
/// queue manager must never see it in `incoming/`), durably.
pub async fn commit_hold(
    shared: &Arc<super::runtime::Shared>,
    q: yubin_queue::QueueFile,
) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let id = q.id.clone();
    let dir = shared.spool.dir(yubin_queue::State::Hold);
    let bytes = q.encode();
    let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let path = dir.join(&q.id);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let r = f
            .write_all(&bytes)
            .and_then(|_| f.sync_data())
            .and_then(|_| std::fs::File::open(&dir)?.sync_all());
        if r.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        r
    })
    .await;
    match done {
        Ok(Ok(())) => Ok(id),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// An address as a milter gives it (`<a@b>` or `a@b`), in the queue's form.
fn bare(addr: &str) -> String {
    let a = addr.trim();
    let a = a.strip_prefix('<').unwrap_or(a);
    a.strip_suffix('>').unwrap_or(a).to_string()
}

/// Transaction state the MAIL and RCPT events left (DISCARD, quarantine).
#[derive(Debug, Default)]
struct Transaction {
    discard: bool,
    hold: Option<String>,
}

/// One SMTP session's milters, and what the session core does not keep
/// for them: the HELO name they were told, the transaction's DISCARD or
/// HOLD.
pub struct SessionMilters {
    milters: Milters,
    /// HELO is reported with the MAIL that follows it (the core asks
    /// nothing at HELO; a refusal there would only show at MAIL anyway).
    helo_sent: Option<String>,
    tx: Transaction,
}

/// Who and what an smtpd log line is about.
struct Who<'a> {
    label: &'a str,
    from: Option<&'a str>,
    to: Option<&'a str>,
    proto: &'a str,
    helo: Option<&'a str>,
}

impl Who<'_> {
    /// smtpd.c check_milter_reply's log line for events the core does not
    /// log itself: `NOQUEUE: milter-reject: CONNECT from ...; proto=SMTP`.
    fn line(&self, action: &str, stage: &str, text: &str) -> String {
        let mut line = format!("NOQUEUE: {action}: {stage} from {}: {text};", self.label);
        if let Some(f) = self.from {
            line.push_str(&format!(" from=<{f}>"));
        }
        if let Some(t) = self.to {
            line.push_str(&format!(" to=<{t}>"));
        }
        line.push_str(&format!(" proto={}", self.proto));
        if let Some(h) = self.helo {
            line.push_str(&format!(" helo=<{h}>"));
        }
        line
    }
}

impl SessionMilters {
    /// Connects, negotiates and reports the SMTP connection, before the
    /// greeting (smtpd.c smtpd_proto). `Err(reply)`: a 421 that ends the
    /// session now; other refusals persist in the milter's state and
    /// answer MAIL FROM, as Postfix's do.
    pub async fn connect(
        settings: &Arc<MilterSettings>,
        client: &yubin_smtp::ClientInfo,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<SessionMilters, Reply> {
        let mut m = Milters::open(settings.clone()).await;
        connect_macros(&mut m.macros, settings, &client.name, Some(peer), local);
        let o = m
            .event(Event::Connect {
                hostname: &client.name,
                addr: Some((client.addr, peer.port())),
            })
            .await;
        for w in m.warnings.drain(..) {
            log(&w);
        }
        let refusal = match &o.verdict {
            Verdict::Reject(t) => Some(t.clone()),
            Verdict::Shutdown => Some(yubin_milter::client::SHUTDOWN.to_string()),
            _ => None,
        };
        if let Some(t) = refusal {
            let who = Who {
                label: &client.label(),
                from: None,
                to: None,
                proto: "SMTP",
                helo: None,
            };
            log(&who.line("milter-reject", "CONNECT", &t));
            if t.starts_with("421") {
                m.quit().await;
                return Err(smtp_reply(&t));
            }
        }
        Ok(SessionMilters {
            milters: m,
            helo_sent: None,
            tx: Transaction::default(),
        })
    }

    fn warnings(&mut self, log: &(dyn Fn(&str) + Sync)) {
        for w in self.milters.warnings.drain(..) {
            log(&w);
        }
    }

    /// HELO (when new) and MAIL; `Some(reply)` refuses MAIL.
    pub async fn mail(
        &mut self,
        s: &yubin_smtp::Session,
        q: &yubin_smtp::MailQuery,
        log: &(dyn Fn(&str) + Sync),
    ) -> Option<Reply> {
        self.tx = Transaction::default();
        let label = s.client().label();
        let proto = s.protocol();
        let helo = s.helo().map(str::to_string);
        if helo != self.helo_sent {
            if let Some(h) = &helo {
                tls_macros(&mut self.milters.macros, s.tls());
                let o = self.milters.event(Event::Helo(h)).await;
                self.warnings(log);
                let verb = if proto.starts_with("ESMTP") {
                    "EHLO"
                } else {
                    "HELO"
                };
                let refusal = match &o.verdict {
                    Verdict::Reject(t) => Some(t.clone()),
                    Verdict::Shutdown => Some(yubin_milter::client::SHUTDOWN.to_string()),
                    _ => None,
                };
                if let Some(t) = refusal {
                    // Postfix answers HELO with 250 and lets the refusal,
                    // kept in the milter's state, answer MAIL below.
                    let who = Who {
                        label: &label,
                        from: None,
                        to: None,
                        proto,
                        helo: Some(h),
                    };
                    log(&who.line("milter-reject", verb, &t));
                }
            }
            self.helo_sent = helo.clone();
        }
        let from = q.sender.as_ref().map(|a| a.internal()).unwrap_or_default();
        let m = &mut self.milters.macros;
        m.insert("{mail_addr}".into(), from.clone());
        match s.authenticated() {
            Some((user, mech)) => {
                m.insert("{auth_type}".into(), mech.to_string());
                m.insert("{auth_authen}".into(), user.to_string());
            }
            None => {
                m.remove("{auth_type}");
                m.remove("{auth_authen}");
            }
        }
        m.remove("i");
        m.remove("{rcpt_addr}");
        let mut args = vec![format!("<{from}>")];
        if let Some(size) = q.size {
            args.push(format!("SIZE={size}"));
        }
        let o = self.milters.event(Event::Mail(&args)).await;
        self.warnings(log);
        let who = Who {
            label: &label,
            from: Some(&from),
            to: None,
            proto,
            helo: helo.as_deref(),
        };
        self.verdict(o, "MAIL", &who, log)
    }

    /// RCPT, after the restrictions accepted it; `Some(reply)` refuses it.
    pub async fn rcpt(
        &mut self,
        s: &yubin_smtp::Session,
        q: &yubin_smtp::RecipientQuery,
        log: &(dyn Fn(&str) + Sync),
    ) -> Option<Reply> {
        if self.tx.discard {
            return None;
        }
        let to = q.recipient.internal();
        let from = q.sender.as_ref().map(|a| a.internal()).unwrap_or_default();
        self.milters.macros.insert("{rcpt_addr}".into(), to.clone());
        let args = vec![format!("<{to}>")];
        let o = self.milters.event(Event::Rcpt(&args)).await;
        self.warnings(log);
        let label = s.client().label();
        let who = Who {
            label: &label,
            from: Some(&from),
            to: Some(&to),
            proto: s.protocol(),
            helo: s.helo(),
        };
        self.verdict(o, "RCPT", &who, log)
    }

    /// A MAIL or RCPT outcome: the refusal for the core (which logs it),
    /// or DISCARD/HOLD remembered for the end of data and logged here.
    fn verdict(
        &mut self,
        o: Outcome,
        stage: &str,
        who: &Who<'_>,
        log: &(dyn Fn(&str) + Sync),
    ) -> Option<Reply> {
        if let Some(h) = o.hold {
            let text = "milter triggers HOLD action";
            log(&who.line("milter-hold", stage, text));
            self.tx.hold = Some(h);
        }
        match o.verdict {
            Verdict::Reject(t) => Some(smtp_reply(&t)),
            Verdict::Shutdown => Some(smtp_reply(yubin_milter::client::SHUTDOWN)),
            Verdict::Discard => {
                let text = "milter triggers DISCARD action";
                log(&who.line("milter-discard", stage, text));
                self.tx.discard = true;
                None
            }
            Verdict::Continue | Verdict::Skip => None,
        }
    }

    /// The end of data; `Err(reply)` refuses the message.
    pub async fn deliver(
        &mut self,
        shared: &Arc<super::runtime::Shared>,
        rt: &super::runtime::Runtime,
        client: &yubin_smtp::ClientInfo,
        envelope: yubin_smtp::Envelope,
        data: Vec<u8>,
    ) -> Result<Result<String, String>, Reply> {
        let tx = std::mem::take(&mut self.tx);
        deliver(shared, rt, client, &mut self.milters, &tx, envelope, data).await
    }

    pub async fn quit(&mut self) {
        self.milters.quit().await;
    }
}

/// cleanup(8)'s milter part: the queue file is prepared, the milters see
/// it and edit it, then it is queued, held, discarded or refused, with
/// cleanup's log lines (`ID: milter-reject: END-OF-MESSAGE from ...`).
async fn deliver(
    shared: &Arc<super::runtime::Shared>,
    rt: &super::runtime::Runtime,
    client: &yubin_smtp::ClientInfo,
    milters: &mut Milters,
    tx: &Transaction,
    envelope: yubin_smtp::Envelope,
    data: Vec<u8>,
) -> Result<Result<String, String>, Reply> {
    let whatsup = format!(
        "from=<{}> to=<{}> proto={} helo=<{}>",
        envelope
            .sender
            .as_ref()
            .map(|a| a.internal())
            .unwrap_or_default(),
        envelope
            .recipients
            .first()
            .map(|r| r.address.internal())
            .unwrap_or_default(),
        envelope.protocol,
        envelope.helo
    );
    let id = envelope.queue_id.clone();
    let label = client.label();
    let log = |action: &str, text: &str| {
        shared.log.log(
            "cleanup",
            &format!("{id}: {action}: END-OF-MESSAGE from {label}: {text}; {whatsup}"),
        );
    };
    if tx.discard {
        log("milter-discard", "milter triggers DISCARD action");
        return Ok(Ok(id.clone()));
    }
    // access(5) DISCARD and HOLD from smtpd's restrictions (issue 14).
    if envelope.discard {
        return Ok(Ok(id.clone()));
    }
    let access_hold = envelope.hold;
    let mut q = super::cleanup::prepare(shared, rt, client, envelope, data);
    milters.macros.insert("i".into(), id.clone());
    let (outcome, message, env_edits) = milters.message(&q.message).await;
    for w in milters.warnings.drain(..) {
        shared.log.log("cleanup", &w);
    }
    match outcome.verdict {
        Verdict::Reject(text) => {
            // cleanup logs the text without the SMTP code.
            let shown = text.get(4..).unwrap_or(&text).replace("\r\n", " ");
            log("milter-reject", &shown);
            return Err(smtp_reply(&text));
        }
        Verdict::Shutdown => {
            log("milter-reject", "4.7.0 Server closing connection");
            return Err(Reply::new(421, "4.7.0", "Server closing connection"));
        }
        Verdict::Discard => {
            log("milter-discard", "milter triggers DISCARD action");
            return Ok(Ok(id.clone()));
        }
        Verdict::Continue | Verdict::Skip => {}
    }
    apply(&mut q, message, env_edits);
    if q.recipients.is_empty() {
        // Every recipient deleted: nothing to deliver (Postfix discards).
        log("milter-discard", "milter triggers DISCARD action");
        return Ok(Ok(id.clone()));
    }
    if outcome.hold.is_some() || tx.hold.is_some() {
        log("milter-hold", "milter triggers HOLD action");
        return Ok(commit_hold(shared, q).await);
    }
    if access_hold {
        return Ok(commit_hold(shared, q).await);
    }
    Ok(super::cleanup::commit(shared, q).await)
}

/// The edited message and the envelope edits, into the queue file.
fn apply(q: &mut yubin_queue::QueueFile, message: Vec<u8>, env_edits: Vec<Edit>) {
    q.message = message;
    for e in env_edits {
        match e {
            Edit::AddRcpt(a, _) => q.recipients.push(yubin_queue::QueuedRecipient {
                address: bare(&a),
                notify: None,
                orcpt: None,
            }),
            Edit::DelRcpt(a) => {
                let a = bare(&a);
                q.recipients.retain(|r| !r.address.eq_ignore_ascii_case(&a));
            }
            Edit::ChangeFrom(f, _) => q.sender = bare(&f),
            _ => {}
        }
    }
}

/// What pickup does with a message after non_smtpd_milters.
enum Local {
    /// Queue it (edited).
    Queue,
    /// Put it on hold.
    Hold,
    /// Drop it (DISCARD, or every recipient deleted).
    Discard,
    /// A 5xx refusal: bounce it to the sender with this reply.
    Bounce(Reply),
    /// A 4xx refusal or a broken milter with milter_default_action =
    /// tempfail: leave it in the maildrop and try again later.
    Defer(String),
}

/// non_smtpd_milters for mail from sendmail/pickup: cleanup(8) emulates an
/// SMTP session for the milters (cleanup_milter.c: connect from
/// `localhost` 127.0.0.1, HELO `localhost`, MAIL, one RCPT per recipient,
/// then the message), and applies their edits to the queue file.
async fn filter_local(
    shared: &Arc<super::runtime::Shared>,
    settings: &Arc<MilterSettings>,
    q: &mut yubin_queue::QueueFile,
    refused: &mut Vec<(yubin_queue::QueuedRecipient, Reply)>,
) -> Local {
    let mut m = Milters::open(settings.clone()).await;
    let localhost: SocketAddr = ([127, 0, 0, 1], 0).into();
    connect_macros(&mut m.macros, settings, "localhost", Some(localhost), None);
    m.macros.insert("i".into(), q.id.clone());
    let whatsup = format!(
        "from=<{}> to=<{}>",
        q.sender,
        q.recipients
            .first()
            .map(|r| r.address.as_str())
            .unwrap_or("")
    );
    let id = q.id.clone();
    let log = |action: &str, stage: &str, text: &str| {
        shared.log.log(
            "cleanup",
            &format!("{id}: {action}: {stage} from localhost[127.0.0.1]: {text}; {whatsup}"),
        );
    };
    let mut stage = "CONNECT";
    let mut o = m
        .event(Event::Connect {
            hostname: "localhost",
            addr: Some((localhost.ip(), 0)),
        })
        .await;
    if o.is_continue() {
        stage = "HELO";
        o = m.event(Event::Helo("localhost")).await;
    }
    if o.is_continue() {
        stage = "MAIL";
        m.macros.insert("{mail_addr}".into(), q.sender.clone());
        let args = vec![format!("<{}>", q.sender)];
        o = m.event(Event::Mail(&args)).await;
    }
    let mut hold = o.hold.clone();
    let rcpts: Vec<String> = q.recipients.iter().map(|r| r.address.clone()).collect();
    for r in &rcpts {
        if !o.is_continue() {
            break;
        }
        stage = "RCPT";
        m.macros.insert("{rcpt_addr}".into(), r.clone());
        o = m.event(Event::Rcpt(&[format!("<{r}>")])).await;
        if let Verdict::Reject(text) = &o.verdict {
            // One recipient refused: it is bounced (a 5xx) or dropped, the
            // others go on.
            let shown = text.get(4..).unwrap_or(text).replace("\r\n", " ");
            log("milter-reject", stage, &shown);
            let reply = smtp_reply(text);
            if let Some(pos) = q.recipients.iter().position(|x| &x.address == r) {
                let gone = q.recipients.remove(pos);
                if reply.code >= 500 {
                    refused.push((gone, reply));
                }
            }
            o.verdict = Verdict::Continue;
        }
        hold = hold.or(o.hold.clone());
    }
    let mut edits = (Vec::new(), Vec::new());
    if o.is_continue() && !q.recipients.is_empty() {
        stage = "END-OF-MESSAGE";
        let (out, message, env) = m.message(&q.message).await;
        hold = hold.or(out.hold.clone());
        o = out;
        edits = (message, env);
    }
    for w in m.warnings.drain(..) {
        shared.log.log("cleanup", &w);
    }
    m.quit().await;
    let verdict = match o.verdict {
        Verdict::Reject(text) => {
            let shown = text.get(4..).unwrap_or(&text).replace("\r\n", " ");
            log("milter-reject", stage, &shown);
            let reply = smtp_reply(&text);
            return if reply.code >= 500 {
                Local::Bounce(reply)
            } else {
                Local::Defer(shown)
            };
        }
        Verdict::Shutdown => {
            log("milter-reject", stage, "4.7.0 Server closing connection");
            return Local::Defer("4.7.0 Server closing connection".into());
        }
        Verdict::Discard => Local::Discard,
        Verdict::Continue | Verdict::Skip => Local::Queue,
    };
    if matches!(verdict, Local::Discard) || (q.recipients.is_empty() && refused.is_empty()) {
        log("milter-discard", stage, "milter triggers DISCARD action");
        return Local::Discard;
    }
    if q.recipients.is_empty() {
        // Every recipient refused: their bounces are all that is left.
        return Local::Discard;
    }
    if !edits.0.is_empty() {
        apply(q, edits.0, edits.1);
    }
    if q.recipients.is_empty() {
        log("milter-discard", stage, "milter triggers DISCARD action");
        return Local::Discard;
    }
    if hold.is_some() {
        log("milter-hold", stage, "milter triggers HOLD action");
        return Local::Hold;
    }
    Local::Queue
}

/// pickup's next step after non_smtpd_milters.
pub enum Picked {
    /// Commit the (edited) queue file as usual.
    Queue,
    /// Handled (held, discarded or bounced): remove the maildrop file.
    Done,
    /// Leave the maildrop file for a later scan.
    Retry(String),
}

/// Runs non_smtpd_milters on a picked-up message and carries out their
/// decision; refusals become bounces to the sender (there is no client to
/// refuse), as from Postfix's cleanup.
pub async fn pickup(
    shared: &Arc<super::runtime::Shared>,
    rt: &Arc<super::runtime::Runtime>,
    settings: &Arc<MilterSettings>,
    q: &mut yubin_queue::QueueFile,
) -> Picked {
    let mut refused = Vec::new();
    let local = filter_local(shared, settings, q, &mut refused).await;
    let step = match local {
        Local::Queue => Picked::Queue,
        Local::Discard => Picked::Done,
        Local::Defer(why) => return Picked::Retry(why),
        Local::Hold => match commit_hold(shared, q.clone()).await {
            Ok(_) => Picked::Done,
            Err(e) => return Picked::Retry(format!("cannot hold: {e}")),
        },
        Local::Bounce(reply) => {
            refused.extend(q.recipients.drain(..).map(|r| (r, reply.clone())));
            Picked::Done
        }
    };
    if !refused.is_empty() {
        let failed: Vec<yubin_notify::Bounced> = refused
            .iter()
            .map(|(r, reply)| {
                let dsn = reply
                    .enhanced
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "5.7.1".into());
                yubin_notify::Bounced::new(r, &r.address, &dsn, &reply.text())
            })
            .collect();
        let (sh, rt, q) = (shared.clone(), rt.clone(), q.clone());
        let now = yubin_maillog::clock::now_secs();
        // Queueing the bounce waits for a disk flush: not on this thread.
        let _ = tokio::task::spawn_blocking(move || sh.notify(&rt).bounce(&q, &failed, now)).await;
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milter_reply_text_becomes_an_smtp_reply() {
        let r = smtp_reply("554 5.7.1 Gtube pattern");
        assert_eq!(
            (r.code, r.raw()),
            (554, "554 5.7.1 Gtube pattern".to_string())
        );
        let r = smtp_reply("550-5.7.1 first\r\n550 5.7.1 second");
        assert_eq!(
            r.wire_lines(),
            [
                "550-5.7.1 first".to_string(),
                "550 5.7.1 second".to_string()
            ]
        );
        assert_eq!(r.enhanced.map(|e| e.to_string()).as_deref(), Some("5.7.1"));
    }

    #[test]
    fn tls_summary_gives_the_tls_macros() {
        let mut m = BTreeMap::new();
        tls_macros(
            &mut m,
            Some("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"),
        );
        assert_eq!(m["{tls_version}"], "TLSv1.3");
        assert_eq!(m["{cipher}"], "TLS_AES_256_GCM_SHA384");
        assert_eq!(m["{cipher_bits}"], "256");
    }

    #[test]
    fn milter_addresses_lose_their_brackets() {
        assert_eq!(bare("<a@b.example>"), "a@b.example");
        assert_eq!(bare(" a@b.example "), "a@b.example");
        assert_eq!(bare("<>"), "");
    }
}
