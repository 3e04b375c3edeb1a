//! One SMTP server session (RFC 5321 section 4), Postfix smtpd's behaviour:
//! replies word for word, PIPELINING (commands answered in order from one
//! buffer), DATA and BDAT (RFC 3030), error counting with the soft and hard
//! limits, and SMTP-smuggling-proof end of data: only `<CR><LF>.<CR><LF>`
//! ends a message; bare LF lines are taken as line ends (Postfix 3.9's
//! `smtpd_forbid_bare_newline = normalize`), but `<LF>.<LF>` is content.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use yubin_address::{parse_address, AddrError, Address};

use crate::command::{split_path, PathText, Verb};
use crate::envelope::{Envelope, Recipient};
use crate::params::{parse_mail, parse_rcpt, RcptParams};
use crate::reply::Reply;
use crate::sasl::{b64_decode, b64_encode, SaslStep};
use crate::stats::Stats;

/// Who is connected.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Host name, or `unknown` (Postfix's word when there is no name).
    pub name: String,
    pub addr: IpAddr,
    pub in_mynetworks: bool,
}

impl ClientInfo {
    /// `name[addr]`, as every smtpd log line shows the client.
    pub fn label(&self) -> String {
        format!("{}[{}]", self.name, self.addr)
    }
}

/// What the session asks the server before it answers a command. The
/// session waits (buffering pipelined input) until [`Session::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// MAIL FROM: may a transaction start (queue space, queue_minfree)?
    /// Answer with [`Answer::Verdict`]: `None` accepts.
    Mail(MailQuery),
    /// RCPT TO: the smtpd_*_restrictions verdict. `None` accepts.
    /// (Boxed: the query is the largest request by far.)
    Recipient(Box<RecipientQuery>),
    /// VRFY: is the address deliverable? `None`: 252 with the address.
    Verify(Address),
    /// AUTH: start a SASL exchange, or go on with the client's response.
    /// Answer with [`Answer::Sasl`].
    Auth(AuthRequest),
    /// Before the greeting ([`SessionConfig::check_client`]): the
    /// smtpd_client_restrictions verdict (smtpd_delay_reject = no).
    /// Answer with [`Answer::Policy`] (or `Verdict`).
    Connect,
    /// HELO/EHLO ([`SessionConfig::check_helo`]): the
    /// smtpd_helo_restrictions verdict for this name.
    Helo(HeloQuery),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeloQuery {
    pub helo: String,
}

/// The restrictions' answer (access(5) and check_policy_service actions):
/// a refusal or not, what to log, and what it asks of the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyVerdict {
    pub reply: Option<Reply>,
    /// Log lines as (what, text), e.g. (`hold`, `<a@b.example>: Sender
    /// address triggers HOLD action`); the session writes them as Postfix's
    /// `NOQUEUE: hold: RCPT from client: text; from=<> to=<> proto=
    /// helo=<>`. What `warning` is logged as `warning: text`.
    pub events: Vec<(String, String)>,
    /// HOLD: the message goes to the hold queue.
    pub hold: bool,
    /// DISCARD: accepted and dropped.
    pub discard: bool,
    /// PREPEND: headers put before the message's own.
    pub prepend: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailQuery {
    pub sender: Option<Address>,
    /// The SIZE= parameter.
    pub size: Option<u64>,
    /// The HELO/EHLO name and the SASL login so far (for
    /// smtpd_sender_restrictions with smtpd_delay_reject = no).
    pub helo: Option<String>,
    pub sasl_user: Option<String>,
    /// The sender as the client wrote it (Postfix quotes it so in replies;
    /// [`Address`] folds the domain to lower case).
    pub sender_given: String,
    /// `SMTP`/`ESMTP` (for policy servers).
    pub protocol: String,
}

/// Everything the restrictions need to judge one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientQuery {
    pub recipient: Address,
    /// `None` for the null sender.
    pub sender: Option<Address>,
    pub sasl_user: Option<String>,
    pub helo: Option<String>,
    /// The sender as the client wrote it (empty for `<>`).
    pub sender_given: String,
    /// An earlier HOLD or DISCARD of this transaction (Postfix does not
    /// repeat them; after DISCARD no restriction runs).
    pub holding: bool,
    pub discarding: bool,
    /// For policy servers (SMTPD_POLICY_README): `SMTP`/`ESMTP`, the queue
    /// id once a recipient was accepted, the recipients so far, MAIL's SIZE.
    pub protocol: String,
    pub queue_id: Option<String>,
    pub recipient_count: usize,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// Start `mechanism` (one of [`SessionConfig::auth_mechanisms`]) with
    /// an optional initial response (RFC 4954 section 4).
    Start {
        mechanism: String,
        initial: Option<Vec<u8>>,
        /// The session runs over TLS (Dovecot's `secured`).
        tls: bool,
    },
    /// The client's next response in the exchange.
    Response(Vec<u8>),
}

/// The server's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `None`: go on; `Some(reply)`: refuse with this reply.
    Verdict(Option<Reply>),
    Sasl(SaslStep),
    /// A verdict with what the restrictions logged and ask of the
    /// transaction (for Mail, Recipient, Connect and Helo).
    Policy(PolicyVerdict),
    // milter: begin
    /// A milter refused MAIL or RCPT: the reply as the milter gave it,
    /// logged as Postfix's `milter-reject:` (smtpd.c check_milter_reply).
    /// A 421 reply closes the session.
    Milter(Reply),
    // milter: end
}

/// The command a request was made for, kept until the answer comes.
#[derive(Debug, Clone)]
enum Pending {
    Mail {
        sender: Option<Address>,
        params: crate::params::MailParams,
    },
    Rcpt {
        addr: Address,
        params: RcptParams,
    },
    Vrfy(Address),
    Auth,
    Connect,
    Helo {
        verb: Verb,
        name: String,
    },
}

/// Settings derived from main.cf (and master.cf `-o` overrides).
#[derive(Clone)]
pub struct SessionConfig {
    pub hostname: String,
    /// smtpd_banner, expanded, without the `220 `.
    pub banner: String,
    pub message_size_limit: u64,
    pub recipient_limit: usize,
    pub hard_error_limit: u32,
    pub soft_error_limit: u32,
    pub error_sleep: Duration,
    pub disable_vrfy: bool,
    pub smtputf8_enable: bool,
    pub helo_required: bool,
    /// Longest command line; Postfix's line_length_limit (2048).
    pub line_limit: usize,
    /// Makes a new queue id for a transaction (the first accepted RCPT).
    pub new_queue_id: Arc<dyn Fn() -> String + Send + Sync>,
    /// STARTTLS is offered (smtpd_tls_security_level may or encrypt, with a
    /// certificate).
    pub tls_offered: bool,
    /// smtpd_tls_security_level = encrypt: mail only after STARTTLS.
    pub tls_required: bool,
    /// SMTP AUTH (smtpd_sasl_auth_enable): the mechanisms to offer;
    /// `None` when disabled.
    pub auth_mechanisms: Option<Vec<String>>,
    /// The mechanisms once TLS is active (smtpd_sasl_tls_security_options);
    /// `None`: the same as `auth_mechanisms`.
    pub auth_mechanisms_tls: Option<Vec<String>>,
    /// smtpd_tls_auth_only: AUTH only after STARTTLS.
    pub auth_requires_tls: bool,
    /// broken_sasl_auth_clients: also advertise `AUTH=` for old Outlook.
    pub broken_sasl_auth_clients: bool,
    /// Ask [`Request::Connect`] before the greeting (smtpd_delay_reject =
    /// no with smtpd_client_restrictions).
    pub check_client: bool,
    /// Ask [`Request::Helo`] at HELO/EHLO (smtpd_delay_reject = no with
    /// smtpd_helo_restrictions).
    pub check_helo: bool,
    /// Speak LMTP (RFC 2033), yubin's `lmtpd` service: LHLO instead of
    /// HELO/EHLO, MAIL only after LHLO, and after the message one reply per
    /// accepted recipient (section 4.2).
    pub lmtp: bool,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this reply.
    Reply(Reply),
    /// Answer this with [`Session::answer`]; nothing more is read from the
    /// client's buffered input until then.
    Request(Request),
    /// Wait before going on (the error tarpit).
    Delay(Duration),
    /// A mail.log message from smtpd (without the `postfix/smtpd[pid]: ` prefix).
    Log(String),
    /// Queue this message durably, then call [`Session::queued`].
    Deliver {
        envelope: Box<Envelope>,
        data: Vec<u8>,
    },
    /// Close the connection after writing what came before.
    Close,
    /// Run the TLS handshake now (after writing what came before), then call
    /// [`Session::tls_started`]. Nothing the client sent before the
    /// handshake is kept.
    StartTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command,
    Data,
    /// Reading a BDAT chunk: bytes left, and whether it is the last.
    Bdat {
        left: usize,
        last: bool,
        discard: bool,
    },
    /// Waiting for the queue to answer a Deliver.
    Queueing,
    /// Waiting for the TLS handshake.
    StartingTls,
    /// Reading SASL responses (`334` sent).
    Auth,
    /// Waiting for the answer to a [`Request`].
    Waiting,
    Closed,
}

/// A BDAT sequence (RFC 3030): between the first chunk and the LAST one,
/// MAIL, RCPT and DATA are refused as Postfix does ("Error: MAIL after
/// BDAT"); after a refused chunk the rest of the sequence is discarded
/// ("551 5.0.0 Discarded N bytes after earlier error").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BdatState {
    None,
    Open,
    Failed,
}

pub struct Session {
    cfg: SessionConfig,
    client: ClientInfo,
    pending: Option<Pending>,
    mode: Mode,
    buf: Vec<u8>,
    skip_to_lf: bool,
    helo: Option<String>,
    esmtp: bool,
    /// Inside a transaction (after a successful MAIL).
    sender: Option<Option<Address>>,
    /// The MAIL FROM address as written.
    sender_given: String,
    mail_params: crate::params::MailParams,
    recipients: Vec<Recipient>,
    queue_id: Option<String>,
    data: Vec<u8>,
    data_size: u64,
    too_big: bool,
    prev_line_crlf: bool,
    bdat_seen: bool,
    /// Where a BDAT sequence stands (Postfix's bdat_state).
    bdat: BdatState,
    /// The size of the chunk being read, for `250 2.0.0 Ok: N bytes`.
    bdat_chunk: usize,
    errors: u32,
    last_verb: Verb,
    stats: Stats,
    /// The TLS summary once a handshake has completed (`TLSv1.3 with cipher ...`).
    tls: Option<String>,
    /// The mechanism of the SASL exchange in progress (the server holds
    /// the exchange's state).
    sasl: Option<String>,
    /// (login, mechanism) after a successful AUTH.
    authenticated: Option<(String, String)>,
    auth_failures: u32,
    /// `In:`/`Out:` lines for the postmaster's error notice (bounded).
    transcript: Vec<String>,
    transcript_bytes: usize,
    /// notify_classes names of the errors that happened (policy, protocol, resource).
    error_classes: std::collections::BTreeSet<&'static str>,
    /// Addresses refused by policy, for the notice's summary.
    rejected: Vec<String>,
    /// The client was refused at connect (smtpd_delay_reject = no): every
    /// command but QUIT gets `503 5.7.0 Error: access denied for ...`.
    access_denied: bool,
    /// What the restrictions asked of the current transaction.
    effects: PolicyVerdict,
}

/// What the postmaster's error notice needs (Postfix's smtpd "Transcript of
/// session follows").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub classes: Vec<&'static str>,
    pub transcript: Vec<String>,
    pub rejected: Vec<String>,
}

/// Transcript limits: a session that talks forever keeps its first part.
const TRANSCRIPT_LINES: usize = 200;
const TRANSCRIPT_BYTES: usize = 32 * 1024;

impl Session {
    pub fn new(cfg: SessionConfig, client: ClientInfo) -> Session {
        Session {
            cfg,
            client,
            pending: None,
            mode: Mode::Command,
            buf: Vec::new(),
            skip_to_lf: false,
            helo: None,
            esmtp: false,
            sender: None,
            sender_given: String::new(),
            mail_params: Default::default(),
            recipients: Vec::new(),
            queue_id: None,
            data: Vec::new(),
            data_size: 0,
            too_big: false,
            prev_line_crlf: true,
            bdat_seen: false,
            bdat: BdatState::None,
            bdat_chunk: 0,
            errors: 0,
            last_verb: Verb::Unknown,
            stats: Stats::default(),
            tls: None,
            sasl: None,
            authenticated: None,
            auth_failures: 0,
            transcript: Vec::new(),
            transcript_bytes: 0,
            error_classes: Default::default(),
            rejected: Vec::new(),
            access_denied: false,
            effects: PolicyVerdict::default(),
        }
    }

    fn record(&mut self, line: String) {
        if self.transcript.len() < TRANSCRIPT_LINES
            && self.transcript_bytes + line.len() <= TRANSCRIPT_BYTES
        {
            self.transcript_bytes += line.len();
            self.transcript.push(line);
        }
    }

    /// Records every reply line of `actions` as `Out:`.
    fn record_out(&mut self, actions: &[Action]) {
        for a in actions {
            if let Action::Reply(r) = a {
                for l in r.wire_lines() {
                    self.record(format!("Out: {l}"));
                }
            }
        }
    }

    /// The error notice, when errors happened in this session.
    pub fn notice(&self) -> Option<Notice> {
        (!self.error_classes.is_empty()).then(|| Notice {
            classes: self.error_classes.iter().copied().collect(),
            transcript: self.transcript.clone(),
            rejected: self.rejected.clone(),
        })
    }

    /// AUTH is offered now (enabled, and TLS active if required for it).
    /// The mechanisms offered now: after STARTTLS the TLS list (Postfix
    /// smtpd_sasl_tls_security_options).
    fn mechanisms(&self) -> Option<&Vec<String>> {
        if self.tls.is_some() {
            self.cfg
                .auth_mechanisms_tls
                .as_ref()
                .or(self.cfg.auth_mechanisms.as_ref())
        } else {
            self.cfg.auth_mechanisms.as_ref()
        }
    }

    fn auth_offered(&self) -> bool {
        self.cfg.auth_mechanisms.is_some() && (self.tls.is_some() || !self.cfg.auth_requires_tls)
    }

    /// The TLS handshake finished (STARTTLS, or a wrapped-mode port before
    /// the greeting). RFC 3207 section 4.2: the session starts over; the
    /// client must say EHLO again.
    pub fn tls_started(&mut self, summary: String) -> Vec<Action> {
        self.tls = Some(summary);
        self.authenticated = None;
        self.buf.clear();
        self.skip_to_lf = false;
        self.helo = None;
        self.esmtp = false;
        self.reset_transaction();
        if self.mode == Mode::StartingTls {
            self.mode = Mode::Command;
        }
        Vec::new()
    }

    /// `proto=` as Postfix logs it: SMTP, ESMTP, and ESMTPS over TLS.
    pub fn protocol(&self) -> &'static str {
        if self.cfg.lmtp {
            // RFC 3848's with-protocol values for LMTP.
            return match (self.tls.is_some(), self.authenticated.is_some()) {
                (true, true) => "LMTPSA",
                (false, true) => "LMTPA",
                (true, false) => "LMTPS",
                (false, false) => "LMTP",
            };
        }
        match (self.esmtp, self.tls.is_some(), self.authenticated.is_some()) {
            (true, true, true) => "ESMTPSA",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, false, false) => "ESMTP",
            (false, true, _) => "SMTPS",
            (false, false, _) => "SMTP",
        }
    }

    /// The TLS summary, for the Received: header and the log.
    pub fn tls(&self) -> Option<&str> {
        self.tls.as_deref()
    }

    // milter: begin
    /// The HELO/EHLO name, once given (milter macros and events).
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// (login, mechanism) after a successful AUTH ({auth_authen}, {auth_type}).
    pub fn authenticated(&self) -> Option<(&str, &str)> {
        self.authenticated
            .as_ref()
            .map(|(u, m)| (u.as_str(), m.as_str()))
    }

    /// MAIL or RCPT refused by a milter: Postfix's log line and the reply.
    fn milter_refused(&mut self, pending: Option<Pending>, r: Reply, out: &mut Vec<Action>) {
        let (stage, from, to) = match &pending {
            Some(Pending::Mail { sender, .. }) => (
                "MAIL",
                sender.as_ref().map(|a| a.internal()).unwrap_or_default(),
                None,
            ),
            Some(Pending::Rcpt { addr, .. }) => (
                "RCPT",
                match &self.sender {
                    Some(Some(a)) => a.internal(),
                    _ => String::new(),
                },
                Some(addr.internal()),
            ),
            _ => {
                self.error(out, 451, "4.3.0", "Error: internal error");
                return;
            }
        };
        let verb = if stage == "MAIL" {
            Verb::Mail
        } else {
            Verb::Rcpt
        };
        self.stats.record(verb, false);
        let mut line = format!(
            "{}: milter-reject: {stage} from {}: {}; from=<{from}>",
            self.queue_id.as_deref().unwrap_or("NOQUEUE"),
            self.client.label(),
            r.raw()
        );
        if let Some(to) = &to {
            line.push_str(&format!(" to=<{to}>"));
        }
        line.push_str(&format!(
            " proto={} helo=<{}>",
            self.protocol(),
            self.helo.as_deref().unwrap_or("")
        ));
        out.push(Action::Log(line));
        if self.rejected.len() < 100 {
            self.rejected
                .push(to.unwrap_or_else(|| format!("{stage} (from <{from}>)")));
        }
        self.refuse(out, &r);
        if r.code == 421 {
            out.push(Action::Close);
            self.mode = Mode::Closed;
        }
    }
    // milter: end

    /// The greeting (RFC 5321 section 4.3.1).
    pub fn start(&mut self) -> Vec<Action> {
        if self.cfg.check_client {
            let mut out = Vec::new();
            self.wait(&mut out, Pending::Connect, Request::Connect);
            return out;
        }
        let out = vec![Action::Reply(Reply::new(220, "", self.cfg.banner.clone()))];
        self.record_out(&out);
        out
    }

    /// smtpd_client_restrictions' answer at connect: the greeting, or
    /// (Postfix smtpd.c, RFC 5321 section 3.1) the refusal in its place,
    /// after which only QUIT is served.
    fn connect_answer(&mut self, v: PolicyVerdict, out: &mut Vec<Action>) {
        self.policy_events(out, "CONNECT", &v, None);
        match v.reply {
            None => out.push(Action::Reply(Reply::new(220, "", self.cfg.banner.clone()))),
            Some(r) => {
                self.log_reject_at(out, "CONNECT", &r.raw(), None, None);
                self.access_denied = true;
                self.error_classes.insert(Self::classify(
                    r.code,
                    &r.enhanced.map(|e| e.to_string()).unwrap_or_default(),
                ));
                out.push(Action::Reply(r.clone()));
                if matches!(r.code, 421 | 521) {
                    out.push(Action::Close);
                    self.mode = Mode::Closed;
                }
            }
        }
    }

    /// The restrictions' log lines, in Postfix's log_whatsup form.
    fn policy_events(
        &mut self,
        out: &mut Vec<Action>,
        stage: &str,
        v: &PolicyVerdict,
        rcpt: Option<&str>,
    ) {
        for (what, text) in &v.events {
            if what == "warning" {
                out.push(Action::Log(format!("warning: {text}")));
                continue;
            }
            let line = self.whatsup(what, stage, text, self.sender.clone(), rcpt);
            out.push(Action::Log(line));
        }
    }

    /// Who is connected.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    pub fn is_closed(&self) -> bool {
        self.mode == Mode::Closed
    }

    /// The verb of the last command, for `lost connection after DATA`.
    pub fn last_verb(&self) -> &'static str {
        match self.mode {
            Mode::Data | Mode::Queueing => "DATA",
            Mode::StartingTls => "STARTTLS",
            Mode::Auth => "AUTH",
            Mode::Waiting
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|p| matches!(p, Pending::Auth)) =>
            {
                "AUTH"
            }
            Mode::Bdat { .. } => "BDAT",
            _ => match self.last_verb {
                Verb::Unknown => "CONNECT",
                v => match v {
                    Verb::Helo => "HELO",
                    Verb::Ehlo => "EHLO",
                    Verb::Lhlo => "LHLO",
                    Verb::Auth => "AUTH",
                    Verb::Mail => "MAIL",
                    Verb::Rcpt => "RCPT",
                    Verb::Data => "DATA",
                    Verb::Bdat => "BDAT",
                    Verb::Starttls => "STARTTLS",
                    Verb::Rset => "RSET",
                    Verb::Noop => "NOOP",
                    Verb::Vrfy => "VRFY",
                    Verb::Etrn => "ETRN",
                    Verb::Quit => "QUIT",
                    Verb::Unknown => "UNKNOWN",
                },
            },
        }
    }

    /// The `disconnect from` line.
    pub fn disconnect_log(&self) -> String {
        format!(
            "disconnect from {} {}",
            self.client.label(),
            self.stats.summary()
        )
    }

    /// The reply for `smtpd_timeout`, and its log line.
    pub fn timeout(&mut self) -> Vec<Action> {
        self.mode = Mode::Closed;
        vec![
            Action::Reply(Reply::new(
                421,
                "4.4.2",
                format!("{} Error: timeout exceeded", self.cfg.hostname),
            )),
            Action::Log(format!(
                "timeout after {} from {}",
                self.last_verb(),
                self.client.label()
            )),
            Action::Close,
        ]
    }

    /// Feeds bytes read from the client; returns what to do, in order.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        self.buf.extend_from_slice(input);
        self.process(&mut out);
        out
    }

    /// Error class of a reply, as Postfix's notify_classes name them:
    /// syntax and sequence errors (RFC 3463 X.5.x) are "protocol", queue
    /// trouble (X.3.0) "resource", every other refusal "policy".
    fn classify(code: u16, enhanced: &str) -> &'static str {
        if enhanced.starts_with("4.3.") {
            "resource"
        } else if enhanced.is_empty() && (500..=504).contains(&code)
            || ["5.5.1", "5.5.2", "5.5.4", "5.7.0"].contains(&enhanced)
        {
            "protocol"
        } else {
            "policy"
        }
    }

    /// The queue's answer to a `Deliver`: the final reply, then the rest of
    /// any pipelined input.
    pub fn queued(&mut self, result: Result<String, String>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.mode != Mode::Queueing {
            return out;
        }
        self.mode = Mode::Command;
        match result {
            Ok(id) => {
                let verb = if self.bdat_seen {
                    Verb::Bdat
                } else {
                    Verb::Data
                };
                self.stats.record(verb, true);
                // Postfix counts the octets of all chunks for BDAT.
                let text = if self.bdat_seen {
                    format!("Ok: {} bytes queued as {id}", self.data_size)
                } else {
                    format!("Ok: queued as {id}")
                };
                if self.cfg.lmtp {
                    // RFC 2033 section 4.2: one reply per accepted
                    // recipient, in RCPT order. The queue file holds them
                    // all, so each has the same durable outcome.
                    for r in self.recipients.clone() {
                        let t = format!("<{}> {text}", r.address.internal());
                        self.send(&mut out, 250, "2.0.0", &t);
                    }
                } else {
                    self.send(&mut out, 250, "2.0.0", &text);
                }
            }
            Err(why) => {
                out.push(Action::Log(format!(
                    "warning: {}: queue file write error: {why}",
                    self.queue_id.clone().unwrap_or_else(|| "NOQUEUE".into())
                )));
                self.stats.record(
                    if self.bdat_seen {
                        Verb::Bdat
                    } else {
                        Verb::Data
                    },
                    false,
                );
                if self.cfg.lmtp {
                    for r in self.recipients.clone() {
                        let t = format!("<{}> Error: queue file write error", r.address.internal());
                        self.error(&mut out, 451, "4.3.0", &t);
                    }
                } else {
                    self.error(&mut out, 451, "4.3.0", "Error: queue file write error");
                }
            }
        }
        self.reset_transaction();
        self.record_out(&out);
        self.process(&mut out);
        out
    }

    /// The answer to Deliver when the end-of-data checks refuse the message
    /// (smtpd_end_of_data_restrictions, yubin-msgauth's verdicts, or a
    /// milter; the server logged the `reject: END-OF-MESSAGE` or
    /// `milter-reject` line as cleanup(8) does): the refusal instead of
    /// "queued", and the transaction is over. A 421 reply closes the session.
    pub fn refused(&mut self, reply: Reply) -> Vec<Action> {
        let mut out = Vec::new();
        if self.mode != Mode::Queueing {
            return out;
        }
        self.mode = Mode::Command;
        let verb = if self.bdat_seen {
            Verb::Bdat
        } else {
            Verb::Data
        };
        self.stats.record(verb, false);
        self.refuse(&mut out, &reply);
        if reply.code == 421 {
            out.push(Action::Close);
            self.mode = Mode::Closed;
        }
        self.reset_transaction();
        self.record_out(&out);
        if !self.is_closed() {
            self.process(&mut out);
        }
        out
    }

    fn send(&mut self, out: &mut Vec<Action>, code: u16, enhanced: &str, text: &str) {
        out.push(Action::Reply(Reply::new(code, enhanced, text)));
    }

    /// A refusal the server decided (a [`Request`]'s answer).
    fn refuse(&mut self, out: &mut Vec<Action>, r: &Reply) {
        let enhanced = r.enhanced.map(|e| e.to_string()).unwrap_or_default();
        let text = r.text.join(" ");
        self.error(out, r.code, &enhanced, &text);
    }

    /// An error reply: counted, and delayed past the soft limit.
    fn error(&mut self, out: &mut Vec<Action>, code: u16, enhanced: &str, text: &str) {
        self.errors += 1;
        self.error_classes.insert(Self::classify(code, enhanced));
        if self.errors > self.cfg.soft_error_limit && !self.cfg.error_sleep.is_zero() {
            out.push(Action::Delay(self.cfg.error_sleep));
        }
        self.send(out, code, enhanced, text);
    }

    fn reset_transaction(&mut self) {
        self.sender = None;
        self.mail_params = Default::default();
        self.recipients.clear();
        self.queue_id = None;
        self.data = Vec::new();
        self.data_size = 0;
        self.too_big = false;
        self.bdat_seen = false;
        self.bdat = BdatState::None;
        self.effects = PolicyVerdict::default();
    }

    fn process(&mut self, out: &mut Vec<Action>) {
        loop {
            match self.mode {
                Mode::Closed | Mode::Queueing | Mode::StartingTls | Mode::Waiting => return,
                Mode::Auth => {
                    let Some(line) = self.take_command_line() else {
                        return;
                    };
                    self.auth_response(&line, out);
                }
                Mode::Command => {
                    let Some(line) = self.take_command_line() else {
                        return;
                    };
                    self.command(&line, out);
                }
                Mode::Data => {
                    let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else {
                        // Bound a single unterminated content line by the size limit.
                        if self.buf.len() > 1 << 20 {
                            let chunk: Vec<u8> = self.buf.drain(..).collect();
                            self.append_content(&chunk, false);
                        }
                        return;
                    };
                    let line: Vec<u8> = self.buf.drain(..=pos).collect();
                    let before = out.len();
                    self.data_line(&line, out);
                    self.record_out(&out[before..]);
                }
                Mode::Bdat {
                    left,
                    last,
                    discard,
                } => {
                    if left > 0 {
                        let n = left.min(self.buf.len());
                        if n == 0 {
                            return;
                        }
                        let chunk: Vec<u8> = self.buf.drain(..n).collect();
                        if !discard {
                            self.data_size += n as u64;
                            if self.cfg.message_size_limit > 0
                                && self.data_size > self.cfg.message_size_limit
                            {
                                self.too_big = true;
                            }
                            if !self.too_big {
                                self.data.extend_from_slice(&chunk);
                            }
                        }
                        self.mode = Mode::Bdat {
                            left: left - n,
                            last,
                            discard,
                        };
                        continue;
                    }
                    self.mode = Mode::Command;
                    let before = out.len();
                    self.bdat_chunk_done(last, discard, out);
                    self.record_out(&out[before..]);
                }
            }
        }
    }

    /// Takes one command line (without CR LF). A line longer than the limit
    /// is cut there and the rest discarded, as Postfix does ("request longer
    /// than 2048").
    fn take_command_line(&mut self) -> Option<String> {
        loop {
            let pos = self.buf.iter().position(|&b| b == b'\n');
            if self.skip_to_lf {
                match pos {
                    Some(p) => {
                        self.buf.drain(..=p);
                        self.skip_to_lf = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
            }
            let line = match pos {
                Some(p) if p <= self.cfg.line_limit => {
                    let mut l: Vec<u8> = self.buf.drain(..=p).collect();
                    l.pop();
                    if l.last() == Some(&b'\r') {
                        l.pop();
                    }
                    l
                }
                _ if self.buf.len() > self.cfg.line_limit || pos.is_some() => {
                    let l: Vec<u8> = self.buf.drain(..self.cfg.line_limit).collect();
                    self.skip_to_lf = true;
                    l
                }
                _ => return None,
            };
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
    }

    fn command(&mut self, line: &str, out: &mut Vec<Action>) {
        // Postfix's smtpd reads a command as a C string: a NUL byte ends it.
        let line = line.split('\0').next().unwrap_or("");
        let before = out.len();
        // Credentials never reach the notice: AUTH's argument is masked.
        let shown = match line.split_once(' ') {
            Some((verb, _)) if verb.eq_ignore_ascii_case("AUTH") => {
                format!("{verb} {}", line.split_whitespace().nth(1).unwrap_or(""))
            }
            _ => line.to_string(),
        };
        self.record(format!("In:  {shown}"));
        self.command_inner(line, out);
        self.record_out(&out[before..]);
    }

    fn command_inner(&mut self, line: &str, out: &mut Vec<Action>) {
        if self.errors >= self.cfg.hard_error_limit {
            self.send(
                out,
                421,
                "4.7.0",
                &format!("{} Error: too many errors", self.cfg.hostname),
            );
            out.push(Action::Log(format!(
                "too many errors after {} from {}",
                self.last_verb(),
                self.client.label()
            )));
            out.push(Action::Close);
            self.mode = Mode::Closed;
            return;
        }
        // Postfix splits commands at spaces, tabs and carriage returns.
        const SEP: [char; 4] = [' ', '\t', '\r', '\n'];
        let trimmed = line.trim_matches(SEP);
        if trimmed.is_empty() {
            self.stats.record(Verb::Unknown, false);
            self.error(out, 500, "5.5.2", "Error: bad syntax");
            return;
        }
        let (word, arg) = match trimmed.split_once(SEP) {
            Some((w, a)) => (w, a.trim_matches(SEP)),
            None => (trimmed, ""),
        };
        // LMTP has LHLO and no HELO/EHLO (RFC 2033 section 4.1); SMTP
        // has no LHLO.
        let verb = match (self.cfg.lmtp, Verb::parse(word)) {
            (true, Verb::Helo | Verb::Ehlo) | (false, Verb::Lhlo) => Verb::Unknown,
            (_, v) => v,
        };
        self.last_verb = verb;
        // smtpd_forbidden_commands (CONNECT GET POST, and anything that does
        // not start with a letter) and header-like lines: the client is not
        // speaking SMTP (a web proxy, or a message sent without DATA).
        if verb == Verb::Unknown && (is_header(line) || forbidden_command(word)) {
            let shown: String = line.chars().take(100).collect();
            out.push(Action::Log(format!(
                "warning: non-SMTP command from {}: {shown}",
                self.client.label()
            )));
            self.stats.record(Verb::Unknown, false);
            self.send(out, 221, "2.7.0", "Error: I can break rules, too. Goodbye.");
            out.push(Action::Close);
            self.mode = Mode::Closed;
            return;
        }
        // Refused at connect (smtpd_delay_reject = no): only QUIT is served
        // (Postfix smtpd.c; RFC 5321 section 3.1).
        if self.access_denied && verb != Verb::Quit {
            self.stats.record(verb, false);
            let text = format!("Error: access denied for {}", self.client.label());
            self.error(out, 503, "5.7.0", &text);
            return;
        }
        // smtpd_tls_security_level = encrypt: only these before STARTTLS
        // (unknown commands get their own 500 reply).
        if self.cfg.tls_required
            && self.tls.is_none()
            && !matches!(
                verb,
                Verb::Helo
                    | Verb::Ehlo
                    | Verb::Lhlo
                    | Verb::Starttls
                    | Verb::Noop
                    | Verb::Quit
                    | Verb::Unknown
            )
        {
            self.stats.record(verb, false);
            self.error(out, 530, "5.7.0", "Must issue a STARTTLS command first");
            return;
        }
        let ok = match verb {
            Verb::Helo | Verb::Ehlo | Verb::Lhlo => self.helo_cmd(verb, arg, out),
            Verb::Mail => self.mail_cmd(arg, out),
            Verb::Rcpt => self.rcpt_cmd(arg, out),
            Verb::Data => {
                let ok = self.data_cmd(arg, out);
                if ok {
                    return; // counted when the message is queued
                }
                false
            }
            Verb::Bdat => return self.bdat_cmd(arg, out),
            Verb::Rset => {
                if !arg.is_empty() {
                    self.error(out, 501, "5.5.4", "Syntax: RSET");
                    false
                } else {
                    self.reset_transaction();
                    self.send(out, 250, "2.0.0", "Ok");
                    true
                }
            }
            Verb::Noop => {
                self.send(out, 250, "2.0.0", "Ok");
                true
            }
            Verb::Vrfy => self.vrfy_cmd(arg, out),
            Verb::Etrn => self.etrn_cmd(arg, out),
            Verb::Quit => {
                self.send(out, 221, "2.0.0", "Bye");
                self.stats.record(Verb::Quit, true);
                out.push(Action::Close);
                self.mode = Mode::Closed;
                return;
            }
            Verb::Starttls => self.starttls_cmd(arg, out),
            Verb::Auth => return self.auth_cmd(arg, out),
            Verb::Unknown => {
                self.error(out, 500, "5.5.2", "Error: command not recognized");
                false
            }
        };
        if self.mode == Mode::Waiting {
            return; // counted when the answer comes
        }
        self.stats.record(verb, ok);
    }

    /// RFC 3207. After the 220 reply, everything already buffered is
    /// discarded: commands a man in the middle injected before the handshake
    /// (CVE-2011-0411) are never executed.
    fn starttls_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if !arg.is_empty() {
            self.error(out, 501, "5.5.4", "Syntax: STARTTLS");
            return false;
        }
        if !self.cfg.tls_offered {
            self.error(out, 502, "5.5.1", "Error: command not implemented");
            return false;
        }
        if self.tls.is_some() {
            self.error(out, 554, "5.5.1", "Error: TLS already active");
            return false;
        }
        self.send(out, 220, "2.0.0", "Ready to start TLS");
        self.buf.clear();
        self.mode = Mode::StartingTls;
        out.push(Action::StartTls);
        true
    }

    /// RFC 4954 AUTH, with Postfix's replies.
    fn auth_cmd(&mut self, arg: &str, out: &mut Vec<Action>) {
        let refuse = |s: &mut Self, out: &mut Vec<Action>, code, enh, text: &str| {
            s.stats.record(Verb::Auth, false);
            s.error(out, code, enh, text);
        };
        if !self.auth_offered() {
            return refuse(self, out, 503, "5.5.1", "Error: authentication not enabled");
        }
        if self.authenticated.is_some() {
            return refuse(self, out, 503, "5.5.1", "Error: already authenticated");
        }
        if self.sender.is_some() {
            return refuse(
                self,
                out,
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            );
        }
        let words: Vec<&str> = arg.split_whitespace().collect();
        if words.is_empty() || words.len() > 2 {
            return refuse(self, out, 501, "5.5.4", "Syntax: AUTH mechanism");
        }
        let mech = words[0].to_ascii_uppercase();
        let initial = match words.get(1).copied() {
            None => None,
            Some("=") => Some(Vec::new()),
            Some(b) => match b64_decode(b) {
                Some(v) => Some(v),
                None => {
                    return refuse(
                        self,
                        out,
                        535,
                        "5.7.8",
                        "Error: authentication failed: Invalid base64 data in initial response",
                    )
                }
            },
        };
        let offered = self
            .mechanisms()
            .is_some_and(|l| l.iter().any(|m| m.eq_ignore_ascii_case(&mech)));
        if !offered {
            return refuse(
                self,
                out,
                535,
                "5.7.8",
                "Error: authentication failed: Invalid authentication mechanism",
            );
        }
        self.sasl = Some(mech.clone());
        self.wait(
            out,
            Pending::Auth,
            Request::Auth(AuthRequest::Start {
                mechanism: mech,
                initial,
                tls: self.tls.is_some(),
            }),
        );
    }

    /// Asks the server; input stays buffered until [`Session::answer`].
    fn wait(&mut self, out: &mut Vec<Action>, pending: Pending, request: Request) {
        self.pending = Some(pending);
        self.mode = Mode::Waiting;
        out.push(Action::Request(request));
    }

    /// The server's answer to the last [`Action::Request`]: the reply, then
    /// the rest of any pipelined input.
    pub fn answer(&mut self, answer: Answer) -> Vec<Action> {
        let mut out = Vec::new();
        if self.mode != Mode::Waiting {
            return out;
        }
        self.mode = Mode::Command;
        let before = out.len();
        match (self.pending.take(), answer) {
            (Some(Pending::Auth), Answer::Sasl(step)) => self.auth_step(step, &mut out),
            (Some(Pending::Mail { sender, params }), Answer::Verdict(v)) => self.mail_answer(
                sender,
                params,
                PolicyVerdict {
                    reply: v,
                    ..Default::default()
                },
                &mut out,
            ),
            (Some(Pending::Mail { sender, params }), Answer::Policy(v)) => {
                self.mail_answer(sender, params, v, &mut out)
            }
            (Some(Pending::Rcpt { addr, params }), Answer::Verdict(v)) => self.rcpt_answer(
                addr,
                params,
                PolicyVerdict {
                    reply: v,
                    ..Default::default()
                },
                &mut out,
            ),
            (Some(Pending::Rcpt { addr, params }), Answer::Policy(v)) => {
                self.rcpt_answer(addr, params, v, &mut out)
            }
            (Some(Pending::Connect), Answer::Policy(v)) => self.connect_answer(v, &mut out),
            (Some(Pending::Connect), Answer::Verdict(v)) => self.connect_answer(
                PolicyVerdict {
                    reply: v,
                    ..Default::default()
                },
                &mut out,
            ),
            (Some(Pending::Helo { verb, name }), Answer::Policy(v)) => {
                self.helo_answer(verb, name, v, &mut out)
            }
            (Some(Pending::Helo { verb, name }), Answer::Verdict(v)) => self.helo_answer(
                verb,
                name,
                PolicyVerdict {
                    reply: v,
                    ..Default::default()
                },
                &mut out,
            ),
            (Some(Pending::Vrfy(addr)), Answer::Verdict(v)) => self.vrfy_answer(addr, v, &mut out),
            // milter: begin
            (pending, Answer::Milter(r)) => self.milter_refused(pending, r, &mut out),
            // milter: end
            // An answer of the wrong kind is the server's bug: fail safe.
            (pending, _) => {
                self.sasl = None;
                self.stats.record(self.last_verb, false);
                let _ = pending;
                self.error(&mut out, 451, "4.3.0", "Error: internal error");
            }
        }
        self.record_out(&out[before..]);
        self.process(&mut out);
        out
    }

    fn auth_response(&mut self, line: &str, out: &mut Vec<Action>) {
        if line.trim() == "*" {
            self.sasl = None;
            self.mode = Mode::Command;
            self.stats.record(Verb::Auth, false);
            self.error(out, 501, "5.7.0", "Authentication aborted");
            return;
        }
        let Some(bytes) = b64_decode(line) else {
            self.sasl = None;
            self.mode = Mode::Command;
            self.stats.record(Verb::Auth, false);
            self.error(
                out,
                535,
                "5.7.8",
                "Error: authentication failed: Invalid base64 data in continued response",
            );
            return;
        };
        if self.sasl.is_none() {
            self.mode = Mode::Command;
            return;
        }
        self.wait(
            out,
            Pending::Auth,
            Request::Auth(AuthRequest::Response(bytes)),
        );
    }

    fn auth_step(&mut self, step: SaslStep, out: &mut Vec<Action>) {
        let mech = self.sasl.clone().unwrap_or_default();
        match step {
            SaslStep::Challenge(c) => {
                self.mode = Mode::Auth;
                out.push(Action::Reply(Reply::new(334, "", b64_encode(&c))));
            }
            SaslStep::Success(user) => {
                self.mode = Mode::Command;
                self.sasl = None;
                self.authenticated = Some((user, mech));
                self.stats.record(Verb::Auth, true);
                self.send(out, 235, "2.7.0", "Authentication successful");
            }
            SaslStep::Failure(reason) => {
                self.mode = Mode::Command;
                self.sasl = None;
                self.auth_failures += 1;
                self.stats.record(Verb::Auth, false);
                out.push(Action::Log(format!(
                    "warning: {}: SASL {mech} authentication failed: {reason}",
                    self.client.label()
                )));
                // Each failure costs the client more time: 1, 2, ... up to 10
                // times smtpd_error_sleep_time (1 s by default).
                let delay = self.cfg.error_sleep * self.auth_failures.min(10);
                if !delay.is_zero() {
                    out.push(Action::Delay(delay));
                }
                self.error(
                    out,
                    535,
                    "5.7.8",
                    "Error: authentication failed: authentication failure",
                );
            }
            SaslStep::TempFailure(reason) => {
                // Not the client's fault: no failure count, no tarpit
                // (Postfix smtpd_sasl_glue.c, XSASL_AUTH_TEMP).
                self.mode = Mode::Command;
                self.sasl = None;
                self.stats.record(Verb::Auth, false);
                out.push(Action::Log(format!(
                    "warning: {}: SASL {mech} authentication failed: {reason}",
                    self.client.label()
                )));
                self.send(
                    out,
                    454,
                    "4.7.0",
                    &format!("Temporary authentication failure: {reason}"),
                );
            }
        }
    }

    fn helo_cmd(&mut self, verb: Verb, arg: &str, out: &mut Vec<Action>) -> bool {
        if arg.is_empty() {
            let name = match verb {
                Verb::Ehlo => "EHLO",
                Verb::Lhlo => "LHLO",
                _ => "HELO",
            };
            self.error(out, 501, "", &format!("Syntax: {name} hostname"));
            return false;
        }
        if self.cfg.check_helo {
            self.wait(
                out,
                Pending::Helo {
                    verb,
                    name: arg.to_string(),
                },
                Request::Helo(HeloQuery {
                    helo: arg.to_string(),
                }),
            );
            return true;
        }
        self.helo_accept(verb, arg, out)
    }

    /// smtpd_helo_restrictions' answer (smtpd_delay_reject = no): a
    /// refused HELO leaves the session as it was.
    fn helo_answer(&mut self, verb: Verb, name: String, v: PolicyVerdict, out: &mut Vec<Action>) {
        let stage = if verb == Verb::Ehlo { "EHLO" } else { "HELO" };
        let saved = self.helo.replace(name.clone());
        self.policy_events(out, stage, &v, None);
        self.helo = saved;
        match v.reply {
            Some(r) => {
                self.stats.record(verb, false);
                let sender = self.sender.clone();
                self.log_reject_at(out, stage, &r.raw(), sender, Some(&name));
                self.refuse(out, &r);
                self.hangup_after(&r, out);
            }
            None => {
                let ok = self.helo_accept(verb, &name, out);
                self.stats.record(verb, ok);
            }
        }
    }

    /// A 421 or 521 policy reply ends the session after it is sent
    /// (access(5) "421 text", "521 text").
    fn hangup_after(&mut self, r: &Reply, out: &mut Vec<Action>) {
        if matches!(r.code, 421 | 521) {
            out.push(Action::Close);
            self.mode = Mode::Closed;
        }
    }

    /// Keeps what an accepted MAIL or RCPT asked of the transaction.
    fn take_effects(&mut self, v: PolicyVerdict) {
        self.effects.hold |= v.hold;
        self.effects.discard |= v.discard;
        for h in v.prepend {
            // The delayed restrictions run again for each recipient: one
            // header per distinct text.
            if !self.effects.prepend.contains(&h) {
                self.effects.prepend.push(h);
            }
        }
    }

    fn helo_accept(&mut self, verb: Verb, arg: &str, out: &mut Vec<Action>) -> bool {
        self.reset_transaction();
        self.helo = Some(arg.to_string());
        // HELO after EHLO keeps ESMTP (Postfix smtpd.c: "Downgrading the
        // protocol name breaks the unauthorized pipelining test").
        self.esmtp = self.esmtp || verb != Verb::Helo;
        if verb == Verb::Helo {
            self.send(out, 250, "", &self.cfg.hostname.clone());
            return true;
        }
        if verb == Verb::Lhlo {
            // What an LMTP client needs; no VRFY, ETRN or CHUNKING (the
            // replies after BDAT LAST would be per recipient too, and no
            // LMTP client we know uses it).
            let mut lines = vec![self.cfg.hostname.clone(), "PIPELINING".into()];
            if self.cfg.message_size_limit > 0 {
                lines.push(format!("SIZE {}", self.cfg.message_size_limit));
            } else {
                lines.push("SIZE".into());
            }
            if self.cfg.tls_offered && self.tls.is_none() {
                lines.push("STARTTLS".into());
            }
            lines.push("ENHANCEDSTATUSCODES".into());
            lines.push("8BITMIME".into());
            lines.push("DSN".into());
            if self.cfg.smtputf8_enable {
                lines.push("SMTPUTF8".into());
            }
            out.push(Action::Reply(Reply::lines(250, lines)));
            return true;
        }
        // Postfix 3.7's EHLO keywords, in its order.
        let mut lines = vec![self.cfg.hostname.clone(), "PIPELINING".into()];
        if self.cfg.message_size_limit > 0 {
            lines.push(format!("SIZE {}", self.cfg.message_size_limit));
        } else {
            lines.push("SIZE".into());
        }
        if !self.cfg.disable_vrfy {
            lines.push("VRFY".into());
        }
        lines.push("ETRN".into());
        if self.cfg.tls_offered && self.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            if let Some(mechanisms) = self.mechanisms().filter(|m| !m.is_empty()) {
                let mechs = mechanisms.join(" ");
                lines.push(format!("AUTH {mechs}"));
                if self.cfg.broken_sasl_auth_clients {
                    lines.push(format!("AUTH={mechs}"));
                }
            }
        }
        lines.push("ENHANCEDSTATUSCODES".into());
        lines.push("8BITMIME".into());
        lines.push("DSN".into());
        if self.cfg.smtputf8_enable {
            lines.push("SMTPUTF8".into());
        }
        lines.push("CHUNKING".into());
        out.push(Action::Reply(Reply::lines(250, lines)));
        true
    }

    fn mail_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if self.cfg.lmtp && self.helo.is_none() {
            // RFC 2033 section 4.1: LHLO is required.
            self.error(out, 503, "5.5.1", "Error: send LHLO first");
            return false;
        }
        if self.cfg.helo_required && self.helo.is_none() {
            self.error(out, 503, "5.5.1", "Error: send HELO/EHLO first");
            return false;
        }
        if self.sender.is_some() {
            self.error(out, 503, "5.5.1", "Error: nested MAIL command");
            return false;
        }
        if self.bdat != BdatState::None {
            self.error(out, 503, "5.5.1", "Error: MAIL after BDAT");
            return false;
        }
        let Some((path, params)) = split_path(arg, "FROM:") else {
            self.error(out, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
            return false;
        };
        let p = match parse_mail(&params, self.cfg.message_size_limit) {
            // smtpd.c knows SMTPUTF8 only when smtputf8_enable is on; off
            // (compatibility_level 0), it is an unknown parameter.
            Ok(p) if p.smtputf8 && !self.cfg.smtputf8_enable => {
                self.error(out, 555, "5.5.4", "Unsupported option: SMTPUTF8");
                return false;
            }
            Ok(p) => p,
            Err((c, e, t)) => {
                self.error(out, c, e, &t);
                return false;
            }
        };
        let sender = match path {
            PathText::Bracketed("") => None,
            // Postfix 3.7 takes 8-bit addresses without the SMTPUTF8
            // parameter, and with smtputf8_enable = no too (recorded:
            // tests/dialogs/level0/no-smtputf8); only the parameter is refused.
            PathText::Bracketed(s) | PathText::Bare(s) => match parse_address(s, true) {
                Ok(a) => Some(a),
                Err(_) => {
                    self.error(out, 501, "5.1.7", "Bad sender address syntax");
                    return false;
                }
            },
            PathText::Malformed => {
                self.error(out, 501, "5.1.7", "Bad sender address syntax");
                return false;
            }
        };
        let size = p.size;
        self.sender_given = match path {
            PathText::Bracketed(s) | PathText::Bare(s) => s.to_string(),
            PathText::Malformed => String::new(),
        };
        self.wait(
            out,
            Pending::Mail {
                sender: sender.clone(),
                params: p,
            },
            Request::Mail(MailQuery {
                sender,
                size,
                helo: self.helo.clone(),
                sasl_user: self.authenticated.as_ref().map(|(u, _)| u.clone()),
                sender_given: self.sender_given.clone(),
                protocol: self.protocol().to_string(),
            }),
        );
        true
    }

    fn mail_answer(
        &mut self,
        sender: Option<Address>,
        params: crate::params::MailParams,
        verdict: PolicyVerdict,
        out: &mut Vec<Action>,
    ) {
        let saved = self.sender.replace(sender.clone());
        self.policy_events(out, "MAIL", &verdict, None);
        self.sender = saved;
        if let Some(r) = verdict.reply {
            self.stats.record(Verb::Mail, false);
            self.log_reject_at(out, "MAIL", &r.raw(), Some(sender), None);
            self.refuse(out, &r);
            self.hangup_after(&r, out);
            return;
        }
        self.take_effects(verdict);
        self.sender = Some(sender);
        self.mail_params = params;
        self.stats.record(Verb::Mail, true);
        self.send(out, 250, "2.1.0", "Ok");
    }

    /// The sender as the client wrote it (logs quote it so).
    fn shown(&self, a: &Address) -> String {
        let internal = a.internal();
        if self.sender_given.eq_ignore_ascii_case(&internal) {
            self.sender_given.clone()
        } else {
            internal
        }
    }

    /// Postfix's log_whatsup(): `QUEUEID: what: STAGE from client: text;`
    /// then `from=<>` when a sender is known, `to=<>`, `proto=` and
    /// `helo=<>` when there was a HELO.
    fn whatsup(
        &self,
        what: &str,
        stage: &str,
        text: &str,
        sender: Option<Option<Address>>,
        rcpt: Option<&str>,
    ) -> String {
        let mut line = format!(
            "{}: {what}: {stage} from {}: {text};",
            self.queue_id.as_deref().unwrap_or("NOQUEUE"),
            self.client.label()
        );
        if let Some(s) = sender {
            let from = s.map(|a| self.shown(&a)).unwrap_or_default();
            line.push_str(&format!(" from=<{from}>"));
        }
        if let Some(r) = rcpt {
            line.push_str(&format!(" to=<{r}>"));
        }
        line.push_str(&format!(" proto={}", self.protocol()));
        if let Some(h) = &self.helo {
            line.push_str(&format!(" helo=<{h}>"));
        }
        line
    }

    /// A refusal at CONNECT, HELO or MAIL (smtpd_delay_reject = no), logged
    /// as Postfix logs it; `helo` is the name being judged at HELO.
    fn log_reject_at(
        &mut self,
        out: &mut Vec<Action>,
        stage: &str,
        reply_text: &str,
        sender: Option<Option<Address>>,
        helo: Option<&str>,
    ) {
        let saved = self.helo.clone();
        if let Some(h) = helo {
            self.helo = Some(h.to_string());
        }
        let line = self.whatsup("reject", stage, reply_text, sender, None);
        self.helo = saved;
        if self.rejected.len() < 100 {
            self.rejected
                .push(format!("{stage} from {}", self.client.label()));
        }
        out.push(Action::Log(line));
    }

    fn log_reject(
        &mut self,
        out: &mut Vec<Action>,
        stage: &str,
        reply_text: &str,
        rcpt: Option<&str>,
    ) {
        let from = match &self.sender {
            Some(Some(a)) => self.shown(a),
            _ => String::new(),
        };
        if self.rejected.len() < 100 {
            self.rejected.push(
                rcpt.map(str::to_string)
                    .unwrap_or_else(|| format!("{stage} (from <{from}>)")),
            );
        }
        let line = self.whatsup("reject", stage, reply_text, self.sender.clone(), rcpt);
        out.push(Action::Log(line));
    }

    fn rcpt_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if self.sender.is_none() {
            self.error(out, 503, "5.5.1", "Error: need MAIL command");
            return false;
        }
        if self.bdat != BdatState::None {
            self.error(out, 503, "5.5.1", "Error: RCPT after BDAT");
            return false;
        }
        let Some((path, params)) = split_path(arg, "TO:") else {
            self.error(out, 501, "5.5.4", "Syntax: RCPT TO:<address>");
            return false;
        };
        let text = match path {
            PathText::Bracketed(s) | PathText::Bare(s) => s,
            PathText::Malformed => "",
        };
        let addr = match parse_address(text, self.mail_params.smtputf8 || self.cfg.smtputf8_enable)
        {
            Ok(a) if !a.local.is_empty() => a,
            _ => {
                self.error(out, 501, "5.1.3", "Bad recipient address syntax");
                return false;
            }
        };
        if self.recipients.len() >= self.cfg.recipient_limit {
            self.error(out, 452, "4.5.3", "Error: too many recipients");
            return false;
        }
        let p = match parse_rcpt(&params) {
            Ok(p) => p,
            Err((c, e, t)) => {
                self.error(out, c, e, &t);
                return false;
            }
        };
        let query = RecipientQuery {
            recipient: addr.clone(),
            sender: self.sender.clone().flatten(),
            sasl_user: self.authenticated.as_ref().map(|(u, _)| u.clone()),
            helo: self.helo.clone(),
            sender_given: self.sender_given.clone(),
            holding: self.effects.hold,
            discarding: self.effects.discard,
            protocol: self.protocol().to_string(),
            queue_id: self.queue_id.clone(),
            recipient_count: self.recipients.len(),
            size: self.mail_params.size,
        };
        self.wait(
            out,
            Pending::Rcpt { addr, params: p },
            Request::Recipient(Box::new(query)),
        );
        true
    }

    fn rcpt_answer(
        &mut self,
        addr: Address,
        p: RcptParams,
        verdict: PolicyVerdict,
        out: &mut Vec<Action>,
    ) {
        self.policy_events(out, "RCPT", &verdict, Some(&addr.internal()));
        if let Some(r) = verdict.reply {
            self.stats.record(Verb::Rcpt, false);
            self.log_reject(out, "RCPT", &r.raw(), Some(&addr.internal()));
            self.refuse(out, &r);
            self.hangup_after(&r, out);
            return;
        }
        self.take_effects(verdict);
        if self.queue_id.is_none() {
            let id = (self.cfg.new_queue_id)();
            let sasl = match &self.authenticated {
                Some((user, mech)) => format!(", sasl_method={mech}, sasl_username={user}"),
                None => String::new(),
            };
            out.push(Action::Log(format!(
                "{id}: client={}{sasl}",
                self.client.label()
            )));
            self.queue_id = Some(id);
        }
        self.recipients.push(Recipient {
            address: addr,
            notify: p.notify,
            orcpt: p.orcpt,
        });
        self.stats.record(Verb::Rcpt, true);
        self.send(out, 250, "2.1.5", "Ok");
    }

    fn data_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if !arg.is_empty() {
            self.error(out, 501, "5.5.4", "Syntax: DATA");
            return false;
        }
        if self.bdat != BdatState::None {
            self.error(out, 503, "5.5.1", "Error: DATA after BDAT");
            return false;
        }
        if self.sender.is_none() {
            self.error(out, 503, "5.5.1", "Error: need RCPT command");
            return false;
        }
        if self.recipients.is_empty() {
            // RFC 2033 section 4.2: in LMTP this MUST be a 503.
            let code = if self.cfg.lmtp { 503 } else { 554 };
            self.error(out, code, "5.5.1", "Error: no valid recipients");
            return false;
        }
        self.send(out, 354, "", "End data with <CR><LF>.<CR><LF>");
        self.mode = Mode::Data;
        self.prev_line_crlf = true;
        true
    }

    fn append_content(&mut self, content: &[u8], newline: bool) {
        let add = content.len() as u64 + newline as u64;
        self.data_size += add;
        if self.cfg.message_size_limit > 0 && self.data_size > self.cfg.message_size_limit {
            self.too_big = true;
        }
        if !self.too_big {
            self.data.extend_from_slice(content);
            if newline {
                self.data.push(b'\n');
            }
        }
    }

    /// One line of DATA content, including its LF.
    fn data_line(&mut self, line: &[u8], out: &mut Vec<Action>) {
        let body = &line[..line.len() - 1];
        let (content, crlf) = match body.strip_suffix(b"\r") {
            Some(c) => (c, true),
            None => (body, false),
        };
        if content == b"." && crlf && self.prev_line_crlf {
            self.end_of_data(out);
            return;
        }
        // RFC 5321 section 4.5.2 dot-unstuffing; a lone "." ended by a bare
        // LF is content (it is not an end of data), kept as it is.
        let content = if content.len() > 1 && content[0] == b'.' {
            &content[1..]
        } else {
            content
        };
        self.prev_line_crlf = crlf;
        self.append_content(content, true);
    }

    fn end_of_data(&mut self, out: &mut Vec<Action>) {
        if self.too_big {
            self.mode = Mode::Command;
            self.log_reject(
                out,
                "END-OF-MESSAGE",
                "552 5.3.4 Error: message file too big",
                None,
            );
            self.stats.record(Verb::Data, false);
            if self.cfg.lmtp {
                for r in self.recipients.clone() {
                    let t = format!("<{}> Error: message file too big", r.address.internal());
                    self.error(out, 552, "5.3.4", &t);
                }
            } else {
                self.error(out, 552, "5.3.4", "Error: message file too big");
            }
            self.reset_transaction();
            return;
        }
        self.deliver(out);
    }

    fn deliver(&mut self, out: &mut Vec<Action>) {
        let envelope = Envelope {
            sender: self.sender.clone().flatten(),
            recipients: self.recipients.clone(),
            body: self.mail_params.body.clone(),
            smtputf8: self.mail_params.smtputf8,
            ret: self.mail_params.ret.clone(),
            envid: self.mail_params.envid.clone(),
            helo: self.helo.clone().unwrap_or_default(),
            protocol: self.protocol().into(),
            queue_id: self.queue_id.clone().unwrap_or_default(),
            tls: self.tls.clone(),
            auth_user: self.authenticated.as_ref().map(|(u, _)| u.clone()),
            hold: self.effects.hold,
            discard: self.effects.discard,
            prepend: self.effects.prepend.clone(),
        };
        let data = std::mem::take(&mut self.data);
        self.mode = Mode::Queueing;
        out.push(Action::Deliver {
            envelope: Box::new(envelope),
            data,
        });
    }

    /// RFC 3030 BDAT: `BDAT size [LAST]`; the chunk is read even when the
    /// command is refused, so the session stays in step with the client.
    /// Postfix's replies: a malformed BDAT ends the session (521: the chunk
    /// size is unknown, so the input can no longer be followed); a refused
    /// chunk is discarded and so is the rest of its sequence.
    fn bdat_cmd(&mut self, arg: &str, out: &mut Vec<Action>) {
        let words: Vec<&str> = arg.split_whitespace().collect();
        let size = match words.first() {
            Some(w) if w.bytes().all(|b| b.is_ascii_digit()) => w.parse::<usize>().ok(),
            _ => None,
        };
        let last = match words.get(1) {
            None => Some(false),
            Some(w) if w.eq_ignore_ascii_case("LAST") && words.len() == 2 => Some(true),
            Some(_) => None,
        };
        let (Some(size), Some(last)) = (size, last) else {
            self.stats.record(Verb::Bdat, false);
            self.error(out, 521, "5.5.4", "Syntax: BDAT count [LAST]");
            out.push(Action::Close);
            self.mode = Mode::Closed;
            return;
        };
        self.bdat_chunk = size;
        let refusal = if self.bdat == BdatState::Failed {
            Some((
                551,
                "5.0.0",
                format!("Discarded {size} bytes after earlier error"),
            ))
        } else if self.sender.is_none() {
            Some((503, "5.5.1", "Error: need RCPT command".to_string()))
        } else if self.recipients.is_empty() {
            Some((554, "5.5.1", "Error: no valid recipients".to_string()))
        } else if self.cfg.message_size_limit > 0
            && self.data_size.saturating_add(size as u64) > self.cfg.message_size_limit
        {
            Some((552, "5.3.4", "Chunk exceeds message size limit".to_string()))
        } else {
            None
        };
        if let Some((code, enhanced, text)) = refusal {
            self.mode = Mode::Bdat {
                left: size,
                last,
                discard: true,
            };
            self.stats.record(Verb::Bdat, false);
            self.error(out, code, enhanced, &text);
            if last {
                self.reset_transaction();
            } else {
                self.bdat = BdatState::Failed;
            }
            return;
        }
        self.bdat_seen = true;
        self.bdat = BdatState::Open;
        self.mode = Mode::Bdat {
            left: size,
            last,
            discard: false,
        };
    }

    fn bdat_chunk_done(&mut self, last: bool, discard: bool, out: &mut Vec<Action>) {
        if discard {
            return;
        }
        if !last {
            self.stats.record(Verb::Bdat, true);
            let n = self.bdat_chunk;
            self.send(out, 250, "2.0.0", &format!("Ok: {n} bytes"));
            return;
        }
        self.bdat = BdatState::None;
        // BDAT content is raw: normalise CRLF to the internal LF form.
        let raw = std::mem::take(&mut self.data);
        let mut data = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            data.push(raw[i]);
            i += 1;
        }
        if data.last().is_some_and(|&b| b != b'\n') {
            data.push(b'\n');
        }
        self.data = data;
        self.deliver(out);
    }

    fn vrfy_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if self.cfg.disable_vrfy {
            self.error(out, 502, "5.5.1", "VRFY command is disabled");
            return false;
        }
        if arg.is_empty() {
            self.error(out, 501, "5.5.4", "Syntax: VRFY address [SMTPUTF8]");
            return false;
        }
        // One address, with or without its brackets.
        let words: Vec<&str> = arg.split_whitespace().collect();
        let utf8_flag = words
            .get(1)
            .is_some_and(|w| w.eq_ignore_ascii_case("SMTPUTF8"));
        if words.len() > 2 || (words.len() == 2 && !utf8_flag) {
            self.error(out, 501, "5.1.3", "Bad recipient address syntax");
            return false;
        }
        let text = words[0];
        let inner = text
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(text);
        let addr = match parse_address(inner, true) {
            Ok(a) => a,
            Err(AddrError::Empty) | Err(_) => {
                self.error(out, 501, "5.1.3", "Bad recipient address syntax");
                return false;
            }
        };
        self.wait(out, Pending::Vrfy(addr.clone()), Request::Verify(addr));
        true
    }

    fn vrfy_answer(&mut self, addr: Address, verdict: Option<Reply>, out: &mut Vec<Action>) {
        match verdict {
            None => {
                self.stats.record(Verb::Vrfy, true);
                self.send(out, 252, "2.0.0", &addr.internal());
            }
            Some(r) => {
                self.stats.record(Verb::Vrfy, false);
                self.log_reject(out, "VRFY", &r.raw(), Some(&addr.internal()));
                self.refuse(out, &r);
            }
        }
    }

    /// ETRN (RFC 1985), in Postfix's order of checks; the replies without
    /// an enhanced code are Postfix's.
    fn etrn_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if self.sender.is_some() {
            self.error(out, 503, "", "Error: MAIL transaction in progress");
            return false;
        }
        let words: Vec<&str> = arg.split_whitespace().collect();
        if words.len() != 1 {
            self.error(out, 500, "", "Syntax: ETRN domain");
            return false;
        }
        // `@domain` (the domain's subdomains) and `#queueid` forms.
        let name = words[0].strip_prefix(['@', '#']).unwrap_or(words[0]);
        if !valid_hostname(name) {
            self.error(out, 501, "", "Error: invalid parameter syntax");
            return false;
        }
        // fast_flush_domains is empty: no domain is eligible (Postfix's reply).
        self.error(out, 459, "", &format!("<{name}>: service unavailable"));
        false
    }
}

/// Postfix's is_header(): a name of printable characters, optional blanks,
/// then a colon, as in `Subject: test`.
fn is_header(line: &str) -> bool {
    let mut seen_name = false;
    let mut after_blank = false;
    for b in line.bytes() {
        match b {
            b':' => return seen_name,
            b' ' | b'\t' if seen_name => after_blank = true,
            33..=126 if !after_blank => seen_name = true,
            _ => return false,
        }
    }
    false
}

/// smtpd_forbidden_commands' default, `CONNECT GET POST
/// regexp:{{/^[^A-Z]/ Bogus}}` (a case-insensitive regexp).
fn forbidden_command(verb: &str) -> bool {
    ["CONNECT", "GET", "POST"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(verb))
        || !verb.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Postfix's valid_hostname(): labels of letters, digits, `-` and `_`,
/// not starting or ending with `-`, at most 63 octets each and 255 in all,
/// and not all numeric.
fn valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}
