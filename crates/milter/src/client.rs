//! One milter connection from the MTA's side: negotiation, the SMTP events
//! with their macros, the replies, and the per-connection state Postfix's
//! milter8.c keeps (accepted for the connection or the message, rejected
//! for the connection, broken). The driver owns the socket: it writes what
//! a [`Step`] says, reads, and calls [`Client::feed`] until an [`Outcome`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::edit::Edit;
use crate::frame::{Decoder, Frame, FrameError, BODY_CHUNK};
use crate::proto::*;

/// milter_default_action: what a broken milter (refused, timed out,
/// garbage) means for the session (postconf(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Accept,
    Reject,
    Tempfail,
    Quarantine,
}

impl DefaultAction {
    pub fn parse(s: &str) -> Option<DefaultAction> {
        match s.trim() {
            "accept" => Some(DefaultAction::Accept),
            "reject" => Some(DefaultAction::Reject),
            "tempfail" => Some(DefaultAction::Tempfail),
            "quarantine" => Some(DefaultAction::Quarantine),
            _ => None,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            DefaultAction::Accept => Outcome::verdict(Verdict::Continue),
            DefaultAction::Reject => Outcome::verdict(Verdict::Reject(REJECT.into())),
            DefaultAction::Tempfail => Outcome::verdict(Verdict::Reject(TEMPFAIL.into())),
            DefaultAction::Quarantine => Outcome {
                verdict: Verdict::Continue,
                edits: Vec::new(),
                hold: Some("milter triggers HOLD action".into()),
            },
        }
    }
}

/// Postfix's replies for SMFIR_REJECT and SMFIR_TEMPFAIL (milter8.c).
pub const REJECT: &str = "550 5.7.1 Command rejected";
pub const TEMPFAIL: &str = "451 4.7.1 Service unavailable - try again later";
/// Postfix's reply for SMFIR_SHUTDOWN (smtpd.c check_milter_reply).
pub const SHUTDOWN: &str = "421 4.7.0 Server closing connection";

#[derive(Debug, Clone)]
pub struct Config {
    /// The milter as configured (`inet:127.0.0.1:11332`), for log lines.
    pub name: String,
    /// milter_protocol (2 to 6).
    pub version: u32,
    pub default_action: DefaultAction,
    /// milter_*_macros: the macros sent before each stage's event unless the
    /// milter asks for others (SETSYMLIST).
    pub macros: BTreeMap<Stage, Vec<String>>,
}

/// Macro values, looked up by the driver (`j`, `{client_addr}`, ...).
pub trait Macros {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Macros for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// An SMTP event to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// The client's name, address and port; `None` for a local submission
    /// (family `U`, unknown).
    Connect {
        hostname: &'a str,
        addr: Option<(IpAddr, u16)>,
    },
    Helo(&'a str),
    /// `<sender>` then the ESMTP parameters.
    Mail(&'a [String]),
    /// `<recipient>` then the ESMTP parameters.
    Rcpt(&'a [String]),
    Data,
    /// A header's name and its value as it stands after the colon (folded
    /// lines joined with `\n`).
    Header(&'a str, &'a str),
    Eoh,
    /// Body bytes with CRLF line ends (at most [`BODY_CHUNK`] per event).
    Body(&'a [u8]),
    Eom,
}

impl Event<'_> {
    /// The event's name for log lines.
    pub fn name(&self) -> &'static str {
        event_name(match self {
            Event::Connect { .. } => SMFIC_CONNECT,
            Event::Helo(_) => SMFIC_HELO,
            Event::Mail(_) => SMFIC_MAIL,
            Event::Rcpt(_) => SMFIC_RCPT,
            Event::Data => SMFIC_DATA,
            Event::Header(..) => SMFIC_HEADER,
            Event::Eoh => SMFIC_EOH,
            Event::Body(_) => SMFIC_BODY,
            Event::Eom => SMFIC_BODYEOB,
        })
    }
}

/// The milter's decision on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on (CONTINUE, or ACCEPT: no more events for this message or
    /// connection, which the MTA takes as a pass).
    Continue,
    /// Accept the message and throw it away (not allowed at connect/helo).
    Discard,
    /// Refuse with this SMTP reply (`550 5.7.1 Command rejected`, the
    /// milter's own REPLYCODE, or the tempfail reply).
    Reject(String),
    /// SMFIR_SHUTDOWN: `421 4.7.0 Server closing connection`, then close.
    Shutdown,
    /// SMFIR_SKIP during the body: send no more body chunks; wait for EOM.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// End-of-message modifications, in the order the milter sent them.
    pub edits: Vec<Edit>,
    /// SMFIR_QUARANTINE's reason (or the quarantine default action): the
    /// message goes to the hold queue.
    pub hold: Option<String>,
}

impl Outcome {
    pub fn verdict(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            edits: Vec::new(),
            hold: None,
        }
    }

    pub fn is_continue(&self) -> bool {
        self.verdict == Verdict::Continue
    }
}

/// What the driver must do for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes, then read and [`Client::feed`] until an outcome.
    Wait(Vec<u8>),
    /// Write these bytes (possibly none); no reply is coming.
    Done(Vec<u8>, Outcome),
}

/// Why the conversation broke (the driver adds timeouts and socket errors
/// of its own, and calls [`Client::fail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MilterError {
    Frame(FrameError),
    Parse(ParseError),
    /// A reply that makes no sense now, e.g. a header change after RCPT.
    Unexpected {
        reply: String,
        event: &'static str,
    },
    /// The milter speaks a newer protocol or wants actions not offered.
    Negotiation(String),
    /// REPLYCODE text that is not `4xx`/`5xx` with a matching status.
    MalformedReply(String),
}

impl fmt::Display for MilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MilterError::Frame(e) => write!(f, "read error: {e}"),
            MilterError::Parse(e) => write!(f, "bad reply: {e}"),
            MilterError::Unexpected { reply, event } => {
                write!(f, "unexpected filter response {reply} after event {event}")
            }
            MilterError::Negotiation(s) => f.write_str(s),
            MilterError::MalformedReply(s) => write!(f, "malformed reply: {s}"),
        }
    }
}

impl std::error::Error for MilterError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// OPTNEG not yet sent.
    New,
    Negotiating,
    Ready,
    /// A reply to `event` is awaited.
    Waiting {
        event: u8,
    },
    /// ACCEPT at connect or helo: no more events this connection.
    AcceptConnection,
    /// ACCEPT or DISCARD during a message: none until the next MAIL.
    AcceptMessage,
    /// REJECT/TEMPFAIL/REPLYCODE at connect or helo, SHUTDOWN, or a broken
    /// milter: every later event gets this outcome (Postfix's def_reply).
    Sticky(Outcome),
}

pub struct Client {
    cfg: Config,
    state: State,
    decoder: Decoder,
    version: u32,
    actions: Actions,
    flags: ProtoFlags,
    macros: BTreeMap<Stage, Vec<String>>,
    /// Between MAIL and the end of the message: ABORT is owed if the
    /// transaction ends any other way.
    in_message: bool,
    /// Collected while waiting for the EOM's final reply.
    edits: Vec<Edit>,
    hold: Option<String>,
    /// Bytes of modification frames taken at this end of message.
    edit_bytes: usize,
}

impl Client {
    pub fn new(cfg: Config) -> Client {
        let macros = cfg.macros.clone();
        Client {
            cfg,
            state: State::New,
            decoder: Decoder::default(),
            version: 0,
            actions: Actions::default(),
            flags: ProtoFlags::default(),
            macros,
            in_message: false,
            edits: Vec::new(),
            hold: None,
            edit_bytes: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The negotiated version, actions and protocol flags.
    pub fn negotiated(&self) -> (u32, Actions, ProtoFlags) {
        (self.version, self.actions, self.flags)
    }

    /// The milter can take no more events (accepted, rejected or broken for
    /// this connection).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::AcceptConnection | State::Sticky(_))
    }

    /// The OPTNEG frame (Postfix milter8_connect): the version, every action
    /// yubin can carry out, and the steps the milter may leave out.
    pub fn negotiate(&mut self) -> Vec<u8> {
        self.state = State::Negotiating;
        let mut d = Vec::with_capacity(12);
        d.extend_from_slice(&self.cfg.version.to_be_bytes());
        d.extend_from_slice(&Actions::OFFERED.0.to_be_bytes());
        d.extend_from_slice(&ProtoFlags::offered(self.cfg.version).0.to_be_bytes());
        Frame::new(SMFIC_OPTNEG, d).encode()
    }

    /// The broken-milter outcome: the state turns sticky with
    /// milter_default_action and the driver should close the socket.
    pub fn fail(&mut self) -> Outcome {
        let o = self.cfg.default_action.outcome();
        self.state = State::Sticky(o.clone());
        self.in_message = false;
        self.edits.clear();
        self.hold = None;
        self.edit_bytes = 0;
        o
    }

    /// Feeds bytes read from the milter. `Ok(None)`: read more. An error
    /// leaves the client broken: call [`Client::fail`] for the outcome.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Outcome>, MilterError> {
        self.decoder.push(bytes);
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(None),
                Err(e) => return Err(MilterError::Frame(e)),
            };
            if self.state
                == (State::Waiting {
                    event: SMFIC_BODYEOB,
                })
            {
                // Modifications are kept until the decision: bounded in
                // total, not only per frame.
                self.edit_bytes += frame.data.len();
                if self.edit_bytes > MAX_EDIT_BYTES {
                    return Err(MilterError::Negotiation(format!(
                        "modifications over {MAX_EDIT_BYTES} bytes"
                    )));
                }
            }
            let reply = Reply::parse(&frame).map_err(MilterError::Parse)?;
            if let Some(o) = self.reply(reply)? {
                return Ok(Some(o));
            }
        }
    }

    fn reply(&mut self, reply: Reply) -> Result<Option<Outcome>, MilterError> {
        let event = match &self.state {
            State::Negotiating => return self.negotiated_reply(reply).map(Some),
            State::Waiting { event } => *event,
            _ => {
                return Err(MilterError::Unexpected {
                    reply: short(&reply),
                    event: "(none)",
                })
            }
        };
        let connect_stage = event == SMFIC_CONNECT || event == SMFIC_HELO;
        let unexpected = |r: &Reply| MilterError::Unexpected {
            reply: short(r),
            event: event_name(event),
        };
        let finish = |this: &mut Client, verdict: Verdict| -> Outcome {
            let edits = std::mem::take(&mut this.edits);
            let hold = this.hold.take();
            if event == SMFIC_BODYEOB {
                this.in_message = false;
            }
            Outcome {
                verdict,
                edits,
                hold,
            }
        };
        let out = match reply {
            Reply::Progress => return Ok(None),
            Reply::Continue => {
                self.state = State::Ready;
                finish(self, Verdict::Continue)
            }
            Reply::Accept => {
                self.state = if connect_stage {
                    State::AcceptConnection
                } else {
                    State::AcceptMessage
                };
                finish(self, Verdict::Continue)
            }
            Reply::Discard => {
                if connect_stage {
                    // milter8.c: "DISCARD action is not allowed for connect or helo".
                    return Err(unexpected(&Reply::Discard));
                }
                self.state = State::AcceptMessage;
                finish(self, Verdict::Discard)
            }
            Reply::Reject | Reply::Tempfail | Reply::ReplyCode(_) => {
                let text = match reply {
                    Reply::Reject => REJECT.to_string(),
                    Reply::Tempfail => TEMPFAIL.to_string(),
                    Reply::ReplyCode(s) => checked_reply(&s)?,
                    _ => unreachable!("matched above"),
                };
                let o = finish(self, Verdict::Reject(text));
                self.state = if connect_stage {
                    State::Sticky(Outcome::verdict(o.verdict.clone()))
                } else {
                    State::Ready
                };
                o
            }
            Reply::Shutdown => {
                let o = finish(self, Verdict::Shutdown);
                self.state = State::Sticky(Outcome::verdict(Verdict::Shutdown));
                o
            }
            Reply::Skip => {
                if event != SMFIC_BODY {
                    return Err(unexpected(&Reply::Skip));
                }
                self.state = State::Ready;
                finish(self, Verdict::Skip)
            }
            Reply::Quarantine(reason) => {
                // Not final (Sendmail 8.13): the decision follows.
                self.hold = Some(reason);
                return Ok(None);
            }
            Reply::Negotiate { .. } => return Err(unexpected(&reply)),
            edit => {
                if event != SMFIC_BODYEOB {
                    return Err(unexpected(&edit));
                }
                let (bit, e) = match edit {
                    Reply::AddHeader { name, value } => {
                        (Actions::ADDHDRS, Edit::AddHeader { name, value })
                    }
                    Reply::InsertHeader { index, name, value } => {
                        (Actions::ADDHDRS, Edit::InsertHeader { index, name, value })
                    }
                    Reply::ChangeHeader { index, name, value } => {
                        if name.is_empty() {
                            return Err(MilterError::Negotiation("null change header name".into()));
                        }
                        (Actions::CHGHDRS, Edit::ChangeHeader { index, name, value })
                    }
                    Reply::AddRcpt(r) => (Actions::ADDRCPT, Edit::AddRcpt(r, String::new())),
                    Reply::AddRcptPar(r, a) => (Actions::ADDRCPT_PAR, Edit::AddRcpt(r, a)),
                    Reply::DelRcpt(r) => (Actions::DELRCPT, Edit::DelRcpt(r)),
                    Reply::ChangeFrom(f, a) => (Actions::CHGFROM, Edit::ChangeFrom(f, a)),
                    Reply::ReplaceBody(b) => {
                        // Several REPLBODY frames make one new body.
                        if !self.actions.has(Actions::CHGBODY) {
                            return Err(unexpected(&Reply::ReplaceBody(Vec::new())));
                        }
                        if let Some(Edit::ReplaceBody(old)) = self
                            .edits
                            .iter_mut()
                            .rev()
                            .find(|e| matches!(e, Edit::ReplaceBody(_)))
                        {
                            old.extend_from_slice(&b);
                            return Ok(None);
                        }
                        (Actions::CHGBODY, Edit::ReplaceBody(b))
                    }
                    other => return Err(unexpected(&other)),
                };
                if !self.actions.has(bit) {
                    return Err(MilterError::Unexpected {
                        reply: format!("{} (not negotiated)", short_edit(&e)),
                        event: event_name(event),
                    });
                }
                if self.edits.len() >= MAX_EDITS {
                    return Err(MilterError::Negotiation("too many modifications".into()));
                }
                self.edits.push(e);
                return Ok(None);
            }
        };
        Ok(Some(out))
    }

    fn negotiated_reply(&mut self, reply: Reply) -> Result<Outcome, MilterError> {
        let Reply::Negotiate {
            version,
            actions,
            flags,
            macros,
        } = reply
        else {
            return Err(MilterError::Negotiation(format!(
                "unexpected reply \"{}\" in initial handshake",
                short(&reply)
            )));
        };
        // milter8.c: a newer version than ours, or actions we did not
        // offer, end the conversation.
        if version > self.cfg.version || version < 2 {
            return Err(MilterError::Negotiation(format!(
                "protocol version {version} conflict with MTA protocol version {}",
                self.cfg.version
            )));
        }
        if actions.0 & Actions::OFFERED.0 != actions.0 {
            return Err(MilterError::Negotiation(format!(
                "request mask 0x{:x} conflict with MTA request mask 0x{:x}",
                actions.0,
                Actions::OFFERED.0
            )));
        }
        self.version = version;
        self.actions = actions;
        // Steps we did not offer are not taken from the milter's answer.
        self.flags = ProtoFlags(flags.0 & ProtoFlags::offered(self.cfg.version).0);
        if actions.has(Actions::SETSYMLIST) {
            for (stage, names) in macros {
                self.macros.insert(stage, names);
            }
        }
        self.state = State::Ready;
        Ok(Outcome::verdict(Verdict::Continue))
    }

    /// Reports an event. The macros of its stage go first (even when the
    /// milter asked not to get the event, as Postfix does).
    pub fn event(&mut self, ev: Event<'_>, macros: &dyn Macros) -> Step {
        let mut out = Vec::new();
        // A transaction that ended without its end of message (RSET, a
        // rejected DATA, a new MAIL): the milter forgets it.
        if matches!(ev, Event::Mail(_)) {
            if self.in_message && !self.is_done() {
                Frame::new(SMFIC_ABORT, Vec::new()).encode_into(&mut out);
            }
            self.in_message = true;
            if self.state == State::AcceptMessage {
                self.state = State::Ready;
            }
        }
        match &self.state {
            State::Sticky(o) => return Step::Done(out, o.clone()),
            State::AcceptConnection | State::AcceptMessage => {
                return Step::Done(out, Outcome::verdict(Verdict::Continue))
            }
            State::Ready => {}
            // Not negotiated, or the driver skipped a reply: broken.
            State::New | State::Negotiating | State::Waiting { .. } => {
                return Step::Done(out, self.fail())
            }
        }
        let (cmd, stage, skip, no_reply) = match ev {
            Event::Connect { .. } => (
                SMFIC_CONNECT,
                Some(Stage::Connect),
                ProtoFlags::NOCONNECT,
                ProtoFlags::NR_CONN,
            ),
            Event::Helo(_) => (
                SMFIC_HELO,
                Some(Stage::Helo),
                ProtoFlags::NOHELO,
                ProtoFlags::NR_HELO,
            ),
            Event::Mail(_) => (
                SMFIC_MAIL,
                Some(Stage::Mail),
                ProtoFlags::NOMAIL,
                ProtoFlags::NR_MAIL,
            ),
            Event::Rcpt(_) => (
                SMFIC_RCPT,
                Some(Stage::Rcpt),
                ProtoFlags::NORCPT,
                ProtoFlags::NR_RCPT,
            ),
            Event::Data => (
                SMFIC_DATA,
                Some(Stage::Data),
                ProtoFlags::NODATA,
                ProtoFlags::NR_DATA,
            ),
            Event::Header(..) => (SMFIC_HEADER, None, ProtoFlags::NOHDRS, ProtoFlags::NR_HDR),
            Event::Eoh => (
                SMFIC_EOH,
                Some(Stage::Eoh),
                ProtoFlags::NOEOH,
                ProtoFlags::NR_EOH,
            ),
            Event::Body(_) => (SMFIC_BODY, None, ProtoFlags::NOBODY, ProtoFlags::NR_BODY),
            Event::Eom => (SMFIC_BODYEOB, Some(Stage::Eom), 0, 0),
        };
        if let Some(stage) = stage {
            self.put_macros(&mut out, stage, macros);
        }
        if skip != 0 && self.flags.has(skip) {
            return Step::Done(out, Outcome::verdict(Verdict::Continue));
        }
        let mut d = Vec::new();
        match ev {
            Event::Connect { hostname, addr } => {
                put_str(&mut d, hostname);
                match addr {
                    Some((ip, port)) => {
                        d.push(if ip.is_ipv4() { b'4' } else { b'6' });
                        d.extend_from_slice(&port.to_be_bytes());
                        put_str(&mut d, &ip.to_string());
                    }
                    // SMFIA_UNKNOWN: no port or address follow.
                    None => d.push(b'U'),
                }
            }
            Event::Helo(h) => put_str(&mut d, h),
            Event::Mail(args) | Event::Rcpt(args) => {
                for a in args {
                    put_str(&mut d, a);
                }
            }
            Event::Header(name, value) => {
                put_str(&mut d, name);
                // Without HDR_LEADSPC the milter gets the value without the
                // space after the colon (Postfix milter8_header_event).
                let v = if self.flags.has(ProtoFlags::HDR_LEADSPC) {
                    value
                } else {
                    value.trim_start_matches([' ', '\t'])
                };
                put_str(&mut d, v);
            }
            Event::Body(b) => d.extend_from_slice(&b[..b.len().min(BODY_CHUNK)]),
            Event::Data | Event::Eoh | Event::Eom => {}
        }
        Frame::new(cmd, d).encode_into(&mut out);
        if no_reply != 0 && self.flags.has(no_reply) {
            return Step::Done(out, Outcome::verdict(Verdict::Continue));
        }
        self.state = State::Waiting { event: cmd };
        if cmd == SMFIC_BODYEOB {
            self.edits.clear();
            self.hold = None;
            self.edit_bytes = 0;
        }
        Step::Wait(out)
    }

    /// SMFIC_MACRO for `stage`: the defined ones of the stage's names.
    fn put_macros(&self, out: &mut Vec<u8>, stage: Stage, macros: &dyn Macros) {
        let Some(names) = self.macros.get(&stage) else {
            return;
        };
        let mut d = vec![stage.command()];
        let mut any = false;
        for n in names {
            if let Some(v) = macros.get(n) {
                put_str(&mut d, n);
                put_str(&mut d, &v);
                any = true;
            }
        }
        if any {
            Frame::new(SMFIC_MACRO, d).encode_into(out);
        }
    }

    /// The end of the session: QUIT, unless the milter is already done.
    pub fn quit(&mut self) -> Vec<u8> {
        let out = match self.state {
            State::Ready | State::AcceptMessage | State::AcceptConnection => {
                Frame::new(SMFIC_QUIT, Vec::new()).encode()
            }
            _ => Vec::new(),
        };
        self.state = State::Sticky(Outcome::verdict(Verdict::Continue));
        out
    }

    /// Whether the milter wants the body (no NOBODY step).
    pub fn wants_body(&self) -> bool {
        !self.flags.has(ProtoFlags::NOBODY)
    }
}

/// Most modification requests taken at one end of message.
const MAX_EDITS: usize = 10_000;
/// Most bytes of modifications (headers, recipients, a replacement body in
/// several REPLBODY frames) taken at one end of message.
pub const MAX_EDIT_BYTES: usize = 64 * 1024 * 1024;

/// milter8.c's check of a REPLYCODE: `4xx` or `5xx`, a space or hyphen,
/// the enhanced status class equal to the code's; `%%` becomes `%` and a
/// single `%` is dropped (Sendmail used the text as a format string).
fn checked_reply(s: &str) -> Result<String, MilterError> {
    let b = s.as_bytes();
    let ok = b.len() >= 5
        && (b[0] == b'4' || b[0] == b'5')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && (b[3] == b' ' || b[3] == b'-')
        && b[4] == b[0];
    if !ok {
        return Err(MilterError::MalformedReply(s.to_string()));
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(n) => out.push(n),
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn event_name(cmd: u8) -> &'static str {
    match cmd {
        SMFIC_CONNECT => "SMFIC_CONNECT",
        SMFIC_HELO => "SMFIC_HELO",
        SMFIC_MAIL => "SMFIC_MAIL",
        SMFIC_RCPT => "SMFIC_RCPT",
        SMFIC_DATA => "SMFIC_DATA",
        SMFIC_HEADER => "SMFIC_HEADER",
        SMFIC_EOH => "SMFIC_EOH",
        SMFIC_BODY => "SMFIC_BODY",
        SMFIC_BODYEOB => "SMFIC_BODYEOB",
        _ => "(unknown MTA event)",
    }
}

fn short(r: &Reply) -> String {
    let s = match r {
        Reply::Negotiate { .. } => "SMFIC_OPTNEG",
        Reply::Continue => "SMFIR_CONTINUE",
        Reply::Accept => "SMFIR_ACCEPT",
        Reply::Discard => "SMFIR_DISCARD",
        Reply::Reject => "SMFIR_REJECT",
        Reply::Tempfail => "SMFIR_TEMPFAIL",
        Reply::ReplyCode(_) => "SMFIR_REPLYCODE",
        Reply::Shutdown => "SMFIR_SHUTDOWN",
        Reply::Progress => "SMFIR_PROGRESS",
        Reply::Skip => "SMFIR_SKIP",
        Reply::Quarantine(_) => "SMFIR_QUARANTINE",
        Reply::AddHeader { .. } => "SMFIR_ADDHEADER",
        Reply::InsertHeader { .. } => "SMFIR_INSHEADER",
        Reply::ChangeHeader { .. } => "SMFIR_CHGHEADER",
        Reply::AddRcpt(_) => "SMFIR_ADDRCPT",
        Reply::AddRcptPar(..) => "SMFIR_ADDRCPT_PAR",
        Reply::DelRcpt(_) => "SMFIR_DELRCPT",
        Reply::ReplaceBody(_) => "SMFIR_REPLBODY",
        Reply::ChangeFrom(..) => "SMFIR_CHGFROM",
    };
    s.to_string()
}

fn short_edit(e: &Edit) -> &'static str {
    match e {
        Edit::AddHeader { .. } => "SMFIR_ADDHEADER",
        Edit::InsertHeader { .. } => "SMFIR_INSHEADER",
        Edit::ChangeHeader { .. } => "SMFIR_CHGHEADER",
        Edit::AddRcpt(..) => "SMFIR_ADDRCPT",
        Edit::DelRcpt(_) => "SMFIR_DELRCPT",
        Edit::ReplaceBody(_) => "SMFIR_REPLBODY",
        Edit::ChangeFrom(..) => "SMFIR_CHGFROM",
    }
}

/// Splits a message body (LF line ends, as queued) into body events:
/// CRLF line ends as SMTP carried them (Postfix milter8_message), at most
/// [`BODY_CHUNK`] bytes each.
pub fn body_chunks(body: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut cur = Vec::with_capacity(BODY_CHUNK.min(body.len() + body.len() / 32 + 2));
    for &b in body {
        if b == b'\n' {
            if cur.len() + 2 > BODY_CHUNK {
                chunks.push(std::mem::take(&mut cur));
            }
            if cur.last() != Some(&b'\r') {
                cur.push(b'\r');
            }
            cur.push(b'\n');
        } else {
            if cur.len() + 1 > BODY_CHUNK {
                chunks.push(std::mem::take(&mut cur));
            }
            cur.push(b);
        }
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}
