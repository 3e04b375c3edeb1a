//! One SMTP/ESMTP/LMTP transaction in swaks' order (RFC 5321 section 3,
//! RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 2920 PIPELINING, RFC 2033 LMTP),
//! printing swaks' transcript and ending with swaks' exit codes
//! (swaks(1), "EXIT CODES").

use std::time::Instant;

use crate::auth;
use crate::config::{AuthMode, Config, Proto, Stage, TlsMode, Transport};
use crate::conn::{connect_tcp, describe, Conn, Link, PipeLink, ReadOutcome};
use crate::reply::Reply;
use crate::transcript::{Kind, Transcript};

/// swaks' exit codes.
pub mod code {
    pub const OK: i32 = 0;
    pub const OPTIONS: i32 = 1;
    pub const CONNECT: i32 = 2;
    pub const PIPE_IO: i32 = 4;
    pub const LOST: i32 = 6;
    pub const BANNER: i32 = 21;
    pub const HELO: i32 = 22;
    pub const MAIL: i32 = 23;
    pub const RCPT: i32 = 24;
    pub const DATA: i32 = 25;
    pub const DOT: i32 = 26;
    pub const QUIT: i32 = 27;
    pub const AUTH: i32 = 28;
    pub const TLS: i32 = 29;
    pub const TLS_HELO: i32 = 32;
}

/// The session is over; the process exits with this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub i32);

/// What to do when a deferred (pipelined) command fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnFail {
    Nothing,
    Mail,
    Rcpt,
}

/// A command waiting to be sent or answered.
struct Step {
    /// Bytes for the wire, without CRLF; `None` to only read a reply.
    wire: Option<String>,
    /// What the transcript shows instead of `wire` (AUTH secrets).
    show: Option<String>,
    expect: &'static [u16],
    on_fail: OnFail,
    /// The message itself: shown as data (or "N lines sent").
    is_data: bool,
    /// Decode base64 in `334` replies for `--auth-plaintext`.
    decode_334: bool,
}

impl Step {
    fn cmd(wire: impl Into<String>, expect: &'static [u16]) -> Step {
        Step {
            wire: Some(wire.into()),
            show: None,
            expect,
            on_fail: OnFail::Nothing,
            is_data: false,
            decode_334: false,
        }
    }
}

/// The outcome of one command.
#[derive(Debug)]
enum Answer {
    Ok(Reply),
    Bad,
}

impl Answer {
    fn ok(&self) -> bool {
        matches!(self, Answer::Ok(_))
    }
}

/// A running session.
pub struct Session<'a> {
    cfg: &'a Config,
    t: &'a mut Transcript,
    conn: Option<Conn>,
    is_pipe: bool,
    quit_sent: bool,
    pipelining: bool,
    ehlo: Vec<(String, String)>,
    pending: Vec<Step>,
    rcpt_failures: usize,
    tls_host: String,
    /// The reply to the final dot, for `--expect-delivery`.
    pub dot_reply: Option<Reply>,
    /// Recipients the server accepted.
    pub accepted: Vec<String>,
}

impl<'a> Session<'a> {
    pub fn new(cfg: &'a Config, t: &'a mut Transcript) -> Session<'a> {
        Session {
            cfg,
            t,
            conn: None,
            is_pipe: matches!(cfg.transport, Transport::Pipe(_)),
            quit_sent: false,
            pipelining: false,
            ehlo: Vec::new(),
            pending: Vec::new(),
            rcpt_failures: 0,
            tls_host: String::new(),
            dot_reply: None,
            accepted: Vec::new(),
        }
    }

    /// Runs the whole transaction; returns the exit code.
    pub fn run(&mut self, data: &str) -> i32 {
        match self.transaction(data) {
            Ok(()) => code::OK,
            Err(Exit(c)) => c,
        }
    }

    fn open(&mut self) -> Result<(), Exit> {
        let cfg = self.cfg;
        let (what, link): (String, std::io::Result<Box<dyn Link>>) = match &cfg.transport {
            Transport::Tcp { host, port } => {
                self.tls_host = host.clone();
                self.t.info(&format!("Trying {host}:{port}..."));
                let r = connect_tcp(host, *port, cfg.family, cfg.timeout);
                (
                    format!("{host}:{port}"),
                    r.map(|s| Box::new(s) as Box<dyn Link>),
                )
            }
            Transport::Unix(path) => {
                let p = path.display().to_string();
                self.tls_host = "localhost".into();
                self.t.info(&format!("Trying {p}..."));
                let r = std::os::unix::net::UnixStream::connect(path);
                (p, r.map(|s| Box::new(s) as Box<dyn Link>))
            }
            Transport::Pipe(cmd) => {
                self.tls_host = "localhost".into();
                self.t.info(&format!("Trying pipe to {cmd}..."));
                (
                    cmd.clone(),
                    PipeLink::spawn(cmd).map(|s| Box::new(s) as Box<dyn Link>),
                )
            }
        };
        match link {
            Ok(link) => {
                let shown = match &cfg.transport {
                    Transport::Tcp { host, .. } => host.clone(),
                    _ => what,
                };
                self.t.info(&format!("Connected to {shown}."));
                self.conn = Some(Conn::new(link, cfg.timeout));
                Ok(())
            }
            Err(e) => {
                self.t.error(&format!(
                    "Error connecting to {what}:\n\tconnect: {}",
                    describe(&e)
                ));
                Err(Exit(code::CONNECT))
            }
        }
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("session used before open()")
    }

    fn teardown(&mut self) {
        if self.conn.take().is_some() {
            let peer = if self.is_pipe {
                "child process"
            } else {
                "remote host"
            };
            self.t.info(&format!("Connection closed with {peer}."));
        }
    }

    /// The connection went away while we expected more (swaks'
    /// `handle_disconnect`): exit with `code`, or 6.
    fn disconnected(&mut self, code: i32) -> Exit {
        let msg = if self.is_pipe {
            "Child process closed connection unexpectedly."
        } else if matches!(self.cfg.transport, Transport::Unix(_)) {
            "Socket closed connection unexpectedly."
        } else {
            "Remote host closed connection unexpectedly."
        };
        self.t.error(msg);
        self.conn.take();
        Exit(if code == 0 { code::LOST } else { code })
    }

    /// Queues `step` and, unless it may wait for a pipelined batch, sends
    /// everything queued and reads every reply (swaks' `transact`).
    /// `Err(Lost)` reports a lost connection to callers that handle it.
    fn transact(&mut self, step: Step, defer: bool) -> Result<Result<Answer, Lost>, Exit> {
        self.pending.push(step);
        if defer && self.cfg.pipeline && self.pipelining {
            return Ok(Ok(Answer::Bad));
        }
        let steps: Vec<Step> = std::mem::take(&mut self.pending);
        let mut wire = Vec::new();
        for s in &steps {
            if let Some(w) = &s.wire {
                let shown = s.show.clone().unwrap_or_else(|| w.clone());
                if s.is_data {
                    self.t.data(&shown);
                } else {
                    self.t.line(Kind::Send, &shown);
                }
                wire.extend_from_slice(w.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
        }
        if !wire.is_empty() {
            if let Err(e) = self.conn().send(&wire) {
                if self.is_pipe {
                    self.t
                        .error(&format!("Error writing to child process: {}", describe(&e)));
                    return Err(Exit(code::PIPE_IO));
                }
                return Ok(Err(Lost));
            }
        }
        let started = Instant::now();
        let mut last = Answer::Bad;
        let mut fails = Vec::new();
        for s in &steps {
            let outcome = self.conn().read_reply();
            if let Some(hires) = self.cfg.time_lapse {
                let el = started.elapsed();
                let shown = if hires {
                    format!("{:.3}", el.as_secs_f64())
                } else {
                    el.as_secs().to_string()
                };
                self.t.info(&format!("response in {shown}s"));
            }
            let answer = match outcome {
                ReadOutcome::Reply(r) => {
                    let good = s.expect.contains(&r.code);
                    let mut shown = r.raw();
                    if s.decode_334 && r.code == 334 {
                        shown = decode_334(&r);
                    }
                    self.t
                        .line(if good { Kind::Recv } else { Kind::RecvError }, &shown);
                    if good {
                        Answer::Ok(r)
                    } else {
                        Answer::Bad
                    }
                }
                ReadOutcome::Timeout => {
                    let secs = self.cfg.timeout_secs;
                    self.t.line(
                        Kind::RecvError,
                        &format!("Timeout ({secs} secs) waiting for server response"),
                    );
                    Answer::Bad
                }
                ReadOutcome::Closed(partial) => {
                    if !partial.is_empty() {
                        self.t.line(Kind::RecvError, &partial);
                    }
                    return Ok(Err(Lost));
                }
                ReadOutcome::Failed(why) => {
                    self.t.error(&format!("Error reading from server: {why}"));
                    return Ok(Err(Lost));
                }
            };
            if !answer.ok() && s.on_fail != OnFail::Nothing {
                fails.push(s.on_fail);
            }
            if s.on_fail == OnFail::Rcpt {
                if let (true, Some(addr)) = (answer.ok(), s.wire.as_deref()) {
                    self.accepted.push(rcpt_address(addr));
                }
            }
            last = answer;
        }
        for f in fails {
            match f {
                OnFail::Mail => return Err(self.quit(code::MAIL)),
                OnFail::Rcpt => {
                    self.rcpt_failures += 1;
                    if self.rcpt_failures == self.cfg.to.len() {
                        return Err(self.quit(code::RCPT));
                    }
                }
                OnFail::Nothing => {}
            }
        }
        Ok(Ok(last))
    }

    /// `transact` for callers that treat a lost connection as fatal.
    fn gen(&mut self, step: Step) -> Result<Answer, Exit> {
        match self.transact(step, false)? {
            Ok(a) => Ok(a),
            Err(Lost) => Err(self.disconnected(code::LOST)),
        }
    }

    /// Sends QUIT and ends the session with `code` (swaks' `do_smtp_quit(1, code)`).
    fn quit(&mut self, code: i32) -> Exit {
        if self.quit_sent || self.conn.is_none() {
            return Exit(code);
        }
        self.quit_sent = true;
        match self.transact(Step::cmd("QUIT", &[221]), false) {
            Err(exit) => exit,
            Ok(Err(Lost)) => self.disconnected(code),
            Ok(Ok(_)) => {
                self.teardown();
                Exit(code)
            }
        }
    }

    fn drop_connection(&mut self) -> Exit {
        self.t.info("Dropping connection");
        self.conn.take();
        Exit(code::OK)
    }

    /// Honours `--quit-after`/`--drop-after` at `stage`.
    fn stop(&mut self, stage: Stage) -> Result<(), Exit> {
        if self.cfg.drop_after == Some(stage) {
            return Err(self.drop_connection());
        }
        if self.cfg.quit_after == Some(stage) {
            // After 354 the server reads message text, so QUIT cannot be
            // sent: stopping at DATA closes the connection.
            if stage == Stage::Data {
                return Err(self.drop_connection());
            }
            return Err(self.quit(code::OK));
        }
        Ok(())
    }

    fn helo(&mut self) -> Result<bool, Exit> {
        let helo = &self.cfg.helo;
        self.ehlo.clear();
        if matches!(self.cfg.proto, Proto::Esmtp | Proto::Lmtp) {
            let verb = if self.cfg.proto == Proto::Lmtp {
                "LHLO"
            } else {
                "EHLO"
            };
            if let Answer::Ok(r) = self.gen(Step::cmd(format!("{verb} {helo}"), &[250]))? {
                self.ehlo = r.ehlo_keywords();
                self.pipelining = self.has("PIPELINING");
                return Ok(true);
            }
        }
        if matches!(self.cfg.proto, Proto::Esmtp | Proto::Smtp) {
            return Ok(self.gen(Step::cmd(format!("HELO {helo}"), &[250]))?.ok());
        }
        Ok(false)
    }

    fn has(&self, keyword: &str) -> bool {
        self.ehlo.iter().any(|(k, _)| k == keyword)
    }

    fn start_tls(&mut self) -> Result<(), String> {
        let conn = self.conn.take().ok_or("no connection")?;
        let timeout = conn.timeout;
        let link = conn.io;
        let (link, info) = crate::tls::start(link, &self.tls_host, &self.cfg.tls_options)?;
        self.conn = Some(Conn::new(link, timeout));
        self.t.tls_active = true;
        self.t
            .info(&format!("TLS started with cipher {}", info.cipher));
        match &info.local_dn {
            Some(dn) => self.t.info(&format!("TLS local DN=\"{dn}\"")),
            None => self.t.info("TLS no local certificate set"),
        }
        self.t.info(&format!("TLS peer DN=\"{}\"", info.peer_dn));
        Ok(())
    }

    fn transaction(&mut self, data: &str) -> Result<(), Exit> {
        let cfg = self.cfg;
        self.open()?;
        if cfg.tls_on_connect {
            if let Err(why) = self.start_tls() {
                self.t.error(&format!("TLS startup failed ({why})"));
                self.conn.take();
                return Err(Exit(code::TLS));
            }
            self.stop(Stage::Tls)?;
        }
        if !self
            .gen(Step {
                wire: None,
                ..Step::cmd("", &[220])
            })?
            .ok()
        {
            return Err(self.quit(code::BANNER));
        }
        self.stop(Stage::Connect)?;
        if !self.helo()? {
            return Err(self.quit(code::HELO));
        }
        self.stop(Stage::FirstHelo)?;

        if cfg.tls != TlsMode::Off && !cfg.tls_on_connect {
            let result = if !self.has("STARTTLS") {
                1
            } else if !self.gen(Step::cmd("STARTTLS", &[220]))?.ok() {
                2
            } else if let Err(why) = self.start_tls() {
                self.t.error(&format!("TLS startup failed ({why})"));
                2
            } else {
                0
            };
            if result == 1 {
                self.t.error("Host did not advertise STARTTLS");
                if cfg.tls == TlsMode::Required {
                    return Err(self.quit(code::TLS));
                }
            } else if result == 2 {
                self.t.error("STARTTLS attempted but failed");
                if cfg.tls != TlsMode::Optional {
                    self.conn.take();
                    return Err(Exit(code::TLS));
                }
            }
        }
        self.stop(Stage::Tls)?;
        if self.t.tls_active && !cfg.tls_on_connect && !self.helo()? {
            // RFC 3207 section 4.2: forget what was learnt, EHLO again.
            return Err(self.quit(code::TLS_HELO));
        }
        self.stop(Stage::Helo)?;

        if let Some(a) = &cfg.auth {
            self.authenticate(a)?;
        }
        self.stop(Stage::Auth)?;

        let mail = Step {
            on_fail: OnFail::Mail,
            ..Step::cmd(format!("MAIL FROM:<{}>", cfg.from), &[250])
        };
        if let Err(Lost) = self.transact(mail, true)? {
            return Err(self.disconnected(code::LOST));
        }
        self.stop(Stage::Mail)?;
        for rcpt in &cfg.to {
            let step = Step {
                on_fail: OnFail::Rcpt,
                ..Step::cmd(format!("RCPT TO:<{rcpt}>"), &[250, 251])
            };
            if let Err(Lost) = self.transact(step, true)? {
                return Err(self.disconnected(code::LOST));
            }
        }
        self.stop(Stage::Rcpt)?;

        if !self.gen(Step::cmd("DATA", &[354]))?.ok() {
            return Err(self.quit(code::DATA));
        }
        self.stop(Stage::Data)?;
        let step = Step {
            is_data: true,
            ..Step::cmd(data, &[250])
        };
        let mut ok = false;
        if let Answer::Ok(r) = self.gen(step)? {
            self.dot_reply = Some(r);
            ok = true;
        }
        if cfg.proto == Proto::Lmtp {
            // RFC 2033 section 4.2: one reply per accepted recipient.
            for _ in 1..self.accepted.len() {
                if let Answer::Ok(r) = self.gen(Step {
                    wire: None,
                    ..Step::cmd("", &[250])
                })? {
                    self.dot_reply.get_or_insert(r);
                    ok = true;
                }
            }
        }
        if !ok {
            return Err(self.quit(code::DOT));
        }
        self.stop(Stage::Dot)?;

        self.quit_sent = true;
        match self.transact(Step::cmd("QUIT", &[221]), false)? {
            Err(Lost) => Err(self.disconnected(code::OK)),
            Ok(a) => {
                self.teardown();
                if a.ok() {
                    Ok(())
                } else {
                    Err(Exit(code::QUIT))
                }
            }
        }
    }

    fn authenticate(&mut self, a: &crate::config::Auth) -> Result<(), Exit> {
        let optional = a.mode != AuthMode::Required;
        let Some(offered) = self
            .ehlo
            .iter()
            .find(|(k, _)| k == "AUTH")
            .map(|(_, v)| v.clone())
        else {
            self.t.error("Host did not advertise authentication");
            return if optional {
                Ok(())
            } else {
                Err(self.quit(code::AUTH))
            };
        };
        let offered: Vec<String> = offered
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        let mut attempted = false;
        for mech in &a.mechs {
            if !offered.contains(mech) {
                continue;
            }
            attempted = true;
            if self.auth_one(mech, a)? {
                return Ok(());
            }
        }
        let lenient = a.mode == AuthMode::Optional;
        if !attempted {
            if a.any {
                self.t
                    .error("Auth not attempted, no advertised types available");
                if !lenient {
                    return Err(self.quit(code::AUTH));
                }
            } else {
                self.t
                    .error("Auth not attempted, requested type not available");
                if !optional {
                    return Err(self.quit(code::AUTH));
                }
            }
        } else {
            self.t.error("No authentication type succeeded");
            if !lenient {
                return Err(self.quit(code::AUTH));
            }
        }
        Ok(())
    }

    /// One mechanism's exchange; `Ok(true)` when the server said 235.
    fn auth_one(&mut self, mech: &str, a: &crate::config::Auth) -> Result<bool, Exit> {
        let (u, p) = (a.user.as_str(), a.password.as_str());
        let shown_pw = a.hide_password.as_deref().unwrap_or(p);
        let pt = a.plaintext;
        let step = |wire: String, show: Option<String>, expect: &'static [u16]| Step {
            show,
            decode_334: pt,
            ..Step::cmd(wire, expect)
        };
        match mech {
            "PLAIN" => {
                let show = if pt {
                    format!("AUTH PLAIN \\0{u}\\0{shown_pw}")
                } else {
                    format!("AUTH PLAIN {}", auth::plain(u, shown_pw))
                };
                Ok(self
                    .gen(step(
                        format!("AUTH PLAIN {}", auth::plain(u, p)),
                        Some(show),
                        &[235],
                    ))?
                    .ok())
            }
            "LOGIN" => {
                if !self.gen(step("AUTH LOGIN".into(), None, &[334]))?.ok() {
                    return Ok(false);
                }
                let show_u = pt.then(|| u.to_string());
                if !self
                    .gen(step(auth::b64(u.as_bytes()), show_u, &[334]))?
                    .ok()
                {
                    return Ok(false);
                }
                let show_p = if pt {
                    shown_pw.to_string()
                } else {
                    auth::b64(shown_pw.as_bytes())
                };
                Ok(self
                    .gen(step(auth::b64(p.as_bytes()), Some(show_p), &[235]))?
                    .ok())
            }
            "CRAM-MD5" => {
                let Answer::Ok(r) = self.gen(step("AUTH CRAM-MD5".into(), None, &[334]))? else {
                    return Ok(false);
                };
                match auth::cram_md5(u, p, &r.text()) {
                    Ok((wire, clear)) => {
                        Ok(self.gen(step(wire, pt.then_some(clear), &[235]))?.ok())
                    }
                    Err(why) => {
                        self.t.error(&why);
                        // RFC 4954 section 4: "*" cancels the exchange.
                        self.gen(step("*".into(), None, &[501]))?;
                        Ok(false)
                    }
                }
            }
            other => {
                self.t
                    .error(&format!("{other} is not a recognized auth type, skipping"));
                Ok(false)
            }
        }
    }
}

/// A lost connection, for callers that handle it themselves.
#[derive(Debug)]
struct Lost;

/// `RCPT TO:<a@b>` → `a@b`.
fn rcpt_address(cmd: &str) -> String {
    cmd.trim_start_matches("RCPT TO:<")
        .trim_end_matches('>')
        .to_string()
}

/// `334 VXNlcm5hbWU6` → `334 Username:` (swaks' `unencode_smtp`).
fn decode_334(r: &Reply) -> String {
    match auth::unb64(&r.text()) {
        Ok(bytes) => format!("334 {}", String::from_utf8_lossy(&bytes)),
        Err(_) => r.raw(),
    }
}
