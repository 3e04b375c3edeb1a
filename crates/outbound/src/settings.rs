//! The SMTP client's settings, read once from main.cf (postconf(5) `smtp_*`)
//! at start and at reload, so a bad value fails there with its name.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use yubin_conf::Config;
use yubin_table::Maps;

use crate::dkim::SigningTable;
use crate::dns::{AddressPreference, Protocols};
use crate::nexthop::Nexthop;
use crate::tls::{TlsClient, TlsLevel};

/// Per-stage timeouts. Each is a deadline for the whole stage (Postfix's
/// `smtp_per_record_deadline = yes` behaviour), so a peer that sends one
/// byte at a time cannot stretch a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub helo: Duration,
    pub starttls: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_xfer: Duration,
    pub data_done: Duration,
    pub rset: Duration,
    pub quit: Duration,
}

impl Default for Timeouts {
    /// Postfix 3.7's defaults.
    fn default() -> Timeouts {
        let s = Duration::from_secs;
        Timeouts {
            connect: s(30),
            helo: s(300),
            starttls: s(300),
            mail: s(300),
            rcpt: s(300),
            data_init: s(120),
            data_xfer: s(180),
            data_done: s(600),
            rset: s(20),
            quit: s(300),
        }
    }
}

pub struct Settings {
    /// `smtp_helo_name`.
    pub helo_name: String,
    /// `myhostname`: a server greeting with it is this host (a loop).
    pub my_hostname: String,
    pub timeouts: Timeouts,
    pub protocols: Protocols,
    pub address_preference: AddressPreference,
    /// `smtp_mx_address_limit` (0: no limit).
    pub mx_address_limit: usize,
    /// `smtp_mx_session_limit` (0: no limit).
    pub mx_session_limit: usize,
    pub tls_level: TlsLevel,
    pub tls: TlsClient,
    /// `smtp_tls_policy_maps`: nexthop -> level.
    pub tls_policy: Maps,
    /// `smtp_sasl_password_maps` when `smtp_sasl_auth_enable = yes`.
    pub sasl_passwords: Option<Maps>,
    /// PLAIN/LOGIN allowed without TLS (`smtp_sasl_security_options`
    /// without `noplaintext`).
    pub sasl_plaintext: bool,
    pub relayhost: Option<Nexthop>,
    /// This host's addresses, for the "loops back to myself" check
    /// (`inet_interfaces` and `proxy_interfaces` when they are addresses).
    pub my_addresses: Vec<IpAddr>,
    /// BDAT when the server offers CHUNKING.
    pub chunking: bool,
    /// `yubin_dkim_signing_maps`: sender domain -> `selector:keyfile`.
    pub dkim: SigningTable,
}

impl Settings {
    /// Defaults suitable for tests: no TLS, no relayhost, all protocols.
    pub fn new(helo_name: &str) -> Settings {
        Settings {
            helo_name: helo_name.to_string(),
            my_hostname: helo_name.to_string(),
            timeouts: Timeouts::default(),
            protocols: Protocols {
                ipv4: true,
                ipv6: true,
            },
            address_preference: AddressPreference::Any,
            mx_address_limit: 5,
            mx_session_limit: 2,
            tls_level: TlsLevel::None,
            tls: TlsClient::new(None).expect("no CA file: cannot fail"),
            tls_policy: Maps::default(),
            sasl_passwords: None,
            sasl_plaintext: false,
            relayhost: None,
            my_addresses: Vec::new(),
            chunking: true,
            dkim: SigningTable::default(),
        }
    }

    pub fn from_config(cfg: &Config) -> Result<Settings, String> {
        let time = |n: &str| -> Result<Duration, String> {
            cfg.time(n, 's')
                .map(Duration::from_secs)
                .map_err(|e| e.to_string())
        };
        let timeouts = Timeouts {
            connect: time("smtp_connect_timeout")?,
            helo: time("smtp_helo_timeout")?,
            starttls: time("smtp_starttls_timeout")?,
            mail: time("smtp_mail_timeout")?,
            rcpt: time("smtp_rcpt_timeout")?,
            data_init: time("smtp_data_init_timeout")?,
            data_xfer: time("smtp_data_xfer_timeout")?,
            data_done: time("smtp_data_done_timeout")?,
            rset: time("smtp_rset_timeout")?,
            quit: time("smtp_quit_timeout")?,
        };
        let num = |n: &str| -> Result<usize, String> {
            cfg.u64(n).map(|v| v as usize).map_err(|e| e.to_string())
        };
        let at = |n: &str, e: String| format!("{}: {e}", cfg.origin_text(n));
        let relayhost = match cfg.get("relayhost").trim() {
            "" => None,
            r => Some(Nexthop::parse(r).map_err(|e| at("relayhost", e.to_string()))?),
        };
        let ca = cfg.get("smtp_tls_CAfile").trim().to_string();
        let tls = TlsClient::new((!ca.is_empty()).then(|| Path::new(&ca)))
            .map_err(|e| at("smtp_tls_CAfile", e))?;
        let base = cfg.dir();
        let open = |n: &str| -> Result<Maps, String> {
            let maps = Maps::open(&cfg.list(n), cfg.get("default_database_type"), base)
                .map_err(|e| at(n, e.to_string()))?;
            // pgsql: lookups block and may fail temporarily (docs/pgsql.md);
            // the SMTP client reads these maps in async tasks and has no
            // "defer on lookup failure" path yet, so refuse rather than
            // block a worker or read an outage as "no entry".
            if maps.is_remote() {
                return Err(at(
                    n,
                    format!(
                        "{n}: pgsql: tables are not supported here yet; use hash: or texthash:"
                    ),
                ));
            }
            Ok(maps)
        };
        let sasl_enabled = cfg
            .bool("smtp_sasl_auth_enable")
            .map_err(|e| e.to_string())?;
        let sasl_passwords = if sasl_enabled {
            Some(open("smtp_sasl_password_maps")?)
        } else {
            None
        };
        let noplaintext = cfg
            .list("smtp_sasl_security_options")
            .iter()
            .any(|o| o.eq_ignore_ascii_case("noplaintext"));
        let mut my_addresses = Vec::new();
        for n in ["inet_interfaces", "proxy_interfaces"] {
            for v in cfg.list(n) {
                let v = v.trim_start_matches('[').trim_end_matches(']');
                if let Ok(ip) = v.parse::<IpAddr>() {
                    my_addresses.push(ip);
                } else if v == "loopback-only" || v == "localhost" {
                    my_addresses.push(IpAddr::from([127, 0, 0, 1]));
                    my_addresses.push("::1".parse().expect("literal"));
                }
            }
        }
        Ok(Settings {
            helo_name: cfg.get("smtp_helo_name").to_string(),
            my_hostname: cfg.get("myhostname").to_string(),
            timeouts,
            protocols: Protocols::parse(&cfg.list("inet_protocols"))
                .map_err(|e| at("inet_protocols", e))?,
            address_preference: AddressPreference::parse(cfg.get("smtp_address_preference"))
                .map_err(|e| at("smtp_address_preference", e))?,
            mx_address_limit: num("smtp_mx_address_limit")?,
            mx_session_limit: num("smtp_mx_session_limit")?,
            tls_level: TlsLevel::parse(cfg.get("smtp_tls_security_level"))
                .map_err(|e| at("smtp_tls_security_level", e))?,
            tls,
            tls_policy: open("smtp_tls_policy_maps")?,
            sasl_passwords,
            sasl_plaintext: !noplaintext,
            relayhost,
            my_addresses,
            chunking: true,
            dkim: SigningTable::load(&open("yubin_dkim_signing_maps")?)
                .map_err(|e| at("yubin_dkim_signing_maps", e))?,
        })
    }

    /// The TLS level for a nexthop: `smtp_tls_policy_maps` (keyed by the
    /// nexthop as written, `[host]:port` or `domain`, then by the bare
    /// name), else `smtp_tls_security_level`. The second value says why.
    pub fn tls_level_for(&self, nexthop: &Nexthop) -> (TlsLevel, String) {
        for key in [nexthop.to_string(), nexthop.name()] {
            if let Some(hit) = self.tls_policy.lookup(&key) {
                let word = hit.value.split_whitespace().next().unwrap_or("");
                if let Ok(l) = TlsLevel::parse(word) {
                    return (l, format!("smtp_tls_policy_maps {}: {key}", hit.table));
                }
            }
        }
        (self.tls_level, "smtp_tls_security_level".into())
    }

    /// SASL credentials for a server (smtp_sasl_glue.c): looked up by the
    /// remote host name, then by the nexthop as written (`[host]:port`).
    pub fn credentials(&self, host: &str, nexthop: &Nexthop) -> Option<(String, String)> {
        let maps = self.sasl_passwords.as_ref()?;
        for key in [host.to_string(), nexthop.to_string()] {
            if let Some(hit) = maps.lookup(&key) {
                let (u, p) = hit.value.split_once(':')?;
                return Some((u.to_string(), p.to_string()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(dir: &Path, name: &str, text: &str) -> Maps {
        std::fs::write(dir.join(name), text).unwrap();
        Maps::open(&[format!("texthash:{name}")], "hash", dir).unwrap()
    }

    #[test]
    fn tls_policy_by_nexthop_then_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::new("me.test");
        s.tls_level = TlsLevel::May;
        s.tls_policy = maps(
            dir.path(),
            "policy",
            "[smart.test]:587 encrypt\nexample.org verify match=hostname\n",
        );
        let (l, why) = s.tls_level_for(&Nexthop::parse("[smart.test]:587").unwrap());
        assert_eq!(l, TlsLevel::Encrypt);
        assert!(why.contains("[smart.test]:587"), "{why}");
        // `example.org:2525` falls back to the bare name.
        let (l, _) = s.tls_level_for(&Nexthop::parse("example.org:2525").unwrap());
        assert_eq!(l, TlsLevel::Verify);
        let (l, why) = s.tls_level_for(&Nexthop::parse("other.test").unwrap());
        assert_eq!(
            (l, why.as_str()),
            (TlsLevel::May, "smtp_tls_security_level")
        );
    }

    #[test]
    fn sasl_credentials_by_host_then_nexthop() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::new("me.test");
        let nh = Nexthop::parse("[smtp.provider.test]:587").unwrap();
        assert_eq!(s.credentials("smtp.provider.test", &nh), None, "disabled");
        s.sasl_passwords = Some(maps(
            dir.path(),
            "sasl",
            "[smtp.provider.test]:587 user@provider.test:pa:ss\n",
        ));
        assert_eq!(
            s.credentials("smtp.provider.test", &nh),
            Some(("user@provider.test".into(), "pa:ss".into()))
        );
        s.sasl_passwords = Some(maps(
            dir.path(),
            "sasl2",
            "smtp.provider.test host:first\n[smtp.provider.test]:587 nexthop:second\n",
        ));
        assert_eq!(
            s.credentials("smtp.provider.test", &nh),
            Some(("host".into(), "first".into()))
        );
    }
}
