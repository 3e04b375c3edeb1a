//! One SMTP server session (RFC 5321 section 4), Postfix smtpd's behaviour:
//! replies word for word, PIPELINING (commands answered in order from one
//! buffer), DATA and BDAT (RFC 3030), error counting with the soft and hard
//! limits, and SMTP-smuggling-proof end of data: only `<CR><LF>.<CR><LF>`
//! ends a message; bare LF lines are taken as line ends (Postfix 3.9's
//! `smtpd_forbid_bare_newline = normalize`), but `<LF>.<LF>` is content.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use yubin_addr::{parse_address, AddrError, Address, Class, Verdict};

use crate::command::{split_path, PathText, Verb};
use crate::envelope::{Envelope, Recipient};
use crate::params::{parse_mail, parse_rcpt};
use crate::restrict::{is_fqdn_address, Restriction};
use crate::sasl::{b64_decode, b64_encode, Authenticator, SaslExchange, SaslStep};
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

/// Recipient validation, provided by the server (the address resolver).
pub trait Policy: Send + Sync {
    fn check_recipient(&self, addr: &Address) -> (Class, Verdict);
    /// smtpd_sender_login_maps: the SASL logins that own this sender
    /// address, `None` when the map does not list it.
    fn sender_owners(&self, _sender: &Address) -> Option<Vec<String>> {
        None
    }
    /// DNS: does the domain exist (MX or address record)? For
    /// reject_unknown_recipient_domain.
    fn recipient_domain(&self, _domain: &str) -> DomainStatus {
        DomainStatus::Exists
    }
}

/// The DNS answer for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainStatus {
    Exists,
    NotFound,
    TempFail(String),
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
    pub relay_restrictions: Vec<Restriction>,
    pub recipient_restrictions: Vec<Restriction>,
    pub sender_restrictions: Vec<Restriction>,
    /// Longest command line; Postfix's line_length_limit (2048).
    pub line_limit: usize,
    /// Makes a new queue id for a transaction (the first accepted RCPT).
    pub new_queue_id: Arc<dyn Fn() -> String + Send + Sync>,
    /// STARTTLS is offered (smtpd_tls_security_level may or encrypt, with a
    /// certificate).
    pub tls_offered: bool,
    /// smtpd_tls_security_level = encrypt: mail only after STARTTLS.
    pub tls_required: bool,
    /// SMTP AUTH (smtpd_sasl_auth_enable); `None` when disabled.
    pub auth: Option<Arc<dyn Authenticator>>,
    /// smtpd_tls_auth_only: AUTH only after STARTTLS.
    pub auth_requires_tls: bool,
    /// broken_sasl_auth_clients: also advertise `AUTH=` for old Outlook.
    pub broken_sasl_auth_clients: bool,
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes (one or more complete reply lines).
    Send(Vec<u8>),
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
    Closed,
}

pub struct Session {
    cfg: SessionConfig,
    policy: Arc<dyn Policy>,
    client: ClientInfo,
    mode: Mode,
    buf: Vec<u8>,
    skip_to_lf: bool,
    helo: Option<String>,
    esmtp: bool,
    /// Inside a transaction (after a successful MAIL).
    sender: Option<Option<Address>>,
    mail_params: crate::params::MailParams,
    recipients: Vec<Recipient>,
    queue_id: Option<String>,
    data: Vec<u8>,
    data_size: u64,
    too_big: bool,
    prev_line_crlf: bool,
    bdat_seen: bool,
    errors: u32,
    last_verb: Verb,
    stats: Stats,
    /// The TLS summary once a handshake has completed (`TLSv1.3 with cipher ...`).
    tls: Option<String>,
    /// The SASL exchange in progress: mechanism and state.
    sasl: Option<(String, Box<dyn SaslExchange>)>,
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

fn reply(code: u16, enhanced: &str, text: &str) -> String {
    if enhanced.is_empty() {
        format!("{code} {text}")
    } else {
        format!("{code} {enhanced} {text}")
    }
}

impl Session {
    pub fn new(cfg: SessionConfig, policy: Arc<dyn Policy>, client: ClientInfo) -> Session {
        Session {
            cfg,
            policy,
            client,
            mode: Mode::Command,
            buf: Vec::new(),
            skip_to_lf: false,
            helo: None,
            esmtp: false,
            sender: None,
            mail_params: Default::default(),
            recipients: Vec::new(),
            queue_id: None,
            data: Vec::new(),
            data_size: 0,
            too_big: false,
            prev_line_crlf: true,
            bdat_seen: false,
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
            if let Action::Send(bytes) = a {
                for l in String::from_utf8_lossy(bytes).lines() {
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
    fn auth_offered(&self) -> bool {
        self.cfg.auth.is_some() && (self.tls.is_some() || !self.cfg.auth_requires_tls)
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
    fn protocol(&self) -> &'static str {
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

    /// The greeting (RFC 5321 section 4.3.1).
    pub fn start(&mut self) -> Vec<Action> {
        let out = vec![Action::Send(
            format!("220 {}\r\n", self.cfg.banner).into_bytes(),
        )];
        self.record_out(&out);
        out
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
            Mode::Bdat { .. } => "BDAT",
            _ => match self.last_verb {
                Verb::Unknown => "CONNECT",
                v => match v {
                    Verb::Helo => "HELO",
                    Verb::Ehlo => "EHLO",
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
            Action::Send(
                format!(
                    "421 4.4.2 {} Error: timeout exceeded\r\n",
                    self.cfg.hostname
                )
                .into_bytes(),
            ),
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
        if enhanced.starts_with("4.3.0") {
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
                self.send(&mut out, 250, "2.0.0", &format!("Ok: queued as {id}"));
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
                self.error(&mut out, 451, "4.3.0", "Error: queue file write error");
            }
        }
        self.reset_transaction();
        self.record_out(&out);
        self.process(&mut out);
        out
    }

    fn send(&mut self, out: &mut Vec<Action>, code: u16, enhanced: &str, text: &str) {
        out.push(Action::Send(
            format!("{}\r\n", reply(code, enhanced, text)).into_bytes(),
        ));
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
    }

    fn process(&mut self, out: &mut Vec<Action>) {
        loop {
            match self.mode {
                Mode::Closed | Mode::Queueing | Mode::StartingTls => return,
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
        let trimmed = line.trim();
        if trimmed.is_empty() {
            self.stats.record(Verb::Unknown, false);
            self.error(out, 500, "5.5.2", "Error: bad syntax");
            return;
        }
        let (word, arg) = match trimmed.split_once([' ', '\t']) {
            Some((w, a)) => (w, a.trim()),
            None => (trimmed, ""),
        };
        let verb = Verb::parse(word);
        self.last_verb = verb;
        if self.cfg.tls_required
            && self.tls.is_none()
            && !matches!(
                verb,
                Verb::Helo | Verb::Ehlo | Verb::Starttls | Verb::Noop | Verb::Rset | Verb::Quit
            )
        {
            self.stats.record(verb, false);
            self.error(out, 530, "5.7.0", "Must issue a STARTTLS command first");
            return;
        }
        let ok = match verb {
            Verb::Helo | Verb::Ehlo => self.helo_cmd(verb, arg, out),
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
        self.stats.record(verb, ok);
    }

    /// RFC 3207. After the 220 reply, everything already buffered is
    /// discarded: commands a man in the middle injected before the handshake
    /// (CVE-2011-0411) are never executed.
    fn starttls_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if !self.cfg.tls_offered {
            self.error(out, 502, "5.5.1", "Error: command not implemented");
            return false;
        }
        if self.tls.is_some() {
            self.error(out, 554, "5.5.1", "Error: TLS already active");
            return false;
        }
        if !arg.is_empty() {
            self.error(out, 501, "5.5.4", "Syntax: STARTTLS");
            return false;
        }
        self.send(out, 220, "2.0.0", "Ready to start TLS");
        self.buf.clear();
        self.mode = Mode::StartingTls;
        out.push(Action::StartTls);
        true
    }

    /// reject_sender_login_mismatch (postconf(5)): the sender must be owned
    /// by the SASL login according to smtpd_sender_login_maps; an address
    /// the map lists needs a login.
    fn sender_login_mismatch(&self) -> Option<Option<(u16, String, String)>> {
        let Some(Some(sender)) = &self.sender else {
            return None;
        };
        let owners = self.policy.sender_owners(sender);
        let s = sender.internal();
        match (&self.authenticated, owners) {
            (Some((user, _)), Some(owners))
                if owners.iter().any(|o| o.eq_ignore_ascii_case(user)) =>
            {
                None
            }
            (Some((user, _)), _) => Some(Some((
                553,
                "5.7.1".into(),
                format!("<{s}>: Sender address rejected: not owned by user {user}"),
            ))),
            (None, Some(_)) => Some(Some((
                553,
                "5.7.1".into(),
                format!("<{s}>: Sender address rejected: not logged in"),
            ))),
            (None, None) => None,
        }
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
        let mut words = arg.split_whitespace();
        let Some(mech) = words.next().map(str::to_ascii_uppercase) else {
            return refuse(self, out, 501, "5.5.4", "Syntax: AUTH mechanism");
        };
        let initial = match words.next() {
            None => None,
            Some("=") => Some(Vec::new()),
            Some(b) => match b64_decode(b) {
                Some(v) => Some(v),
                None => return refuse(self, out, 501, "5.5.2", "Cannot decode response"),
            },
        };
        let Some(auth) = self.cfg.auth.clone() else {
            return;
        };
        let Some((exchange, step)) = auth.start(&mech, initial.as_deref()) else {
            return refuse(
                self,
                out,
                535,
                "5.7.8",
                "Error: authentication failed: Invalid authentication mechanism",
            );
        };
        self.sasl = Some((mech, exchange));
        self.auth_step(step, out);
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
            self.error(out, 501, "5.5.2", "Cannot decode response");
            return;
        };
        let Some((_, exchange)) = self.sasl.as_mut() else {
            self.mode = Mode::Command;
            return;
        };
        let step = exchange.step(&bytes);
        self.auth_step(step, out);
    }

    fn auth_step(&mut self, step: SaslStep, out: &mut Vec<Action>) {
        let mech = self
            .sasl
            .as_ref()
            .map(|(m, _)| m.clone())
            .unwrap_or_default();
        match step {
            SaslStep::Challenge(c) => {
                self.mode = Mode::Auth;
                let text = b64_encode(&c);
                out.push(Action::Send(format!("334 {text}\r\n").into_bytes()));
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
        }
    }

    fn helo_cmd(&mut self, verb: Verb, arg: &str, out: &mut Vec<Action>) -> bool {
        if arg.is_empty() {
            let name = if verb == Verb::Ehlo { "EHLO" } else { "HELO" };
            self.error(out, 501, "", &format!("Syntax: {name} hostname"));
            return false;
        }
        self.reset_transaction();
        self.helo = Some(arg.to_string());
        self.esmtp = verb == Verb::Ehlo;
        if verb == Verb::Helo {
            self.send(out, 250, "", &self.cfg.hostname.clone());
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
            if let Some(auth) = &self.cfg.auth {
                let mechs = auth.mechanisms().join(" ");
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
        let mut text = String::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            text.push_str(&format!("250{sep}{l}\r\n"));
        }
        out.push(Action::Send(text.into_bytes()));
        true
    }

    fn mail_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if self.cfg.helo_required && self.helo.is_none() {
            self.error(out, 503, "5.5.1", "Error: send HELO/EHLO first");
            return false;
        }
        if self.sender.is_some() {
            self.error(out, 503, "5.5.1", "Error: nested MAIL command");
            return false;
        }
        let Some((path, params)) = split_path(arg, "FROM:") else {
            self.error(out, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
            return false;
        };
        let p = match parse_mail(&params, self.cfg.message_size_limit, self.auth_offered()) {
            Ok(p) => p,
            Err((c, e, t)) => {
                self.error(out, c, e, &t);
                return false;
            }
        };
        let sender = match path {
            PathText::Bracketed("") => None,
            PathText::Bracketed(s) | PathText::Bare(s) => match parse_address(s, p.smtputf8) {
                Ok(a) => Some(a),
                Err(_) => {
                    self.error(out, 501, "5.1.7", "Bad sender address syntax");
                    return false;
                }
            },
            PathText::Unterminated => {
                self.error(out, 501, "5.1.7", "Bad sender address syntax");
                return false;
            }
        };
        self.sender = Some(sender);
        self.mail_params = p;
        self.send(out, 250, "2.1.0", "Ok");
        true
    }

    fn log_reject(
        &mut self,
        out: &mut Vec<Action>,
        stage: &str,
        reply_text: &str,
        rcpt: Option<&str>,
    ) {
        let from = match &self.sender {
            Some(Some(a)) => a.internal(),
            _ => String::new(),
        };
        let mut line = format!(
            "{}: reject: {stage} from {}: {reply_text}; from=<{from}>",
            self.queue_id.as_deref().unwrap_or("NOQUEUE"),
            self.client.label()
        );
        if let Some(r) = rcpt {
            line.push_str(&format!(" to=<{r}>"));
        }
        if self.rejected.len() < 100 {
            self.rejected.push(
                rcpt.map(str::to_string)
                    .unwrap_or_else(|| format!("{stage} (from <{from}>)")),
            );
        }
        line.push_str(&format!(
            " proto={} helo=<{}>",
            self.protocol(),
            self.helo.as_deref().unwrap_or("")
        ));
        out.push(Action::Log(line));
    }

    fn rcpt_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if self.sender.is_none() {
            self.error(out, 503, "5.5.1", "Error: need MAIL command");
            return false;
        }
        let Some((path, params)) = split_path(arg, "TO:") else {
            self.error(out, 501, "5.5.4", "Syntax: RCPT TO:<address>");
            return false;
        };
        let text = match path {
            PathText::Bracketed(s) | PathText::Bare(s) => s,
            PathText::Unterminated => "",
        };
        let addr = match parse_address(text, self.mail_params.smtputf8) {
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
        if let Some((code, enh, text)) = self.recipient_decision(&addr) {
            self.log_reject(
                out,
                "RCPT",
                &reply(code, &enh, &text),
                Some(&addr.internal()),
            );
            self.error(out, code, &enh, &text);
            return false;
        }
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
        self.send(out, 250, "2.1.5", "Ok");
        true
    }

    /// smtpd_relay_restrictions, then smtpd_recipient_restrictions, then the
    /// implicit unlisted-recipient check (smtpd_reject_unlisted_recipient).
    fn recipient_decision(&self, addr: &Address) -> Option<(u16, String, String)> {
        let (class, verdict) = self.policy.check_recipient(addr);
        let given = addr.internal();
        let unlisted = || match &verdict {
            Verdict::Reject {
                code,
                enhanced,
                text,
                ..
            } => Some((*code, enhanced.clone(), text.clone())),
            Verdict::Accept => None,
        };
        let sender_domain = match &self.sender {
            Some(Some(a)) => Some(a.domain.clone()),
            _ => None,
        };
        for list in [
            &self.cfg.sender_restrictions,
            &self.cfg.relay_restrictions,
            &self.cfg.recipient_restrictions,
        ] {
            for r in list.iter() {
                let decision = match r {
                    Restriction::Permit => Some(None),
                    Restriction::Reject => Some(Some((554, "5.7.1".into(), format!("<{given}>: Recipient address rejected: Access denied")))),
                    Restriction::Defer => Some(Some((450, "4.7.1".into(), format!("<{given}>: Recipient address rejected: Access denied")))),
                    Restriction::PermitMynetworks => self.client.in_mynetworks.then_some(None),
                    Restriction::PermitSaslAuthenticated => self.authenticated.is_some().then_some(None),
                    Restriction::RejectSenderLoginMismatch => self.sender_login_mismatch(),
                    // Only where this server is not the final destination (postconf(5)).
                    Restriction::RejectUnknownRecipientDomain if !class.is_final_destination() => {
                        match self.policy.recipient_domain(&addr.domain) {
                            DomainStatus::Exists => None,
                            DomainStatus::NotFound => Some(Some((450, "4.1.2".into(), format!("<{given}>: Recipient address rejected: Domain not found")))),
                            DomainStatus::TempFail(_) => Some(Some((450, "4.4.3".into(), format!("<{given}>: Recipient address rejected: Temporary DNS lookup failure")))),
                        }
                    }
                    Restriction::RejectUnknownRecipientDomain => None,
                    Restriction::RejectUnauthDestination => (!class.is_authorized_destination())
                        .then(|| Some((554, "5.7.1".into(), format!("<{given}>: Relay access denied")))),
                    Restriction::DeferUnauthDestination => (!class.is_authorized_destination())
                        .then(|| Some((454, "4.7.1".into(), format!("<{given}>: Relay access denied")))),
                    Restriction::RejectUnlistedRecipient => unlisted().map(Some),
                    Restriction::RejectNonFqdnRecipient => (!addr.domain.is_empty() && !is_fqdn_address(&addr.domain) || addr.domain.is_empty())
                        .then(|| Some((504, "5.5.2".into(), format!("<{given}>: Recipient address rejected: need fully-qualified address")))),
                    Restriction::RejectNonFqdnSender => match &sender_domain {
                        Some(d) if d.is_empty() || !is_fqdn_address(d) => {
                            let s = match &self.sender {
                                Some(Some(a)) => a.internal(),
                                _ => String::new(),
                            };
                            Some(Some((504, "5.5.2".into(), format!("<{s}>: Sender address rejected: need fully-qualified address"))))
                        }
                        _ => None,
                    },
                };
                match decision {
                    Some(Some(reject)) => return Some(reject),
                    Some(None) => break, // permit ends this list
                    None => {}
                }
            }
        }
        unlisted()
    }

    fn data_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if !arg.is_empty() {
            self.error(out, 501, "5.5.4", "Syntax: DATA");
            return false;
        }
        if self.sender.is_none() {
            self.error(out, 503, "5.5.1", "Error: need RCPT command");
            return false;
        }
        if self.recipients.is_empty() {
            self.error(out, 554, "5.5.1", "Error: no valid recipients");
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
                "552 5.3.4 Message size exceeds fixed limit",
                None,
            );
            self.stats.record(Verb::Data, false);
            self.error(out, 552, "5.3.4", "Message size exceeds fixed limit");
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
    fn bdat_cmd(&mut self, arg: &str, out: &mut Vec<Action>) {
        let mut words = arg.split_whitespace();
        let size = words.next().and_then(|s| s.parse::<usize>().ok());
        let last = match words.next() {
            None => false,
            Some(w) if w.eq_ignore_ascii_case("LAST") => true,
            Some(_) => {
                self.stats.record(Verb::Bdat, false);
                self.error(out, 501, "5.5.4", "Syntax: BDAT count [LAST]");
                return;
            }
        };
        let Some(size) = size else {
            self.stats.record(Verb::Bdat, false);
            self.error(out, 501, "5.5.4", "Syntax: BDAT count [LAST]");
            return;
        };
        let refuse = if self.sender.is_none() || self.recipients.is_empty() {
            Some("Error: need RCPT command".to_string())
        } else {
            None
        };
        if let Some(why) = refuse {
            self.mode = Mode::Bdat {
                left: size,
                last,
                discard: true,
            };
            self.stats.record(Verb::Bdat, false);
            self.error(out, 503, "5.5.1", &why);
            return;
        }
        self.bdat_seen = true;
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
            let n = self.data_size;
            self.send(out, 250, "2.0.0", &format!("Ok: {n} bytes"));
            return;
        }
        if self.too_big {
            self.stats.record(Verb::Bdat, false);
            self.error(out, 552, "5.3.4", "Message size exceeds fixed limit");
            self.reset_transaction();
            return;
        }
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
        let text = arg.split_whitespace().next().unwrap_or("");
        let inner = text.trim_start_matches('<').trim_end_matches('>');
        let addr = match parse_address(inner, true) {
            Ok(a) => a,
            Err(AddrError::Empty) | Err(_) => {
                self.error(out, 501, "5.1.3", "Bad recipient address syntax");
                return false;
            }
        };
        match self.policy.check_recipient(&addr).1 {
            Verdict::Accept => {
                self.send(out, 252, "2.0.0", &addr.internal());
                true
            }
            Verdict::Reject {
                code,
                enhanced,
                text,
                ..
            } => {
                self.log_reject(
                    out,
                    "VRFY",
                    &reply(code, &enhanced, &text),
                    Some(&addr.internal()),
                );
                self.error(out, code, &enhanced, &text);
                false
            }
        }
    }

    fn etrn_cmd(&mut self, arg: &str, out: &mut Vec<Action>) -> bool {
        if arg.is_empty() {
            self.error(out, 500, "", "Syntax: ETRN domain");
            return false;
        }
        if self.sender.is_some() {
            self.error(out, 503, "5.5.1", "Error: MAIL transaction in progress");
            return false;
        }
        // fast_flush_domains is empty: no domain is eligible (Postfix's reply).
        self.error(
            out,
            459,
            "",
            &format!("<{}>: service unavailable", arg.trim_start_matches('@')),
        );
        false
    }
}
