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

#[cfg(test)]
mod tests {
    use std::path::Path;

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
