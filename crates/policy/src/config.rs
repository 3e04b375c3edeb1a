//! Building the restriction lists and their settings from main.cf (and a
//! service's master.cf `-o` overrides), with the parameter and line in every
//! error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use yubin_conf::Config;
use yubin_table::Maps;

use crate::restrict::{Loader, Restriction};
use crate::service::{Endpoint, Limits, PolicyClient};
use crate::{Restrictions, Settings};

/// Parameter names read here (the conf crate's test checks every name a
/// crate reads against its table of known parameters).
pub const PARAMS: &[&str] = &[
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_relay_before_recipient_restrictions",
    "compatibility_level",
    "smtpd_delay_reject",
    "reject_code",
    "defer_code",
    "access_map_reject_code",
    "access_map_defer_code",
    "unknown_client_reject_code",
    "unknown_hostname_reject_code",
    "unknown_address_reject_code",
    "invalid_hostname_reject_code",
    "non_fqdn_reject_code",
    "maps_rbl_reject_code",
    "default_rbl_reply",
    "rbl_reply_maps",
    "smtpd_null_access_lookup_key",
    "parent_domain_matches_subdomains",
    "recipient_delimiter",
    "default_database_type",
    "queue_directory",
    "smtpd_policy_service_timeout",
    "smtpd_policy_service_max_idle",
    "smtpd_policy_service_max_ttl",
    "smtpd_policy_service_request_limit",
    "smtpd_policy_service_try_limit",
    "smtpd_policy_service_retry_delay",
    "smtpd_policy_service_default_action",
];

/// Policy clients by endpoint: one connection pool per server for all the
/// services of one configuration.
#[derive(Default)]
pub struct PolicyClients {
    clients: Mutex<HashMap<String, Arc<PolicyClient>>>,
}

fn err(cfg: &Config, name: &str, e: impl std::fmt::Display) -> String {
    format!("{}: {name}: {e}", cfg.origin_text(name))
}

fn code(cfg: &Config, name: &str) -> Result<u16, String> {
    let v = cfg.u64(name).map_err(|e| err(cfg, name, e))?;
    if !(400..=599).contains(&v) {
        return Err(err(
            cfg,
            name,
            format!("{v} is not a 4xx or 5xx reply code"),
        ));
    }
    Ok(v as u16)
}

/// The settings the restrictions use.
pub fn settings(cfg: &Config) -> Result<Settings, String> {
    let rbl_reply_maps = Maps::open(
        &cfg.list("rbl_reply_maps"),
        cfg.get("default_database_type"),
        cfg.dir(),
    )
    .map_err(|e| err(cfg, "rbl_reply_maps", e))?;
    Ok(Settings {
        delay_reject: cfg
            .bool("smtpd_delay_reject")
            .map_err(|e| err(cfg, "smtpd_delay_reject", e))?,
        reject_code: code(cfg, "reject_code")?,
        defer_code: code(cfg, "defer_code")?,
        access_map_reject_code: code(cfg, "access_map_reject_code")?,
        access_map_defer_code: code(cfg, "access_map_defer_code")?,
        unknown_client_reject_code: code(cfg, "unknown_client_reject_code")?,
        unknown_hostname_reject_code: code(cfg, "unknown_hostname_reject_code")?,
        unknown_address_reject_code: code(cfg, "unknown_address_reject_code")?,
        invalid_hostname_reject_code: code(cfg, "invalid_hostname_reject_code")?,
        non_fqdn_reject_code: code(cfg, "non_fqdn_reject_code")?,
        maps_rbl_reject_code: code(cfg, "maps_rbl_reject_code")?,
        // Kept unexpanded: $rbl_code and friends are filled in per reply.
        default_rbl_reply: cfg.get_raw("default_rbl_reply").unwrap_or_default(),
        rbl_reply_maps: Arc::new(rbl_reply_maps),
        null_access_key: cfg.get("smtpd_null_access_lookup_key").to_string(),
        parent_domain_matches: cfg
            .list("parent_domain_matches_subdomains")
            .iter()
            .any(|f| f == "smtpd_access_maps"),
        recipient_delimiter: cfg.get("recipient_delimiter").to_string(),
    })
}

fn limits(cfg: &Config) -> Result<Limits, String> {
    let time = |name: &str| {
        cfg.time(name, 's')
            .map(Duration::from_secs)
            .map_err(|e| err(cfg, name, e))
    };
    Ok(Limits {
        timeout: time("smtpd_policy_service_timeout")?,
        max_idle: time("smtpd_policy_service_max_idle")?,
        max_ttl: time("smtpd_policy_service_max_ttl")?,
        request_limit: cfg
            .u64("smtpd_policy_service_request_limit")
            .map_err(|e| err(cfg, "smtpd_policy_service_request_limit", e))?,
        try_limit: cfg
            .u64("smtpd_policy_service_try_limit")
            .map_err(|e| err(cfg, "smtpd_policy_service_try_limit", e))?
            .clamp(1, 100) as u32,
        retry_delay: time("smtpd_policy_service_retry_delay")?,
        default_action: cfg.get("smtpd_policy_service_default_action").to_string(),
    })
}

/// The five restriction lists; refuses an accidental open relay.
pub fn restrictions(cfg: &Config, clients: &PolicyClients) -> Result<Restrictions, String> {
    let limits = limits(cfg)?;
    let queue_dir = cfg.get("queue_directory").to_string();
    let open_client = |text: &str| -> Result<Arc<PolicyClient>, String> {
        let mut g = clients.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = g.get(text) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::parse(text, Path::new(&queue_dir))?;
        let c = Arc::new(PolicyClient::new(text, endpoint, limits.clone()));
        g.insert(text.to_string(), c.clone());
        Ok(c)
    };
    let loader = Loader {
        base: cfg.dir(),
        default_type: cfg.get("default_database_type"),
        policy: &open_client,
    };
    let list = |name: &str| {
        Restriction::parse_list_with(&cfg.list(name), &loader).map_err(|e| err(cfg, name, e))
    };
    // Postfix refuses to run as an open relay by accident (smtpd_check.c).
    let mut r = Restrictions::new(
        list("smtpd_sender_restrictions")?,
        list("smtpd_relay_restrictions")?,
        list("smtpd_recipient_restrictions")?,
    )
    .map_err(|e| {
        let level = cfg.get("compatibility_level");
        if level == "0" && cfg.list("smtpd_relay_restrictions").is_empty() {
            // The common way into this error: a main.cf from before Postfix
            // 3.0 (or one that lost Debian's compatibility_level line).
            format!("{e} (compatibility_level = {level}, {}, leaves smtpd_relay_restrictions empty: add \"compatibility_level = 3.6\" to main.cf, or list reject_unauth_destination in smtpd_recipient_restrictions)", cfg.origin_text("compatibility_level"))
        } else {
            e.to_string()
        }
    })?;
    r.client = list("smtpd_client_restrictions")?;
    r.helo = list("smtpd_helo_restrictions")?;
    for (name, l) in [
        ("smtpd_client_restrictions", &r.client),
        ("smtpd_helo_restrictions", &r.helo),
    ] {
        if let Some(x) = l.iter().find(|x| x.is_end_of_data_only()) {
            return Err(err(
                cfg,
                name,
                format!("{x:?} judges the message: use it in smtpd_end_of_data_restrictions only"),
            ));
        }
    }
    r.relay_before_recipient = cfg
        .bool("smtpd_relay_before_recipient_restrictions")
        .map_err(|e| err(cfg, "smtpd_relay_before_recipient_restrictions", e))?;
    Ok(r)
}
