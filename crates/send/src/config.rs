//! Turns parsed option occurrences into a typed configuration, applying
//! swaks' rules: the last occurrence wins, `--no-X` forgets X, `--protocol`
//! implies ports/TLS/AUTH, `--auth-user` implies `--auth`, and `-`, `@FILE`
//! and (deprecated) bare file names are read for the From-File options.

use std::path::PathBuf;
use std::time::Duration;

use crate::args::{self, Item};
use crate::conn::Family;
use crate::message::{AttachOpt, MessageSpec};
use crate::tls::TlsOptions;
use crate::transcript::Filter;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
    Pipe(String),
}

/// The protocol's greeting verb (swaks' `--protocol` core types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Smtp,
    Esmtp,
    Lmtp,
}

/// Points where `--quit-after`/`--drop-after` stop the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Connect,
    FirstHelo,
    Tls,
    Helo,
    Auth,
    Mail,
    Rcpt,
    Data,
    Dot,
}

impl Stage {
    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s.to_ascii_lowercase().as_str() {
            "connect" | "banner" => Stage::Connect,
            "first-helo" | "first-ehlo" | "first-lhlo" => Stage::FirstHelo,
            "tls" | "starttls" => Stage::Tls,
            "helo" | "ehlo" | "lhlo" => Stage::Helo,
            "auth" => Stage::Auth,
            "mail" | "from" => Stage::Mail,
            "rcpt" | "to" => Stage::Rcpt,
            "data" => Stage::Data,
            "dot" => Stage::Dot,
            _ => return None,
        })
    }
}

/// How much STARTTLS is wanted (swaks' `-tls`, `-tlso`, `-tlsos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    #[default]
    Off,
    Required,
    Optional,
    OptionalStrict,
}

/// How much AUTH is wanted (swaks' `-a`, `-ao`, `-aos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Required,
    Optional,
    OptionalStrict,
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub mode: AuthMode,
    /// Mechanisms to try, in order.
    pub mechs: Vec<String>,
    /// Whether the user named the types (swaks words errors differently).
    pub any: bool,
    pub user: String,
    pub password: String,
    pub plaintext: bool,
    pub hide_password: Option<String>,
}

/// `--count`/`--concurrency`/`--size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub count: usize,
    pub concurrency: usize,
    pub size: usize,
}

/// `--expect-delivery`.
#[derive(Debug, Clone)]
pub struct Expect {
    pub wait: Duration,
    pub maillog: Option<PathBuf>,
    pub yubin: Option<PathBuf>,
}

/// What `yubin send` was asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub transport: Transport,
    pub family: Family,
    pub to: Vec<String>,
    pub from: String,
    pub helo: String,
    pub quit_after: Option<Stage>,
    pub drop_after: Option<Stage>,
    pub timeout: Option<Duration>,
    pub timeout_secs: u64,
    pub proto: Proto,
    pub pipeline: bool,
    pub tls: TlsMode,
    pub tls_on_connect: bool,
    pub tls_options: TlsOptions,
    pub auth: Option<Auth>,
    pub message: MessageSpec,
    pub filter: Filter,
    /// `Some(true)`: milliseconds; `Some(false)`: whole seconds.
    pub time_lapse: Option<bool>,
    pub dump_mail: bool,
    pub expect: Option<Expect>,
    pub load: Option<Load>,
}

/// What the command line asks for.
pub enum Request {
    Help,
    Version,
    Run(Box<Config>),
}

/// Parses swaks' `--timeout`: `N`, `Ns`, `Nm`, `Nh`.
pub fn parse_time(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        's' | 'S' => (&s[..s.len() - 1], 1),
        'm' | 'M' => (&s[..s.len() - 1], 60),
        'h' | 'H' => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Splits `--server`: `HOST:PORT` (one colon), `[HOST]:PORT`, `HOST/PORT`,
/// or a bare host (IPv6 addresses included).
pub fn split_server(s: &str) -> (String, Option<String>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').or_else(|| after.strip_prefix('/'));
            return (
                host.to_string(),
                port.filter(|p| !p.is_empty()).map(str::to_string),
            );
        }
    }
    if let Some((host, port)) = s.rsplit_once('/') {
        return (host.to_string(), Some(port.to_string()));
    }
    if s.matches(':').count() == 1 {
        let (host, port) = s.split_once(':').unwrap_or((s, ""));
        return (
            host.to_string(),
            Some(port.to_string()).filter(|p| !p.is_empty()),
        );
    }
    (s.to_string(), None)
}

fn port_number(p: &str) -> Result<u16, String> {
    if let Ok(n) = p.parse::<u16>() {
        return Ok(n);
    }
    let port = yubin_sys::service_port(p);
    port.ok_or_else(|| format!("unknown port or service {p:?}"))
}

/// Reads standard input once; every `-` argument gets the same contents
/// (swaks(1), From-File).
struct Stdin(Option<Vec<u8>>);

impl Stdin {
    fn get(&mut self) -> Result<Vec<u8>, String> {
        if self.0.is_none() {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .map_err(|e| format!("reading standard input: {e}"))?;
            self.0 = Some(buf);
        }
        Ok(self.0.clone().unwrap_or_default())
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {}", crate::conn::describe(&e)))
}

/// From-File processing for --body/--attach/--attach-body: `-` is stdin,
/// `@FILE` a file, `@@x` the text `@x`, an existing file its contents
/// (swaks' deprecated behaviour), anything else the text itself. Returns the
/// contents and the file name they came from.
fn from_file(arg: &str, stdin: &mut Stdin) -> Result<(Vec<u8>, Option<String>), String> {
    if arg == "-" {
        return Ok((stdin.get()?, None));
    }
    if let Some(rest) = arg.strip_prefix('@') {
        if let Some(lit) = rest.strip_prefix('@') {
            return Ok((format!("@{lit}").into_bytes(), None));
        }
        return Ok((read_file(rest)?, Some(rest.to_string())));
    }
    if !arg.contains('\n') && std::path::Path::new(arg).is_file() {
        return Ok((read_file(arg)?, Some(arg.to_string())));
    }
    Ok((arg.as_bytes().to_vec(), None))
}

/// `--data`: like [`from_file`], but an argument without any newline
/// (literal, `\n` or %NEWLINE%) must be a file (swaks' deprecated rule).
fn data_arg(arg: &str, stdin: &mut Stdin) -> Result<String, String> {
    let bytes = if arg == "-" {
        stdin.get()?
    } else if let Some(rest) = arg.strip_prefix('@') {
        match rest.strip_prefix('@') {
            Some(lit) => format!("@{lit}").into_bytes(),
            None => read_file(rest)?,
        }
    } else if !arg.contains('\n') && !arg.contains("\\n") && !arg.contains("%NEWLINE%") {
        read_file(arg)?
    } else {
        arg.as_bytes().to_vec()
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn number(name: &str, v: &str) -> Result<usize, String> {
    v.parse()
        .map_err(|_| format!("--{name} needs a number, not {v:?}"))
}

/// Builds the configuration from the words after `yubin send`.
pub fn from_args(words: &[String]) -> Result<Request, String> {
    let items = args::parse(words)?;
    // Scalars: last value wins. Lists: every value, in order.
    let mut scalars: std::collections::HashMap<&str, Option<String>> = Default::default();
    let mut lists: Vec<(&str, Option<String>)> = Vec::new();
    const LISTS: &[&str] = &[
        "header",
        "add-header",
        "attach",
        "attach-body",
        "attach-type",
        "attach-name",
    ];
    for item in items {
        match item {
            Item::Set(name, v) if LISTS.contains(&name) => lists.push((name, v)),
            Item::Set(name, v) => {
                scalars.insert(name, v);
            }
            Item::Unset(name) => {
                scalars.remove(name);
                lists.retain(|(n, _)| *n != name);
            }
        }
    }
    let has = |n: &str| scalars.contains_key(n);
    let get = |n: &str| scalars.get(n).cloned().flatten();
    if has("help") {
        return Ok(Request::Help);
    }
    if has("version") {
        return Ok(Request::Version);
    }

    let mut proto = Proto::Esmtp;
    let mut tls = TlsMode::Off;
    let mut tls_on_connect = has("tls-on-connect");
    let mut default_port = 25;
    let mut proto_auth = false;
    if let Some(p) = get("protocol") {
        let (core, tlsc, auth, starttls) = match p.to_ascii_uppercase().as_str() {
            "SMTP" => (Proto::Smtp, false, false, false),
            "SSMTP" => (Proto::Esmtp, true, false, false),
            "SSMTPA" => (Proto::Esmtp, true, true, false),
            "SMTPS" => (Proto::Smtp, true, false, false),
            "ESMTP" => (Proto::Esmtp, false, false, false),
            "ESMTPA" => (Proto::Esmtp, false, true, false),
            "ESMTPS" => (Proto::Esmtp, false, false, true),
            "ESMTPSA" => (Proto::Esmtp, false, true, true),
            "LMTP" => (Proto::Lmtp, false, false, false),
            "LMTPA" => (Proto::Lmtp, false, true, false),
            "LMTPS" => (Proto::Lmtp, false, false, true),
            "LMTPSA" => (Proto::Lmtp, false, true, true),
            other => return Err(format!("Unknown protocol {other}")),
        };
        proto = core;
        tls_on_connect |= tlsc;
        proto_auth = auth;
        if starttls {
            tls = TlsMode::Required;
        }
        if core == Proto::Lmtp {
            default_port = 24;
        }
    }
    if tls_on_connect {
        default_port = 465;
    }
    if has("tls") {
        tls = TlsMode::Required;
    }
    if has("tls-optional") {
        tls = TlsMode::Optional;
    }
    if has("tls-optional-strict") {
        tls = TlsMode::OptionalStrict;
    }

    let transports = ["server", "socket", "pipe"]
        .iter()
        .filter(|t| has(t))
        .count();
    if transports > 1 {
        return Err(
            "Multiple transports specified: use only one of --server, --socket, --pipe".into(),
        );
    }
    let transport = if let Some(path) = get("socket") {
        Transport::Unix(path.into())
    } else if let Some(cmd) = get("pipe") {
        Transport::Pipe(cmd)
    } else {
        let (host, port) = match get("server") {
            Some(s) => split_server(&s),
            None => ("localhost".to_string(), None),
        };
        let port = match get("port").or(port) {
            Some(p) => port_number(&p)?,
            None => default_port,
        };
        Transport::Tcp { host, port }
    };
    let family = match (has("4"), has("6")) {
        (true, true) => return Err("-4 and -6 exclude each other".into()),
        (true, false) => Family::V4,
        (false, true) => Family::V6,
        _ => Family::Any,
    };

    let host = crate::sysinfo::hostname();
    let from = match get("from") {
        Some(f) if f == "<>" => String::new(),
        Some(f) => f,
        None => format!("{}@{host}", crate::sysinfo::username(has("force-getpwuid"))),
    };
    let to_raw = get("to").unwrap_or_default();
    let to: Vec<String> = to_raw
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let quit_after = match get("quit-after") {
        Some(s) => Some(Stage::parse(&s).ok_or_else(|| format!("Unknown --quit-after value {s}"))?),
        None => None,
    };
    let drop_after = match get("drop-after") {
        Some(s) => Some(Stage::parse(&s).ok_or_else(|| format!("Unknown --drop-after value {s}"))?),
        None => None,
    };
    let stop = quit_after.or(drop_after);
    if to.is_empty()
        && !has("dump-mail")
        && !matches!(stop, Some(s) if s <= Stage::Mail)
        && !has("count")
    {
        return Err("No recipient given: use --to ADDRESS (yubin send does not prompt)".into());
    }
    let helo = get("helo").unwrap_or_else(|| host.clone());
    let timeout_text = get("timeout").unwrap_or_else(|| "30s".into());
    let timeout_secs = parse_time(&timeout_text)
        .ok_or_else(|| format!("Unknown timeout format '{timeout_text}'"))?;
    let timeout = (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs));

    // AUTH
    let auth_types = get("auth")
        .or(get("auth-optional-strict"))
        .or(get("auth-optional"));
    let mode = if has("auth") || proto_auth {
        Some(AuthMode::Required)
    } else if has("auth-optional-strict") {
        Some(AuthMode::OptionalStrict)
    } else if has("auth-optional") {
        Some(AuthMode::Optional)
    } else if has("auth-user") || has("auth-password") {
        Some(AuthMode::Required)
    } else {
        None
    };
    let auth = match mode {
        None => None,
        Some(mode) => {
            let any = !matches!(auth_types.as_deref(), Some(t) if !t.is_empty());
            let mechs: Vec<String> = if any {
                crate::auth::DEFAULT_ORDER
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                let asked: Vec<String> = auth_types
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .collect();
                let ok: Vec<String> = asked
                    .iter()
                    .filter(|m| crate::auth::supported(m))
                    .cloned()
                    .collect();
                if ok.is_empty() {
                    return Err(format!("No auth types supported (asked for {}; yubin send has PLAIN, LOGIN, CRAM-MD5)", asked.join(",")));
                }
                ok
            };
            let unbracket = |v: String| if v == "<>" { String::new() } else { v };
            let user = get("auth-user")
                .map(unbracket)
                .ok_or("AUTH needs --auth-user (yubin send does not prompt or read .netrc)")?;
            let password = get("auth-password")
                .map(unbracket)
                .ok_or("AUTH needs --auth-password (yubin send does not prompt or read .netrc)")?;
            Some(Auth {
                mode,
                mechs,
                any,
                user,
                password,
                plaintext: has("auth-plaintext"),
                hide_password: has("auth-hide-password").then(|| {
                    get("auth-hide-password").unwrap_or_else(|| "PROVIDED_BUT_REMOVED".into())
                }),
            })
        }
    };

    // DATA
    let mut stdin = Stdin(None);
    let body = match get("body") {
        Some(b) => Some(String::from_utf8_lossy(&from_file(&b, &mut stdin)?.0).into_owned()),
        None => None,
    };
    let data = match get("data") {
        Some(d) => Some(data_arg(&d, &mut stdin)?),
        None => None,
    };
    let mut attach = Vec::new();
    let mut headers = Vec::new();
    let mut add_headers = Vec::new();
    for (name, value) in lists {
        match name {
            "header" => headers.extend(value),
            "add-header" => add_headers.extend(value),
            "attach-type" => attach.push(AttachOpt::Type(value.unwrap_or_default())),
            "attach-name" => attach.push(AttachOpt::Name(value)),
            "attach-body" => attach.push(AttachOpt::Body(
                from_file(&value.unwrap_or_default(), &mut stdin)?.0,
            )),
            _ => {
                let (contents, file) = from_file(&value.unwrap_or_default(), &mut stdin)?;
                attach.push(AttachOpt::Attach(contents, file));
            }
        }
    }
    let now = crate::sysinfo::local_time(crate::sysinfo::now_unix());
    let message = MessageSpec {
        from: from.clone(),
        to: to_raw,
        data,
        body,
        attach,
        add_headers,
        headers,
        no_data_fixup: has("no-data-fixup"),
        no_strip_from: has("no-strip-from"),
        date: crate::sysinfo::date_string(&now),
        message_id: crate::sysinfo::message_id(&now, &host),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };

    let silent = match (has("silent"), get("silent")) {
        (false, _) => 0,
        (true, Some(v)) if matches!(v.as_str(), "1" | "2" | "3") => v.parse().unwrap_or(1),
        (true, _) => 1,
    };
    let filter = Filter {
        hide_send: has("hide-send"),
        hide_receive: has("hide-receive"),
        hide_informational: has("hide-informational"),
        hide_all: has("hide-all"),
        no_send_hints: has("no-send-hints") || has("no-hints"),
        no_receive_hints: has("no-receive-hints") || has("no-hints"),
        no_info_hints: has("no-info-hints"),
        silent,
        suppress_data: has("suppress-data"),
    };
    let time_lapse = has("show-time-lapse").then(|| get("show-time-lapse").as_deref() != Some("i"));

    let expect = if has("expect-delivery") {
        let wait = match get("expect-delivery") {
            Some(s) => parse_time(&s)
                .ok_or_else(|| format!("--expect-delivery needs seconds, not {s:?}"))?,
            None => 30,
        };
        Some(Expect {
            wait: Duration::from_secs(wait),
            maillog: get("maillog").map(PathBuf::from),
            yubin: get("yubin-command").map(PathBuf::from),
        })
    } else {
        None
    };
    let load = match get("count") {
        Some(c) => {
            let count = number("count", &c)?;
            let concurrency = get("concurrency")
                .map(|c| number("concurrency", &c))
                .transpose()?
                .unwrap_or(1);
            let size = get("size")
                .map(|s| number("size", &s))
                .transpose()?
                .unwrap_or(1024);
            if count == 0 || concurrency == 0 {
                return Err("--count and --concurrency must be at least 1".into());
            }
            if concurrency > 1024 {
                return Err("--concurrency is limited to 1024".into());
            }
            if size > 64 * 1024 * 1024 {
                return Err("--size is limited to 64 MiB".into());
            }
            Some(Load {
                count,
                concurrency,
                size,
            })
        }
        None if has("concurrency") || has("size") => {
            return Err("--concurrency and --size belong to load mode: add --count N".into())
        }
        None => None,
    };

    Ok(Request::Run(Box::new(Config {
        transport,
        family,
        to,
        from,
        helo,
        quit_after,
        drop_after,
        timeout,
        timeout_secs,
        proto,
        pipeline: has("pipeline"),
        tls,
        tls_on_connect,
        tls_options: TlsOptions {
            verify: has("tls-verify"),
            ca_path: get("tls-ca-path").map(PathBuf::from),
            sni: get("tls-sni"),
            cert: get("tls-cert").map(PathBuf::from),
            key: get("tls-key").map(PathBuf::from),
        },
        auth,
        message,
        filter,
        time_lapse,
        dump_mail: has("dump-mail"),
        expect,
        load,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(words: &[&str]) -> Result<Config, String> {
        match from_args(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())? {
            Request::Run(c) => Ok(*c),
            _ => Err("not a run".into()),
        }
    }

    #[test]
    fn servers_and_ports() {
        assert_eq!(split_server("localhost"), ("localhost".into(), None));
        assert_eq!(
            split_server("127.0.0.1:2525"),
            ("127.0.0.1".into(), Some("2525".into()))
        );
        assert_eq!(
            split_server("[::1]:2525"),
            ("::1".into(), Some("2525".into()))
        );
        assert_eq!(split_server("::1/26"), ("::1".into(), Some("26".into())));
        assert_eq!(split_server("::1"), ("::1".into(), None));
        let c = cfg(&["-t", "a@b", "--protocol", "LMTP"]).unwrap();
        assert_eq!(
            c.transport,
            Transport::Tcp {
                host: "localhost".into(),
                port: 24
            }
        );
        let c = cfg(&["-t", "a@b", "-tlsc", "-s", "h"]).unwrap();
        assert_eq!(
            c.transport,
            Transport::Tcp {
                host: "h".into(),
                port: 465
            }
        );
        let c = cfg(&["-t", "a@b", "-s", "h:26", "-p", "smtp"]).unwrap();
        assert_eq!(
            c.transport,
            Transport::Tcp {
                host: "h".into(),
                port: 25
            }
        );
    }

    #[test]
    fn times_and_errors() {
        assert_eq!(parse_time("5"), Some(5));
        assert_eq!(parse_time("3m"), Some(180));
        assert_eq!(parse_time("1h"), Some(3600));
        assert_eq!(parse_time("x"), None);
        assert!(cfg(&["-s", "h"]).unwrap_err().contains("No recipient"));
        assert!(cfg(&["-t", "a@b", "--timeout", "soon"])
            .unwrap_err()
            .contains("timeout"));
        assert!(cfg(&["-t", "a@b", "-s", "h", "--pipe", "x"])
            .unwrap_err()
            .contains("Multiple"));
        assert!(cfg(&["-t", "a@b", "-a"])
            .unwrap_err()
            .contains("--auth-user"));
        assert!(cfg(&["-s", "h", "-q", "banner"]).is_ok());
    }

    #[test]
    fn auth_defaults_and_null_sender() {
        let c = cfg(&["-t", "a@b", "-au", "u", "-ap", "<>", "-f", "<>"]).unwrap();
        let a = c.auth.unwrap();
        assert_eq!(a.mechs, vec!["CRAM-MD5", "LOGIN", "PLAIN"]);
        assert_eq!((a.user.as_str(), a.password.as_str()), ("u", ""));
        assert_eq!(c.from, "");
        let c = cfg(&["-t", "a@b", "-a", "plain,ntlm", "-au", "u", "-ap", "p"]).unwrap();
        assert_eq!(c.auth.unwrap().mechs, vec!["PLAIN"]);
    }
}
