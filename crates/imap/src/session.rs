//! The IMAP session state machine (RFC 3501 section 3: not authenticated,
//! authenticated, selected, logout).

use std::collections::{BTreeSet, VecDeque};

use base64::Engine;
use chrono::{DateTime, FixedOffset, Utc};
use imap_codec::decode::Decoder;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::command::{FetchModifier, SelectParameter, StoreModifier};
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::flag::{Flag as CodecFlag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_codec::imap_types::status::StatusDataItemName;
use imap_codec::CommandCodec;

use crate::esearch;
use crate::framing::{tag_of, Frame, Framer, Limits};
use crate::listext::{self, ListExt};
use crate::mime::{header_fields, ParsedMessage};
use crate::names;
use crate::search::{self, Candidate, Need};
use crate::store::{
    Flag, FlagOp, Flags, MailboxEntry, MessageData, Reply, Request, Snapshot, StoreError, DELIMITER,
};
use crate::wire::{literal, mailbox_name, quoted_or_literal};

/// Session settings, fixed per connection (TLS state changes with STARTTLS).
#[derive(Debug, Clone)]
pub struct Config {
    /// Shown in the greeting.
    pub server_name: String,
    /// The connection is TLS already (imaps) or STARTTLS is done.
    pub tls_active: bool,
    /// STARTTLS can be offered (a certificate is configured).
    pub starttls_available: bool,
    /// Plaintext LOGIN/AUTHENTICATE allowed without TLS (Dovecot's
    /// `disable_plaintext_auth = no`); otherwise LOGINDISABLED (RFC 3501
    /// section 6.2.3).
    pub plaintext_auth: bool,
    pub max_line: usize,
    pub max_literal: usize,
    /// RFC 7889 APPENDLIMIT.
    pub append_limit: usize,
    /// Deepest parenthesis nesting accepted in a command.
    pub max_depth: usize,
    /// Failed logins before the connection is closed.
    pub max_auth_failures: u32,
    /// Invalid commands before the connection is closed (Dovecot: 10).
    pub max_bad_commands: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_name: "yubin".into(),
            tls_active: false,
            starttls_available: false,
            plaintext_auth: false,
            // Dovecot's imap_max_line_length default.
            max_line: 64 * 1024,
            max_literal: 64 * 1024,
            append_limit: 50 * 1024 * 1024,
            max_depth: 16,
            max_auth_failures: 3,
            max_bad_commands: 10,
        }
    }
}

/// How the client authenticated, named as Dovecot logs it (`method=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// The LOGIN command; Dovecot runs it as SASL PLAIN and logs PLAIN.
    LoginCommand,
    Plain,
    Login,
}

impl AuthMethod {
    pub fn log_name(self) -> &'static str {
        match self {
            AuthMethod::LoginCommand | AuthMethod::Plain => "PLAIN",
            AuthMethod::Login => "LOGIN",
        }
    }
}

/// Credentials for the driver to verify.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub method: AuthMethod,
    pub user: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("method", &self.method)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The driver's verdict on [`Credentials`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Success,
    Failure,
    /// The user database or the user's mail store is unavailable.
    TemporaryFailure,
}

/// What the driver must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Write(Vec<u8>),
    /// Verify, then call [`Session::auth_result`].
    Authenticate(Credentials),
    /// Flush, run the TLS handshake, then call [`Session::tls_established`].
    StartTls,
    /// Answer with [`Session::store_reply`].
    Store(Request),
    /// The client is in IDLE: wait for input or a change of the selected
    /// mailbox, and call [`Session::mailbox_changed`] on the latter.
    Idle,
    /// RFC 4978: from now on, everything written and read goes through
    /// [`crate::compress::Deflate`] (what was written before this action
    /// is not compressed).
    Compress,
    /// Flush and close the connection.
    Close,
}

#[derive(Debug, Clone)]
struct Msg {
    uid: u32,
    flags: Flags,
    recent: bool,
    modseq: u64,
}

#[derive(Debug)]
struct Selected {
    name: String,
    read_only: bool,
    uidnext: u32,
    highest_modseq: u64,
    msgs: Vec<Msg>,
    /// Keywords announced in FLAGS; a FETCH may only show those
    /// (RFC 3501 section 7.2.6), so new ones are announced first.
    keywords: BTreeSet<String>,
}

impl Selected {
    /// Records the keywords of `f`; true when one was new.
    fn note_keywords(&mut self, f: &Flags) -> bool {
        let mut new = false;
        for x in f.iter() {
            if let Flag::Keyword(k) = x {
                new |= self.keywords.insert(k.clone());
            }
        }
        new
    }

    /// The FLAGS and PERMANENTFLAGS responses for the current keywords.
    fn flags_responses(&self) -> String {
        let kw: String = self.keywords.iter().map(|k| format!(" {k}")).collect();
        let mut out = format!("* FLAGS ({SYSTEM_FLAGS}{kw})\r\n");
        if self.read_only {
            out.push_str("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
        } else {
            out.push_str(&format!(
                "* OK [PERMANENTFLAGS ({SYSTEM_FLAGS}{kw} \\*)] Flags permitted.\r\n"
            ));
        }
        out
    }

    fn max_uid(&self) -> u32 {
        self.msgs.last().map(|m| m.uid).unwrap_or(0)
    }
    fn seq_of(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaslStage {
    PlainResponse,
    LoginUser,
    LoginPassword,
}

#[derive(Debug)]
enum Wait {
    Store(Then),
    Auth {
        tag: String,
    },
    Tls,
    Sasl {
        tag: String,
        stage: SaslStage,
        user: String,
    },
}

/// A FETCH item, owned.
#[derive(Debug, Clone)]
enum Item {
    Uid,
    /// RFC 7162 MODSEQ.
    ModSeq,
    Flags,
    InternalDate,
    Size,
    Envelope,
    Body,
    BodyStructure,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    Section {
        sec: Sec,
        partial: Option<(u32, u32)>,
        peek: bool,
    },
}

#[derive(Debug, Clone)]
enum Sec {
    Full,
    Part(Vec<u32>),
    Header(Vec<u32>),
    Fields(Vec<u32>, Vec<Vec<u8>>, bool),
    Text(Vec<u32>),
    Mime(Vec<u32>),
}

impl Item {
    fn needs_content(&self) -> bool {
        !matches!(
            self,
            Item::Uid | Item::ModSeq | Item::Flags | Item::InternalDate | Item::Size
        )
    }
    fn needs_meta(&self) -> bool {
        !matches!(self, Item::Uid | Item::ModSeq | Item::Flags)
    }
    fn sets_seen(&self) -> bool {
        matches!(
            self,
            Item::Rfc822 | Item::Rfc822Text | Item::Section { peek: false, .. }
        )
    }
}

/// Which FETCH FLAGS responses a flag change produces.
#[derive(Debug, Clone, Copy)]
enum Echo {
    /// STORE .SILENT.
    Nothing,
    /// \Seen set by a FETCH: the messages that changed.
    Changed,
    /// STORE (RFC 3501 section 6.4.6): every message named.
    All,
    /// UID STORE: the same, with UID (RFC 3501 section 6.4.8).
    AllWithUid,
}

#[derive(Debug)]
enum Then {
    Ok {
        tag: String,
        text: String,
    },
    List {
        tag: String,
        lsub: bool,
        pattern: String,
    },
    Select {
        tag: String,
        name: String,
        read_only: bool,
        qresync: Option<Qresync>,
    },
    Status {
        tag: String,
        name: String,
        items: Vec<StatusDataItemName>,
    },
    Append {
        tag: String,
        mailbox: String,
    },
    /// FETCH in chunks of [`CHUNK`] messages: `idx` is the whole set,
    /// `done` how many of it were answered.
    Fetch {
        tag: String,
        items: Vec<Item>,
        idx: Vec<usize>,
        done: usize,
        content: bool,
    },
    /// SEARCH over message data, [`CHUNK`] messages at a time from index
    /// `next`, collecting the numbers found.
    Search {
        tag: String,
        uid: bool,
        key: SearchKey<'static>,
        ret: Option<esearch::Return>,
        next: usize,
        content: bool,
        found: Vec<u32>,
    },
    Copy {
        tag: String,
        moving: bool,
        to: String,
    },
    Expunge {
        tag: String,
        close: bool,
    },
    /// RFC 5258 extended LIST.
    ListExt {
        tag: String,
        ext: ListExt,
    },
    /// RFC 5819 LIST-STATUS: the STATUS of each listed mailbox, one store
    /// request at a time.
    ListStatus {
        tag: String,
        items: Vec<String>,
        queue: VecDeque<String>,
    },
    /// GETQUOTAROOT (with the mailbox) or GETQUOTA.
    Quota {
        tag: String,
        mailbox: Option<String>,
    },
    /// Resync the selected mailbox; tagged OK after, unless in IDLE.
    Refresh {
        tag: Option<String>,
        text: String,
    },
    /// Flags stored: prepared lines, then FETCH FLAGS as `echo` says, OK
    /// (with `[MODIFIED ...]` for UNCHANGEDSINCE failures, as UIDs when
    /// `uid`).
    Stored {
        tag: String,
        lines: Vec<u8>,
        echo: Echo,
        text: String,
        uid: bool,
    },
}

/// SELECT's RFC 7162 QRESYNC parameter: what the client knew.
#[derive(Debug)]
struct Qresync {
    uidvalidity: u32,
    modseq: u64,
    known_uids: Option<SequenceSet>,
}

enum State {
    NotAuthenticated,
    Authenticated,
    Selected(Selected),
    Logout,
}

/// One IMAP connection's protocol state.
pub struct Session {
    cfg: Config,
    state: State,
    framer: Framer,
    out: VecDeque<Action>,
    wait: Option<Wait>,
    idle_tag: Option<String>,
    user: Option<String>,
    auth_failures: u32,
    bad_commands: u32,
    last_method: Option<AuthMethod>,
    /// RFC 7162: CONDSTORE enabled (ENABLE, SELECT (CONDSTORE), or a
    /// command using a mod-sequence); FETCH responses then carry MODSEQ.
    condstore: bool,
    /// RFC 7162 QRESYNC enabled: VANISHED instead of EXPUNGE.
    qresync: bool,
    /// RFC 4731 RETURN options of the SEARCH being parsed.
    search_return: Option<esearch::Return>,
    /// The FETCH being parsed said CHANGEDSINCE 0.
    changedsince_zero: bool,
    /// COMPRESS=DEFLATE is active.
    compressed: bool,
}

/// Messages per store request of a FETCH or SEARCH: the memory of one
/// command stays bounded however large the folder.
const CHUNK: usize = 256;

const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

fn flag_from_codec(f: &CodecFlag<'_>) -> Option<Flag> {
    Some(match f {
        CodecFlag::Answered => Flag::Answered,
        CodecFlag::Deleted => Flag::Deleted,
        CodecFlag::Draft => Flag::Draft,
        CodecFlag::Flagged => Flag::Flagged,
        CodecFlag::Seen => Flag::Seen,
        CodecFlag::Keyword(k) => Flag::Keyword(k.as_ref().to_string()),
        CodecFlag::Extension(_) => return None,
    })
}

fn flags_text(f: &Flags, recent: bool) -> String {
    let mut s = String::from("(");
    for (i, x) in f.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(x.imap_name());
    }
    if recent {
        if !f.is_empty() {
            s.push(' ');
        }
        s.push_str("\\Recent");
    }
    s.push(')');
    s
}

fn imap_date(t: i64) -> String {
    let d = DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default();
    d.format("\"%d-%b-%Y %H:%M:%S +0000\"").to_string()
}

fn mailbox_str(m: &Mailbox<'_>) -> String {
    match m {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(o) => names::canonical(&String::from_utf8_lossy(o.inner().as_ref())),
    }
}

fn list_pattern(l: &ListMailbox<'_>) -> String {
    match l {
        ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
        ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
    }
}

fn part_vec(p: &Option<Part>) -> Vec<u32> {
    p.as_ref()
        .map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
        .unwrap_or_default()
}

fn sec_from_codec(s: &Option<Section<'_>>) -> Sec {
    match s {
        None => Sec::Full,
        Some(Section::Part(p)) => Sec::Part(p.0.as_ref().iter().map(|n| n.get()).collect()),
        Some(Section::Header(p)) => Sec::Header(part_vec(p)),
        Some(Section::HeaderFields(p, f)) => Sec::Fields(
            part_vec(p),
            f.as_ref().iter().map(|a| a.as_ref().to_vec()).collect(),
            false,
        ),
        Some(Section::HeaderFieldsNot(p, f)) => Sec::Fields(
            part_vec(p),
            f.as_ref().iter().map(|a| a.as_ref().to_vec()).collect(),
            true,
        ),
        Some(Section::Text(p)) => Sec::Text(part_vec(p)),
        Some(Section::Mime(p)) => Sec::Mime(p.0.as_ref().iter().map(|n| n.get()).collect()),
    }
}

fn path_text(p: &[u32]) -> String {
    p.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

fn sec_text(s: &Sec) -> Vec<u8> {
    let with = |p: &[u32], what: &str| {
        if p.is_empty() {
            what.to_string()
        } else {
            format!("{}.{what}", path_text(p))
        }
    };
    match s {
        Sec::Full => Vec::new(),
        Sec::Part(p) => path_text(p).into_bytes(),
        Sec::Header(p) => with(p, "HEADER").into_bytes(),
        Sec::Text(p) => with(p, "TEXT").into_bytes(),
        Sec::Mime(p) => with(p, "MIME").into_bytes(),
        Sec::Fields(p, f, not) => {
            let mut out = with(
                p,
                if *not {
                    "HEADER.FIELDS.NOT"
                } else {
                    "HEADER.FIELDS"
                },
            )
            .into_bytes();
            out.extend(b" (");
            for (i, n) in f.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                if !n.is_empty()
                    && n.iter()
                        .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(b))
                {
                    out.extend(n);
                } else {
                    out.extend(quoted_or_literal(n));
                }
            }
            out.push(b')');
            out
        }
    }
}

/// The bytes of a section of a message, `None` if the part does not exist
/// (answered as an empty string, as Dovecot does).
fn section_bytes(pm: &ParsedMessage, raw: &[u8], s: &Sec) -> Vec<u8> {
    let root = &pm.root;
    let r = match s {
        Sec::Full => Some(raw.to_vec()),
        Sec::Part(p) => root.part(p).map(|n| n.body.clone()),
        Sec::Header(p) => root.message_at(p).map(|n| n.header.clone()),
        Sec::Text(p) => root.message_at(p).map(|n| n.body.clone()),
        Sec::Mime(p) => root.part(p).map(|n| n.header.clone()),
        Sec::Fields(p, f, not) => root
            .message_at(p)
            .map(|n| header_fields(&n.header, f, *not)),
    };
    r.unwrap_or_default()
}

/// Deepest parenthesis nesting outside quoted strings and literals.
fn nesting_depth(cmd: &[u8]) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    let mut quoted = false;
    while i < cmd.len() {
        let b = cmd[i];
        if quoted {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                quoted = false;
            }
        } else {
            match b {
                b'"' => quoted = true,
                b'(' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b')' => depth = depth.saturating_sub(1),
                b'{' => {
                    // Skip a literal's bytes: "{N}\r\n" then N bytes.
                    let rest = &cmd[i..];
                    if let Some(close) = rest.iter().position(|&c| c == b'}') {
                        let digits: String = rest[1..close]
                            .iter()
                            .filter(|c| c.is_ascii_digit())
                            .map(|&c| c as char)
                            .collect();
                        if rest.get(close + 1..close + 3) == Some(b"\r\n") {
                            if let Ok(n) = digits.parse::<usize>() {
                                i += close + 3 + n;
                                continue;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    max
}

impl Session {
    /// A new connection; the greeting is the first action.
    pub fn new(cfg: Config) -> Session {
        let mut s = Session {
            cfg,
            state: State::NotAuthenticated,
            framer: Framer::default(),
            out: VecDeque::new(),
            wait: None,
            idle_tag: None,
            user: None,
            auth_failures: 0,
            bad_commands: 0,
            last_method: None,
            condstore: false,
            qresync: false,
            search_return: None,
            changedsince_zero: false,
            compressed: false,
        };
        let greeting = format!(
            "* OK [CAPABILITY {}] {} ready.\r\n",
            s.capabilities(),
            s.cfg.server_name
        );
        s.write(greeting.as_bytes());
        s
    }

    /// The authenticated user, once logged in.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Failed authentication attempts so far (for the disconnect log line).
    pub fn auth_failures(&self) -> u32 {
        self.auth_failures
    }

    /// The method of the last authentication attempt.
    pub fn last_auth_method(&self) -> Option<AuthMethod> {
        self.last_method
    }

    /// In IDLE (the driver also waits for mailbox changes).
    pub fn is_idle(&self) -> bool {
        self.idle_tag.is_some()
    }

    /// The selected mailbox, for the driver's change watch.
    pub fn selected_mailbox(&self) -> Option<&str> {
        match &self.state {
            State::Selected(s) => Some(&s.name),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Logout)
    }

    fn limits(&self) -> Limits {
        Limits {
            max_line: self.cfg.max_line,
            max_literal: self.cfg.max_literal,
            append_limit: self.cfg.append_limit,
        }
    }

    fn login_disabled(&self) -> bool {
        !self.cfg.tls_active && !self.cfg.plaintext_auth
    }

    fn capabilities(&self) -> String {
        let mut c = String::from("IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE");
        match self.state {
            State::NotAuthenticated => {
                if self.cfg.starttls_available && !self.cfg.tls_active {
                    c.push_str(" STARTTLS");
                }
                if self.login_disabled() {
                    c.push_str(" LOGINDISABLED");
                } else {
                    c.push_str(" AUTH=PLAIN AUTH=LOGIN");
                }
            }
            _ => {
                c.push_str(" NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE");
                c.push_str(" CONDSTORE QRESYNC ESEARCH LIST-EXTENDED LIST-STATUS");
                c.push_str(" QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE COMPRESS=DEFLATE");
                c.push_str(&format!(" APPENDLIMIT={}", self.cfg.append_limit));
            }
        }
        c
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(Action::Write(b)) = self.out.back_mut() {
            b.extend_from_slice(bytes);
        } else {
            self.out.push_back(Action::Write(bytes.to_vec()));
        }
    }

    fn tagged(&mut self, tag: &str, status: &str, text: &str) {
        let line = format!("{tag} {status} {text}\r\n");
        self.write(line.as_bytes());
    }

    fn bad(&mut self, tag: &str, text: &str) {
        self.tagged(tag, "BAD", text);
        self.bad_commands += 1;
        if self.bad_commands >= self.cfg.max_bad_commands {
            self.write(b"* BYE Too many invalid IMAP commands.\r\n");
            self.close();
        }
    }

    fn close(&mut self) {
        self.state = State::Logout;
        self.wait = None;
        self.idle_tag = None;
        self.out.push_back(Action::Close);
    }

    fn request(&mut self, req: Request, then: Then) {
        self.out.push_back(Action::Store(req));
        self.wait = Some(Wait::Store(then));
    }

    /// Bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !self.is_closed() {
            self.framer.push(bytes);
        }
    }

    /// The next thing to do; `None` when the session needs more input (or
    /// an answer the driver has not given yet).
    pub fn next_action(&mut self) -> Option<Action> {
        loop {
            if let Some(a) = self.out.pop_front() {
                return Some(a);
            }
            if self.is_closed() {
                return None;
            }
            if matches!(self.wait, Some(Wait::Sasl { .. })) {
                if !self.sasl_input() {
                    return None;
                }
                continue;
            }
            if self.wait.is_some() {
                return None;
            }
            if !self.step() {
                return None;
            }
        }
    }

    /// Consumes input for one step; false when more input is needed.
    fn step(&mut self) -> bool {
        if let Some(tag) = self.idle_tag.clone() {
            return match self.framer.next_line(self.cfg.max_line) {
                None => false,
                Some(Ok(line)) if line.eq_ignore_ascii_case(b"DONE") => {
                    self.idle_tag = None;
                    self.tagged(&tag, "OK", "Idle completed.");
                    true
                }
                Some(_) => {
                    self.idle_tag = None;
                    self.bad(&tag, "Expected DONE.");
                    true
                }
            };
        }
        let frame = match self.framer.next_command(&self.limits()) {
            None => return false,
            Some(f) => f,
        };
        match frame {
            Frame::Continue => self.write(b"+ OK\r\n"),
            Frame::LineTooLong { tag } => {
                self.bad(&tag, "Command line too long.");
            }
            Frame::LiteralTooBig { tag, append, sync } => {
                if append {
                    self.tagged(&tag, "NO", "[TOOBIG] Message too large.");
                } else {
                    self.bad(&tag, "Literal too large.");
                }
                if !sync {
                    // RFC 7888 section 4: the bytes are coming anyway.
                    self.write(b"* BYE Literal too large.\r\n");
                    self.close();
                }
            }
            Frame::Command(cmd) => self.command(cmd),
        }
        true
    }

    fn command(&mut self, mut cmd: Vec<u8>) {
        let tag = tag_of(&cmd);
        if nesting_depth(&cmd) > self.cfg.max_depth {
            self.bad(&tag, "Too deep nesting of parentheses.");
            return;
        }
        // imap-codec does not parse RFC 4731's SEARCH RETURN (...): the
        // options are taken off here and the rest is an ordinary SEARCH.
        self.search_return = None;
        match esearch::split_return(&cmd) {
            Ok(None) => {}
            Ok(Some((opts, rest))) => {
                self.search_return = Some(opts);
                cmd = rest;
            }
            Err(e) => return self.bad(&tag, &format!("Error in IMAP command SEARCH: {e}")),
        }
        // Thunderbird sends `UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)` on a
        // folder it has no mod-sequence for. RFC 7162's grammar wants a
        // positive value there and imap-codec refuses 0; Dovecot takes it
        // as "every message". So does yubin: parsed as 1, applied as 0.
        self.changedsince_zero = false;
        if let Some(fixed) = changedsince_zero(&cmd) {
            self.changedsince_zero = true;
            cmd = fixed;
        }
        // Nor RFC 5258's extended LIST.
        match listext::parse(&cmd) {
            Ok(None) => {}
            Ok(Some(ext)) => {
                if matches!(self.state, State::NotAuthenticated) {
                    return self.bad(&tag, "Command not valid in this state (log in first).");
                }
                return self.request(Request::ListMailboxes, Then::ListExt { tag, ext });
            }
            Err(e) => return self.bad(&tag, &format!("Error in IMAP command LIST: {e}")),
        }
        let parsed = CommandCodec::default().decode(&cmd);
        let command = match parsed {
            Ok((b"", c)) => c,
            _ => {
                let name = crate::framing::command_name(&cmd);
                let known = [
                    "CAPABILITY",
                    "NOOP",
                    "LOGOUT",
                    "STARTTLS",
                    "LOGIN",
                    "AUTHENTICATE",
                    "SELECT",
                    "EXAMINE",
                    "CREATE",
                    "DELETE",
                    "RENAME",
                    "SUBSCRIBE",
                    "UNSUBSCRIBE",
                    "LIST",
                    "LSUB",
                    "STATUS",
                    "APPEND",
                    "CHECK",
                    "CLOSE",
                    "UNSELECT",
                    "EXPUNGE",
                    "SEARCH",
                    "FETCH",
                    "STORE",
                    "COPY",
                    "MOVE",
                    "IDLE",
                    "NAMESPACE",
                    "ID",
                    "ENABLE",
                ];
                if tag == "*" {
                    self.bad("*", "Error in IMAP command received by server.");
                } else if known.contains(&name.as_str()) {
                    self.bad(
                        &tag,
                        &format!("Error in IMAP command {name}: Invalid arguments."),
                    );
                } else {
                    self.bad(
                        &tag,
                        "Error in IMAP command received by server: Unknown command.",
                    );
                }
                return;
            }
        };
        let Command { tag, body } = command;
        let tag = tag.as_ref().to_string();
        self.execute(tag, body);
    }

    fn execute(&mut self, tag: String, body: CommandBody<'_>) {
        use CommandBody as C;
        let authed = !matches!(self.state, State::NotAuthenticated);
        let selected = matches!(self.state, State::Selected(_));
        match body {
            C::Capability => {
                let line = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.write(line.as_bytes());
                self.tagged(&tag, "OK", "Capability completed.");
            }
            C::Noop | C::Check if selected => self.refresh(Some(tag), "NOOP completed."),
            C::Noop => self.tagged(&tag, "OK", "NOOP completed."),
            C::Logout => {
                self.write(b"* BYE Logging out\r\n");
                self.tagged(&tag, "OK", "Logout completed.");
                self.close();
            }
            C::StartTLS => {
                if self.cfg.tls_active || !self.cfg.starttls_available || authed {
                    self.bad(&tag, "TLS not available.");
                } else {
                    self.tagged(&tag, "OK", "Begin TLS negotiation now.");
                    self.framer.clear();
                    self.out.push_back(Action::StartTls);
                    self.wait = Some(Wait::Tls);
                }
            }
            C::Id { .. } => {
                self.write(b"* ID (\"name\" \"yubin\")\r\n");
                self.tagged(&tag, "OK", "ID completed.");
            }
            C::Enable { capabilities } if authed => {
                // RFC 5161 section 3.2: ENABLED lists what this command
                // enabled of what was asked; RFC 7162 section 3.2.3: QRESYNC
                // implies CONDSTORE.
                let mut line = String::from("* ENABLED");
                let was = self.condstore;
                for c in capabilities.as_ref() {
                    let name = c.to_string().to_ascii_uppercase();
                    match name.as_str() {
                        "CONDSTORE" => self.condstore = true,
                        "QRESYNC" => {
                            self.condstore = true;
                            self.qresync = true;
                        }
                        _ => continue,
                    }
                    line.push(' ');
                    line.push_str(&name);
                }
                line.push_str("\r\n");
                self.write(line.as_bytes());
                if !was {
                    self.condstore_enabled_now();
                }
                self.tagged(&tag, "OK", "Enabled.");
            }
            C::Login { username, password } if !authed => {
                if self.login_disabled() {
                    self.tagged(
                        &tag,
                        "NO",
                        "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
                    );
                    return;
                }
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let password = password.declassify().as_ref().to_vec();
                self.authenticate(tag, AuthMethod::LoginCommand, user, password);
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } if !authed => {
                if self.login_disabled() {
                    self.tagged(
                        &tag,
                        "NO",
                        "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
                    );
                    return;
                }
                let initial = initial_response.map(|r| r.declassify().to_vec());
                match mechanism {
                    AuthMechanism::Plain => match initial {
                        Some(r) => self.sasl_plain(tag, &r, false),
                        None => {
                            self.write(b"+ \r\n");
                            self.wait = Some(Wait::Sasl {
                                tag,
                                stage: SaslStage::PlainResponse,
                                user: String::new(),
                            });
                        }
                    },
                    AuthMechanism::Login => match initial {
                        Some(u) => {
                            self.write(b"+ UGFzc3dvcmQ6\r\n");
                            self.wait = Some(Wait::Sasl {
                                tag,
                                stage: SaslStage::LoginPassword,
                                user: String::from_utf8_lossy(&u).into_owned(),
                            });
                        }
                        None => {
                            self.write(b"+ VXNlcm5hbWU6\r\n");
                            self.wait = Some(Wait::Sasl {
                                tag,
                                stage: SaslStage::LoginUser,
                                user: String::new(),
                            });
                        }
                    },
                    _ => self.tagged(&tag, "NO", "Unsupported authentication mechanism."),
                }
            }
            C::Login { .. } | C::Authenticate { .. } => self.bad(&tag, "Already logged in."),
            _ if !authed => self.bad(&tag, "Command not valid in this state (log in first)."),
            C::Namespace => {
                self.write(format!("* NAMESPACE ((\"\" \"{DELIMITER}\")) NIL NIL\r\n").as_bytes());
                self.tagged(&tag, "OK", "Namespace completed.");
            }
            C::Select {
                mailbox,
                parameters,
            } => self.select(tag, mailbox_str(&mailbox), false, parameters),
            C::Examine {
                mailbox,
                parameters,
            } => self.select(tag, mailbox_str(&mailbox), true, parameters),
            C::Create { mailbox } => {
                let mut name = mailbox_str(&mailbox);
                // RFC 3501 section 6.3.3: a trailing delimiter only says
                // the name will have children.
                if name.len() > 1 && name.ends_with(DELIMITER) {
                    name.pop();
                }
                if name == "INBOX" {
                    self.tagged(&tag, "NO", "[ALREADYEXISTS] Mailbox already exists");
                } else if let Some(e) = self.check_name(&name) {
                    self.tagged(&tag, "NO", &format!("[CANNOT] {}", e.text()));
                } else {
                    self.request(
                        Request::Create { name },
                        Then::Ok {
                            tag,
                            text: "Create completed.".into(),
                        },
                    );
                }
            }
            C::Delete { mailbox } => {
                let name = mailbox_str(&mailbox);
                if name == "INBOX" {
                    self.tagged(&tag, "NO", "[CANNOT] INBOX can't be deleted.");
                } else if self.selected_mailbox() == Some(name.as_str()) {
                    self.tagged(&tag, "NO", "[CANNOT] Can't delete the selected mailbox.");
                } else if let Some(e) = self.check_name(&name) {
                    self.tagged(&tag, "NO", &format!("[NONEXISTENT] {}", e.text()));
                } else {
                    self.request(
                        Request::Delete { name },
                        Then::Ok {
                            tag,
                            text: "Delete completed.".into(),
                        },
                    );
                }
            }
            C::Rename { from, to } => {
                let (from, to) = (mailbox_str(&from), mailbox_str(&to));
                if from == "INBOX" {
                    // Renaming INBOX moves its messages (RFC 3501 section
                    // 6.3.5); yubin does not implement that special case.
                    self.tagged(&tag, "NO", "[CANNOT] Renaming INBOX is not supported.");
                } else if to == "INBOX" {
                    self.tagged(&tag, "NO", "[ALREADYEXISTS] Mailbox already exists");
                } else if let Some(e) = self.check_name(&from).or_else(|| self.check_name(&to)) {
                    self.tagged(&tag, "NO", &format!("[CANNOT] {}", e.text()));
                } else {
                    self.request(
                        Request::Rename { from, to },
                        Then::Ok {
                            tag,
                            text: "Rename completed.".into(),
                        },
                    );
                }
            }
            C::Subscribe { mailbox } => {
                let name = mailbox_str(&mailbox);
                self.request(
                    Request::Subscribe {
                        name,
                        subscribe: true,
                    },
                    Then::Ok {
                        tag,
                        text: "Subscribe completed.".into(),
                    },
                );
            }
            C::Unsubscribe { mailbox } => {
                let name = mailbox_str(&mailbox);
                self.request(
                    Request::Subscribe {
                        name,
                        subscribe: false,
                    },
                    Then::Ok {
                        tag,
                        text: "Unsubscribe completed.".into(),
                    },
                );
            }
            C::List {
                reference,
                mailbox_wildcard,
            } => self.list(
                tag,
                false,
                mailbox_str_raw(&reference),
                list_pattern(&mailbox_wildcard),
            ),
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(
                tag,
                true,
                mailbox_str_raw(&reference),
                list_pattern(&mailbox_wildcard),
            ),
            C::Status {
                mailbox,
                item_names,
            } => {
                let name = mailbox_str(&mailbox);
                self.request(
                    Request::Open {
                        name: name.clone(),
                        claim_recent: false,
                    },
                    Then::Status {
                        tag,
                        name,
                        items: item_names.to_vec(),
                    },
                );
            }
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let name = mailbox_str(&mailbox);
                let mut fl = Flags::new();
                for f in &flags {
                    match flag_from_codec(f) {
                        Some(f) => fl.insert(f),
                        None => return self.bad(&tag, "Invalid system flag."),
                    }
                }
                let data = match message {
                    imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => {
                        l.data().to_vec()
                    }
                    imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => {
                        l.data.to_vec()
                    }
                };
                if data.len() > self.cfg.append_limit {
                    return self.tagged(&tag, "NO", "[TOOBIG] Message too large.");
                }
                let internal_date = date.map(|d| {
                    let d: &DateTime<FixedOffset> = d.as_ref();
                    d.timestamp()
                });
                self.request(
                    Request::Append {
                        mailbox: name.clone(),
                        flags: fl,
                        internal_date,
                        message: data,
                    },
                    Then::Append { tag, mailbox: name },
                );
            }
            // RFC 4978: after the tagged OK both directions are deflated.
            C::Compress { .. } => {
                if self.compressed {
                    self.tagged(
                        &tag,
                        "NO",
                        "[COMPRESSIONACTIVE] Compression already active.",
                    );
                } else {
                    self.tagged(&tag, "OK", "DEFLATE active");
                    self.compressed = true;
                    self.out.push_back(Action::Compress);
                }
            }
            // RFC 9208: one quota root, "", for all of the user's folders
            // (Maildir++ keeps one maildirsize per user).
            C::GetQuotaRoot { mailbox } => {
                let name = mailbox_str(&mailbox);
                if let Some(e) = self.check_name(&name) {
                    return self.tagged(&tag, "NO", &format!("[NONEXISTENT] {}", e.text()));
                }
                self.request(
                    Request::Quota,
                    Then::Quota {
                        tag,
                        mailbox: Some(name),
                    },
                );
            }
            C::GetQuota { root } => {
                if !root.as_ref().is_empty() {
                    return self.tagged(&tag, "NO", "[NONEXISTENT] No such quota root.");
                }
                self.request(Request::Quota, Then::Quota { tag, mailbox: None });
            }
            C::SetQuota { .. } => self.tagged(
                &tag,
                "NO",
                "[NOPERM] Quota limits are set by the administrator (maildirsize).",
            ),
            C::Idle => {
                self.write(b"+ idling\r\n");
                self.idle_tag = Some(tag);
                self.out.push_back(Action::Idle);
            }
            _ if !selected => self.bad(&tag, "No mailbox selected."),
            C::Unselect => {
                self.state = State::Authenticated;
                self.tagged(&tag, "OK", "Unselect completed.");
            }
            C::Close => self.expunge(tag, None, true),
            C::Expunge => self.expunge(tag, None, false),
            C::ExpungeUid { sequence_set } => self.expunge(tag, Some(sequence_set), false),
            C::Search {
                criteria,
                uid,
                charset,
            } => {
                if let Some(cs) = charset {
                    let cs = cs.as_ref().to_ascii_uppercase();
                    if cs != "UTF-8" && cs != "US-ASCII" {
                        return self.tagged(
                            &tag,
                            "NO",
                            "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset.",
                        );
                    }
                }
                let v = criteria.into_inner();
                let key = if v.len() == 1 {
                    v.into_iter().next().unwrap_or(SearchKey::All)
                } else {
                    match imap_codec::imap_types::core::Vec1::try_from(v) {
                        Ok(v) => SearchKey::And(v),
                        Err(_) => SearchKey::All,
                    }
                };
                self.search(
                    tag,
                    uid,
                    imap_codec::imap_types::IntoStatic::into_static(key),
                );
            }
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => self.fetch(tag, sequence_set, macro_or_item_names, uid, modifiers),
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged_since = modifiers
                    .iter()
                    .map(|m| match m {
                        StoreModifier::UnchangedSince(n) => *n,
                    })
                    .next();
                self.store(
                    tag,
                    sequence_set,
                    (kind, response),
                    flags,
                    uid,
                    unchanged_since,
                )
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(tag, sequence_set, mailbox_str(&mailbox), uid, false),
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(tag, sequence_set, mailbox_str(&mailbox), uid, true),
            _ => self.bad(
                &tag,
                "Error in IMAP command received by server: Unknown command.",
            ),
        }
    }

    fn check_name(&self, name: &str) -> Option<names::BadName> {
        if name == "INBOX" {
            return None;
        }
        names::validate(name).err()
    }

    fn authenticate(&mut self, tag: String, method: AuthMethod, user: String, password: Vec<u8>) {
        self.last_method = Some(method);
        self.out.push_back(Action::Authenticate(Credentials {
            method,
            user,
            password,
        }));
        self.wait = Some(Wait::Auth { tag });
    }

    /// RFC 4616: `authzid NUL authcid NUL passwd`, base64 (already decoded
    /// when it came as the SASL-IR initial response).
    fn sasl_plain(&mut self, tag: String, data: &[u8], b64: bool) {
        let decoded;
        let data = if b64 {
            match base64::engine::general_purpose::STANDARD.decode(data.trim_ascii()) {
                Ok(d) => {
                    decoded = d;
                    &decoded[..]
                }
                Err(_) => return self.bad(&tag, "Invalid base64 data in AUTHENTICATE response."),
            }
        } else {
            data
        };
        let parts: Vec<&[u8]> = data.splitn(3, |&b| b == 0).collect();
        if parts.len() != 3 || parts[1].is_empty() {
            self.last_method = Some(AuthMethod::Plain);
            return self.fail_auth(&tag);
        }
        let (authz, user, pass) = (parts[0], parts[1], parts[2]);
        if !authz.is_empty() && authz != user {
            // No master users: an authorization identity other than the
            // user is refused.
            self.last_method = Some(AuthMethod::Plain);
            return self.fail_auth(&tag);
        }
        self.authenticate(
            tag,
            AuthMethod::Plain,
            String::from_utf8_lossy(user).into_owned(),
            pass.to_vec(),
        );
    }

    fn fail_auth(&mut self, tag: &str) {
        self.auth_failures += 1;
        self.tagged(tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
        if self.auth_failures >= self.cfg.max_auth_failures {
            self.write(b"* BYE Too many authentication failures.\r\n");
            self.close();
        }
    }

    /// The driver's verdict on the last [`Action::Authenticate`].
    pub fn auth_result(&mut self, user: &str, outcome: AuthOutcome) {
        let Some(Wait::Auth { tag }) = self.wait.take() else {
            return;
        };
        match outcome {
            AuthOutcome::Success => {
                self.user = Some(user.to_string());
                self.state = State::Authenticated;
                let text = format!("[CAPABILITY {}] Logged in", self.capabilities());
                self.tagged(&tag, "OK", &text);
            }
            AuthOutcome::Failure => self.fail_auth(&tag),
            AuthOutcome::TemporaryFailure => self.tagged(
                &tag,
                "NO",
                "[UNAVAILABLE] Temporary authentication failure.",
            ),
        }
    }

    /// The TLS handshake after STARTTLS succeeded.
    pub fn tls_established(&mut self) {
        if matches!(self.wait, Some(Wait::Tls)) {
            self.wait = None;
        }
        self.cfg.tls_active = true;
        self.framer.clear();
    }

    /// The driver saw the selected mailbox change (new mail, another
    /// session's flags or expunges) while the client idles.
    pub fn mailbox_changed(&mut self) {
        if self.idle_tag.is_some()
            && self.wait.is_none()
            && matches!(self.state, State::Selected(_))
        {
            self.refresh(None, "");
        }
    }

    /// Lines of a SASL exchange, consumed before `step` parses commands.
    fn sasl_input(&mut self) -> bool {
        let Some(Wait::Sasl { .. }) = &self.wait else {
            return false;
        };
        let line = match self.framer.next_line(self.cfg.max_line) {
            None => return false,
            Some(l) => l,
        };
        let Some(Wait::Sasl { tag, stage, user }) = self.wait.take() else {
            return false;
        };
        let line = match line {
            Ok(l) => l,
            Err(()) => {
                self.bad(&tag, "Authentication response too long.");
                return true;
            }
        };
        if line == b"*" {
            self.bad(&tag, "Authentication aborted by client.");
            return true;
        }
        match stage {
            SaslStage::PlainResponse => self.sasl_plain(tag, &line, true),
            SaslStage::LoginUser | SaslStage::LoginPassword => {
                let Ok(v) = base64::engine::general_purpose::STANDARD.decode(line.trim_ascii())
                else {
                    self.bad(&tag, "Invalid base64 data in AUTHENTICATE response.");
                    return true;
                };
                if stage == SaslStage::LoginUser {
                    self.write(b"+ UGFzc3dvcmQ6\r\n");
                    self.wait = Some(Wait::Sasl {
                        tag,
                        stage: SaslStage::LoginPassword,
                        user: String::from_utf8_lossy(&v).into_owned(),
                    });
                } else {
                    self.authenticate(tag, AuthMethod::Login, user, v);
                }
            }
        }
        true
    }

    fn refresh(&mut self, tag: Option<String>, text: &str) {
        let Some(name) = self.selected_mailbox().map(str::to_string) else {
            return;
        };
        let claim = matches!(&self.state, State::Selected(s) if !s.read_only);
        self.request(
            Request::Open {
                name,
                claim_recent: claim,
            },
            Then::Refresh {
                tag,
                text: text.to_string(),
            },
        );
    }

    fn select(&mut self, tag: String, name: String, read_only: bool, params: Vec<SelectParameter>) {
        let mut qresync = None;
        for p in params {
            match p {
                // RFC 7162 section 3.1.8: SELECT (CONDSTORE) enables it.
                SelectParameter::CondStore => {
                    if !self.condstore {
                        self.condstore = true;
                    }
                }
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    // Section 3.2.5: only after ENABLE QRESYNC.
                    if !self.qresync {
                        return self.bad(&tag, "QRESYNC not enabled.");
                    }
                    qresync = Some(Qresync {
                        uidvalidity: uid_validity.get(),
                        modseq: mod_sequence_value.get(),
                        known_uids,
                    });
                }
            }
        }
        // RFC 7162 section 3.2.11: with QRESYNC the end of the previous
        // selection is announced, since its expunges are no longer sent.
        if self.qresync && matches!(self.state, State::Selected(_)) {
            self.write(b"* OK [CLOSED] Previous mailbox closed.\r\n");
        }
        // RFC 3501 section 6.3.1: a failed SELECT leaves no mailbox
        // selected.
        self.state = State::Authenticated;
        if let Some(e) = self.check_name(&name) {
            return self.tagged(&tag, "NO", &format!("[NONEXISTENT] {}", e.text()));
        }
        self.request(
            Request::Open {
                name: name.clone(),
                claim_recent: !read_only,
            },
            Then::Select {
                tag,
                name,
                read_only,
                qresync,
            },
        );
    }

    /// RFC 7162 section 3.1: a CONDSTORE-enabling command while a mailbox
    /// is selected is told the mailbox's HIGHESTMODSEQ.
    fn condstore_enabled_now(&mut self) {
        if let State::Selected(sel) = &self.state {
            let line = format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", sel.highest_modseq);
            self.write(line.as_bytes());
        }
    }

    fn list(&mut self, tag: String, lsub: bool, reference: String, pattern: String) {
        if pattern.is_empty() && !lsub {
            self.write(format!("* LIST (\\Noselect) \"{DELIMITER}\" \"\"\r\n").as_bytes());
            return self.tagged(&tag, "OK", "List completed.");
        }
        let mut full = if reference.is_empty()
            || reference.ends_with(DELIMITER)
            || pattern.starts_with(DELIMITER)
        {
            format!("{reference}{pattern}")
        } else {
            format!("{reference}{DELIMITER}{pattern}")
        };
        full = names::canonical(&full);
        self.request(
            Request::ListMailboxes,
            Then::List {
                tag,
                lsub,
                pattern: full,
            },
        );
    }

    fn list_reply(&mut self, tag: String, lsub: bool, pattern: String, boxes: Vec<MailboxEntry>) {
        let mut lines = Vec::new();
        if lsub {
            self.lsub_lines(&pattern, &boxes, &mut lines);
            self.write(&lines);
            return self.tagged(&tag, "OK", "Lsub completed.");
        }
        let existing: Vec<&MailboxEntry> = boxes.iter().filter(|b| b.exists).collect();
        // Parents implied by deeper names (Maildir++ `.a.b` without `.a`).
        let mut all: BTreeSet<String> = existing.iter().map(|b| b.name.clone()).collect();
        for b in &existing {
            let mut n = b.name.as_str();
            while let Some((parent, _)) = n.rsplit_once(DELIMITER) {
                all.insert(parent.to_string());
                n = parent;
            }
        }
        let has_children = |n: &str| {
            let prefix = format!("{n}{DELIMITER}");
            all.range(prefix.clone()..)
                .next()
                .is_some_and(|x| x.starts_with(&prefix))
        };
        for name in &all {
            if !names::matches(&pattern, name) {
                continue;
            }
            let entry = existing.iter().find(|b| &b.name == name);
            let mut attrs: Vec<&str> = Vec::new();
            if entry.is_none() {
                attrs.push("\\Noselect");
            }
            attrs.push(if has_children(name) {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if let Some(su) = entry.and_then(|e| e.special_use) {
                attrs.push(su.attribute());
            }
            lines.extend(format!("* LIST ({}) \"{DELIMITER}\" ", attrs.join(" ")).as_bytes());
            lines.extend(mailbox_name(name));
            lines.extend(b"\r\n");
        }
        self.write(&lines);
        self.tagged(&tag, "OK", "List completed.");
    }

    /// RFC 5258 LIST with selection and return options, several patterns;
    /// RFC 6154 SPECIAL-USE selection; RFC 5819 STATUS.
    fn list_ext_reply(&mut self, tag: String, ext: ListExt, boxes: Vec<MailboxEntry>) {
        let patterns: Vec<String> = ext
            .patterns
            .iter()
            .map(|p| {
                let full = if ext.reference.is_empty()
                    || ext.reference.ends_with(DELIMITER)
                    || p.starts_with(DELIMITER)
                {
                    format!("{}{p}", ext.reference)
                } else {
                    format!("{}{DELIMITER}{p}", ext.reference)
                };
                names::canonical(&full)
            })
            .collect();
        let matches_any = |n: &str| patterns.iter().any(|p| names::matches(p, n));
        let existing: std::collections::BTreeMap<&str, &MailboxEntry> = boxes
            .iter()
            .filter(|b| b.exists)
            .map(|b| (b.name.as_str(), b))
            .collect();
        let subscribed: BTreeSet<&str> = boxes
            .iter()
            .filter(|b| b.subscribed)
            .map(|b| b.name.as_str())
            .collect();
        // Every name that exists or is implied as a parent of one that
        // exists or is subscribed.
        let mut all: BTreeSet<String> = BTreeSet::new();
        for n in existing.keys().chain(subscribed.iter()) {
            all.insert(n.to_string());
            let mut n = *n;
            while let Some((parent, _)) = n.rsplit_once(DELIMITER) {
                all.insert(parent.to_string());
                n = parent;
            }
        }
        let has_children = |n: &str| {
            let prefix = format!("{n}{DELIMITER}");
            existing
                .range(prefix.as_str()..)
                .next()
                .is_some_and(|(x, _)| x.starts_with(&prefix))
                || all
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|x| x.starts_with(&prefix) && existing.contains_key(x.as_str()))
        };
        let mut lines = Vec::new();
        let mut listed = Vec::new();
        for name in &all {
            let n = name.as_str();
            if !matches_any(n) {
                continue;
            }
            let entry = existing.get(n);
            let is_sub = subscribed.contains(n);
            // RECURSIVEMATCH: a subscribed descendant the patterns do not
            // list themselves is reported as CHILDINFO (RFC 5258 3.5).
            let childinfo = ext.recursive && {
                let prefix = format!("{n}{DELIMITER}");
                subscribed
                    .iter()
                    .any(|s| s.starts_with(&prefix) && !matches_any(s))
            };
            if ext.subscribed && !is_sub && !childinfo {
                continue;
            }
            if ext.special_use && entry.and_then(|e| e.special_use).is_none() {
                continue;
            }
            if !ext.subscribed && entry.is_none() && !has_children(n) {
                // Only subscribed: shown by LIST (SUBSCRIBED) alone.
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            if entry.is_none() {
                attrs.push(if ext.subscribed {
                    "\\NonExistent"
                } else {
                    "\\Noselect"
                });
            }
            attrs.push(if has_children(n) {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if is_sub && (ext.subscribed || ext.ret_subscribed) {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = entry.and_then(|e| e.special_use) {
                attrs.push(su.attribute());
            }
            lines.extend(format!("* LIST ({}) \"{DELIMITER}\" ", attrs.join(" ")).as_bytes());
            lines.extend(mailbox_name(n));
            if childinfo {
                lines.extend(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            lines.extend(b"\r\n");
            if entry.is_some() {
                listed.push(name.clone());
            }
        }
        self.write(&lines);
        match ext.status {
            Some(items) => self.list_status_next(tag, items, listed.into()),
            None => self.tagged(&tag, "OK", "List completed."),
        }
    }

    fn list_status_next(&mut self, tag: String, items: Vec<String>, queue: VecDeque<String>) {
        match queue.front() {
            None => self.tagged(&tag, "OK", "List completed."),
            Some(name) => self.request(
                Request::Open {
                    name: name.clone(),
                    claim_recent: false,
                },
                Then::ListStatus { tag, items, queue },
            ),
        }
    }

    /// RFC 3501 section 6.3.9: subscribed names that match, and, when `%`
    /// hides a subscribed name, its matching parent as `\Noselect`.
    fn lsub_lines(&self, pattern: &str, boxes: &[MailboxEntry], lines: &mut Vec<u8>) {
        let subscribed: BTreeSet<&str> = boxes
            .iter()
            .filter(|b| b.subscribed)
            .map(|b| b.name.as_str())
            .collect();
        let mut out: std::collections::BTreeMap<&str, bool> = Default::default();
        for s in &subscribed {
            if names::matches(pattern, s) {
                out.insert(s, false);
                continue;
            }
            let mut n = *s;
            while let Some((parent, _)) = n.rsplit_once(DELIMITER) {
                if names::matches(pattern, parent) && !subscribed.contains(parent) {
                    out.entry(parent).or_insert(true);
                }
                n = parent;
            }
        }
        for (name, noselect) in out {
            let attrs = if noselect { "\\Noselect" } else { "" };
            lines.extend(format!("* LSUB ({attrs}) \"{DELIMITER}\" ").as_bytes());
            lines.extend(mailbox_name(name));
            lines.extend(b"\r\n");
        }
    }

    /// Indices (0-based) of the messages a set names; `Err` for sequence
    /// numbers beyond the mailbox (RFC 3501 section 9: BAD).
    fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, ()> {
        let State::Selected(sel) = &self.state else {
            return Ok(Vec::new());
        };
        let n = sel.msgs.len() as u32;
        if uid {
            let star = sel.max_uid();
            return Ok(sel
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| search::in_set(set, m.uid, star))
                .map(|(i, _)| i)
                .collect());
        }
        for s in set.0.as_ref() {
            let vals: Vec<&SeqOrUid> = match s {
                Sequence::Single(a) => vec![a],
                Sequence::Range(a, b) => vec![a, b],
            };
            for v in vals {
                match v {
                    SeqOrUid::Value(x) if x.get() > n => return Err(()),
                    SeqOrUid::Asterisk if n == 0 => return Err(()),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        for s in set.0.as_ref() {
            let val = |v: &SeqOrUid| match v {
                SeqOrUid::Value(x) => x.get(),
                SeqOrUid::Asterisk => n,
            };
            let (a, b) = match s {
                Sequence::Single(a) => (val(a), val(a)),
                Sequence::Range(a, b) => (val(a).min(val(b)), val(a).max(val(b))),
            };
            out.extend((a..=b).map(|x| x as usize - 1));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn fetch(
        &mut self,
        tag: String,
        set: SequenceSet,
        what: MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: Vec<FetchModifier>,
    ) {
        let Ok(mut idx) = self.resolve(&set, uid) else {
            return self.bad(&tag, "Error in IMAP command FETCH: Invalid messageset.");
        };
        let mut changed_since = None;
        let mut vanished = false;
        for m in &modifiers {
            match m {
                FetchModifier::ChangedSince(n) => {
                    changed_since = Some(if self.changedsince_zero { 0 } else { n.get() })
                }
                FetchModifier::Vanished => vanished = true,
            }
        }
        // RFC 7162 section 3.2.6: VANISHED only in UID FETCH, with
        // CHANGEDSINCE, after ENABLE QRESYNC.
        if vanished && (!uid || !self.qresync || changed_since.is_none()) {
            return self.bad(
                &tag,
                "Error in IMAP command FETCH: VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC.",
            );
        }
        let mut items = match what {
            MacroOrMessageDataItemNames::Macro(Macro::Fast) => {
                vec![Item::Flags, Item::InternalDate, Item::Size]
            }
            MacroOrMessageDataItemNames::Macro(Macro::All) => {
                vec![Item::Flags, Item::InternalDate, Item::Size, Item::Envelope]
            }
            MacroOrMessageDataItemNames::Macro(Macro::Full) => {
                vec![
                    Item::Flags,
                    Item::InternalDate,
                    Item::Size,
                    Item::Envelope,
                    Item::Body,
                ]
            }
            MacroOrMessageDataItemNames::Macro(_) => {
                vec![Item::Flags, Item::InternalDate, Item::Size]
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(v) => {
                let mut items = Vec::new();
                for n in v {
                    items.push(match n {
                        MessageDataItemName::Body => Item::Body,
                        MessageDataItemName::BodyExt {
                            section,
                            partial,
                            peek,
                        } => Item::Section {
                            sec: sec_from_codec(&section),
                            partial: partial.map(|(o, l)| (o, l.get())),
                            peek,
                        },
                        MessageDataItemName::BodyStructure => Item::BodyStructure,
                        MessageDataItemName::Envelope => Item::Envelope,
                        MessageDataItemName::Flags => Item::Flags,
                        MessageDataItemName::InternalDate => Item::InternalDate,
                        MessageDataItemName::Rfc822 => Item::Rfc822,
                        MessageDataItemName::Rfc822Header => Item::Rfc822Header,
                        MessageDataItemName::Rfc822Size => Item::Size,
                        MessageDataItemName::Rfc822Text => Item::Rfc822Text,
                        MessageDataItemName::Uid => Item::Uid,
                        MessageDataItemName::ModSeq => Item::ModSeq,
                        _ => {
                            return self.bad(&tag, "Error in IMAP command FETCH: Unsupported item.")
                        }
                    });
                }
                items
            }
        };
        // RFC 7162 section 3.1.4: CHANGEDSINCE keeps the messages changed
        // after it and implies MODSEQ; a MODSEQ item enables CONDSTORE.
        if (changed_since.is_some() || items.iter().any(|i| matches!(i, Item::ModSeq)))
            && !self.condstore
        {
            self.condstore = true;
            self.condstore_enabled_now();
        }
        // Section 3.1: with CONDSTORE on, FETCH FLAGS carries MODSEQ.
        let want_modseq = changed_since.is_some()
            || (self.condstore && items.iter().any(|i| matches!(i, Item::Flags)));
        if want_modseq && !items.iter().any(|i| matches!(i, Item::ModSeq)) {
            items.push(Item::ModSeq);
        }
        // RFC 3501 section 6.4.8: UID FETCH always returns UID.
        if uid && !items.iter().any(|i| matches!(i, Item::Uid)) {
            items.insert(0, Item::Uid);
        }
        if let (Some(since), State::Selected(sel)) = (changed_since, &self.state) {
            if vanished {
                let limit = sel.uidnext.saturating_sub(1).max(sel.max_uid());
                let gone = vanished_uids(&set, sel.max_uid(), limit, &sel.msgs);
                if !gone.is_empty() {
                    let line = format!("* VANISHED (EARLIER) {gone}\r\n");
                    self.write(line.as_bytes());
                }
            }
            let State::Selected(sel) = &self.state else {
                return;
            };
            idx.retain(|&i| sel.msgs[i].modseq > since);
        }
        let content = items.iter().any(Item::needs_content);
        let meta = items.iter().any(Item::needs_meta);
        if !meta || idx.is_empty() {
            let lines = self.fetch_lines(&items, &idx, &[]);
            return self.finish_fetch(tag, lines, &items, &idx);
        }
        self.fetch_chunk(tag, items, idx, 0, content);
    }

    /// Asks for the data of the next chunk of a FETCH.
    fn fetch_chunk(
        &mut self,
        tag: String,
        items: Vec<Item>,
        idx: Vec<usize>,
        done: usize,
        content: bool,
    ) {
        let State::Selected(sel) = &self.state else {
            return;
        };
        let end = (done + CHUNK).min(idx.len());
        let uids = idx[done..end].iter().map(|&i| sel.msgs[i].uid).collect();
        let mailbox = sel.name.clone();
        self.request(
            Request::Fetch {
                mailbox,
                uids,
                content,
            },
            Then::Fetch {
                tag,
                items,
                idx,
                done,
                content,
            },
        );
    }

    /// Sets \Seen where the items demand it, then writes the lines.
    /// Sets \Seen where the items demand it (RFC 3501 section 6.4.5),
    /// then writes the lines.
    fn finish_fetch(&mut self, tag: String, lines: Vec<u8>, items: &[Item], idx: &[usize]) {
        let State::Selected(sel) = &self.state else {
            return;
        };
        let uids: Vec<u32> = idx
            .iter()
            .map(|&i| &sel.msgs[i])
            .filter(|m| !m.flags.contains(&Flag::Seen))
            .map(|m| m.uid)
            .collect();
        if sel.read_only || !items.iter().any(Item::sets_seen) || uids.is_empty() {
            self.write(&lines);
            return self.tagged(&tag, "OK", "Fetch completed.");
        }
        let mailbox = sel.name.clone();
        self.request(
            Request::Store {
                mailbox,
                uids,
                op: FlagOp::Add,
                flags: [Flag::Seen].into_iter().collect(),
                unchanged_since: None,
            },
            Then::Stored {
                tag,
                lines,
                echo: Echo::Changed,
                text: "Fetch completed.".into(),
                uid: false,
            },
        );
    }

    fn fetch_lines(&self, items: &[Item], idx: &[usize], data: &[MessageData]) -> Vec<u8> {
        let State::Selected(sel) = &self.state else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for &i in idx {
            let m = &sel.msgs[i];
            let d = data.iter().find(|d| d.uid == m.uid);
            if items.iter().any(Item::needs_meta) && d.is_none() {
                // Expunged by another session meanwhile: nothing to show.
                continue;
            }
            let raw = d.and_then(|d| d.content.as_deref()).unwrap_or_default();
            let parsed = if items.iter().any(Item::needs_content) {
                Some(ParsedMessage::parse(raw))
            } else {
                None
            };
            out.extend(format!("* {} FETCH (", i + 1).as_bytes());
            for (k, it) in items.iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                match it {
                    Item::Uid => out.extend(format!("UID {}", m.uid).as_bytes()),
                    Item::ModSeq => out.extend(format!("MODSEQ ({})", m.modseq).as_bytes()),
                    Item::Flags => {
                        out.extend(format!("FLAGS {}", flags_text(&m.flags, m.recent)).as_bytes())
                    }
                    Item::InternalDate => out.extend(
                        format!(
                            "INTERNALDATE {}",
                            imap_date(d.map(|d| d.internal_date).unwrap_or(0))
                        )
                        .as_bytes(),
                    ),
                    Item::Size => out.extend(
                        format!("RFC822.SIZE {}", d.map(|d| d.size).unwrap_or(0)).as_bytes(),
                    ),
                    Item::Envelope => {
                        out.extend(b"ENVELOPE ");
                        out.extend(
                            parsed
                                .as_ref()
                                .map(|p| p.envelope.clone())
                                .unwrap_or_default(),
                        );
                    }
                    Item::Body | Item::BodyStructure => {
                        let ext = matches!(it, Item::BodyStructure);
                        out.extend(if ext {
                            &b"BODYSTRUCTURE "[..]
                        } else {
                            &b"BODY "[..]
                        });
                        if let Some(p) = &parsed {
                            p.root.structure(ext, &mut out);
                        }
                    }
                    Item::Rfc822 => {
                        out.extend(b"RFC822 ");
                        out.extend(literal(raw));
                    }
                    Item::Rfc822Header => {
                        out.extend(b"RFC822.HEADER ");
                        let h = parsed
                            .as_ref()
                            .map(|p| section_bytes(p, raw, &Sec::Header(vec![])));
                        out.extend(literal(&h.unwrap_or_default()));
                    }
                    Item::Rfc822Text => {
                        out.extend(b"RFC822.TEXT ");
                        let h = parsed
                            .as_ref()
                            .map(|p| section_bytes(p, raw, &Sec::Text(vec![])));
                        out.extend(literal(&h.unwrap_or_default()));
                    }
                    Item::Section { sec, partial, .. } => {
                        let bytes = parsed
                            .as_ref()
                            .map(|p| section_bytes(p, raw, sec))
                            .unwrap_or_default();
                        out.extend(b"BODY[");
                        out.extend(sec_text(sec));
                        out.push(b']');
                        match partial {
                            Some((o, l)) => {
                                out.extend(format!("<{o}> ").as_bytes());
                                let a = (*o as usize).min(bytes.len());
                                let b = a.saturating_add(*l as usize).min(bytes.len());
                                out.extend(literal(&bytes[a..b]));
                            }
                            None => {
                                out.push(b' ');
                                out.extend(literal(&bytes));
                            }
                        }
                    }
                }
            }
            out.extend(b")\r\n");
        }
        out
    }

    fn store(
        &mut self,
        tag: String,
        set: SequenceSet,
        (kind, response): (StoreType, StoreResponse),
        flags: Vec<CodecFlag<'_>>,
        uid: bool,
        unchanged_since: Option<u64>,
    ) {
        let Ok(idx) = self.resolve(&set, uid) else {
            return self.bad(&tag, "Error in IMAP command STORE: Invalid messageset.");
        };
        // RFC 7162 section 3.1: UNCHANGEDSINCE enables CONDSTORE.
        if unchanged_since.is_some() && !self.condstore {
            self.condstore = true;
            self.condstore_enabled_now();
        }
        let mut fl = Flags::new();
        for f in &flags {
            match flag_from_codec(f) {
                Some(f) => fl.insert(f),
                None => return self.bad(&tag, "Error in IMAP command STORE: Invalid system flag."),
            }
        }
        let State::Selected(sel) = &self.state else {
            return;
        };
        if sel.read_only {
            return self.tagged(&tag, "NO", "[READ-ONLY] Mailbox is read-only.");
        }
        if idx.is_empty() {
            return self.tagged(&tag, "OK", "Store completed.");
        }
        let uids = idx.iter().map(|&i| sel.msgs[i].uid).collect();
        let op = match kind {
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
            StoreType::Replace => FlagOp::Replace,
        };
        // The store applies the change to the flags it holds, not to this
        // session's view, so concurrent STOREs of two sessions combine.
        let mailbox = sel.name.clone();
        let echo = match response {
            StoreResponse::Silent => Echo::Nothing,
            StoreResponse::Answer if uid => Echo::AllWithUid,
            StoreResponse::Answer => Echo::All,
        };
        self.request(
            Request::Store {
                mailbox,
                uids,
                op,
                flags: fl,
                unchanged_since,
            },
            Then::Stored {
                tag,
                lines: Vec::new(),
                echo,
                text: "Store completed.".into(),
                uid,
            },
        );
    }

    /// Takes the store's flags after a STORE into the view and writes the
    /// FETCH responses `echo` asks for.
    fn stored(
        &mut self,
        tag: String,
        mut lines: Vec<u8>,
        echo: Echo,
        text: String,
        uid: bool,
        (flags, modified): (Vec<(u32, Flags, u64)>, Vec<u32>),
    ) {
        let mut announce = String::new();
        let condstore = self.condstore;
        let mut modified_code = String::new();
        if let State::Selected(sel) = &mut self.state {
            if flags
                .iter()
                .fold(false, |n, (_, f, _)| sel.note_keywords(f) | n)
            {
                announce = sel.flags_responses();
            }
            for (u, f, modseq) in flags {
                let Some(i) = sel.seq_of(u) else { continue };
                let m = &mut sel.msgs[i];
                let changed = m.flags != f || m.modseq != modseq;
                m.flags = f;
                m.modseq = modseq;
                sel.highest_modseq = sel.highest_modseq.max(modseq);
                if modified.contains(&u) {
                    // Left alone (UNCHANGEDSINCE): reported in MODIFIED.
                    continue;
                }
                let show = match echo {
                    Echo::Nothing => false,
                    Echo::Changed => changed,
                    Echo::All | Echo::AllWithUid => true,
                };
                let uidpart = if condstore || matches!(echo, Echo::Changed | Echo::AllWithUid) {
                    format!("UID {} ", m.uid)
                } else {
                    String::new()
                };
                if show {
                    let ms = if condstore {
                        format!(" MODSEQ ({})", m.modseq)
                    } else {
                        String::new()
                    };
                    lines.extend(
                        format!(
                            "* {} FETCH ({uidpart}FLAGS {}{ms})\r\n",
                            i + 1,
                            flags_text(&m.flags, m.recent)
                        )
                        .as_bytes(),
                    );
                } else if condstore && changed {
                    // RFC 7162 section 3.1.3: with .SILENT the new MODSEQ
                    // of each changed message is still sent.
                    lines.extend(
                        format!("* {} FETCH ({uidpart}MODSEQ ({}))\r\n", i + 1, m.modseq)
                            .as_bytes(),
                    );
                }
            }
            if !modified.is_empty() {
                let mut nums: Vec<u32> = if uid {
                    modified.clone()
                } else {
                    modified
                        .iter()
                        .filter_map(|&u| sel.seq_of(u).map(|i| i as u32 + 1))
                        .collect()
                };
                nums.sort_unstable();
                modified_code = format!("[MODIFIED {}] ", set_text(&nums));
            }
        }
        self.write(announce.as_bytes());
        self.write(&lines);
        if modified_code.is_empty() {
            self.tagged(&tag, "OK", &text);
        } else {
            self.tagged(
                &tag,
                "OK",
                &format!("{modified_code}Conditional store failed."),
            );
        }
    }

    fn copy(&mut self, tag: String, set: SequenceSet, to: String, uid: bool, moving: bool) {
        let Ok(idx) = self.resolve(&set, uid) else {
            return self.bad(&tag, "Error in IMAP command COPY: Invalid messageset.");
        };
        if let Some(e) = self.check_name(&to) {
            return self.tagged(&tag, "NO", &format!("[TRYCREATE] {}", e.text()));
        }
        let State::Selected(sel) = &self.state else {
            return;
        };
        if moving && sel.read_only {
            return self.tagged(&tag, "NO", "[READ-ONLY] Mailbox is read-only.");
        }
        if idx.is_empty() {
            return self.tagged(&tag, "OK", "No messages found.");
        }
        let uids = idx.iter().map(|&i| sel.msgs[i].uid).collect();
        let from = sel.name.clone();
        let to_name = to.clone();
        self.request(
            Request::Copy {
                from,
                uids,
                to,
                remove_source: moving,
            },
            Then::Copy {
                tag,
                moving,
                to: to_name,
            },
        );
    }

    fn expunge(&mut self, tag: String, set: Option<SequenceSet>, close: bool) {
        let State::Selected(sel) = &self.state else {
            return;
        };
        if sel.read_only {
            if close {
                self.state = State::Authenticated;
                return self.tagged(&tag, "OK", "Close completed.");
            }
            return self.tagged(&tag, "NO", "[READ-ONLY] Mailbox is read-only.");
        }
        let star = sel.max_uid();
        let uids: Vec<u32> = sel
            .msgs
            .iter()
            .filter(|m| m.flags.contains(&Flag::Deleted))
            .filter(|m| set.as_ref().is_none_or(|s| search::in_set(s, m.uid, star)))
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            if close {
                self.state = State::Authenticated;
            }
            let text = if close {
                "Close completed."
            } else {
                "Expunge completed."
            };
            return self.tagged(&tag, "OK", text);
        }
        let mailbox = sel.name.clone();
        self.request(
            Request::Expunge { mailbox, uids },
            Then::Expunge { tag, close },
        );
    }

    fn search(&mut self, tag: String, uid: bool, key: SearchKey<'static>) {
        let ret = self.search_return.take();
        // RFC 7162 section 3.1: SEARCH MODSEQ enables CONDSTORE.
        if search::uses_modseq(&key) && !self.condstore {
            self.condstore = true;
            self.condstore_enabled_now();
        }
        match search::need(&key) {
            Need::Nothing => {
                let found = self.search_matches(uid, &key, 0..self.msg_count(), &[]);
                self.search_done(&tag, uid, &key, ret.as_ref(), &found);
            }
            n => self.search_chunk(tag, uid, (key, ret), 0, n == Need::Content, Vec::new()),
        }
    }

    fn msg_count(&self) -> usize {
        match &self.state {
            State::Selected(sel) => sel.msgs.len(),
            _ => 0,
        }
    }

    fn search_chunk(
        &mut self,
        tag: String,
        uid: bool,
        (key, ret): (SearchKey<'static>, Option<esearch::Return>),
        next: usize,
        content: bool,
        found: Vec<u32>,
    ) {
        let State::Selected(sel) = &self.state else {
            return;
        };
        if next >= sel.msgs.len() {
            return self.search_done(&tag, uid, &key, ret.as_ref(), &found);
        }
        let end = (next + CHUNK).min(sel.msgs.len());
        let uids = sel.msgs[next..end].iter().map(|m| m.uid).collect();
        let mailbox = sel.name.clone();
        self.request(
            Request::Fetch {
                mailbox,
                uids,
                content,
            },
            Then::Search {
                tag,
                uid,
                key,
                ret,
                next,
                content,
                found,
            },
        );
    }

    fn search_done(
        &mut self,
        tag: &str,
        uid: bool,
        key: &SearchKey<'_>,
        ret: Option<&esearch::Return>,
        found: &[u32],
    ) {
        let modseq_of = |n: u32| -> Option<u64> {
            let State::Selected(sel) = &self.state else {
                return None;
            };
            if uid {
                sel.seq_of(n).map(|i| sel.msgs[i].modseq)
            } else {
                sel.msgs.get((n as usize).checked_sub(1)?).map(|m| m.modseq)
            }
        };
        let with_modseq = search::uses_modseq(key);
        let mut out = Vec::new();
        if let Some(ret) = ret {
            // RFC 4731 section 3.1: one ESEARCH response, tagged with the
            // command's tag; RFC 7162 section 3.1.5: MODSEQ is the highest
            // of the messages returned (all of them for ALL and COUNT).
            let modseq = if !with_modseq || found.is_empty() {
                None
            } else if ret.all || ret.count {
                found.iter().filter_map(|&n| modseq_of(n)).max()
            } else {
                let mut v = Vec::new();
                if ret.min {
                    v.extend(found.first().copied());
                }
                if ret.max {
                    v.extend(found.last().copied());
                }
                v.into_iter().filter_map(modseq_of).max()
            };
            out.extend(esearch::response(tag, uid, ret, found, modseq).as_bytes());
        } else {
            out.extend(b"* SEARCH");
            for n in found {
                out.extend(format!(" {n}").as_bytes());
            }
            // RFC 7162 section 3.1.5: a search with MODSEQ that found
            // messages ends with the highest mod-sequence among them.
            if with_modseq {
                if let Some(h) = found.iter().filter_map(|&n| modseq_of(n)).max() {
                    out.extend(format!(" (MODSEQ {h})").as_bytes());
                }
            }
            out.extend(b"\r\n");
        }
        self.write(&out);
        self.tagged(tag, "OK", "Search completed.");
    }

    /// Sequence numbers (or UIDs) of the messages at `range` that match;
    /// `data` holds their dates, sizes and text when the key needs them.
    fn search_matches(
        &self,
        uid: bool,
        key: &SearchKey<'_>,
        range: std::ops::Range<usize>,
        data: &[MessageData],
    ) -> Vec<u32> {
        let State::Selected(sel) = &self.state else {
            return Vec::new();
        };
        let max_seq = sel.msgs.len() as u32;
        let max_uid = sel.max_uid();
        let mut out = Vec::new();
        let mut di = 0;
        for i in range {
            let Some(m) = sel.msgs.get(i) else { break };
            // `data` is in snapshot order with expunged UIDs missing.
            while di < data.len() && data[di].uid < m.uid {
                di += 1;
            }
            let d = data.get(di).filter(|d| d.uid == m.uid);
            let parsed = d
                .and_then(|d| d.content.as_deref())
                .and_then(|c| mail_parser::MessageParser::default().parse(c));
            let meta = crate::store::MessageMeta {
                uid: m.uid,
                flags: m.flags.clone(),
                recent: m.recent,
                modseq: m.modseq,
            };
            let c = Candidate {
                seq: i as u32 + 1,
                meta: &meta,
                data: d,
                parsed: parsed.as_ref(),
                max_seq,
                max_uid,
            };
            if search::matches(key, &c) {
                out.push(if uid { m.uid } else { i as u32 + 1 });
            }
        }
        out
    }

    /// Applies a fresh snapshot of the selected mailbox, writing EXPUNGE,
    /// EXISTS, RECENT and FETCH for what changed (RFC 3501 section 7).
    fn apply_snapshot(&mut self, snap: Snapshot) {
        let State::Selected(sel) = &mut self.state else {
            return;
        };
        let mut out = Vec::new();
        let qresync = self.qresync;
        let condstore = self.condstore;
        let mut vanished = Vec::new();
        let mut kept: Vec<Msg> = Vec::with_capacity(snap.messages.len());
        let mut removed = 0usize;
        let mut j = 0usize;
        let mut flag_changes = Vec::new();
        let new = &snap.messages;
        for (i, old) in sel.msgs.iter().enumerate() {
            while j < new.len() && new[j].uid < old.uid {
                j += 1;
            }
            if j < new.len() && new[j].uid == old.uid {
                let mut m = old.clone();
                if new[j].flags != old.flags {
                    m.flags = new[j].flags.clone();
                    flag_changes.push(kept.len());
                }
                m.modseq = new[j].modseq;
                kept.push(m);
                j += 1;
            } else if qresync {
                // RFC 7162 section 3.2.10: VANISHED replaces EXPUNGE.
                vanished.push(old.uid);
            } else {
                out.extend(format!("* {} EXPUNGE\r\n", i + 1 - removed).as_bytes());
                removed += 1;
            }
        }
        if !vanished.is_empty() {
            out.extend(format!("* VANISHED {}\r\n", set_text(&vanished)).as_bytes());
        }
        let max = kept.last().map(|m| m.uid).unwrap_or(0);
        let before = kept.len();
        for m in new.iter().filter(|m| m.uid > max) {
            kept.push(Msg {
                uid: m.uid,
                flags: m.flags.clone(),
                recent: m.recent,
                modseq: m.modseq,
            });
        }
        let mut fresh = false;
        for m in &kept {
            fresh |= sel.note_keywords(&m.flags);
        }
        if fresh {
            let flags = sel.flags_responses();
            out.extend(flags.as_bytes());
        }
        sel.msgs = kept;
        sel.uidnext = snap.uidnext.max(sel.max_uid() + 1);
        sel.highest_modseq = sel.highest_modseq.max(snap.highest_modseq);
        if sel.msgs.len() != before {
            out.extend(format!("* {} EXISTS\r\n", sel.msgs.len()).as_bytes());
            let recent = sel.msgs.iter().filter(|m| m.recent).count();
            out.extend(format!("* {recent} RECENT\r\n").as_bytes());
        }
        for k in flag_changes {
            let m = &sel.msgs[k];
            let ms = if condstore {
                format!(" MODSEQ ({})", m.modseq)
            } else {
                String::new()
            };
            out.extend(
                format!(
                    "* {} FETCH (UID {} FLAGS {}{ms})\r\n",
                    k + 1,
                    m.uid,
                    flags_text(&m.flags, m.recent)
                )
                .as_bytes(),
            );
        }
        self.write(&out);
    }

    fn store_failed(&mut self, tag: &str, e: &StoreError) {
        let code = match e {
            StoreError::NoSuchMailbox => "[NONEXISTENT] ",
            StoreError::AlreadyExists => "[ALREADYEXISTS] ",
            StoreError::Refused(_) => "[CANNOT] ",
            StoreError::OverQuota => "[OVERQUOTA] ",
            StoreError::Io(_) => "[SERVERBUG] ",
        };
        let text = match e {
            StoreError::Io(_) => {
                "Internal error occurred. Refer to server log for more information.".to_string()
            }
            e => e.to_string(),
        };
        self.tagged(tag, "NO", &format!("{code}{text}"));
    }

    /// The driver's answer to the last [`Action::Store`].
    pub fn store_reply(&mut self, reply: Reply) {
        let Some(Wait::Store(then)) = self.wait.take() else {
            return;
        };
        match (then, reply) {
            (Then::Ok { tag, .. }, Reply::Failed(e))
            | (Then::List { tag, .. }, Reply::Failed(e))
            | (Then::Status { tag, .. }, Reply::Failed(e))
            | (Then::Fetch { tag, .. }, Reply::Failed(e))
            | (Then::Search { tag, .. }, Reply::Failed(e))
            | (Then::Expunge { tag, .. }, Reply::Failed(e))
            | (Then::Stored { tag, .. }, Reply::Failed(e))
            | (Then::Quota { tag, .. }, Reply::Failed(e))
            | (Then::ListExt { tag, .. }, Reply::Failed(e)) => self.store_failed(&tag, &e),
            (Then::ListExt { tag, ext }, Reply::Mailboxes(b)) => self.list_ext_reply(tag, ext, b),
            (Then::ListStatus { tag, items, queue }, reply) => {
                // A mailbox removed meanwhile is skipped (RFC 5819 section
                // 2: STATUS is returned for the mailboxes that can give it).
                if let (Some(name), Reply::Snapshot(s)) = (queue.front(), &reply) {
                    let names: Vec<&str> = items.iter().map(String::as_str).collect();
                    let line = status_line(name, &names, s);
                    self.write(&line);
                }
                let mut queue = queue;
                queue.pop_front();
                self.list_status_next(tag, items, queue);
            }
            (Then::Quota { tag, mailbox }, Reply::Quota(q)) => {
                let q = q.filter(|q| q.bytes_limit.is_some() || q.messages_limit.is_some());
                let mut out = Vec::new();
                if let Some(m) = &mailbox {
                    out.extend(b"* QUOTAROOT ");
                    out.extend(mailbox_name(m));
                    if q.is_some() {
                        out.extend(b" \"\"");
                    }
                    out.extend(b"\r\n");
                }
                match q {
                    Some(q) => {
                        // STORAGE counts units of 1024 octets (RFC 9208
                        // section 5.1).
                        let mut res = Vec::new();
                        if let Some(l) = q.bytes_limit {
                            res.push(format!("STORAGE {} {}", q.bytes.div_ceil(1024), l / 1024));
                        }
                        if let Some(l) = q.messages_limit {
                            res.push(format!("MESSAGE {} {l}", q.messages));
                        }
                        out.extend(format!("* QUOTA \"\" ({})\r\n", res.join(" ")).as_bytes());
                        self.write(&out);
                        self.tagged(&tag, "OK", "Getquota completed.");
                    }
                    None if mailbox.is_some() => {
                        self.write(&out);
                        self.tagged(&tag, "OK", "Getquotaroot completed.");
                    }
                    None => self.tagged(&tag, "NO", "[NONEXISTENT] No such quota root."),
                }
            }
            (Then::Copy { tag, .. }, Reply::Failed(e)) => {
                if e == StoreError::NoSuchMailbox {
                    self.tagged(&tag, "NO", "[TRYCREATE] Mailbox doesn't exist");
                } else {
                    self.store_failed(&tag, &e)
                }
            }
            (Then::Select { tag, .. }, Reply::Failed(e)) => self.store_failed(&tag, &e),
            (Then::Append { tag, .. }, Reply::Failed(e)) => {
                if e == StoreError::NoSuchMailbox {
                    self.tagged(&tag, "NO", "[TRYCREATE] Mailbox doesn't exist");
                } else {
                    self.store_failed(&tag, &e)
                }
            }
            (Then::Refresh { tag, .. }, Reply::Failed(e)) => {
                // The selected mailbox vanished (deleted elsewhere).
                self.write(b"* BYE Selected mailbox was deleted, have to disconnect.\r\n");
                if let Some(tag) = tag {
                    self.store_failed(&tag, &e);
                }
                self.close();
            }
            (Then::Ok { tag, text }, _) => self.tagged(&tag, "OK", &text),
            (Then::List { tag, lsub, pattern }, Reply::Mailboxes(b)) => {
                self.list_reply(tag, lsub, pattern, b)
            }
            (
                Then::Select {
                    tag,
                    name,
                    read_only,
                    qresync,
                },
                Reply::Snapshot(s),
            ) => self.selected(tag, name, read_only, qresync, s),
            (Then::Status { tag, name, items }, Reply::Snapshot(s)) => {
                let names: Vec<&str> = items
                    .iter()
                    .filter_map(|it| match it {
                        StatusDataItemName::Messages => Some("MESSAGES"),
                        StatusDataItemName::Recent => Some("RECENT"),
                        StatusDataItemName::UidNext => Some("UIDNEXT"),
                        StatusDataItemName::UidValidity => Some("UIDVALIDITY"),
                        StatusDataItemName::Unseen => Some("UNSEEN"),
                        StatusDataItemName::Deleted => Some("DELETED"),
                        StatusDataItemName::HighestModSeq => Some("HIGHESTMODSEQ"),
                        _ => None,
                    })
                    .collect();
                self.write(&status_line(&name, &names, &s));
                self.tagged(&tag, "OK", "Status completed.");
            }
            (Then::Append { tag, mailbox }, Reply::Appended { uidvalidity, uid }) => {
                let text = format!("[APPENDUID {uidvalidity} {uid}] Append completed.");
                if self.selected_mailbox() == Some(mailbox.as_str()) {
                    self.refresh(Some(tag), &text);
                } else {
                    self.tagged(&tag, "OK", &text);
                }
            }
            (
                Then::Fetch {
                    tag,
                    items,
                    idx,
                    done,
                    content,
                },
                Reply::Messages(data),
            ) => {
                let end = (done + CHUNK).min(idx.len());
                let lines = self.fetch_lines(&items, &idx[done..end], &data);
                if end < idx.len() {
                    self.write(&lines);
                    self.fetch_chunk(tag, items, idx, end, content);
                } else {
                    self.finish_fetch(tag, lines, &items, &idx);
                }
            }
            (
                Then::Search {
                    tag,
                    uid,
                    key,
                    ret,
                    next,
                    content,
                    mut found,
                },
                Reply::Messages(data),
            ) => {
                let end = self.msg_count().min(next + CHUNK);
                found.extend(self.search_matches(uid, &key, next..end, &data));
                if end < self.msg_count() {
                    self.search_chunk(tag, uid, (key, ret), end, content, found);
                } else {
                    self.search_done(&tag, uid, &key, ret.as_ref(), &found);
                }
            }
            (Then::Copy { tag, moving, to }, Reply::Copied { uidvalidity, map }) => {
                let src: Vec<String> = map.iter().map(|(s, _)| s.to_string()).collect();
                let dst: Vec<String> = map.iter().map(|(_, d)| d.to_string()).collect();
                let code = if map.is_empty() {
                    String::new()
                } else {
                    format!(
                        "[COPYUID {uidvalidity} {} {}] ",
                        src.join(","),
                        dst.join(",")
                    )
                };
                if moving {
                    // RFC 6851 section 4.3: COPYUID goes in an untagged OK
                    // before the EXPUNGEs.
                    if !code.is_empty() {
                        self.write(format!("* OK {code}Moved UIDs.\r\n").as_bytes());
                    }
                    let uids: Vec<u32> = map.iter().map(|(s, _)| *s).collect();
                    self.expunged(&uids);
                    self.done_maybe_resync(tag, &to, "Move completed.".into());
                } else {
                    self.done_maybe_resync(tag, &to, format!("{code}Copy completed."));
                }
            }
            (Then::Expunge { tag, close }, Reply::Expunged(uids)) => {
                if close {
                    self.state = State::Authenticated;
                    self.tagged(&tag, "OK", "Close completed.");
                } else {
                    self.expunged(&uids);
                    // Messages another session expunged meanwhile are
                    // reported too (EXPUNGE allows it: RFC 3501 7.4.1).
                    self.refresh(Some(tag), "Expunge completed.");
                }
            }
            (Then::Refresh { tag, text }, Reply::Snapshot(s)) => {
                self.apply_snapshot(s);
                if let Some(tag) = tag {
                    self.tagged(&tag, "OK", &text);
                }
            }
            (
                Then::Stored {
                    tag,
                    lines,
                    echo,
                    text,
                    uid,
                },
                Reply::Flags { flags, modified },
            ) => self.stored(tag, lines, echo, text, uid, (flags, modified)),
            (then, other) => {
                // A driver answering the wrong request is a bug there; the
                // client still gets a tagged answer.
                let tag = match then {
                    Then::Ok { tag, .. }
                    | Then::List { tag, .. }
                    | Then::Select { tag, .. }
                    | Then::Status { tag, .. }
                    | Then::Append { tag, .. }
                    | Then::Fetch { tag, .. }
                    | Then::Search { tag, .. }
                    | Then::Copy { tag, .. }
                    | Then::Expunge { tag, .. }
                    | Then::Stored { tag, .. }
                    | Then::Quota { tag, .. }
                    | Then::ListExt { tag, .. }
                    | Then::ListStatus { tag, .. } => Some(tag),
                    Then::Refresh { tag, .. } => tag,
                };
                let _ = other;
                if let Some(tag) = tag {
                    self.store_failed(&tag, &StoreError::Io("unexpected store reply".into()));
                }
            }
        }
    }

    /// The tagged OK, after a resync when the target is the selected
    /// mailbox (its new messages are announced with EXISTS).
    fn done_maybe_resync(&mut self, tag: String, target: &str, text: String) {
        if self.selected_mailbox() == Some(target) {
            self.refresh(Some(tag), &text);
        } else {
            self.tagged(&tag, "OK", &text);
        }
    }

    /// EXPUNGE responses for removed UIDs, highest sequence first so that
    /// earlier numbers stay valid.
    fn expunged(&mut self, uids: &[u32]) {
        let State::Selected(sel) = &mut self.state else {
            return;
        };
        let mut seqs: Vec<usize> = uids.iter().filter_map(|&u| sel.seq_of(u)).collect();
        seqs.sort_unstable();
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for &s in seqs.iter().rev() {
            gone.push(sel.msgs.remove(s).uid);
            if !self.qresync {
                out.extend(format!("* {} EXPUNGE\r\n", s + 1).as_bytes());
            }
        }
        if self.qresync && !gone.is_empty() {
            // RFC 7162 section 3.2.10.
            gone.sort_unstable();
            out.extend(format!("* VANISHED {}\r\n", set_text(&gone)).as_bytes());
        }
        self.write(&out);
    }

    fn selected(
        &mut self,
        tag: String,
        name: String,
        read_only: bool,
        qresync: Option<Qresync>,
        s: Snapshot,
    ) {
        let mut keywords = BTreeSet::new();
        for m in &s.messages {
            for f in m.flags.iter() {
                if let Flag::Keyword(k) = f {
                    keywords.insert(k.clone());
                }
            }
        }
        let kw: String = keywords.iter().map(|k| format!(" {k}")).collect();
        let mut out = format!("* FLAGS ({SYSTEM_FLAGS}{kw})\r\n");
        if read_only {
            out.push_str("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
        } else {
            out.push_str(&format!(
                "* OK [PERMANENTFLAGS ({SYSTEM_FLAGS}{kw} \\*)] Flags permitted.\r\n"
            ));
        }
        out.push_str(&format!("* {} EXISTS\r\n", s.messages.len()));
        out.push_str(&format!(
            "* {} RECENT\r\n",
            s.messages.iter().filter(|m| m.recent).count()
        ));
        if let Some(p) = s
            .messages
            .iter()
            .position(|m| !m.flags.contains(&Flag::Seen))
        {
            out.push_str(&format!("* OK [UNSEEN {}] First unseen.\r\n", p + 1));
        }
        out.push_str(&format!(
            "* OK [UIDVALIDITY {}] UIDs valid\r\n",
            s.uidvalidity
        ));
        out.push_str(&format!(
            "* OK [UIDNEXT {}] Predicted next UID\r\n",
            s.uidnext
        ));
        // RFC 7162 section 3.1.2.1: every SELECT/EXAMINE of a server with
        // persistent mod-sequences reports HIGHESTMODSEQ.
        out.push_str(&format!(
            "* OK [HIGHESTMODSEQ {}] Highest\r\n",
            s.highest_modseq
        ));
        let msgs: Vec<Msg> = s
            .messages
            .into_iter()
            .map(|m| Msg {
                uid: m.uid,
                flags: m.flags,
                recent: m.recent,
                modseq: m.modseq,
            })
            .collect();
        // RFC 7162 section 3.2.5.1: with QRESYNC and a matching
        // UIDVALIDITY, what changed since the client's mod-sequence: the
        // UIDs gone (VANISHED (EARLIER), possibly more than were expunged
        // since then: the store keeps no expunge history, which the RFC
        // allows) and the messages whose flags changed.
        if let Some(q) = qresync.filter(|q| q.uidvalidity == s.uidvalidity) {
            let star = msgs.last().map(|m| m.uid).unwrap_or(0);
            let limit = s.uidnext.saturating_sub(1).max(star);
            let all = SequenceSet::try_from("1:*").ok();
            let known = q.known_uids.as_ref().or(all.as_ref());
            if let Some(known) = known {
                let gone = vanished_uids(known, star, limit, &msgs);
                if !gone.is_empty() {
                    out.push_str(&format!("* VANISHED (EARLIER) {gone}\r\n"));
                }
            }
            for (i, m) in msgs.iter().enumerate() {
                let in_known = q
                    .known_uids
                    .as_ref()
                    .is_none_or(|k| search::in_set(k, m.uid, star));
                if m.modseq > q.modseq && in_known {
                    out.push_str(&format!(
                        "* {} FETCH (UID {} FLAGS {} MODSEQ ({}))\r\n",
                        i + 1,
                        m.uid,
                        flags_text(&m.flags, m.recent),
                        m.modseq
                    ));
                }
            }
        }
        self.write(out.as_bytes());
        self.state = State::Selected(Selected {
            name,
            read_only,
            uidnext: s.uidnext,
            highest_modseq: s.highest_modseq,
            msgs,
            keywords,
        });
        let code = if read_only {
            "[READ-ONLY]"
        } else {
            "[READ-WRITE]"
        };
        self.tagged(&tag, "OK", &format!("{code} Select completed."));
    }
}

fn mailbox_str_raw(m: &Mailbox<'_>) -> String {
    match m {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(o) => String::from_utf8_lossy(o.inner().as_ref()).into_owned(),
    }
}

/// Numbers (ascending) as an IMAP sequence set with ranges: `1:3,7`.
pub(crate) fn set_text(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end.wrapping_add(1) {
            end = nums[i + 1];
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// The UIDs of `set` (`*` = `star`), at most `limit`, that no message in
/// `msgs` (ascending) has, as a sequence set: what RFC 7162 VANISHED
/// (EARLIER) reports. Works on ranges, so `1:4294967295` costs no more
/// than the folder's size.
fn vanished_uids(set: &SequenceSet, star: u32, limit: u32, msgs: &[Msg]) -> String {
    let val = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => star,
    };
    let mut ranges: Vec<(u32, u32)> = set
        .0
        .as_ref()
        .iter()
        .map(|s| match s {
            Sequence::Single(a) => (val(a), val(a)),
            Sequence::Range(a, b) => (val(a).min(val(b)), val(a).max(val(b))),
        })
        .filter(|&(a, _)| a >= 1 && a <= limit)
        .map(|(a, b)| (a, b.min(limit)))
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut k = 0;
    for (a, b) in merged {
        let mut next = a;
        while k < msgs.len() && msgs[k].uid < a {
            k += 1;
        }
        while k < msgs.len() && msgs[k].uid <= b {
            let u = msgs[k].uid;
            if u > next {
                out.push((next, u - 1));
            }
            next = u + 1;
            k += 1;
        }
        if next <= b {
            out.push((next, b));
        }
    }
    out.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `* STATUS name (items)` for a mailbox snapshot; `items` are upper-case
/// item names (unknown ones are left out).
fn status_line(name: &str, items: &[&str], s: &Snapshot) -> Vec<u8> {
    let count = |f: &Flag, want: bool| {
        s.messages
            .iter()
            .filter(|m| m.flags.contains(f) == want)
            .count()
    };
    let parts: Vec<String> = items
        .iter()
        .filter_map(|it| {
            Some(match *it {
                "MESSAGES" => format!("MESSAGES {}", s.messages.len()),
                "RECENT" => format!("RECENT {}", s.messages.iter().filter(|m| m.recent).count()),
                "UIDNEXT" => format!("UIDNEXT {}", s.uidnext),
                "UIDVALIDITY" => format!("UIDVALIDITY {}", s.uidvalidity),
                "UNSEEN" => format!("UNSEEN {}", count(&Flag::Seen, false)),
                "DELETED" => format!("DELETED {}", count(&Flag::Deleted, true)),
                "HIGHESTMODSEQ" => format!("HIGHESTMODSEQ {}", s.highest_modseq),
                _ => return None,
            })
        })
        .collect();
    let mut line = b"* STATUS ".to_vec();
    line.extend(mailbox_name(name));
    line.extend(format!(" ({})\r\n", parts.join(" ")).as_bytes());
    line
}

/// `cmd` with ` (CHANGEDSINCE 0` of a FETCH's modifiers turned into
/// ` (CHANGEDSINCE 1`, or `None` when it has none.
fn changedsince_zero(cmd: &[u8]) -> Option<Vec<u8>> {
    let name = crate::framing::command_name(cmd);
    if name != "FETCH" {
        return None;
    }
    const NEEDLE: &[u8] = b"(CHANGEDSINCE 0";
    let at = cmd
        .windows(NEEDLE.len())
        .rposition(|w| w.eq_ignore_ascii_case(NEEDLE))?;
    let after = cmd.get(at + NEEDLE.len())?;
    if !matches!(after, b' ' | b')') {
        return None;
    }
    let mut out = cmd.to_vec();
    out[at + NEEDLE.len() - 1] = b'1';
    Some(out)
}
