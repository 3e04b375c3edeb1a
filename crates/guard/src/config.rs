//! `denyhosts.conf`, read as DenyHosts 3.1.2 `prefs.py` reads it: blank lines
//! and `#` lines skipped, `NAME = value`, `NAME: value` or `NAME=value`, the
//! name upper-cased, the value verbatim to the end of the line (no quote
//! removal), `$[VAR]` replaced from the environment, an empty value meaning
//! "unset", a repeated key overriding except `USERDEF_FAILED_ENTRY_REGEX`,
//! which accumulates. Unlike DenyHosts, an unknown key is reported with its
//! file and line, and a bad value is an error naming file, line and key.
//!
//! Keys DenyHosts lacks are marked "yubin" in [`KNOWN_KEYS`] and documented in
//! docs/guard.md.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::Mode;

/// Every key this reader understands: (name, meaning). DenyHosts keys that
/// yubin accepts but does not act on are listed in [`IGNORED_KEYS`].
pub const KNOWN_KEYS: &[(&str, &str)] = &[
    (
        "SECURE_LOG",
        "log file(s) to follow, comma separated; `journal` = read journald",
    ),
    ("HOSTS_DENY", "file that receives the deny lines"),
    (
        "BLOCK_SERVICE",
        "daemon list written before the address (blank = bare address)",
    ),
    (
        "PURGE_DENY",
        "age after which entries are removed by --purge / the daemon",
    ),
    (
        "PURGE_THRESHOLD",
        "a host blocked this many times is never purged (0 = no limit)",
    ),
    (
        "DENY_THRESHOLD_INVALID",
        "deny when a host's invalid-user count exceeds this",
    ),
    ("DENY_THRESHOLD", "old name of DENY_THRESHOLD_INVALID"),
    (
        "DENY_THRESHOLD_VALID",
        "deny when a host's valid-user count exceeds this",
    ),
    (
        "DENY_THRESHOLD_ROOT",
        "deny when a host's root count exceeds this",
    ),
    (
        "DENY_THRESHOLD_RESTRICTED",
        "deny when a host's restricted-user count exceeds this",
    ),
    ("WORK_DIR", "state directory"),
    (
        "ETC_DIR",
        "directory of restricted-usernames (as DenyHosts 3.x)",
    ),
    (
        "ALLOWED_HOSTS",
        "yubin: path of the allow list (default WORK_DIR/allowed-hosts)",
    ),
    (
        "RESET_ON_SUCCESS",
        "a successful login zeroes the host's counters",
    ),
    (
        "AGE_RESET_VALID",
        "valid counter drops to 0 after this quiet time",
    ),
    (
        "AGE_RESET_ROOT",
        "root counter drops to 0 after this quiet time",
    ),
    (
        "AGE_RESET_RESTRICTED",
        "restricted counter drops to 0 after this quiet time",
    ),
    (
        "AGE_RESET_INVALID",
        "invalid counter drops to 0 after this quiet time",
    ),
    (
        "SUSPICIOUS_LOGIN_REPORT_ALLOWED_HOSTS",
        "report suspicious logins from allowed hosts too",
    ),
    ("HOSTNAME_LOOKUP", "print `IP (name)` in reports"),
    (
        "ADMIN_EMAIL",
        "report recipients, comma separated; blank = no mail",
    ),
    ("SMTP_HOST", "SMTP server for reports"),
    ("SMTP_PORT", "its port"),
    ("SMTP_FROM", "From: header and envelope sender"),
    ("SMTP_SUBJECT", "Subject: of reports"),
    (
        "SMTP_USERNAME",
        "accepted; yubin submits without AUTH (see docs)",
    ),
    (
        "SMTP_PASSWORD",
        "accepted; yubin submits without AUTH (see docs)",
    ),
    ("SMTP_DATE_FORMAT", "strftime format of the Date: header"),
    ("DAEMON_SLEEP", "poll interval of the daemon"),
    ("DAEMON_PURGE", "purge interval of the daemon"),
    ("DAEMON_LOG", "the daemon's own log file (blank = none)"),
    ("LOCK_FILE", "pid file of the daemon"),
    (
        "USERDEF_FAILED_ENTRY_REGEX",
        "extra regex with (?P<host>…) tried on lines no rule matched",
    ),
    (
        "REPORT_INTERVAL",
        "yubin: at most one digest mail per interval; 0 = one mail per batch (DenyHosts)",
    ),
    (
        "SSHD_MODE",
        "yubin: normal | ddos | extra | aggressive (fail2ban's sshd modes)",
    ),
    (
        "BLOCKERS",
        "yubin: hosts.deny and/or nftables, comma separated",
    ),
    (
        "NFT_TABLE",
        "yubin: nftables table (family inet) holding the deny sets",
    ),
    ("NFT_COMMAND", "yubin: path of nft"),
    (
        "JOURNALCTL",
        "yubin: path of journalctl for SECURE_LOG = journal",
    ),
];

/// DenyHosts keys accepted for compatibility that yubin does not act on.
pub const IGNORED_KEYS: &[&str] = &[
    "DETECT_DOVECOT_LOGIN_ATTEMPTS",
    "ALLOWED_HOSTS_HOSTNAME_LOOKUP",
    "SMTP_SSL",
    "EMAIL_METHOD",
    "SYSLOG_REPORT",
    "IPTABLES",
    "BLOCKPORT",
    "PFCTL_PATH",
    "PF_TABLE",
    "PF_TABLE_FILE",
    "PLUGIN_DENY",
    "PLUGIN_PURGE",
    "DAEMON_LOG_TIME_FORMAT",
    "DAEMON_LOG_MESSAGE_FORMAT",
    "SYNC_VERSION",
    "SSHD_FORMAT_REGEX",
    "FAILED_ENTRY_REGEX",
    "SUCCESSFUL_ENTRY_REGEX",
    "FAILED_DOVECOT_ENTRY_REGEX",
];

/// Where logs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    File(PathBuf),
    Journal,
}

/// A blocking backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    HostsDeny,
    Nftables,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub secure_log: Vec<LogSource>,
    pub hosts_deny: PathBuf,
    pub block_service: String,
    pub purge_deny: Option<Duration>,
    pub purge_threshold: u32,
    pub deny_threshold_invalid: u32,
    pub deny_threshold_valid: u32,
    pub deny_threshold_root: u32,
    pub deny_threshold_restricted: u32,
    pub work_dir: PathBuf,
    pub etc_dir: PathBuf,
    pub allowed_hosts: PathBuf,
    pub reset_on_success: bool,
    pub age_reset_valid: Option<Duration>,
    pub age_reset_root: Option<Duration>,
    pub age_reset_restricted: Option<Duration>,
    pub age_reset_invalid: Option<Duration>,
    pub suspicious_login_report_allowed_hosts: bool,
    pub hostname_lookup: bool,
    /// ADMIN_EMAIL verbatim (DenyHosts writes it to `To:` as is).
    pub admin_email: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_from: String,
    pub smtp_subject: String,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub smtp_date_format: String,
    pub daemon_sleep: Duration,
    pub daemon_purge: Duration,
    pub daemon_log: Option<PathBuf>,
    pub lock_file: PathBuf,
    pub userdef_failed_entry_regex: Vec<regex::Regex>,
    pub report_interval: Duration,
    pub sshd_mode: Mode,
    pub blockers: Vec<Blocker>,
    pub nft_table: String,
    pub nft_command: String,
    pub journalctl: String,
    /// Warnings (unknown or ignored keys), each `file:line: text`.
    pub warnings: Vec<String>,
    /// SYNC_SERVER = pgsql:FILE and the other SYNC_* keys (crate::sync).
    pub sync: Option<crate::sync::SyncSettings>,
}

/// The SYNC_* keys while the file is read.
struct SyncKeys {
    server: Option<PathBuf>,
    upload: bool,
    download: bool,
    threshold: u32,
    interval: Duration,
    resiliency: Duration,
    node: Option<String>,
}

/// A configuration error: file, line (0 = whole file) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// One `KEY = value` line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// Splits the file into entries (syntax only; no key checking). Public for the
/// fuzz target.
pub fn parse_entries(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Entry>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| ConfigError {
            file: file.to_string(),
            line,
            message,
        };
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some(sep) = t.find([':', '=']) else {
            return Err(err(format!("expected `NAME = value`, got {t:?}")));
        };
        let key = t[..sep].trim();
        if key.is_empty() || !key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(err(format!("bad key name {key:?}")));
        }
        let value = t[sep + 1..].trim();
        let value = expand_env(value, env).map_err(err)?;
        out.push(Entry {
            line,
            key: key.to_ascii_uppercase(),
            value,
        });
    }
    Ok(out)
}

/// `$[VAR]` substitution (DenyHosts `prefs.py`); a missing variable is fatal.
fn expand_env(v: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(p) = rest.find("$[") {
        out.push_str(&rest[..p]);
        let r = &rest[p + 2..];
        let Some(e) = r.find(']') else {
            return Err(format!("unterminated $[ in {v:?}"));
        };
        let name = &r[..e];
        match env(name) {
            Some(val) => out.push_str(&val),
            None => {
                return Err(format!(
                    "environment variable {name} (used as $[{name}]) is not set"
                ))
            }
        }
        rest = &r[e + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// DenyHosts time spec: `<integer><unit>`, unit `s` (default), `m` minutes,
/// `h`, `d`, `w`, `y` (365 days), spaces allowed between. `0` is rejected
/// unless `allow_zero`.
pub fn parse_timespec(v: &str, allow_zero: bool) -> Result<Duration, String> {
    let t = v.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 12 {
        return Err(format!(
            "bad time {v:?} (expected e.g. 30s, 10m, 5d, 1w, 1y)"
        ));
    }
    let n: u64 = t[..digits].parse().map_err(|_| format!("bad time {v:?}"))?;
    let unit = t[digits..].trim();
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(format!(
                "bad time unit {unit:?} in {v:?} (s, m, h, d, w or y)"
            ))
        }
    };
    if n == 0 && !allow_zero {
        return Err(format!("time {v:?} must not be 0"));
    }
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "on" | "1" => Ok(true),
        "no" | "n" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, got {v:?}")),
    }
}

fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("expected a number, got {v:?}"))
}

impl Config {
    /// Built-in defaults: DenyHosts 3.1.2's shipped `denyhosts.conf` (Debian
    /// paths), with `HOSTNAME_LOOKUP = NO` as there.
    pub fn defaults(path: &Path) -> Config {
        let work_dir = PathBuf::from("/var/lib/denyhosts");
        Config {
            path: path.to_path_buf(),
            secure_log: vec![LogSource::File(PathBuf::from("/var/log/auth.log"))],
            hosts_deny: PathBuf::from("/etc/hosts.deny"),
            block_service: "sshd".into(),
            purge_deny: None,
            purge_threshold: 0,
            deny_threshold_invalid: 5,
            deny_threshold_valid: 10,
            deny_threshold_root: 1,
            deny_threshold_restricted: 1,
            allowed_hosts: work_dir.join("allowed-hosts"),
            work_dir,
            etc_dir: PathBuf::from("/etc"),
            reset_on_success: false,
            age_reset_valid: Some(Duration::from_secs(5 * 86_400)),
            age_reset_root: Some(Duration::from_secs(25 * 86_400)),
            age_reset_restricted: Some(Duration::from_secs(25 * 86_400)),
            age_reset_invalid: Some(Duration::from_secs(10 * 86_400)),
            suspicious_login_report_allowed_hosts: true,
            hostname_lookup: false,
            admin_email: String::new(),
            smtp_host: "localhost".into(),
            smtp_port: 25,
            smtp_from: "DenyHosts <nobody@localhost>".into(),
            smtp_subject: "DenyHosts Report".into(),
            smtp_username: None,
            smtp_password: None,
            smtp_date_format: "%a, %d %b %Y %H:%M:%S %z".into(),
            daemon_sleep: Duration::from_secs(30),
            daemon_purge: Duration::from_secs(3600),
            daemon_log: None,
            lock_file: PathBuf::from("/run/yubin-guard.pid"),
            userdef_failed_entry_regex: Vec::new(),
            report_interval: Duration::from_secs(3600),
            sshd_mode: Mode::NORMAL,
            blockers: vec![Blocker::HostsDeny],
            nft_table: "yubin_guard".into(),
            nft_command: "nft".into(),
            journalctl: "journalctl".into(),
            warnings: Vec::new(),
            sync: None,
        }
    }

    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Config::from_text(path, &text, &|k| std::env::var(k).ok())
    }

    /// Parses `text` as the content of `path`.
    pub fn from_text(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let entries = parse_entries(&file, text, env)?;
        let mut c = Config::defaults(path);
        let mut work_dir_set = false;
        let mut allowed_set = false;
        let mut restricted_set = false;
        let mut daemon_log_set = false;
        // DenyHosts' defaults (denyhosts.conf): upload and download on,
        // threshold 3, every hour, resiliency 5 hours.
        let mut sync_keys = SyncKeys {
            server: None,
            upload: true,
            download: true,
            threshold: 3,
            interval: Duration::from_secs(3600),
            resiliency: Duration::from_secs(5 * 3600),
            node: None,
        };
        for e in &entries {
            let err = |message: String| ConfigError {
                file: file.clone(),
                line: e.line,
                message: format!("{}: {message}", e.key),
            };
            let v = e.value.as_str();
            let blank = v.is_empty();
            let dur = |zero: bool| -> Result<Option<Duration>, ConfigError> {
                if blank {
                    Ok(None)
                } else {
                    parse_timespec(v, zero).map(Some).map_err(&err)
                }
            };
            match e.key.as_str() {
                "SECURE_LOG" => {
                    c.secure_log = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            if s == "journal" {
                                LogSource::Journal
                            } else {
                                LogSource::File(PathBuf::from(s))
                            }
                        })
                        .collect();
                    if c.secure_log.is_empty() {
                        return Err(err("must not be blank".into()));
                    }
                }
                "HOSTS_DENY" if !blank => c.hosts_deny = PathBuf::from(v),
                "BLOCK_SERVICE" => c.block_service = v.to_string(),
                "PURGE_DENY" => c.purge_deny = dur(false)?,
                "PURGE_THRESHOLD" => {
                    c.purge_threshold = if blank {
                        0
                    } else {
                        parse_num(v).map_err(&err)?
                    }
                }
                "DENY_THRESHOLD_INVALID" | "DENY_THRESHOLD" if !blank => {
                    c.deny_threshold_invalid = parse_num(v).map_err(&err)?
                }
                "DENY_THRESHOLD_VALID" if !blank => {
                    c.deny_threshold_valid = parse_num(v).map_err(&err)?
                }
                "DENY_THRESHOLD_ROOT" if !blank => {
                    c.deny_threshold_root = parse_num(v).map_err(&err)?;
                    if !restricted_set {
                        c.deny_threshold_restricted = c.deny_threshold_root;
                    }
                }
                "DENY_THRESHOLD_RESTRICTED" if !blank => {
                    c.deny_threshold_restricted = parse_num(v).map_err(&err)?;
                    restricted_set = true;
                }
                "WORK_DIR" if !blank => {
                    c.work_dir = PathBuf::from(v);
                    work_dir_set = true;
                }
                "ETC_DIR" if !blank => c.etc_dir = PathBuf::from(v),
                "ALLOWED_HOSTS" if !blank => {
                    c.allowed_hosts = PathBuf::from(v);
                    allowed_set = true;
                }
                "RESET_ON_SUCCESS" => c.reset_on_success = !blank && parse_bool(v).map_err(&err)?,
                "AGE_RESET_VALID" => c.age_reset_valid = dur(false)?,
                "AGE_RESET_ROOT" => c.age_reset_root = dur(false)?,
                "AGE_RESET_RESTRICTED" => c.age_reset_restricted = dur(false)?,
                "AGE_RESET_INVALID" => c.age_reset_invalid = dur(false)?,
                "SUSPICIOUS_LOGIN_REPORT_ALLOWED_HOSTS" => {
                    c.suspicious_login_report_allowed_hosts =
                        blank || parse_bool(v).map_err(&err)?
                }
                "HOSTNAME_LOOKUP" => c.hostname_lookup = !blank && parse_bool(v).map_err(&err)?,
                "ADMIN_EMAIL" => c.admin_email = v.to_string(),
                "SMTP_HOST" if !blank => c.smtp_host = v.to_string(),
                "SMTP_PORT" if !blank => c.smtp_port = parse_num(v).map_err(&err)?,
                "SMTP_FROM" if !blank => c.smtp_from = v.to_string(),
                "SMTP_SUBJECT" if !blank => c.smtp_subject = v.to_string(),
                "SMTP_USERNAME" => c.smtp_username = (!blank).then(|| v.to_string()),
                "SMTP_PASSWORD" => c.smtp_password = (!blank).then(|| v.to_string()),
                "SMTP_DATE_FORMAT" if !blank => c.smtp_date_format = v.to_string(),
                "DAEMON_SLEEP" if !blank => {
                    c.daemon_sleep = parse_timespec(v, false).map_err(&err)?
                }
                "DAEMON_PURGE" if !blank => {
                    c.daemon_purge = parse_timespec(v, false).map_err(&err)?
                }
                "DAEMON_LOG" => {
                    daemon_log_set = true;
                    c.daemon_log = (!blank).then(|| PathBuf::from(v));
                }
                "LOCK_FILE" if !blank => c.lock_file = PathBuf::from(v),
                "USERDEF_FAILED_ENTRY_REGEX" if !blank => {
                    let re = regex::Regex::new(v).map_err(|x| err(format!("bad regex: {x}")))?;
                    if !re.capture_names().any(|n| n == Some("host")) {
                        return Err(err("regex needs a (?P<host>…) group".into()));
                    }
                    c.userdef_failed_entry_regex.push(re);
                }
                "REPORT_INTERVAL" => c.report_interval = dur(true)?.unwrap_or(Duration::ZERO),
                "SSHD_MODE" if !blank => {
                    c.sshd_mode = Mode::parse(v).ok_or_else(|| {
                        err(format!(
                            "expected normal, ddos, extra or aggressive, got {v:?}"
                        ))
                    })?
                }
                "BLOCKERS" => {
                    let mut b = Vec::new();
                    for w in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        b.push(match w.to_ascii_lowercase().as_str() {
                            "hosts.deny" | "hosts_deny" | "hostsdeny" => Blocker::HostsDeny,
                            "nftables" | "nft" => Blocker::Nftables,
                            _ => {
                                return Err(err(format!(
                                    "unknown blocker {w:?} (hosts.deny, nftables)"
                                )))
                            }
                        });
                    }
                    c.blockers = b;
                }
                "NFT_TABLE" if !blank => {
                    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        return Err(err(format!(
                            "table name {v:?} must be letters, digits and _"
                        )));
                    }
                    c.nft_table = v.to_string();
                }
                "NFT_COMMAND" if !blank => c.nft_command = v.to_string(),
                "JOURNALCTL" if !blank => c.journalctl = v.to_string(),
                "SYNC_SERVER" if !blank => {
                    let Some(f) = v.strip_prefix("pgsql:") else {
                        return Err(err(format!(
                            "{v}: yubin guard shares blocks through PostgreSQL: SYNC_SERVER = pgsql:/etc/yubin/guard-sync.cf (docs/guard.md)"
                        )));
                    };
                    sync_keys.server = Some(PathBuf::from(f));
                }
                "SYNC_SERVER" => {}
                "SYNC_UPLOAD" => sync_keys.upload = blank || parse_bool(v).map_err(&err)?,
                "SYNC_DOWNLOAD" => sync_keys.download = blank || parse_bool(v).map_err(&err)?,
                "SYNC_DOWNLOAD_THRESHOLD" if !blank => {
                    sync_keys.threshold = v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err(format!("{v:?} is not a positive number")))?
                }
                "SYNC_INTERVAL" if !blank => {
                    sync_keys.interval = parse_timespec(v, false).map_err(&err)?
                }
                "SYNC_DOWNLOAD_RESILIENCY" if !blank => {
                    sync_keys.resiliency = parse_timespec(v, true).map_err(&err)?
                }
                "SYNC_NODE_NAME" if !blank => sync_keys.node = Some(v.to_string()),
                k if KNOWN_KEYS.iter().any(|(n, _)| *n == k) => {}
                k if IGNORED_KEYS.contains(&k) || k.starts_with("FAILED_ENTRY_REGEX") => {
                    c.warnings.push(format!(
                        "{file}:{}: {k} is a DenyHosts key yubin guard does not act on; ignored",
                        e.line
                    ))
                }
                k => c
                    .warnings
                    .push(format!("{file}:{}: unknown key {k}; ignored", e.line)),
            }
        }
        if let Some(server) = sync_keys.server {
            c.sync = Some(crate::sync::SyncSettings {
                server,
                upload: sync_keys.upload,
                download: sync_keys.download,
                threshold: sync_keys.threshold,
                interval: sync_keys.interval,
                resiliency: sync_keys.resiliency,
                node: sync_keys.node.unwrap_or_else(crate::report::hostname),
            });
        }
        if work_dir_set && !allowed_set {
            c.allowed_hosts = c.work_dir.join("allowed-hosts");
        }
        let _ = daemon_log_set;
        Ok(c)
    }

    /// Recipients split on commas (DenyHosts `util.py send_email`).
    pub fn recipients(&self) -> Vec<String> {
        self.admin_email
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The address inside `SMTP_FROM` (`DenyHosts <nobody@localhost>` →
    /// `nobody@localhost`).
    pub fn envelope_from(&self) -> String {
        let f = self.smtp_from.trim();
        match (f.rfind('<'), f.rfind('>')) {
            (Some(a), Some(b)) if a < b => f[a + 1..b].to_string(),
            _ => f.to_string(),
        }
    }

    /// `WORK_DIR/restricted-usernames` (2.6) or `ETC_DIR/restricted-usernames` (3.x).
    pub fn restricted_usernames(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in [
            self.work_dir.join("restricted-usernames"),
            self.etc_dir.join("restricted-usernames"),
        ] {
            if let Ok(t) = std::fs::read_to_string(&p) {
                for l in t.lines() {
                    let l = l.trim();
                    if !l.is_empty() && !l.starts_with('#') {
                        out.push(l.to_string());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(t: &str) -> Result<Config, ConfigError> {
        Config::from_text(Path::new("denyhosts.conf"), t, &|k| {
            (k == "HOME").then(|| "/root".to_string())
        })
    }

    #[test]
    fn denyhosts_syntax() {
        let c = conf(
            "# comment\n\nSECURE_LOG = /var/log/secure\nhosts_deny: /tmp/hd\nDENY_THRESHOLD_ROOT=3\nWORK_DIR = $[HOME]/dh\nADMIN_EMAIL = \"a@b\"\nPURGE_DENY = 4w\nREPORT_INTERVAL = 0\n",
        )
        .unwrap();
        assert_eq!(
            c.secure_log,
            vec![LogSource::File("/var/log/secure".into())]
        );
        assert_eq!(c.hosts_deny, PathBuf::from("/tmp/hd"));
        assert_eq!((c.deny_threshold_root, c.deny_threshold_restricted), (3, 3));
        assert_eq!(c.work_dir, PathBuf::from("/root/dh"));
        assert_eq!(c.allowed_hosts, PathBuf::from("/root/dh/allowed-hosts"));
        assert_eq!(c.admin_email, "\"a@b\"");
        assert_eq!(c.purge_deny, Some(Duration::from_secs(28 * 86_400)));
        assert_eq!(c.report_interval, Duration::ZERO);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = conf("A_OK = 1\nDAEMON_SLEEP = 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "denyhosts.conf:2: DAEMON_SLEEP: time \"0\" must not be 0"
        );
        let e = conf("\nWORK_DIR = $[NOPE]\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = conf("just words\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = conf("USERDEF_FAILED_ENTRY_REGEX = bad (?P<user>x)\n").unwrap_err();
        assert!(e.to_string().contains("host"), "{e}");
    }

    #[test]
    fn unknown_keys_warned_with_line() {
        let c = conf("FOO = 1\nSYNC_VERSION = 2\n").unwrap();
        assert_eq!(c.warnings[0], "denyhosts.conf:1: unknown key FOO; ignored");
        assert!(c.warnings[1].starts_with("denyhosts.conf:2: SYNC_VERSION"));
    }

    #[test]
    fn sync_keys() {
        let e = conf("SYNC_SERVER = http://xmlrpc.denyhosts.net:9911\n").unwrap_err();
        assert!(e.to_string().contains("pgsql:"), "{e}");
        let c = conf("SYNC_SERVER = pgsql:/etc/yubin/guard-sync.cf\nSYNC_DOWNLOAD_THRESHOLD = 1\nSYNC_INTERVAL = 2s\nSYNC_DOWNLOAD_RESILIENCY = 0\nSYNC_UPLOAD = no\nSYNC_NODE_NAME = mx1\n").unwrap();
        let s = c.sync.unwrap();
        assert_eq!(s.server, PathBuf::from("/etc/yubin/guard-sync.cf"));
        assert_eq!((s.upload, s.download, s.threshold), (false, true, 1));
        assert_eq!(
            (s.interval, s.resiliency),
            (Duration::from_secs(2), Duration::ZERO)
        );
        assert_eq!(s.node, "mx1");
        assert!(conf("SYNC_INTERVAL = 1h\n").unwrap().sync.is_none());
    }

    #[test]
    fn timespecs() {
        assert_eq!(
            parse_timespec("30", false).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            parse_timespec("10 m", false).unwrap(),
            Duration::from_secs(600)
        );
        assert!(parse_timespec("1x", false).is_err());
        assert!(parse_timespec("", false).is_err());
        assert!(parse_timespec("99999999999999999", false).is_err());
    }

    #[test]
    fn envelope_from() {
        let c = conf("SMTP_FROM = DenyHosts <nobody@localhost>\n").unwrap();
        assert_eq!(c.envelope_from(), "nobody@localhost");
    }
}
