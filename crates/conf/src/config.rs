//! A loaded, validated `main.cf`: raw values with where they came from, and
//! every value expanded once at load time so that nothing half-loaded serves
//! (an expansion error anywhere fails the whole load).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::ConfError;
use crate::expand::{expand, ExpandError};
use crate::maincf;
use crate::params::{self, PARAMS};
use crate::values;

/// Where a parameter's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Postfix's (or yubin's) built-in default.
    Default,
    /// `main.cf` line.
    MainCf(usize),
    /// A master.cf `-o` override for the named service.
    Override(String),
}

#[derive(Debug, Clone)]
struct Raw {
    value: String,
    origin: Origin,
}

/// The configuration one component sees.
#[derive(Debug, Clone)]
pub struct Config {
    dir: PathBuf,
    main_cf: PathBuf,
    raw: BTreeMap<String, Raw>,
    /// Settings in file order, for `postconf -n`.
    order: Vec<String>,
    expanded: HashMap<String, String>,
    warnings: Vec<String>,
}

impl Config {
    /// Loads `DIR/main.cf`. A missing file is an error, like Postfix's
    /// "open /etc/postfix/main.cf: No such file or directory".
    pub fn load(dir: &Path) -> Result<Config, ConfError> {
        let path = dir.join("main.cf");
        let bytes = std::fs::read(&path).map_err(|source| ConfError::Io {
            file: path.clone(),
            source,
        })?;
        Config::from_bytes(dir, &path, &bytes)
    }

    /// Builds a configuration from main.cf bytes (tests, `postconf -c`).
    pub fn from_bytes(dir: &Path, main_cf: &Path, bytes: &[u8]) -> Result<Config, ConfError> {
        let settings = maincf::parse(main_cf, bytes)?;
        let mut raw = BTreeMap::new();
        let mut order = Vec::new();
        for s in settings {
            if !raw.contains_key(&s.name) {
                order.push(s.name.clone());
            }
            raw.insert(
                s.name,
                Raw {
                    value: s.value,
                    origin: Origin::MainCf(s.line),
                },
            );
        }
        let mut cfg = Config {
            dir: dir.to_path_buf(),
            main_cf: main_cf.to_path_buf(),
            raw,
            order,
            expanded: HashMap::new(),
            warnings: Vec::new(),
        };
        cfg.fill_computed_defaults();
        // Checked first: every compatibility-dependent default compares it,
        // and the error must name this parameter, not the first of those.
        let level = cfg.raw_value("compatibility_level").unwrap_or_default();
        let level = expand(&level, &|n| cfg.raw_value(n))
            .map_err(|e| cfg.value_error("compatibility_level", e))?;
        if crate::expand::parse_level(&level).is_none() {
            return Err(ConfError::Value {
                origin: cfg.origin_text("compatibility_level"),
                name: "compatibility_level".into(),
                msg: format!("\"{level}\" is not a compatibility level (0, 1, 2, 3.6, ...)"),
            });
        }
        cfg.expand_all()?;
        cfg.warnings = cfg.unknown_parameter_warnings();
        cfg.warnings.extend(cfg.compatibility_warnings());
        Ok(cfg)
    }

    /// Postfix's "using backwards-compatible default setting" warnings: one
    /// per parameter left at a default that the configured
    /// compatibility_level changes (COMPATIBILITY_README). yubin gives them
    /// when the configuration is loaded, Postfix when the setting is used.
    fn compatibility_warnings(&self) -> Vec<String> {
        let level = self.get("compatibility_level");
        let Some(have) = crate::expand::parse_level(level) else {
            return Vec::new(); // refused in from_bytes
        };
        params::COMPAT_DEPENDENT
            .iter()
            .filter(|(name, from)| {
                !self.raw.contains_key(*name)
                    && crate::expand::parse_level(from).is_some_and(|f| have < f)
            })
            .map(|(name, _)| {
                format!(
                    "using backwards-compatible default setting {name}={} (compatibility_level = {level}; set {name} explicitly, or raise compatibility_level, to silence this)",
                    self.get(name)
                )
            })
            .collect()
    }

    /// A copy with master.cf `-o name=value` overrides applied for `service`.
    pub fn with_overrides(
        &self,
        service: &str,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut cfg = self.clone();
        for (name, value) in overrides {
            cfg.raw.insert(
                name.clone(),
                Raw {
                    value: value.clone(),
                    origin: Origin::Override(service.to_string()),
                },
            );
        }
        cfg.expand_all()?;
        Ok(cfg)
    }

    fn fill_computed_defaults(&mut self) {
        let hostname = params::host_name();
        let domain = hostname
            .split_once('.')
            .map(|(_, d)| d.to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "localdomain".into());
        let computed = [
            ("myhostname", hostname),
            ("mydomain", domain),
            // mynetworks_style = host: the machine's own addresses. yubin lists
            // the loopback networks (documented in docs/configuration.md).
            ("mynetworks", "127.0.0.0/8 [::1]/128".to_string()),
            ("config_directory", self.dir.display().to_string()),
        ];
        for (name, value) in computed {
            self.raw.entry(name.to_string()).or_insert(Raw {
                value,
                origin: Origin::Default,
            });
        }
    }

    fn raw_value(&self, name: &str) -> Option<String> {
        match self.raw.get(name) {
            Some(r) => Some(r.value.clone()),
            None => params::find(name).map(|p| p.default.to_string()),
        }
    }

    fn expand_all(&mut self) -> Result<(), ConfError> {
        let names: Vec<String> = PARAMS
            .iter()
            .map(|p| p.name.to_string())
            .chain(self.raw.keys().cloned())
            .collect();
        let mut expanded = HashMap::with_capacity(names.len());
        for name in names {
            let raw = self.raw_value(&name).unwrap_or_default();
            let value =
                expand(&raw, &|n| self.raw_value(n)).map_err(|e| self.value_error(&name, e))?;
            expanded.insert(name, value);
        }
        self.expanded = expanded;
        Ok(())
    }

    fn value_error(&self, name: &str, e: ExpandError) -> ConfError {
        ConfError::Value {
            origin: self.origin_text(name),
            name: name.to_string(),
            msg: e.to_string(),
        }
    }

    /// Names set in main.cf that yubin does not implement and that no other
    /// value refers to as `$name` (Postfix's "unused parameter" rule).
    fn unknown_parameter_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, raw) in &self.raw {
            let Origin::MainCf(line) = raw.origin else {
                continue;
            };
            if params::find(name).is_some() {
                continue;
            }
            let referenced = self.raw.values().any(|r| refers_to(&r.value, name))
                || PARAMS.iter().any(|p| refers_to(p.default, name));
            if !referenced {
                out.push(format!(
                    "{}:{}: unknown parameter {}: yubin does not implement it; the setting has no effect",
                    self.main_cf.display(),
                    line,
                    name
                ));
            }
        }
        out
    }

    /// Warnings found while loading (unknown parameters), each with file:line.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The configuration directory this was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The main.cf path.
    pub fn main_cf(&self) -> &Path {
        &self.main_cf
    }

    /// The expanded value; empty for a parameter nobody set and yubin does not know.
    pub fn get(&self, name: &str) -> &str {
        self.expanded.get(name).map(String::as_str).unwrap_or("")
    }

    /// The unexpanded value as written (or the default).
    pub fn get_raw(&self, name: &str) -> Option<String> {
        self.raw_value(name)
    }

    pub fn origin(&self, name: &str) -> Origin {
        self.raw
            .get(name)
            .map(|r| r.origin.clone())
            .unwrap_or(Origin::Default)
    }

    /// `main.cf:12`, `master.cf -o (submission)` or `default`: for messages
    /// that tell an admin where to change a value.
    pub fn origin_text(&self, name: &str) -> String {
        match self.origin(name) {
            Origin::Default => "default".into(),
            Origin::MainCf(line) => format!("{}:{}", self.main_cf.display(), line),
            Origin::Override(svc) => format!("master.cf -o ({svc})"),
        }
    }

    /// The value split as a list (white space and commas).
    pub fn list(&self, name: &str) -> Vec<String> {
        values::split_list(self.get(name))
    }

    pub fn bool(&self, name: &str) -> Result<bool, ConfError> {
        values::parse_bool(self.get(name)).ok_or_else(|| self.bad(name, "expected yes or no"))
    }

    /// A time in seconds; a bare number is in `default_unit` (s, m, h, d, w).
    pub fn time(&self, name: &str, default_unit: char) -> Result<u64, ConfError> {
        values::parse_time(self.get(name), default_unit)
            .ok_or_else(|| self.bad(name, "expected a time such as 300s, 5m, 1h or 5d"))
    }

    pub fn u64(&self, name: &str) -> Result<u64, ConfError> {
        values::parse_u64(self.get(name))
            .ok_or_else(|| self.bad(name, "expected a non-negative number"))
    }

    fn bad(&self, name: &str, msg: &str) -> ConfError {
        ConfError::Value {
            origin: self.origin_text(name),
            name: name.to_string(),
            msg: format!("bad value \"{}\": {msg}", self.get(name)),
        }
    }

    /// Names set in main.cf, in file order (`postconf -n`).
    pub fn set_names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Every known or set parameter name, sorted (`postconf`).
    pub fn all_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = PARAMS.iter().map(|p| p.name).collect();
        names.extend(self.raw.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Whether `value` mentions `$name`, `${name...}` or `$(name)`.
fn refers_to(value: &str, name: &str) -> bool {
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        rest = &rest[pos + 1..];
        let body = rest.trim_start_matches(['{', '(']);
        if let Some(after) = body.strip_prefix(name) {
            if !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<Config, ConfError> {
        Config::from_bytes(
            Path::new("/etc/yubin"),
            Path::new("/etc/yubin/main.cf"),
            text.as_bytes(),
        )
    }

    /// The values `postconf -c DIR -x` of Postfix 3.7.11 (Debian 12) prints
    /// for these parameters with `compatibility_level = 0` and
    /// `mydestination = localhost, $myhostname`, and Postfix's warning for
    /// each backwards-compatible default in effect.
    #[test]
    fn compatibility_level_changes_defaults() {
        let c = cfg("compatibility_level = 0\nmyhostname = mail.mydomain.com\nmydestination = localhost, $myhostname\nsmtputf8_enable = no\n").unwrap();
        assert_eq!(c.get("append_dot_mydomain"), "yes");
        assert_eq!(c.get("smtputf8_enable"), "no");
        assert_eq!(c.get("mynetworks_style"), "subnet");
        assert_eq!(c.get("relay_domains"), "localhost, mail.mydomain.com");
        assert_eq!(c.get("smtpd_relay_restrictions"), "");
        let w = c.warnings().join("\n");
        for name in [
            "append_dot_mydomain=yes",
            "mynetworks_style=subnet",
            "relay_domains=localhost",
            "smtpd_relay_restrictions=",
        ] {
            assert!(
                w.contains(&format!(
                    "using backwards-compatible default setting {name}"
                )),
                "{name}: {w}"
            );
        }
        // Set explicitly: no warning for it.
        assert!(!w.contains("smtputf8_enable"), "{w}");
        let c = cfg("compatibility_level = 1\n").unwrap();
        assert_eq!(c.get("append_dot_mydomain"), "no");
        assert_eq!(c.get("mynetworks_style"), "subnet");
        // No compatibility_level line: level 0, as Postfix 3.7 (postconf -d
        // compatibility_level = 0), warned for each default it changes.
        let c = cfg("myhostname = m.example\n").unwrap();
        assert_eq!(c.get("smtpd_relay_restrictions"), "");
        assert_eq!(c.get("smtpd_relay_before_recipient_restrictions"), "no");
        assert_eq!(c.get("smtputf8_enable"), "no");
        let w = c.warnings().join("\n");
        assert!(
            w.contains("default setting smtpd_relay_before_recipient_restrictions=no"),
            "{w}"
        );
        // The level Debian's stock main.cf sets: the new defaults, quietly.
        let c = cfg("compatibility_level = 3.6\nmyhostname = m.example\n").unwrap();
        assert_eq!(
            c.get("smtpd_relay_restrictions"),
            "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"
        );
        assert_eq!(c.get("relay_domains"), "");
        assert_eq!(c.get("smtpd_relay_before_recipient_restrictions"), "yes");
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        let e = cfg("compatibility_level = three\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("compatibility_level")
                && e.contains("\"three\" is not a compatibility level"),
            "{e}"
        );
    }

    #[test]
    fn seed_configuration_expands() {
        let c = cfg("myhostname = mail.mydomain.com\nmydomain = mydomain.com\nmyorigin = $mydomain\nmydestination = localhost, $myhostname\nvirtual_alias_maps = hash:/etc/postfix/virtual\n").unwrap();
        assert_eq!(c.list("mydestination"), ["localhost", "mail.mydomain.com"]);
        assert_eq!(c.get("myorigin"), "mydomain.com");
        assert_eq!(c.get("virtual_alias_domains"), "hash:/etc/postfix/virtual");
        assert_eq!(c.get("smtpd_banner"), "mail.mydomain.com ESMTP yubin");
        assert_eq!(c.origin_text("mydestination"), "/etc/yubin/main.cf:4");
        // No compatibility_level in these lines: only level 0's warnings.
        assert!(!c.warnings().is_empty());
        assert!(
            c.warnings()
                .iter()
                .all(|w| w.starts_with("using backwards-compatible default setting")),
            "{:?}",
            c.warnings()
        );
    }

    #[test]
    fn loops_and_bad_values_name_the_line() {
        let e = cfg("a = $b\nb = $a\nmyorigin = $a\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/yubin/main.cf:"), "{e}");
        assert!(e.contains("parameter loop"), "{e}");
        let e = cfg("x = 1\nmyorigin = ${foo\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "/etc/yubin/main.cf:2: parameter myorigin: unterminated \"${foo\""
        );
        let c = cfg("smtpd_timeout = soon\n").unwrap();
        let e = c.time("smtpd_timeout", 's').unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/yubin/main.cf:1: parameter smtpd_timeout: bad value"),
            "{e}"
        );
    }

    #[test]
    fn unknown_parameters_warn_unless_referenced() {
        let c = cfg(
            "frobnicate = 1\nmy_list = a b\nmydestination = $my_list\ncompatibility_level = 3.6\n",
        )
        .unwrap();
        assert_eq!(
            c.warnings(),
            ["/etc/yubin/main.cf:1: unknown parameter frobnicate: yubin does not implement it; the setting has no effect"]
        );
    }

    #[test]
    fn overrides() {
        let c = cfg("smtpd_tls_security_level = may\n").unwrap();
        let o = c
            .with_overrides(
                "submission",
                &[("smtpd_tls_security_level".into(), "encrypt".into())],
            )
            .unwrap();
        assert_eq!(o.get("smtpd_tls_security_level"), "encrypt");
        assert_eq!(
            o.origin_text("smtpd_tls_security_level"),
            "master.cf -o (submission)"
        );
    }
}
