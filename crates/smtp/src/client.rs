//! The SMTP client protocol (RFC 5321) as a sans-I/O state machine, the
//! sending side of Postfix's smtp(8): bytes in, [`Action`]s out. It never
//! touches a socket or a clock; the driver sends what it is told, performs
//! the TLS handshake when asked, writes the message body, and tells the core
//! which timeout fired ([`Client::timeout`]) or that the peer went away
//! ([`Client::closed`]). Tests and the `smtp_client` fuzz target drive it
//! with byte strings.
//!
//! Extensions: EHLO with HELO fallback, PIPELINING (RFC 2920: MAIL, RCPT and
//! DATA in one group), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC
//! 6531), DSN (RFC 3461), CHUNKING (RFC 3030: one `BDAT n LAST`), STARTTLS
//! (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954, 4616).
//!
//! Outcomes are per recipient (RCPT's reply, then the reply to the end of
//! data for the accepted ones) and carry the remote [`Reply`] so that a bounce
//! can quote it (`Diagnostic-Code: smtp; 550 5.1.1 ...`). Whether a soft
//! failure moves on to the next MX host is the driver's decision.

use std::collections::VecDeque;
use std::fmt;

use base64::Engine as _;

use crate::reply::{parse_reply, Enhanced, Reply, ReplyError, MAX_LINE, MAX_LINES};

/// Most input kept while waiting for a reply: the longest reply
/// [`parse_reply`] accepts. A peer sending more than this without ending a
/// reply gets a protocol error, never unbounded memory.
pub const MAX_BUFFER: usize = MAX_LINE * MAX_LINES;

/// Whether and how to use STARTTLS (the core's view of
/// `smtp_tls_security_level`; certificate checks are the driver's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// `none`: never, even when offered.
    Never,
    /// `may`: when offered; plaintext if not offered or refused.
    IfOffered,
    /// `encrypt`, `verify`, `secure`: mandatory; no mail without it.
    Required,
}

/// Credentials for AUTH (`smtp_sasl_password_maps`'s `user:password`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, ***)", self.user)
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The EHLO/HELO name (`smtp_helo_name`, default `$myhostname`).
    pub helo_name: String,
    pub starttls: StartTls,
    /// When set, authenticate if the server offers AUTH PLAIN or LOGIN.
    pub auth: Option<Credentials>,
    /// Whether PLAIN/LOGIN may be used without TLS (`smtp_sasl_security_options`
    /// without `noplaintext`). Over TLS they are always allowed.
    pub auth_plaintext: bool,
    /// Use PIPELINING when offered (`smtp_use_pipelining`... Postfix always does).
    pub pipelining: bool,
    /// Use BDAT when the server offers CHUNKING (Postfix never does; yubin
    /// does by default because it avoids dot-stuffing the body).
    pub chunking: bool,
    /// `$myhostname`: a server that greets with it is this host, and the
    /// mail would loop (Postfix smtp_proto.c: "host ... greeted me with my
    /// own hostname").
    pub my_hostname: Option<String>,
    /// Speak LMTP (RFC 2033) instead: LHLO, no HELO fallback, DATA (not
    /// BDAT), and after the final dot one reply per accepted recipient
    /// (section 4.2), each that recipient's outcome.
    pub lmtp: bool,
}

impl ClientConfig {
    pub fn new(helo_name: impl Into<String>) -> ClientConfig {
        ClientConfig {
            helo_name: helo_name.into(),
            starttls: StartTls::IfOffered,
            auth: None,
            auth_plaintext: false,
            pipelining: true,
            chunking: true,
            my_hostname: None,
            lmtp: false,
        }
    }
}

/// RET= of MAIL FROM (RFC 3461 section 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// One recipient of a transaction with its DSN parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    pub address: String,
    /// `SUCCESS,FAILURE,DELAY` or `NEVER`, as received.
    pub notify: Option<String>,
    /// `addr-type;xtext` as received (RFC 3461 section 4.2).
    pub orcpt: Option<String>,
}

impl Rcpt {
    pub fn new(address: impl Into<String>) -> Rcpt {
        Rcpt {
            address: address.into(),
            notify: None,
            orcpt: None,
        }
    }
}

/// One message to one connection: the envelope and what the body needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Empty for the null sender.
    pub sender: String,
    pub recipients: Vec<Rcpt>,
    /// Size of the message in octets (SIZE=, RFC 1870).
    pub size: u64,
    /// The body contains 8-bit octets (BODY=8BITMIME when offered).
    pub eight_bit: bool,
    /// The message needs SMTPUTF8 (RFC 6531): the client asked for it, or
    /// an address is not ASCII.
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// ENVID, already xtext-encoded as received.
    pub envid: Option<String>,
}

/// Where the conversation is; the driver picks the timeout from it
/// (`smtp_helo_timeout`, `smtp_mail_timeout`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Ehlo,
    /// LMTP's LHLO (RFC 2033 section 4.1).
    Lhlo,
    Helo,
    StartTls,
    /// The driver is performing the TLS handshake.
    TlsHandshake,
    Auth,
    /// Connected and greeted; waiting for the driver's next transaction.
    Idle,
    Mail,
    Rcpt,
    Data,
    /// The driver is writing the message body.
    Message,
    DataDone,
    Rset,
    Quit,
    Closed,
}

impl Stage {
    /// Postfix's words for the stage in "lost connection with HOST while
    /// ..." and "conversation with HOST timed out while ..." (smtp_chat.c,
    /// smtp_proto.c).
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Greeting => "receiving the initial server greeting",
            Stage::Ehlo => "performing the EHLO handshake",
            Stage::Lhlo => "performing the LHLO handshake",
            Stage::Helo => "performing the HELO handshake",
            Stage::StartTls => "sending STARTTLS",
            Stage::TlsHandshake => "performing the TLS handshake",
            Stage::Auth => "performing SASL authentication",
            Stage::Idle => "waiting for the next transaction",
            Stage::Mail => "sending MAIL FROM",
            Stage::Rcpt => "sending RCPT TO",
            Stage::Data => "sending DATA command",
            Stage::Message => "sending message body",
            Stage::DataDone => "sending end of data -- message may be sent more than once",
            Stage::Rset => "sending RSET",
            Stage::Quit => "sending QUIT",
            Stage::Closed => "closing the connection",
        }
    }
}

/// Why the client gave up, without a reply from the server to quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalReason {
    Timeout,
    /// The peer closed the connection.
    Lost,
    /// Malformed or oversized replies, data where none may be.
    Protocol(String),
    /// The message is larger than the server's SIZE.
    TooBig {
        size: u64,
        limit: u64,
    },
    Smtputf8NotOffered,
    TlsNotOffered,
    TlsRefused(Reply),
    TlsFailed(String),
    /// Credentials are configured but no usable mechanism is offered.
    NoAuthMechanism,
    /// The server greeted with this host's own name: the mail would loop.
    LoopsBack {
        server_name: String,
    },
}

/// A failure of one recipient or of the whole session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server said no: quote its reply.
    Reply {
        stage: Stage,
        reply: Reply,
    },
    Local {
        stage: Stage,
        reason: LocalReason,
    },
}

impl Failure {
    /// Permanent (bounce) rather than transient (defer, or try the next MX).
    /// A 5xx greeting counts as transient (`smtp_skip_5xx_greeting = yes`)
    /// and so does a 5xx to AUTH (`smtp_sasl_auth_soft_bounce = yes`).
    pub fn is_permanent(&self) -> bool {
        match self {
            Failure::Reply { stage, reply } => {
                reply.is_permanent() && !matches!(stage, Stage::Greeting | Stage::Auth)
            }
            Failure::Local { reason, .. } => matches!(
                reason,
                LocalReason::TooBig { .. }
                    | LocalReason::Smtputf8NotOffered
                    | LocalReason::LoopsBack { .. }
            ),
        }
    }

    pub fn stage(&self) -> Stage {
        match self {
            Failure::Reply { stage, .. } | Failure::Local { stage, .. } => *stage,
        }
    }

    /// The enhanced status code for the log's `dsn=` and the bounce's
    /// `Status:` (the server's own when it gave one, RFC 3463).
    pub fn enhanced(&self) -> Enhanced {
        let soft = !self.is_permanent();
        let class = if soft { 4 } else { 5 };
        match self {
            Failure::Reply { reply, .. } => match reply.enhanced {
                Some(e) if (e.class == 4) == soft => e,
                Some(e) => Enhanced::new(class, e.subject, e.detail),
                None => Enhanced::new(class, 0, 0),
            },
            Failure::Local { reason, .. } => match reason {
                LocalReason::Timeout | LocalReason::Lost => Enhanced::new(4, 4, 2),
                LocalReason::Protocol(_) => Enhanced::new(4, 5, 0),
                LocalReason::TooBig { .. } => Enhanced::new(5, 3, 4),
                LocalReason::Smtputf8NotOffered => Enhanced::new(5, 6, 7),
                LocalReason::TlsNotOffered => Enhanced::new(4, 7, 4),
                LocalReason::TlsRefused(_) | LocalReason::TlsFailed(_) => Enhanced::new(4, 7, 5),
                LocalReason::NoAuthMechanism => Enhanced::new(4, 7, 0),
                LocalReason::LoopsBack { .. } => Enhanced::new(5, 4, 6),
            },
        }
    }

    /// The reply to quote in a bounce's `Diagnostic-Code: smtp; ...`.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Failure::Reply { reply, .. } => Some(reply),
            Failure::Local {
                reason: LocalReason::TlsRefused(r),
                ..
            } => Some(r),
            Failure::Local { .. } => None,
        }
    }

    /// The text Postfix logs after `status=deferred (` / `status=bounced (`,
    /// `server` being `host[ip]`.
    pub fn describe(&self, server: &str) -> String {
        match self {
            Failure::Reply { stage, reply } => {
                let said = reply.wire_lines().join(" ");
                let after = match stage {
                    Stage::Greeting => "refused to talk to me".to_string(),
                    Stage::Auth => {
                        return format!(
                            "SASL authentication failed; server {server} said: {said}"
                        )
                    }
                    Stage::DataDone | Stage::Message => "said".to_string(),
                    s => format!("said: {said} (in reply to {} command)", command_name(*s)),
                };
                match stage {
                    Stage::Greeting => format!("host {server} {after}: {said}"),
                    Stage::DataDone | Stage::Message => {
                        format!("host {server} said: {said} (in reply to end of DATA command)")
                    }
                    _ => format!("host {server} {after}"),
                }
            }
            Failure::Local { stage, reason } => match reason {
                LocalReason::Timeout => format!(
                    "conversation with {server} timed out while {}",
                    stage.describe()
                ),
                LocalReason::Lost => {
                    format!("lost connection with {server} while {}", stage.describe())
                }
                LocalReason::Protocol(why) => format!(
                    "protocol error with {server} while {}: {why}",
                    stage.describe()
                ),
                LocalReason::TooBig { size, limit } => {
                    format!("message size {size} exceeds size limit {limit} of server {server}")
                }
                LocalReason::Smtputf8NotOffered => {
                    format!("SMTPUTF8 is required, but was not offered by host {server}")
                }
                LocalReason::TlsNotOffered => {
                    format!("TLS is required, but was not offered by host {server}")
                }
                LocalReason::TlsRefused(r) => format!(
                    "TLS is required, but host {server} refused to start TLS: {}",
                    r.wire_lines().join(" ")
                ),
                LocalReason::TlsFailed(why) => {
                    format!("Cannot start TLS: handshake failure with {server}: {why}")
                }
                LocalReason::NoAuthMechanism => format!(
                    "SASL authentication failed: cannot authenticate to server {server}: no mechanism available"
                ),
                // The delivery agent replaces this with Postfix's status
                // text, "mail for NEXTHOP loops back to myself", which
                // needs the nexthop the core does not know.
                LocalReason::LoopsBack { server_name } => {
                    format!("host {server} greeted me with my own hostname {server_name}")
                }
            },
        }
    }
}

fn command_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Ehlo => "EHLO",
        Stage::Lhlo => "LHLO",
        Stage::Helo => "HELO",
        Stage::StartTls => "STARTTLS",
        Stage::Mail => "MAIL FROM",
        Stage::Rcpt => "RCPT TO",
        Stage::Data => "DATA",
        Stage::Rset => "RSET",
        Stage::Quit => "QUIT",
        _ => "end of DATA",
    }
}

/// How the driver writes the body after [`Action::SendMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// After DATA's 354: [`data_bytes`] (dot-stuffed, ended by `.`).
    Data,
    /// [`bdat_bytes`]: `BDAT n LAST` and the octets as they are.
    Bdat,
}

/// The result for one recipient of the transaction (`index` into
/// [`Transaction::recipients`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The reply to the end of data (`250 2.0.0 Ok: queued as X`).
    Delivered(Reply),
    Failed(Failure),
}

/// What the server offered in its EHLO reply (RFC 5321 section 4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pub esmtp: bool,
    pub pipelining: bool,
    /// `SIZE n`; `Some(0)` means offered without a limit.
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub chunking: bool,
    pub starttls: bool,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Extensions {
    fn from_ehlo(reply: &Reply) -> Extensions {
        let mut e = Extensions {
            esmtp: true,
            ..Extensions::default()
        };
        for (k, v) in reply.ehlo_keywords() {
            match k.as_str() {
                "PIPELINING" => e.pipelining = true,
                "SIZE" => e.size = Some(v.trim().parse().unwrap_or(0)),
                "8BITMIME" => e.eight_bit_mime = true,
                "SMTPUTF8" => e.smtputf8 = true,
                "DSN" => e.dsn = true,
                "CHUNKING" => e.chunking = true,
                "STARTTLS" => e.starttls = true,
                "AUTH" => {
                    for m in v.split_whitespace() {
                        let m = m.to_ascii_uppercase();
                        if !e.auth.contains(&m) {
                            e.auth.push(m);
                        }
                    }
                }
                _ => {}
            }
        }
        e
    }
}

/// What the driver must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Perform the TLS handshake on the connection now, then call
    /// [`Client::tls_established`] or [`Client::tls_failed`].
    StartTls,
    /// Write the message body in this form, then call [`Client::message_sent`].
    SendMessage(BodyMode),
    /// Greeted (and TLS/AUTH done): call [`Client::begin`] or [`Client::quit`].
    Ready,
    /// The final result for one recipient.
    Recipient { index: usize, outcome: Outcome },
    /// Every recipient of the transaction has its outcome; the connection
    /// is ready for another transaction ([`Client::begin`]) or [`Client::quit`].
    TransactionDone,
    /// Close the connection. `Some` when the session failed: the failure
    /// applies to recipients that have no outcome yet (outcomes of a running
    /// transaction were already given).
    Close(Option<Failure>),
}

/// A command whose reply is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Lhlo,
    Helo,
    StartTls,
    /// AUTH PLAIN's reply, or LOGIN's n-th step (0: username prompt, ...).
    AuthPlain,
    AuthLogin(u8),
    Mail,
    Rcpt(usize),
    Data,
    DataDone,
    /// LMTP: the reply after the final dot for the k-th accepted recipient.
    LmtpDone(usize),
    Rset,
    Quit,
}

impl Expect {
    fn stage(self) -> Stage {
        match self {
            Expect::Greeting => Stage::Greeting,
            Expect::Ehlo => Stage::Ehlo,
            Expect::Lhlo => Stage::Lhlo,
            Expect::Helo => Stage::Helo,
            Expect::StartTls => Stage::StartTls,
            Expect::AuthPlain | Expect::AuthLogin(_) => Stage::Auth,
            Expect::Mail => Stage::Mail,
            Expect::Rcpt(_) => Stage::Rcpt,
            Expect::Data => Stage::Data,
            Expect::DataDone | Expect::LmtpDone(_) => Stage::DataDone,
            Expect::Rset => Stage::Rset,
            Expect::Quit => Stage::Quit,
        }
    }
}

/// The transaction in progress.
struct Tx {
    t: Transaction,
    results: Vec<Option<Outcome>>,
    /// RCPTs accepted so far, in order.
    accepted: Vec<usize>,
    mail_failed: Option<Failure>,
    /// Commands still to send one by one (without PIPELINING).
    later: VecDeque<(Expect, Vec<u8>)>,
    mode: BodyMode,
}

/// One SMTP client connection.
pub struct Client {
    cfg: ClientConfig,
    buf: Vec<u8>,
    /// Replies awaited, oldest first (more than one only when pipelining).
    pending: VecDeque<Expect>,
    /// Not waiting for a reply: the driver is busy (TLS handshake, body).
    busy: Option<Stage>,
    ext: Extensions,
    tls: bool,
    authenticated: bool,
    tx: Option<Tx>,
    /// A failed transaction left state on the server: RSET before the next.
    dirty: bool,
    idle: bool,
    closed: bool,
}

impl Client {
    /// A new connection, waiting for the server's greeting.
    pub fn new(cfg: ClientConfig) -> Client {
        Client {
            cfg,
            buf: Vec::new(),
            pending: VecDeque::from([Expect::Greeting]),
            busy: None,
            ext: Extensions::default(),
            tls: false,
            authenticated: false,
            tx: None,
            dirty: false,
            idle: false,
            closed: false,
        }
    }

    /// What the server offered (after EHLO; after STARTTLS, the new EHLO).
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    pub fn tls_active(&self) -> bool {
        self.tls
    }

    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Where the conversation is, for choosing the timeout.
    pub fn stage(&self) -> Stage {
        if self.closed {
            Stage::Closed
        } else if let Some(s) = self.busy {
            s
        } else if let Some(e) = self.pending.front() {
            e.stage()
        } else {
            Stage::Idle
        }
    }

    /// Bytes from the server.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        if self.buf.len() + bytes.len() > MAX_BUFFER {
            let take = MAX_BUFFER.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&bytes[..take]);
        } else {
            self.buf.extend_from_slice(bytes);
        }
        // Without a new line end nothing can complete: skip the parse unless
        // the unfinished line is already too long, so that a peer dribbling
        // one byte at a time costs no re-parse of the whole buffer.
        if !bytes.contains(&b'\n')
            && !self.buf.is_empty()
            && self.busy.is_none()
            && !self.pending.is_empty()
        {
            let partial = self
                .buf
                .iter()
                .rev()
                .take(MAX_LINE)
                .take_while(|&&b| b != b'\n')
                .count();
            if partial < MAX_LINE && self.buf.len() < MAX_BUFFER {
                return out;
            }
        }
        loop {
            if self.closed {
                break;
            }
            if self.pending.is_empty() || self.busy.is_some() {
                // RFC 5321 section 4.3.1 (and RFC 3207 section 5, the
                // injection CVE-2011-0411 on the client side): the server
                // may speak only when asked.
                if !self.buf.is_empty() {
                    let stage = self.stage();
                    self.fail(
                        &mut out,
                        Failure::Local {
                            stage,
                            reason: LocalReason::Protocol("unexpected data from server".into()),
                        },
                    );
                }
                break;
            }
            match parse_reply(&self.buf) {
                Ok(None) => {
                    if self.buf.len() >= MAX_BUFFER {
                        let stage = self.stage();
                        self.fail(
                            &mut out,
                            Failure::Local {
                                stage,
                                reason: LocalReason::Protocol("reply too long".into()),
                            },
                        );
                    }
                    break;
                }
                Err(e) => {
                    let stage = self.stage();
                    let why = match e {
                        ReplyError::LineTooLong | ReplyError::TooManyLines => e.to_string(),
                    };
                    self.fail(
                        &mut out,
                        Failure::Local {
                            stage,
                            reason: LocalReason::Protocol(why),
                        },
                    );
                    break;
                }
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    let Some(expect) = self.pending.pop_front() else {
                        break;
                    };
                    if !(200..600).contains(&reply.code) {
                        self.fail(
                            &mut out,
                            Failure::Local {
                                stage: expect.stage(),
                                reason: LocalReason::Protocol(format!(
                                    "malformed reply: {}",
                                    reply.raw()
                                )),
                            },
                        );
                        break;
                    }
                    self.on_reply(expect, reply, &mut out);
                }
            }
        }
        out
    }

    /// The driver finished the TLS handshake: say EHLO again (RFC 3207
    /// section 4.2: forget everything learnt before).
    pub fn tls_established(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.busy != Some(Stage::TlsHandshake) {
            return out;
        }
        self.busy = None;
        self.tls = true;
        self.ext = Extensions::default();
        self.send_ehlo(&mut out);
        out
    }

    /// The TLS handshake failed: the session is over. Under `may`, Postfix
    /// then connects to the same host again without TLS; that is the
    /// driver's job.
    pub fn tls_failed(&mut self, why: impl Into<String>) -> Vec<Action> {
        let mut out = Vec::new();
        self.busy = None;
        self.fail(
            &mut out,
            Failure::Local {
                stage: Stage::TlsHandshake,
                reason: LocalReason::TlsFailed(why.into()),
            },
        );
        out
    }

    /// Starts a transaction on a ready connection.
    pub fn begin(&mut self, t: Transaction) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.idle || self.closed || t.recipients.is_empty() {
            // Misuse by the driver: answer every recipient rather than panic.
            let n = t.recipients.len();
            for index in 0..n {
                out.push(Action::Recipient {
                    index,
                    outcome: Outcome::Failed(Failure::Local {
                        stage: self.stage(),
                        reason: LocalReason::Protocol("connection not ready".into()),
                    }),
                });
            }
            out.push(Action::TransactionDone);
            return out;
        }
        self.idle = false;
        let n = t.recipients.len();
        let mode = if self.cfg.chunking && self.ext.chunking && !self.cfg.lmtp {
            BodyMode::Bdat
        } else {
            BodyMode::Data
        };
        let mut tx = Tx {
            t,
            results: vec![None; n],
            accepted: Vec::new(),
            mail_failed: None,
            later: VecDeque::new(),
            mode,
        };

        // Checks Postfix makes before MAIL FROM (smtp_proto.c).
        let local = if tx.t.smtputf8 && !self.ext.smtputf8 {
            Some(LocalReason::Smtputf8NotOffered)
        } else {
            match self.ext.size {
                Some(limit) if limit > 0 && tx.t.size > limit => Some(LocalReason::TooBig {
                    size: tx.t.size,
                    limit,
                }),
                _ => None,
            }
        };
        if let Some(reason) = local {
            let f = Failure::Local {
                stage: Stage::Mail,
                reason,
            };
            for index in 0..n {
                out.push(Action::Recipient {
                    index,
                    outcome: Outcome::Failed(f.clone()),
                });
            }
            out.push(Action::TransactionDone);
            self.idle = true;
            return out;
        }

        let mut cmds: Vec<(Expect, Vec<u8>)> = Vec::new();
        if self.dirty {
            cmds.push((Expect::Rset, b"RSET\r\n".to_vec()));
            self.dirty = false;
        }
        cmds.push((Expect::Mail, self.mail_command(&tx.t).into_bytes()));
        for (i, r) in tx.t.recipients.iter().enumerate() {
            cmds.push((Expect::Rcpt(i), self.rcpt_command(r).into_bytes()));
        }
        let pipelining = self.cfg.pipelining && self.ext.pipelining;
        if mode == BodyMode::Data {
            cmds.push((Expect::Data, b"DATA\r\n".to_vec()));
        }
        if pipelining {
            // RFC 2920 section 3.1: the whole group in one write; DATA is
            // the last command of the group.
            let mut bytes = Vec::new();
            for (e, c) in cmds {
                self.pending.push_back(e);
                bytes.extend_from_slice(&c);
            }
            out.push(Action::Send(bytes));
        } else {
            let mut it = cmds.into_iter();
            if let Some((e, c)) = it.next() {
                self.pending.push_back(e);
                out.push(Action::Send(c));
            }
            tx.later = it.collect();
        }
        self.tx = Some(tx);
        out
    }

    /// The driver wrote the whole body: now the final reply is awaited.
    pub fn message_sent(&mut self) -> Vec<Action> {
        if self.busy == Some(Stage::Message) {
            self.busy = None;
            match self.tx.as_ref() {
                Some(tx) if self.cfg.lmtp && !tx.accepted.is_empty() => {
                    for k in 0..tx.accepted.len() {
                        self.pending.push_back(Expect::LmtpDone(k));
                    }
                }
                _ => self.pending.push_back(Expect::DataDone),
            }
        }
        Vec::new()
    }

    /// Ends the session politely.
    pub fn quit(&mut self) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        self.idle = false;
        self.pending.push_back(Expect::Quit);
        vec![Action::Send(b"QUIT\r\n".to_vec())]
    }

    /// The timeout for the current stage fired.
    pub fn timeout(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        let stage = self.stage();
        if stage == Stage::Quit || stage == Stage::Idle {
            self.close(&mut out, None);
        } else {
            self.fail(
                &mut out,
                Failure::Local {
                    stage,
                    reason: LocalReason::Timeout,
                },
            );
        }
        out
    }

    /// The peer closed the connection (or a write failed).
    pub fn closed(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        let stage = self.stage();
        if matches!(stage, Stage::Quit | Stage::Idle | Stage::Closed) {
            self.close(&mut out, None);
        } else {
            self.fail(
                &mut out,
                Failure::Local {
                    stage,
                    reason: LocalReason::Lost,
                },
            );
        }
        out
    }

    fn close(&mut self, out: &mut Vec<Action>, why: Option<Failure>) {
        if !self.closed {
            self.closed = true;
            self.pending.clear();
            self.busy = None;
            self.buf = Vec::new();
            out.push(Action::Close(why));
        }
    }

    /// A session failure: every recipient without an outcome gets it.
    fn fail(&mut self, out: &mut Vec<Action>, f: Failure) {
        if let Some(tx) = self.tx.take() {
            for (index, r) in tx.results.iter().enumerate() {
                if r.is_none() {
                    out.push(Action::Recipient {
                        index,
                        outcome: Outcome::Failed(f.clone()),
                    });
                }
            }
            out.push(Action::TransactionDone);
        }
        self.close(out, Some(f));
    }

    fn send_ehlo(&mut self, out: &mut Vec<Action>) {
        let (expect, verb) = if self.cfg.lmtp {
            (Expect::Lhlo, "LHLO")
        } else {
            (Expect::Ehlo, "EHLO")
        };
        self.pending.push_back(expect);
        out.push(Action::Send(
            format!("{verb} {}\r\n", self.cfg.helo_name).into_bytes(),
        ));
    }

    fn mail_command(&self, t: &Transaction) -> String {
        let mut c = format!("MAIL FROM:<{}>", t.sender);
        if self.ext.size.is_some() {
            c.push_str(&format!(" SIZE={}", t.size));
        }
        if t.eight_bit && self.ext.eight_bit_mime {
            c.push_str(" BODY=8BITMIME");
        }
        if t.smtputf8 && self.ext.smtputf8 {
            c.push_str(" SMTPUTF8");
        }
        if self.ext.dsn {
            match t.ret {
                Some(Ret::Full) => c.push_str(" RET=FULL"),
                Some(Ret::Hdrs) => c.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = &t.envid {
                c.push_str(&format!(" ENVID={}", clean_param(envid)));
            }
        }
        c.push_str("\r\n");
        c
    }

    fn rcpt_command(&self, r: &Rcpt) -> String {
        let mut c = format!("RCPT TO:<{}>", r.address);
        if self.ext.dsn {
            if let Some(n) = &r.notify {
                c.push_str(&format!(" NOTIFY={}", clean_param(n)));
            }
            // RFC 3461 section 4.2: pass ORCPT on as received; when there
            // was none, Postfix adds the recipient as `rfc822;`.
            match &r.orcpt {
                Some(o) => c.push_str(&format!(" ORCPT={}", clean_param(o))),
                None if r.address.is_ascii() => {
                    c.push_str(&format!(" ORCPT=rfc822;{}", xtext(&r.address)))
                }
                None => {}
            }
        }
        c.push_str("\r\n");
        c
    }

    /// Sends the next command of a non-pipelined transaction, if any.
    fn send_later(&mut self, out: &mut Vec<Action>) -> bool {
        let Some(tx) = self.tx.as_mut() else {
            return false;
        };
        if let Some((e, c)) = tx.later.pop_front() {
            self.pending.push_back(e);
            out.push(Action::Send(c));
            return true;
        }
        false
    }

    fn on_reply(&mut self, expect: Expect, reply: Reply, out: &mut Vec<Action>) {
        match expect {
            Expect::Greeting => {
                if reply.code != 220 {
                    self.fail(
                        out,
                        Failure::Reply {
                            stage: Stage::Greeting,
                            reply,
                        },
                    );
                    return;
                }
                if self.is_me(reply.text.first().map(String::as_str)) {
                    let server_name = first_word(reply.text.first().map(String::as_str));
                    self.fail(
                        out,
                        Failure::Local {
                            stage: Stage::Greeting,
                            reason: LocalReason::LoopsBack { server_name },
                        },
                    );
                    return;
                }
                // A server that speaks before it is spoken to (pregreeting,
                // or replies to commands not yet sent) is not trusted.
                if !self.buf.is_empty() {
                    self.fail(
                        out,
                        Failure::Local {
                            stage: Stage::Greeting,
                            reason: LocalReason::Protocol("server sent data before EHLO".into()),
                        },
                    );
                    return;
                }
                self.send_ehlo(out);
            }
            Expect::Ehlo | Expect::Lhlo => {
                let stage = expect.stage();
                if reply.code == 250 && self.is_me(reply.text.first().map(String::as_str)) {
                    let server_name = first_word(reply.text.first().map(String::as_str));
                    self.fail(
                        out,
                        Failure::Local {
                            stage,
                            reason: LocalReason::LoopsBack { server_name },
                        },
                    );
                } else if reply.code == 250 {
                    self.ext = Extensions::from_ehlo(&reply);
                    self.after_hello(out);
                } else if reply.code >= 500 && !self.tls && !self.cfg.lmtp {
                    // RFC 5321 section 3.2: fall back to HELO.
                    self.pending.push_back(Expect::Helo);
                    out.push(Action::Send(
                        format!("HELO {}\r\n", self.cfg.helo_name).into_bytes(),
                    ));
                } else {
                    self.fail(out, Failure::Reply { stage, reply });
                }
            }
            Expect::Helo => {
                if reply.code == 250 {
                    self.ext = Extensions::default();
                    self.after_hello(out);
                } else {
                    self.fail(
                        out,
                        Failure::Reply {
                            stage: Stage::Helo,
                            reply,
                        },
                    );
                }
            }
            Expect::StartTls => {
                if reply.code == 220 {
                    if !self.buf.is_empty() {
                        // RFC 3207 section 5: nothing may follow the 220
                        // before the handshake (CVE-2011-0411's pattern).
                        self.fail(
                            out,
                            Failure::Local {
                                stage: Stage::StartTls,
                                reason: LocalReason::Protocol(
                                    "data after the reply to STARTTLS".into(),
                                ),
                            },
                        );
                        return;
                    }
                    self.busy = Some(Stage::TlsHandshake);
                    out.push(Action::StartTls);
                } else if self.cfg.starttls == StartTls::Required {
                    self.fail(
                        out,
                        Failure::Local {
                            stage: Stage::StartTls,
                            reason: LocalReason::TlsRefused(reply),
                        },
                    );
                } else {
                    // `may`: carry on in plaintext.
                    self.after_tls_decision(out);
                }
            }
            Expect::AuthPlain | Expect::AuthLogin(2) => {
                if reply.code == 235 {
                    self.authenticated = true;
                    self.ready(out);
                } else {
                    self.fail(
                        out,
                        Failure::Reply {
                            stage: Stage::Auth,
                            reply,
                        },
                    );
                }
            }
            Expect::AuthLogin(step) => {
                if reply.code != 334 {
                    self.fail(
                        out,
                        Failure::Reply {
                            stage: Stage::Auth,
                            reply,
                        },
                    );
                    return;
                }
                let Some(cred) = self.cfg.auth.as_ref() else {
                    return;
                };
                let b64 = base64::engine::general_purpose::STANDARD;
                let line = if step == 0 {
                    b64.encode(&cred.user)
                } else {
                    b64.encode(&cred.password)
                };
                self.pending.push_back(Expect::AuthLogin(step + 1));
                out.push(Action::Send(format!("{line}\r\n").into_bytes()));
            }
            Expect::Rset => {
                // A failed RSET means the server is confused: give up on it
                // (Postfix's "sending RSET" failure is a session failure).
                if reply.code != 250 {
                    self.fail(
                        out,
                        Failure::Reply {
                            stage: Stage::Rset,
                            reply,
                        },
                    );
                    return;
                }
                self.send_later(out);
            }
            Expect::Mail => {
                let Some(tx) = self.tx.as_mut() else { return };
                if reply.code != 250 {
                    tx.mail_failed = Some(Failure::Reply {
                        stage: Stage::Mail,
                        reply,
                    });
                    self.dirty = true;
                    if tx.later.is_empty() {
                        // Pipelined: the RCPT and DATA replies still come.
                        return;
                    }
                    tx.later.clear();
                    self.finish_envelope(out);
                    return;
                }
                self.send_later(out);
            }
            Expect::Rcpt(i) => {
                let Some(tx) = self.tx.as_mut() else { return };
                if tx.mail_failed.is_none() {
                    if reply.code == 250 || reply.code == 251 {
                        tx.accepted.push(i);
                    } else if let Some(slot) = tx.results.get_mut(i) {
                        *slot = Some(Outcome::Failed(Failure::Reply {
                            stage: Stage::Rcpt,
                            reply,
                        }));
                    }
                }
                let pipelined_data = self.pending.iter().any(|e| *e == Expect::Data);
                let more_rcpts = matches!(tx.later.front(), Some((Expect::Rcpt(_), _)));
                if pipelined_data || more_rcpts {
                    self.send_later(out);
                    return;
                }
                if tx.mode == BodyMode::Data && !tx.later.is_empty() {
                    // Without PIPELINING: DATA only when someone was accepted.
                    if tx.accepted.is_empty() {
                        tx.later.clear();
                        self.finish_envelope(out);
                    } else {
                        self.send_later(out);
                    }
                    return;
                }
                if self.pending.is_empty() {
                    self.finish_envelope(out);
                }
            }
            Expect::Data => {
                let Some(tx) = self.tx.as_mut() else { return };
                if reply.code == 354 {
                    if tx.mail_failed.is_some() || tx.accepted.is_empty() {
                        // RFC 2920 section 3.1: the server should have
                        // refused DATA; end the empty message.
                        self.pending.push_back(Expect::DataDone);
                        self.dirty = true;
                        out.push(Action::Send(b".\r\n".to_vec()));
                        return;
                    }
                    self.busy = Some(Stage::Message);
                    out.push(Action::SendMessage(BodyMode::Data));
                    return;
                }
                if tx.mail_failed.is_none() && !tx.accepted.is_empty() {
                    let f = Failure::Reply {
                        stage: Stage::Data,
                        reply,
                    };
                    for &i in &tx.accepted {
                        tx.results[i] = Some(Outcome::Failed(f.clone()));
                    }
                }
                self.dirty = true;
                self.finish_tx(out);
            }
            Expect::DataDone => {
                let Some(tx) = self.tx.as_mut() else { return };
                if tx.mail_failed.is_none() {
                    let o = if reply.code == 250 {
                        Outcome::Delivered(reply)
                    } else {
                        Outcome::Failed(Failure::Reply {
                            stage: Stage::DataDone,
                            reply,
                        })
                    };
                    for &i in &tx.accepted {
                        tx.results[i] = Some(o.clone());
                    }
                }
                self.finish_tx(out);
            }
            Expect::LmtpDone(k) => {
                // RFC 2033 section 4.2: this reply is the k-th accepted
                // recipient's own outcome.
                let Some(tx) = self.tx.as_mut() else { return };
                let last = k + 1 >= tx.accepted.len();
                if let Some(&i) = tx.accepted.get(k) {
                    tx.results[i] = Some(if reply.code == 250 {
                        Outcome::Delivered(reply)
                    } else {
                        Outcome::Failed(Failure::Reply {
                            stage: Stage::DataDone,
                            reply,
                        })
                    });
                }
                if last {
                    self.finish_tx(out);
                }
            }
            Expect::Quit => self.close(out, None),
        }
    }

    /// MAIL and RCPT are answered (no DATA was sent in the group): send the
    /// body by BDAT, or end the transaction.
    fn finish_envelope(&mut self, out: &mut Vec<Action>) {
        let Some(tx) = self.tx.as_mut() else { return };
        if tx.mail_failed.is_some() || tx.accepted.is_empty() {
            self.dirty = true;
            self.finish_tx(out);
            return;
        }
        if tx.mode == BodyMode::Bdat {
            self.busy = Some(Stage::Message);
            out.push(Action::SendMessage(BodyMode::Bdat));
        }
    }

    fn finish_tx(&mut self, out: &mut Vec<Action>) {
        let Some(tx) = self.tx.take() else { return };
        for (index, r) in tx.results.into_iter().enumerate() {
            let outcome = match (r, &tx.mail_failed) {
                (Some(o), _) => o,
                (None, Some(f)) => Outcome::Failed(f.clone()),
                // Accepted at RCPT but the body never went (cannot happen
                // unless a reply was lost): report rather than drop.
                (None, None) => Outcome::Failed(Failure::Local {
                    stage: Stage::Data,
                    reason: LocalReason::Protocol("no reply for this recipient".into()),
                }),
            };
            out.push(Action::Recipient { index, outcome });
        }
        out.push(Action::TransactionDone);
        self.idle = true;
    }

    /// After EHLO/HELO: STARTTLS, then AUTH, then ready.
    fn after_hello(&mut self, out: &mut Vec<Action>) {
        if !self.tls {
            match self.cfg.starttls {
                StartTls::Never => {}
                StartTls::IfOffered if !self.ext.starttls => {}
                StartTls::Required if !self.ext.starttls => {
                    self.fail(
                        out,
                        Failure::Local {
                            stage: Stage::StartTls,
                            reason: LocalReason::TlsNotOffered,
                        },
                    );
                    return;
                }
                _ => {
                    self.pending.push_back(Expect::StartTls);
                    out.push(Action::Send(b"STARTTLS\r\n".to_vec()));
                    return;
                }
            }
        }
        self.after_tls_decision(out);
    }

    fn after_tls_decision(&mut self, out: &mut Vec<Action>) {
        let Some(cred) = self.cfg.auth.clone() else {
            self.ready(out);
            return;
        };
        // Postfix sends mail unauthenticated when the server offers no AUTH
        // (the server decides whether to relay it).
        if self.ext.auth.is_empty() {
            self.ready(out);
            return;
        }
        let allowed = self.tls || self.cfg.auth_plaintext;
        let has = |m: &str| self.ext.auth.iter().any(|a| a == m);
        if allowed && has("PLAIN") {
            // RFC 4616: authzid NUL authcid NUL passwd, as the initial response.
            let mut raw = Vec::new();
            raw.push(0);
            raw.extend_from_slice(cred.user.as_bytes());
            raw.push(0);
            raw.extend_from_slice(cred.password.as_bytes());
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            self.pending.push_back(Expect::AuthPlain);
            out.push(Action::Send(format!("AUTH PLAIN {b64}\r\n").into_bytes()));
        } else if allowed && has("LOGIN") {
            self.pending.push_back(Expect::AuthLogin(0));
            out.push(Action::Send(b"AUTH LOGIN\r\n".to_vec()));
        } else {
            self.fail(
                out,
                Failure::Local {
                    stage: Stage::Auth,
                    reason: LocalReason::NoAuthMechanism,
                },
            );
        }
    }

    /// Whether a greeting or EHLO line names this host.
    fn is_me(&self, line: Option<&str>) -> bool {
        match (&self.cfg.my_hostname, line) {
            (Some(me), Some(l)) => {
                let name = first_word(Some(l));
                !me.is_empty() && name.trim_end_matches('.').eq_ignore_ascii_case(me)
            }
            _ => false,
        }
    }

    fn ready(&mut self, out: &mut Vec<Action>) {
        self.idle = true;
        out.push(Action::Ready);
    }
}

fn first_word(line: Option<&str>) -> String {
    line.and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_string()
}

/// A parameter value as it may appear in a command: no spaces, no control
/// characters, ASCII (DSN values were xtext when received; this guards
/// against a queue file that was edited by hand).
fn clean_param(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '<' && *c != '>')
        .collect()
}

/// RFC 3461 section 4: xtext, `+XX` for `+`, `=` and octets outside 33..126.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The body for DATA: line ends made CRLF, lines starting with `.` doubled
/// (RFC 5321 section 4.5.2), and the final `.` line.
pub fn data_bytes(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 5);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if b == b'\r' {
            // A lone CR is kept; CR LF is copied as is.
            out.push(b);
            at_line_start = false;
            prev = b;
            continue;
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The message with CRLF line ends, as BDAT sends it.
pub fn crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 2);
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The body for CHUNKING (RFC 3030 section 2): one `BDAT n LAST` chunk.
pub fn bdat_bytes(message: &[u8]) -> Vec<u8> {
    let body = crlf(message);
    let mut out = format!("BDAT {} LAST\r\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Whether a message needs BODY=8BITMIME: any octet above 127.
pub fn is_eight_bit(message: &[u8]) -> bool {
    message.iter().any(|b| *b >= 0x80)
}
