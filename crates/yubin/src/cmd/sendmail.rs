//! `yubin sendmail` (also invoked as `sendmail`): Postfix's sendmail(1)
//! front end. It reads a message from standard input and leaves it in the
//! maildrop (postdrop(1)'s job), which works while the daemon is down; the
//! daemon's pickup(8) queues it. Also `-bs` (an SMTP dialog on stdin and
//! stdout), `-bv` (a delivery report instead of a delivery), `-bp`
//! (mailq), `-bi` (newaliases) and `-q` (flush).
//!
//! Every message gets an `X-Yubin-Submitter: uid=UID (USER) via COMMAND`
//! header naming the program that ran sendmail (the parent process's
//! command line), so that "which program sends root all this mail?" has an
//! answer in the message and in the log.

use std::ffi::OsString;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::time::Duration;

use yubin_addr::{parse_address, Resolver, Verdict};
use yubin_conf::Config;
use yubin_conn::smtp::{SmtpAsk, SmtpCore};
use yubin_conn::{drive, Conn, Handler, Options, Step};
use yubin_policy::Policy;
use yubin_queue::maildrop::header::{header_value, split_message, without_header};
use yubin_queue::maildrop::{self, sanitize, SUBMITTER_HEADER};
use yubin_queue::{listing, QueueFile, QueuedRecipient, Spool};
use yubin_smtp::{Answer, ClientInfo, Request, SaslStep, Session, SessionConfig};

use crate::server::control;

/// sysexits.h codes, as Postfix's sendmail uses them.
const EX_USAGE: i32 = 64;
const EX_DATAERR: i32 = 65;
const EX_NOINPUT: i32 = 66;
const EX_UNAVAILABLE: i32 = 69;
const EX_SOFTWARE: i32 = 70;
const EX_TEMPFAIL: i32 = 75;

const PROG: &str = "sendmail";

fn fatal(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("{PROG}: fatal: {msg}");
    code
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    /// `-bm`: read a message, deliver it (the default).
    #[default]
    Deliver,
    /// `-bs`: SMTP on stdin/stdout.
    Smtp,
    /// `-bv`: verify the recipients, mail a report to the sender.
    Verify,
    /// `-bp`: list the queue (mailq).
    Mailq,
    /// `-bi` / `-I`: rebuild the alias database (newaliases).
    Newaliases,
    /// `-q`: deliver the deferred mail now.
    Flush,
}

#[derive(Debug, Default)]
struct Opts {
    mode: Mode,
    recipients: Vec<String>,
    sender: Option<String>,
    full_name: Option<String>,
    extract: bool,
    ignore_dots: bool,
    notify: Option<String>,
    ret: Option<String>,
    envid: Option<String>,
    verbose: bool,
    /// `-qRsite`: flush only mail for this site (postqueue -s).
    flush_site: Option<String>,
}

/// Options that take a value (`-f addr` or `-faddr`), as in Postfix's
/// getopt string `B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx`. `q` is
/// special-cased: its value is optional.
const WITH_VALUE: &[char] = &[
    'B', 'C', 'F', 'L', 'N', 'O', 'R', 'V', 'X', 'b', 'e', 'f', 'h', 'o', 'p', 'r',
];
const WITHOUT_VALUE: &[char] = &['G', 'I', 'U', 'c', 'i', 'm', 'n', 't', 'v', 'x'];

fn usage(msg: String) -> Result<Opts, i32> {
    eprintln!("{PROG}: {msg}");
    Err(fatal(
        EX_USAGE,
        "usage: sendmail [-t] [-i] [-f sender] [-F name] [-b{m,s,v,p,i}] [-N dsn] [-R ret] [-V envid] [--] [recipient ...]",
    ))
}

/// Parses sendmail's command line the way getopt(3) with a leading `+`
/// does: options until the first non-option or `--`, then recipients.
fn parse_args(args: &[String]) -> Result<Opts, i32> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            break;
        }
        if !a.starts_with('-') || a == "-" {
            i -= 1;
            break;
        }
        let chars: Vec<char> = a[1..].chars().collect();
        let mut k = 0;
        while k < chars.len() {
            let c = chars[k];
            k += 1;
            if c == 'q' {
                // sendmail(1): -q and -qINTERVAL flush the whole queue;
                // -qRsite (or -qR site) only the mail for that site, as
                // postqueue -s does.
                o.mode = Mode::Flush;
                if chars.get(k) == Some(&'R') {
                    let rest: String = chars[k + 1..].iter().collect();
                    let site = if rest.is_empty() {
                        let next = args.get(i).cloned();
                        i += 1;
                        next
                    } else {
                        Some(rest)
                    };
                    match site {
                        Some(s) if !s.is_empty() => o.flush_site = Some(s),
                        _ => return usage("option requires an argument -- R".into()),
                    }
                }
                break;
            }
            if WITHOUT_VALUE.contains(&c) {
                match c {
                    'i' => o.ignore_dots = true,
                    't' => o.extract = true,
                    'v' => o.verbose = true,
                    'I' => o.mode = Mode::Newaliases,
                    _ => {}
                }
                continue;
            }
            if !WITH_VALUE.contains(&c) {
                return usage(format!("invalid option -- '{c}'"));
            }
            let value: String = if k < chars.len() {
                let v = chars[k..].iter().collect();
                k = chars.len();
                v
            } else if i < args.len() {
                i += 1;
                args[i - 1].clone()
            } else {
                return usage(format!("option requires an argument -- '{c}'"));
            };
            match c {
                'b' => {
                    o.mode = match value.as_str() {
                        "m" => Mode::Deliver,
                        "s" => Mode::Smtp,
                        "v" => Mode::Verify,
                        "p" => Mode::Mailq,
                        "i" => Mode::Newaliases,
                        "d" | "D" => {
                            return usage("-bd is not supported: run \"yubin serve\"".into())
                        }
                        other => return usage(format!("unsupported mode -b{other}")),
                    }
                }
                'f' | 'r' => o.sender = Some(value),
                'F' => o.full_name = Some(value),
                'N' => o.notify = Some(value),
                'R' => o.ret = Some(value),
                'V' => o.envid = Some(value),
                // -oi: ignore dots; every other -o option (-odb, -oem,
                // -oQ...) is accepted and ignored, as Postfix does.
                'o' if value == "i" => o.ignore_dots = true,
                _ => {}
            }
        }
    }
    o.recipients = args[i..].to_vec();
    Ok(o)
}

/// DSN values in the form the queue file keeps (RFC 3461): NOTIFY as a
/// comma list in upper case, RET as FULL or HDRS.
fn dsn_values(o: &Opts) -> Result<(Option<String>, Option<String>), String> {
    let notify = match &o.notify {
        None => None,
        Some(n) => {
            let v = n.to_ascii_uppercase().replace(' ', "");
            let ok = v
                .split(',')
                .all(|w| matches!(w, "SUCCESS" | "DELAY" | "FAILURE" | "NEVER"))
                && (!v.contains("NEVER") || v == "NEVER");
            if !ok {
                return Err(format!("-N: bad delivery status notification {n:?}"));
            }
            Some(v)
        }
    };
    let ret = match &o.ret {
        None => None,
        Some(r) => match r.to_ascii_uppercase().as_str() {
            v @ ("FULL" | "HDRS") => Some(v.to_string()),
            _ => return Err(format!("-R: bad return type {r:?} (full or hdrs)")),
        },
    };
    Ok((notify, ret))
}

/// Entry point: `args` are the words after `sendmail`.
pub fn run(config_dir: &Path, args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if o.mode == Mode::Newaliases {
        return crate::cmd::postmap::newaliases(config_dir);
    }
    let cfg = match Config::load(config_dir) {
        Ok(c) => c,
        Err(e) => return fatal(EX_TEMPFAIL, e),
    };
    let qdir = cfg.get("queue_directory").to_string();
    let spool = match Spool::open(Path::new(&qdir)) {
        Ok(s) => s,
        Err(e) => return fatal(EX_TEMPFAIL, format!("queue_directory {qdir}: {e}")),
    };
    match o.mode {
        Mode::Mailq => {
            print!("{}", listing::mailq(&spool));
            0
        }
        Mode::Flush => match control::request(
            &spool.control_socket(),
            &match &o.flush_site {
                Some(site) => format!("flush {site}"),
                None => "flush".to_string(),
            },
        ) {
            Ok(_) => 0,
            Err(e) => fatal(
                EX_UNAVAILABLE,
                format!("cannot reach the mail system (is yubin serve running?): {e}"),
            ),
        },
        Mode::Smtp => smtp(&cfg, &spool, &o),
        Mode::Verify => verify(&cfg, &spool, &o),
        Mode::Deliver => deliver(&cfg, &spool, &o),
        Mode::Newaliases => 0,
    }
}

/// Who is submitting: uid, login name, and the parent's command line.
struct Submitter {
    uid: u32,
    user: Option<String>,
    via: String,
}

impl Submitter {
    fn current() -> Submitter {
        let (uid, ppid) = (yubin_sys::getuid(), yubin_sys::getppid());
        Submitter {
            uid,
            user: maildrop::user_name(uid),
            via: parent_command(ppid),
        }
    }

    fn header(&self) -> String {
        format!(
            "{SUBMITTER_HEADER}: uid={} ({}) via {}\n",
            self.uid,
            self.user.as_deref().unwrap_or("unknown"),
            self.via
        )
    }

    /// The envelope sender when no -f/-r is given: the login name (the
    /// server appends @$myorigin).
    fn sender(&self) -> String {
        self.user
            .clone()
            .unwrap_or_else(|| format!("uid{}", self.uid))
    }
}

/// `/proc/PID/cmdline` with NULs as spaces, control characters removed, at
/// most 200 characters; the `comm` name, or `pid N`, when that is empty.
fn parent_command(pid: u32) -> String {
    let read = |name: &str| -> String {
        let mut buf = Vec::new();
        if let Ok(f) = std::fs::File::open(format!("/proc/{pid}/{name}")) {
            let _ = f.take(4096).read_to_end(&mut buf);
        }
        let text: String = String::from_utf8_lossy(&buf)
            .chars()
            .map(|c| if c == '\0' { ' ' } else { c })
            .collect();
        sanitize(&text, 200)
    };
    let cmd = read("cmdline");
    if !cmd.is_empty() {
        return cmd;
    }
    let comm = read("comm");
    if !comm.is_empty() {
        return format!("[{comm}]");
    }
    format!("pid {pid}")
}

/// Reads the message from stdin as sendmail(1) does: line ends to LF, a
/// leading mbox `From ` line dropped, a lone `.` ends the input unless
/// `-i`, at most `limit` bytes.
fn read_message(input: impl BufRead, ignore_dots: bool, limit: u64) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    let mut r = input.take(limit.saturating_add(4096));
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(fatal(EX_NOINPUT, format!("reading the message: {e}"))),
        }
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        if first && line.starts_with(b"From ") {
            first = false;
            continue;
        }
        first = false;
        if !ignore_dots && line == b"." {
            break;
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
        if out.len() as u64 > limit {
            return Err(fatal(
                EX_DATAERR,
                format!("message file too big (message_size_limit = {limit})"),
            ));
        }
    }
    Ok(out)
}

fn size_limit(cfg: &Config) -> u64 {
    match cfg.u64("message_size_limit") {
        Ok(0) => 1 << 30,
        Ok(n) => n,
        Err(_) => 10_240_000,
    }
}

/// Addresses of a header field value or a command-line argument that may
/// hold a list (`a, B <b@x>`), via mail-parser.
fn address_list(text: &str) -> Vec<String> {
    let simple = !text.contains([',', '<', '(', '"', ':', ';']);
    if simple {
        let t = text.trim();
        return if t.is_empty() {
            vec![]
        } else {
            vec![t.to_string()]
        };
    }
    let raw = format!("To: {text}\n\n");
    let Some(m) = mail_parser::MessageParser::default().parse(raw.as_bytes()) else {
        return vec![];
    };
    m.to()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// To, Cc and Bcc of the header section (for -t).
fn header_recipients(head: &[u8]) -> Vec<String> {
    let mut raw = head.to_vec();
    raw.extend_from_slice(b"\n");
    let Some(m) = mail_parser::MessageParser::default().parse(&raw) else {
        return vec![];
    };
    let mut out = Vec::new();
    for field in [m.to(), m.cc(), m.bcc()].into_iter().flatten() {
        out.extend(field.iter().filter_map(|x| x.address().map(str::to_string)));
    }
    out
}

/// Checks and normalises recipients; the error names the bad one.
fn check_recipients(list: &[String]) -> Result<(Vec<String>, bool), String> {
    let mut out = Vec::new();
    let mut utf8 = false;
    for r in list {
        let a = parse_address(r, true)
            .map_err(|e| format!("bad recipient address {:?}: {e}", sanitize(r, 100)))?;
        // The maildrop file keeps the external (quoted) form: pickup parses
        // it again, and `"john smith"@x` in internal form would not parse.
        let s = a.external();
        utf8 |= !s.is_ascii();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok((out, utf8))
}

/// The envelope sender: -f/-r (`<>` is the null sender) or the user.
fn envelope_sender(o: &Opts, who: &Submitter) -> Result<String, String> {
    match &o.sender {
        None => Ok(who.sender()),
        Some(s) => {
            let t = s.trim();
            let t = t
                .strip_prefix('<')
                .and_then(|x| x.strip_suffix('>'))
                .unwrap_or(t);
            if t.is_empty() {
                return Ok(String::new());
            }
            parse_address(t, true)
                .map(|a| a.external())
                .map_err(|e| format!("bad sender address {:?}: {e}", sanitize(s, 100)))
        }
    }
}

/// `"Full Name" <sender>`, quoted when the name needs it (RFC 5322 3.4).
fn from_header(full_name: &str, sender: &str, myorigin: &str) -> String {
    let name = sanitize(full_name, 200);
    let addr = if sender.contains('@') || sender.is_empty() {
        sender.to_string()
    } else {
        format!("{sender}@{myorigin}")
    };
    let special = name
        .chars()
        .any(|c| "()<>[]:;@\\,.\"".contains(c) || !c.is_ascii());
    let shown = if special && name.is_ascii() {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        name
    };
    format!("From: {shown} <{addr}>\n")
}

fn write_maildrop(spool: &Spool, mut q: QueueFile) -> Result<String, i32> {
    q.arrival = yubin_maillog::clock::now_secs();
    q.client = "local".into();
    q.protocol = "local".into();
    match maildrop::submit(spool, &mut q) {
        Ok(id) => Ok(id),
        Err(e) => Err(fatal(
            EX_TEMPFAIL,
            format!("cannot write to {}: {e}", maildrop::dir(spool).display()),
        )),
    }
}

/// Tells a running daemon to look at the maildrop now; without one, the
/// message waits for the next start.
fn poke(spool: &Spool) {
    let path = spool.control_socket();
    // Do not wait for a hung daemon: the one-second scan picks it up anyway.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(control::request(&path, "pickup"));
    });
    let _ = rx.recv_timeout(Duration::from_secs(2));
}

/// `-bm`: read, address, drop.
fn deliver(cfg: &Config, spool: &Spool, o: &Opts) -> i32 {
    let who = Submitter::current();
    let sender = match envelope_sender(o, &who) {
        Ok(s) => s,
        Err(e) => return fatal(EX_DATAERR, e),
    };
    let (notify, ret) = match dsn_values(o) {
        Ok(v) => v,
        Err(e) => return fatal(EX_USAGE, e),
    };
    if !o.extract && o.recipients.is_empty() {
        return fatal(
            EX_USAGE,
            "Recipient addresses must be specified on the command line or via the -t option",
        );
    }
    let data = match read_message(io::stdin().lock(), o.ignore_dots, size_limit(cfg)) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (head, body) = split_message(&data);
    let mut wanted: Vec<String> = o.recipients.iter().flat_map(|r| address_list(r)).collect();
    let mut head = head.to_vec();
    if o.extract {
        wanted.extend(header_recipients(&head));
        head = without_header(&head, "Bcc");
        if wanted.is_empty() {
            return fatal(EX_USAGE, "No recipient addresses found in message header");
        }
    }
    let (recipients, utf8) = match check_recipients(&wanted) {
        Ok(v) => v,
        Err(e) => return fatal(EX_DATAERR, e),
    };
    let mut message = who.header().into_bytes();
    if let Some(name) = &o.full_name {
        if header_value(&head, "From").is_none() {
            message.extend_from_slice(from_header(name, &sender, cfg.get("myorigin")).as_bytes());
        }
    }
    message.extend_from_slice(&without_header(&head, SUBMITTER_HEADER));
    message.extend_from_slice(body);
    let q = QueueFile {
        sender,
        ret,
        envid: o.envid.as_deref().map(|e| sanitize(e, 100)),
        smtputf8: utf8,
        recipients: recipients
            .into_iter()
            .map(|address| QueuedRecipient {
                address,
                notify: notify.clone(),
                orcpt: None,
            })
            .collect(),
        message,
        ..Default::default()
    };
    let id = match write_maildrop(spool, q) {
        Ok(id) => id,
        Err(code) => return code,
    };
    if o.verbose {
        eprintln!("{PROG}: queued as {id} in the maildrop");
    }
    poke(spool);
    0
}

fn resolver(cfg: &Config) -> Result<Resolver, i32> {
    Resolver::new(cfg).map_err(|e| fatal(EX_TEMPFAIL, e))
}

/// The SMTP server settings for `-bs`: those of the first smtpd service
/// in master.cf, built by the server's own code, with TLS off (the dialog
/// is local, and an unprivileged user cannot read the key anyway), no AUTH
/// (the local user is known), and a policy without smtpd_sender_login_maps
/// and DNS (the client is this machine).
fn session_setup(cfg: &Config) -> Result<(SessionConfig, Policy, Duration), String> {
    let off = [
        ("smtpd_tls_security_level".to_string(), "none".to_string()),
        ("smtpd_tls_wrappedmode".to_string(), "no".to_string()),
    ];
    let cfg = cfg
        .with_overrides("sendmail", &off)
        .map_err(|e| e.to_string())?;
    let rt = crate::server::runtime::Runtime::build(&cfg).map_err(|e| format!("{e:#}"))?;
    let svc = rt
        .services
        .iter()
        .find(|s| !s.session.tls_required)
        .or_else(|| rt.services.first())
        .ok_or("master.cf has no smtpd service to take the SMTP settings from")?;
    let mut scfg = svc.session.clone();
    scfg.tls_offered = false;
    scfg.tls_required = false;
    scfg.auth_mechanisms = None;
    scfg.error_sleep = Duration::ZERO;
    scfg.check_client = false;
    scfg.check_helo = false;
    let policy = svc.policy.local();
    Ok((scfg, policy, svc.timeout))
}

/// `-bs`'s answers: the policy for recipients, the maildrop for messages.
struct LocalSmtp<'a> {
    spool: &'a Spool,
    who: &'a Submitter,
    policy: Policy,
    client: ClientInfo,
    dropped: bool,
}

impl Handler<SmtpCore> for LocalSmtp<'_> {
    async fn answer(&mut self, core: &mut SmtpCore, ask: SmtpAsk) -> Vec<Step<SmtpAsk>> {
        match ask {
            // Stand-alone mode: no client or HELO restrictions (Postfix's
            // SMTPD_STAND_ALONE).
            SmtpAsk::Request(Request::Mail(_) | Request::Connect | Request::Helo(_)) => {
                core.answer(Answer::Verdict(None))
            }
            SmtpAsk::Request(Request::Recipient(q)) => {
                let verdict = self.policy.recipient(&self.client, &q).await;
                core.answer(Answer::Verdict(verdict))
            }
            SmtpAsk::Request(Request::Verify(a)) => {
                core.answer(Answer::Verdict(self.policy.verify(&a).await))
            }
            // AUTH is never offered here.
            SmtpAsk::Request(Request::Auth(_)) => {
                core.answer(Answer::Sasl(SaslStep::Failure("not offered".into())))
            }
            SmtpAsk::Deliver { envelope, data } => {
                let mut message = self.who.header().into_bytes();
                let (head, body) = split_message(&data);
                message.extend_from_slice(&without_header(head, SUBMITTER_HEADER));
                message.extend_from_slice(body);
                let q = QueueFile {
                    sender: envelope
                        .sender
                        .as_ref()
                        .map(|a| a.internal())
                        .unwrap_or_default(),
                    helo: envelope.helo.clone(),
                    ret: envelope.ret.clone(),
                    envid: envelope.envid.clone(),
                    smtputf8: envelope.smtputf8,
                    recipients: crate::server::cleanup::queued_recipients(&envelope),
                    message,
                    ..Default::default()
                };
                let result = match write_maildrop(self.spool, q) {
                    Ok(id) => {
                        self.dropped = true;
                        Ok(id)
                    }
                    Err(_) => Err("cannot write to the maildrop".to_string()),
                };
                core.queued(result)
            }
        }
    }

    /// Postfix's sendmail -bs logs nothing of the dialog itself.
    fn log(&self, _text: &str) {}
}

/// `-bs`: Postfix runs smtpd on stdin/stdout; here the same session engine
/// and the same driver smtpd uses, with each accepted message dropped into
/// the maildrop.
fn smtp(cfg: &Config, spool: &Spool, _o: &Opts) -> i32 {
    let (scfg, policy, timeout) = match session_setup(cfg) {
        Ok(v) => v,
        Err(e) => return fatal(EX_TEMPFAIL, e),
    };
    let who = Submitter::current();
    let client = ClientInfo {
        name: "localhost".into(),
        addr: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        in_mynetworks: true,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fatal(EX_SOFTWARE, e),
    };
    let mut core = SmtpCore(Session::new(scfg, client.clone()));
    let mut handler = LocalSmtp {
        spool,
        who: &who,
        policy,
        client,
        dropped: false,
    };
    let opts = Options {
        timeout,
        tls: None,
        label: "localhost[127.0.0.1]".into(),
        log_tls: false,
        shutdown: None,
        shutdown_reply: Vec::new(),
        read_size: 16 * 1024,
    };
    rt.block_on(async {
        let mut conn = Conn::Stdio(tokio::io::stdin(), tokio::io::stdout());
        let first = core.start();
        drive(&mut conn, &mut core, &mut handler, first, &opts).await;
        conn.shutdown().await;
    });
    if handler.dropped {
        poke(spool);
    }
    0
}

/// `-bv`: resolves every recipient (nothing is sent to them) and mails the
/// sender a "Mail Delivery Status Report", as Postfix's verify mode does.
fn verify(cfg: &Config, spool: &Spool, o: &Opts) -> i32 {
    let who = Submitter::current();
    let sender = match envelope_sender(o, &who) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return fatal(EX_USAGE, "-bv needs a sender to send the report to"),
        Err(e) => return fatal(EX_DATAERR, e),
    };
    let mut wanted: Vec<String> = o.recipients.iter().flat_map(|r| address_list(r)).collect();
    if o.extract {
        let data = match read_message(io::stdin().lock(), o.ignore_dots, size_limit(cfg)) {
            Ok(d) => d,
            Err(code) => return code,
        };
        wanted.extend(header_recipients(split_message(&data).0));
    }
    if wanted.is_empty() {
        return fatal(
            EX_USAGE,
            "Recipient addresses must be specified on the command line or via the -t option",
        );
    }
    let resolver = match resolver(cfg) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let hostname = cfg.get("myhostname");
    let mut report = String::new();
    let mut details = String::new();
    for r in &wanted {
        let shown = sanitize(r, 256);
        let addr = match parse_address(r, true) {
            Ok(a) => a,
            Err(e) => {
                report.push_str(&format!("<{shown}>: bad address syntax: {e}\n\n"));
                continue;
            }
        };
        let res = resolver.resolve(&addr);
        match &res.verdict {
            Verdict::Reject { .. } => {
                let reply = res.verdict.reply().unwrap_or_default();
                report.push_str(&format!("<{}>: undeliverable: {reply}\n\n", res.canonical));
            }
            Verdict::Accept => {
                if res.deliveries.is_empty() {
                    report.push_str(&format!("<{}>: no deliveries\n\n", res.canonical));
                }
                for d in &res.deliveries {
                    let what = if let Some(e) = d.error() {
                        format!(
                            "{}: {e}",
                            if d.temporary() {
                                "deferred"
                            } else {
                                "undeliverable"
                            }
                        )
                    } else if let Some(m) = d.mailbox().map(|m| &m.path) {
                        if m.ends_with('/') {
                            format!("delivered to maildir {m}")
                        } else {
                            format!("delivered to mailbox {m}")
                        }
                    } else if let Some(t) = d.target() {
                        format!("delivered to {t}")
                    } else {
                        format!("relayed to {}", d.recipient)
                    };
                    let orig = if d.recipient.eq_ignore_ascii_case(&res.canonical) {
                        String::new()
                    } else {
                        format!(" (expanded from <{}>)", res.canonical)
                    };
                    report.push_str(&format!(
                        "<{}>{orig}: delivery via {}: {what}\n\n",
                        d.recipient,
                        d.transport()
                    ));
                }
            }
        }
        details.push_str(&res.render());
        details.push('\n');
    }
    let now = yubin_maillog::clock::now_secs();
    let mut message = who.header();
    message.push_str(&format!(
        "From: MAILER-DAEMON@{hostname} (Mail Delivery System)\n\
         To: {sender}\n\
         Subject: Mail Delivery Status Report\n\
         Date: {}\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         Auto-Submitted: auto-replied\n\
         \n\
         This is the mail system at host {hostname}.\n\
         \n\
         Enclosed is the mail delivery report that you requested.\n\
         \n\
         \x20                  The mail system\n\
         \n\
         {report}\
         How each address was resolved (yubin trace):\n\
         \n\
         {details}",
        yubin_maillog::clock::rfc5322(now)
    ));
    let q = QueueFile {
        sender: String::new(),
        smtputf8: !sender.is_ascii(),
        recipients: vec![QueuedRecipient {
            address: sender.clone(),
            notify: Some("NEVER".into()),
            orcpt: None,
        }],
        message: message.into_bytes(),
        ..Default::default()
    };
    if let Err(code) = write_maildrop(spool, q) {
        return code;
    }
    println!("Mail Delivery Status Report will be mailed to <{sender}>.");
    poke(spool);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn flags_like_getopt() {
        let o = parse_args(&words("-oi -odb -f root@x -F Daemon -t a@b c")).unwrap();
        assert!(o.ignore_dots && o.extract);
        assert_eq!(o.sender.as_deref(), Some("root@x"));
        assert_eq!(o.full_name.as_deref(), Some("Daemon"));
        assert_eq!(o.recipients, ["a@b", "c"]);
        let o = parse_args(&words("-ti -fme -bs")).unwrap();
        assert!(o.ignore_dots && o.extract && o.mode == Mode::Smtp);
        assert_eq!(o.sender.as_deref(), Some("me"));
        let o = parse_args(&words("-- -notaflag")).unwrap();
        assert_eq!(o.recipients, ["-notaflag"]);
        let o = parse_args(&words("a -t")).unwrap();
        assert!(!o.extract && o.recipients == ["a", "-t"]);
        assert_eq!(parse_args(&words("-z")).unwrap_err(), EX_USAGE);
        assert_eq!(parse_args(&words("-f")).unwrap_err(), EX_USAGE);
        assert_eq!(parse_args(&words("-q")).unwrap().mode, Mode::Flush);
        assert_eq!(parse_args(&words("-q30m")).unwrap().flush_site, None);
        let o = parse_args(&words("-qRexample.org")).unwrap();
        assert_eq!(
            (o.mode, o.flush_site.as_deref()),
            (Mode::Flush, Some("example.org"))
        );
        let o = parse_args(&words("-qR example.org")).unwrap();
        assert_eq!(o.flush_site.as_deref(), Some("example.org"));
        assert_eq!(parse_args(&words("-qR")).unwrap_err(), EX_USAGE);
        assert_eq!(parse_args(&words("-bi")).unwrap().mode, Mode::Newaliases);
        assert_eq!(parse_args(&words("-bp")).unwrap().mode, Mode::Mailq);
        assert_eq!(parse_args(&words("-bv x")).unwrap().mode, Mode::Verify);
    }

    #[test]
    fn input_dots_and_line_ends() {
        let m = read_message(
            &b"From x\r\nA: b\r\n\r\nline\r\n.\r\nafter\n"[..],
            false,
            1000,
        )
        .unwrap();
        assert_eq!(m, b"A: b\n\nline\n");
        let m = read_message(&b"A: b\n\n.\nafter"[..], true, 1000).unwrap();
        assert_eq!(m, b"A: b\n\n.\nafter\n");
        assert_eq!(
            read_message(&[b'x'; 5000][..], true, 100).unwrap_err(),
            EX_DATAERR
        );
    }

    #[test]
    fn recipients_from_headers_and_lists() {
        let head = b"To: Root <root@localhost>, b@x\nCc: c@x\nBcc: \"Hidden\" <d@x>\nSubject: s\n";
        assert_eq!(
            header_recipients(head),
            ["root@localhost", "b@x", "c@x", "d@x"]
        );
        assert_eq!(address_list("a@x, B <b@y>"), ["a@x", "b@y"]);
        assert_eq!(address_list("root"), ["root"]);
        assert_eq!(
            from_header("Cron Daemon", "root", "mydomain.com"),
            "From: Cron Daemon <root@mydomain.com>\n"
        );
        assert_eq!(
            from_header("Doe, J.", "j@x", "m"),
            "From: \"Doe, J.\" <j@x>\n"
        );
    }
}
