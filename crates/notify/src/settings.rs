//! The notify crate's settings, built once from the configuration (at start
//! and at each reload) instead of string lookups where they are used.

use yubin_conf::Config;

use crate::{Classes, Templates};

/// Parameter names read here (checked against the table of known
/// parameters by a test).
pub const PARAMS: &[&str] = &[
    "myhostname",
    "mail_name",
    "notify_classes",
    "yubin_notice_interval",
    "maximal_queue_lifetime",
    "bounce_template_file",
    "bounce_notice_recipient",
    "delay_notice_recipient",
    "error_notice_recipient",
    "2bounce_notice_recipient",
    "enable_long_queue_ids",
];

/// Every name read goes through here, so a name missing from [`PARAMS`]
/// fails the tests that build the settings.
fn checked(name: &str) -> &str {
    debug_assert!(PARAMS.contains(&name), "{name} is not in PARAMS");
    name
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub hostname: String,
    pub mail_name: String,
    pub classes: Classes,
    /// yubin_notice_interval in seconds: how long notices about one client
    /// are grouped.
    pub notice_interval: u64,
    /// maximal_queue_lifetime in seconds (Will-Retry-Until of delay warnings).
    pub maximal_queue_lifetime: u64,
    pub templates: Templates,
    pub bounce_notice_recipient: String,
    pub delay_notice_recipient: String,
    pub error_notice_recipient: String,
    /// 2bounce_notice_recipient.
    pub double_bounce_recipient: String,
    pub long_queue_ids: bool,
}

impl Settings {
    /// Reads and checks everything; an error names the parameter or file.
    pub fn from_config(cfg: &Config) -> Result<Settings, String> {
        let (classes, _unknown) = Classes::parse(&cfg.list(checked("notify_classes")));
        Ok(Settings {
            hostname: cfg.get(checked("myhostname")).to_string(),
            mail_name: cfg.get(checked("mail_name")).to_string(),
            classes,
            notice_interval: cfg
                .time(checked("yubin_notice_interval"), 's')
                .map_err(|e| e.to_string())?,
            maximal_queue_lifetime: cfg
                .time(checked("maximal_queue_lifetime"), 'd')
                .map_err(|e| e.to_string())?,
            templates: Templates::load(cfg)?,
            bounce_notice_recipient: cfg.get(checked("bounce_notice_recipient")).to_string(),
            delay_notice_recipient: cfg.get(checked("delay_notice_recipient")).to_string(),
            error_notice_recipient: cfg.get(checked("error_notice_recipient")).to_string(),
            double_bounce_recipient: cfg.get(checked("2bounce_notice_recipient")).to_string(),
            long_queue_ids: cfg.bool(checked("enable_long_queue_ids")).unwrap_or(false),
        })
    }

    /// A new queue id in the configured style.
    pub fn new_id(&self) -> String {
        if self.long_queue_ids {
            yubin_queue::id::long()
        } else {
            yubin_queue::id::short()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn built_from_the_defaults() {
        let cfg = yubin_conf::Config::from_bytes(
            std::path::Path::new("/etc/yubin"),
            std::path::Path::new("/etc/yubin/main.cf"),
            b"notify_classes = resource, delay\n",
        )
        .unwrap();
        let s = super::Settings::from_config(&cfg).unwrap();
        assert!(s.classes.contains(crate::Class::Delay));
        assert_eq!(s.notice_interval, 600);
        assert_eq!(s.double_bounce_recipient, "postmaster");
    }

    #[test]
    fn parameter_names_are_known() {
        for p in super::PARAMS {
            assert!(
                yubin_conf::params::find(p).is_some(),
                "unknown parameter {p}"
            );
        }
    }
}
