//! Typed settings of the queue side (queue manager, delivery agents,
//! notifications), built once from the configuration at start and at each
//! reload, so nothing below reads parameters by name.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::anyhow;
use yubin_conf::Config;
use yubin_queue::schedule::Policy;

/// Parameter names read here (checked against the table of known
/// parameters by a test, so a misspelt name fails the tests).
pub const PARAMS: &[&str] = &[
    "minimal_backoff_time",
    "maximal_backoff_time",
    "maximal_queue_lifetime",
    "delay_warning_time",
    "default_destination_concurrency_limit",
    "smtp_destination_concurrency_limit",
    "default_destination_recipient_limit",
    "smtp_destination_recipient_limit",
    "lmtp_destination_recipient_limit",
    "defer_transports",
    "virtual_mailbox_limit",
    "mailbox_size_limit",
    "enable_original_recipient",
    "duplicate_filter_limit",
    "allow_mail_to_commands",
    "allow_mail_to_files",
    "command_time_limit",
    "myhostname",
];

/// Every name read goes through here: a name missing from [`PARAMS`] fails
/// the tests that build the settings (and PARAMS is checked against the
/// table of known parameters).
fn checked(name: &str) -> &str {
    debug_assert!(PARAMS.contains(&name), "{name} is not in PARAMS");
    name
}

/// Deliveries running at once, all destinations together.
const WORKERS: usize = 20;

#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub schedule: Policy,
    pub deliver: yubin_deliver::agent::Settings,
    pub notify: yubin_notify::Settings,
    pub hostname: String,
}

impl QueueSettings {
    pub fn from_config(cfg: &Config) -> anyhow::Result<QueueSettings> {
        let time = |name: &str, unit: char| {
            cfg.time(checked(name), unit)
                .map_err(|e| anyhow!("{}: {name}: {e}", cfg.origin_text(name)))
        };
        let number = |name: &str| {
            cfg.u64(checked(name))
                .map_err(|e| anyhow!("{}: {name}: {e}", cfg.origin_text(name)))
        };
        let mut transport_concurrency = BTreeMap::new();
        transport_concurrency.insert(
            "smtp".to_string(),
            number("smtp_destination_concurrency_limit")? as usize,
        );
        let mut transport_recipients = BTreeMap::new();
        for t in ["smtp", "lmtp"] {
            transport_recipients.insert(
                t.to_string(),
                number(&format!("{t}_destination_recipient_limit"))? as usize,
            );
        }
        let schedule = Policy {
            minimal_backoff: time("minimal_backoff_time", 's')?,
            maximal_backoff: time("maximal_backoff_time", 's')?,
            maximal_queue_lifetime: time("maximal_queue_lifetime", 'd')?,
            delay_warning_time: time("delay_warning_time", 'h')?,
            workers: WORKERS,
            concurrency_limit: number("default_destination_concurrency_limit")? as usize,
            transport_concurrency,
            recipient_limit: number("default_destination_recipient_limit")? as usize,
            transport_recipients,
            defer_transports: cfg.list(checked("defer_transports")),
        };
        let alias = |name: &str| cfg.list(checked(name)).iter().any(|v| v == "alias");
        let deliver = yubin_deliver::agent::Settings {
            virtual_mailbox_limit: number("virtual_mailbox_limit")?,
            mailbox_size_limit: number("mailbox_size_limit")?,
            alias_commands: alias("allow_mail_to_commands"),
            alias_files: alias("allow_mail_to_files"),
            command_time_limit: Duration::from_secs(time("command_time_limit", 's')?),
            original_recipient: cfg
                .bool(checked("enable_original_recipient"))
                .map_err(|e| {
                    anyhow!(
                        "{}: enable_original_recipient: {e}",
                        cfg.origin_text("enable_original_recipient")
                    )
                })?,
            duplicate_filter_limit: number("duplicate_filter_limit")? as usize,
        };
        Ok(QueueSettings {
            schedule,
            deliver,
            notify: yubin_notify::Settings::from_config(cfg).map_err(|e| anyhow!(e))?,
            hostname: cfg.get(checked("myhostname")).to_string(),
        })
    }
}

// milter: begin
/// Parameters of the milter settings (checked against the known table).
pub const MILTER_PARAMS: &[&str] = &[
    "smtpd_milters",
    "non_smtpd_milters",
    "milter_protocol",
    "milter_default_action",
    "milter_connect_timeout",
    "milter_command_timeout",
    "milter_content_timeout",
    "milter_connect_macros",
    "milter_helo_macros",
    "milter_mail_macros",
    "milter_rcpt_macros",
    "milter_data_macros",
    "milter_end_of_header_macros",
    "milter_end_of_data_macros",
    "milter_macro_daemon_name",
    "milter_macro_v",
    "myhostname",
];

/// Where a milter listens (MILTER_README "Milter applications"):
/// `inet:host:port` or `unix:pathname` (`local:` is a synonym).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MilterEndpoint {
    Inet { host: String, port: u16 },
    Unix(std::path::PathBuf),
}

/// One milter with its settings: the milter_* parameters, or what the
/// Postfix 3.0 form `{ inet:host:port, default_action=accept, ... }` says
/// for it (MILTER_README "Different settings for different Milter
/// applications").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilterSpec {
    /// The endpoint as configured, for log lines.
    pub name: String,
    pub endpoint: MilterEndpoint,
    pub protocol: u32,
    pub default_action: yubin_milter::DefaultAction,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub content_timeout: Duration,
}

/// smtpd_milters (or non_smtpd_milters) with the milter_* settings, typed.
#[derive(Debug, Clone)]
pub struct MilterSettings {
    /// In the order they are asked.
    pub milters: Vec<MilterSpec>,
    pub macros: BTreeMap<yubin_milter::Stage, Vec<String>>,
    pub daemon_name: String,
    pub v: String,
    pub hostname: String,
}

impl MilterSettings {
    /// `list` is `smtpd_milters` or `non_smtpd_milters`; `None` when empty.
    pub fn from_config(cfg: &Config, list: &str) -> anyhow::Result<Option<MilterSettings>> {
        let name = |n: &str| {
            debug_assert!(MILTER_PARAMS.contains(&n), "{n} is not in MILTER_PARAMS");
            n.to_string()
        };
        let bad = |n: &str, why: String| anyhow!("{}: {n}: {why}", cfg.origin_text(n));
        let raw = cfg.get(&name(list));
        if raw.trim().is_empty() {
            return Ok(None);
        }
        let time = |n: &str| {
            cfg.time(&name(n), 's')
                .map(Duration::from_secs)
                .map_err(|e| bad(n, e.to_string()))
        };
        let protocol = cfg.get(&name("milter_protocol"));
        let protocol = parse_milter_protocol(protocol).map_err(|e| bad("milter_protocol", e))?;
        let action = cfg.get(&name("milter_default_action"));
        let default_action =
            parse_default_action(action).map_err(|e| bad("milter_default_action", e))?;
        let defaults = MilterSpec {
            name: String::new(),
            endpoint: MilterEndpoint::Unix(Default::default()),
            protocol,
            default_action,
            connect_timeout: time("milter_connect_timeout")?,
            command_timeout: time("milter_command_timeout")?,
            content_timeout: time("milter_content_timeout")?,
        };
        // cfg.list keeps `{ ... }` together and takes its braces off.
        let mut milters = Vec::new();
        for m in cfg.list(list) {
            milters.push(parse_milter_spec(&m, &defaults).map_err(|e| bad(list, e))?);
        }
        use yubin_milter::Stage;
        let mut macros = BTreeMap::new();
        for (stage, p) in [
            (Stage::Connect, "milter_connect_macros"),
            (Stage::Helo, "milter_helo_macros"),
            (Stage::Mail, "milter_mail_macros"),
            (Stage::Rcpt, "milter_rcpt_macros"),
            (Stage::Data, "milter_data_macros"),
            (Stage::Eoh, "milter_end_of_header_macros"),
            (Stage::Eom, "milter_end_of_data_macros"),
        ] {
            // Not cfg.list: Postfix's list splitting would take `{daemon_name}`
            // for a grouped value and drop its braces; macro names keep them.
            let names = cfg
                .get(&name(p))
                .split([' ', ',', '\t', '\n'])
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            macros.insert(stage, names);
        }
        Ok(Some(MilterSettings {
            milters,
            macros,
            daemon_name: cfg.get(&name("milter_macro_daemon_name")).to_string(),
            v: cfg.get(&name("milter_macro_v")).to_string(),
            hostname: cfg.get(&name("myhostname")).to_string(),
        }))
    }
}

fn parse_milter_protocol(v: &str) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(v @ 2..=6) => Ok(v),
        _ => Err(format!(
            "unsupported protocol version: {} (2 to 6)",
            v.trim()
        )),
    }
}

fn parse_default_action(v: &str) -> Result<yubin_milter::DefaultAction, String> {
    yubin_milter::DefaultAction::parse(v).ok_or_else(|| {
        format!(
            "bad value: {} (accept, reject, tempfail or quarantine)",
            v.trim()
        )
    })
}

/// `inet:host:port`, or the inside of `{ inet:host:port, name=value, ... }`
/// with `command_timeout`, `connect_timeout`, `content_timeout`,
/// `default_action`, `protocol`.
fn parse_milter_spec(item: &str, defaults: &MilterSpec) -> Result<MilterSpec, String> {
    let mut parts = item
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty());
    let endpoint = parts.next().unwrap_or_default().to_string();
    let mut spec = MilterSpec {
        endpoint: parse_milter_endpoint(&endpoint)?,
        name: endpoint,
        ..defaults.clone()
    };
    // `name=value` or `name = value`: the pieces joined back around `=`.
    let joined = parts
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" = ", "=")
        .replace("= ", "=")
        .replace(" =", "=");
    for setting in joined.split_whitespace() {
        let (k, v) = setting
            .split_once('=')
            .ok_or_else(|| format!("bad Milter setting \"{setting}\" for {}", spec.name))?;
        let time = |v: &str| {
            yubin_conf::values::parse_time(v, 's')
                .map(Duration::from_secs)
                .ok_or_else(|| format!("bad time value \"{v}\" for {k} of {}", spec.name))
        };
        match k {
            "command_timeout" => spec.command_timeout = time(v)?,
            "connect_timeout" => spec.connect_timeout = time(v)?,
            "content_timeout" => spec.content_timeout = time(v)?,
            "default_action" => spec.default_action = parse_default_action(v)?,
            "protocol" => spec.protocol = parse_milter_protocol(v)?,
            _ => return Err(format!("unknown Milter setting \"{k}\" for {}", spec.name)),
        }
    }
    Ok(spec)
}

fn parse_milter_endpoint(s: &str) -> Result<MilterEndpoint, String> {
    let bad = || format!("Milter service needs transport:endpoint instead of \"{s}\"");
    let (transport, rest) = s.split_once(':').ok_or_else(bad)?;
    if rest.is_empty() {
        return Err(bad());
    }
    match transport {
        "inet" => {
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("bad port in Milter service: {s}"))?;
            if host.is_empty() {
                return Err(bad());
            }
            Ok(MilterEndpoint::Inet {
                host: host.to_string(),
                port,
            })
        }
        "unix" | "local" => Ok(MilterEndpoint::Unix(rest.into())),
        other => Err(format!(
            "invalid transport name: {other} in Milter service: {s}"
        )),
    }
}
// milter: end

#[cfg(test)]
mod tests {
    use std::path::Path;

    // milter: begin
    #[test]
    fn milter_settings() {
        for p in MILTER_PARAMS {
            assert!(
                yubin_conf::params::find(p).is_some(),
                "unknown parameter {p}"
            );
        }
        let cfg = |text: &str| {
            Config::from_bytes(
                Path::new("/etc/yubin"),
                Path::new("/etc/yubin/main.cf"),
                text.as_bytes(),
            )
            .unwrap()
        };
        assert!(MilterSettings::from_config(&cfg(""), "smtpd_milters")
            .unwrap()
            .is_none());
        let m = MilterSettings::from_config(
            &cfg("smtpd_milters = inet:127.0.0.1:11332, unix:/run/m.sock inet:[::1]:9\nmilter_default_action = accept\n"),
            "smtpd_milters",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            m.milters[0].endpoint,
            MilterEndpoint::Inet {
                host: "127.0.0.1".into(),
                port: 11332
            }
        );
        assert_eq!(
            m.milters[1].endpoint,
            MilterEndpoint::Unix("/run/m.sock".into())
        );
        assert_eq!(
            m.milters[2].endpoint,
            MilterEndpoint::Inet {
                host: "::1".into(),
                port: 9
            }
        );
        assert_eq!(m.milters[0].name, "inet:127.0.0.1:11332");
        assert_eq!(
            m.milters[0].default_action,
            yubin_milter::DefaultAction::Accept
        );
        assert_eq!(m.milters[0].protocol, 6);
        assert_eq!(m.milters[0].command_timeout, Duration::from_secs(30));
        assert_eq!(m.milters[0].content_timeout, Duration::from_secs(300));
        // Postfix 3.0's per-milter form.
        let m = MilterSettings::from_config(
            &cfg("smtpd_milters = { inet:127.0.0.1:1, default_action=accept, command_timeout = 5s }, unix:/m\n"),
            "smtpd_milters",
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.milters.len(), 2);
        assert_eq!(m.milters[0].name, "inet:127.0.0.1:1");
        assert_eq!(
            m.milters[0].default_action,
            yubin_milter::DefaultAction::Accept
        );
        assert_eq!(m.milters[0].command_timeout, Duration::from_secs(5));
        assert_eq!(
            m.milters[1].default_action,
            yubin_milter::DefaultAction::Tempfail
        );
        assert_eq!(
            m.macros[&yubin_milter::Stage::Connect],
            ["j", "{daemon_name}", "{daemon_addr}", "v", "_"]
        );
        for bad in [
            "smtpd_milters = tcp:x:1\n",
            "smtpd_milters = inet:x\n",
            "smtpd_milters = inet:127.0.0.1:1\nmilter_default_action = maybe\n",
            "smtpd_milters = inet:127.0.0.1:1\nmilter_protocol = 9\n",
            "smtpd_milters = { inet:127.0.0.1:1, colour=blue }\n",
            "smtpd_milters = { inet:127.0.0.1:1, protocol=1 }\n",
        ] {
            let e = MilterSettings::from_config(&cfg(bad), "smtpd_milters").unwrap_err();
            assert!(e.to_string().starts_with("/etc/yubin/main.cf:"), "{e}");
        }
    }
    // milter: end

    use super::*;

    #[test]
    fn parameter_names_are_known() {
        for p in PARAMS {
            assert!(
                yubin_conf::params::find(p).is_some(),
                "unknown parameter {p}"
            );
        }
    }

    #[test]
    fn built_from_the_configuration() {
        let cfg = Config::from_bytes(
            Path::new("/etc/yubin"),
            Path::new("/etc/yubin/main.cf"),
            b"minimal_backoff_time = 10s\nmaximal_backoff_time = 1h\ndefault_destination_recipient_limit = 7\ndefer_transports = smtp\nnotify_classes = bounce, protocol\nallow_mail_to_commands = forward\n",
        )
        .unwrap();
        let s = QueueSettings::from_config(&cfg).unwrap();
        assert_eq!(s.schedule.minimal_backoff, 10);
        assert_eq!(s.schedule.maximal_backoff, 3600);
        assert_eq!(s.schedule.maximal_queue_lifetime, 5 * 86400);
        assert_eq!(s.schedule.recipient_limit("local"), 7);
        // smtp_destination_recipient_limit defaults to the general one.
        assert_eq!(s.schedule.recipient_limit("smtp"), 7);
        assert!(s.schedule.defers("smtp"));
        assert!(!s.deliver.alias_commands && s.deliver.alias_files);
        assert!(s.notify.classes.contains(yubin_notify::Class::Bounce));
        assert!(!s.notify.classes.contains(yubin_notify::Class::Resource));
    }
}
