//! The pgsql_table(5) configuration file: `name = value` lines, `#`
//! comments, and continuation lines that start with white space (Postfix
//! reads it with cfg_parser(3), the same logical-line rules as main.cf).
//!
//! Parameters (pgsql_table(5)): `hosts`, `user`, `password`, `dbname`,
//! `query`, `result_format`, `domain`, `expansion_limit`, and the legacy
//! (Postfix 2.1) `select_field`/`table`/`where_field`/`additional_conditions`
//! and `select_function`. yubin adds `connect_timeout`, `query_timeout`,
//! `retry_interval` and `pool_size` (Postfix keeps one connection per
//! process and hard-codes its timeouts).

use std::time::Duration;

use crate::template::{Query, ResultFormat};
use crate::PgError;

/// Longest configuration file accepted, and longest logical line.
const MAX_FILE: usize = 1 << 20;

/// One entry of `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `inet:host[:port]` or `host[:port]` (`[v6addr]:port` for IPv6).
    Tcp { host: String, port: u16 },
    /// `unix:/socket/directory` (libpq's form: the directory that holds
    /// `.s.PGSQL.PORT`); the port selects the socket file.
    Unix { dir: String, port: u16 },
    /// A `postgresql://` URI or `key=value` connection string, as libpq's
    /// PQconnectdb takes it (Postfix 3.x).
    ConnString(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Tcp { host, port } if host.contains(':') => write!(f, "inet:[{host}]:{port}"),
            Host::Tcp { host, port } => write!(f, "inet:{host}:{port}"),
            Host::Unix { dir, port } => write!(f, "unix:{dir}:{port}"),
            // A connection string may hold a password: name only its kind.
            Host::ConnString(_) => write!(f, "(connection string)"),
        }
    }
}

/// Where `domain` restricts lookups (pgsql_table(5) `domain`): a list of
/// domain names (files of names are read when the configuration is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainFilter(pub Vec<String>);

impl DomainFilter {
    /// Whether `key` may be looked up: with a filter, only `user@domain`
    /// with a non-empty local part and a listed domain (db_common.c
    /// `db_common_check_domain`).
    pub fn allows(&self, key: &str) -> bool {
        if self.0.is_empty() {
            return true;
        }
        match key.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() => {
                self.0.iter().any(|d| d.eq_ignore_ascii_case(domain))
            }
            _ => false,
        }
    }
}

/// A parsed configuration file.
#[derive(Debug, Clone)]
pub struct PgsqlConfig {
    pub hosts: Vec<Host>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: String,
    pub query: Query,
    pub result_format: ResultFormat,
    pub domain: DomainFilter,
    /// 0: no limit.
    pub expansion_limit: usize,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    /// How long a host that failed is tried only after the others.
    pub retry_interval: Duration,
    pub pool_size: usize,
}

/// Logical `name = value` pairs with their first line numbers.
pub fn pairs(text: &str) -> Result<Vec<(usize, String, String)>, PgError> {
    if text.len() > MAX_FILE {
        return Err(PgError::Config("file larger than 1 MiB".into()));
    }
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let t = raw.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            match lines.last_mut() {
                Some(last) => {
                    last.1.push(' ');
                    last.1.push_str(t);
                }
                None => {
                    return Err(PgError::Config(format!(
                        "line {}: continuation line without a preceding parameter",
                        i + 1
                    )))
                }
            }
        } else {
            lines.push((i + 1, raw.to_string()));
        }
    }
    let mut out = Vec::with_capacity(lines.len());
    for (line, text) in lines {
        let Some((name, value)) = text.split_once('=') else {
            return Err(PgError::Config(format!(
                "line {line}: expected \"name = value\""
            )));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(PgError::Config(format!(
                "line {line}: bad parameter name \"{name}\""
            )));
        }
        out.push((line, name.to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// Splits a list value on commas and white space (Postfix's `CHARS_COMMA_SP`).
fn list(value: &str) -> Vec<String> {
    value
        .split([',', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses one `hosts` entry.
pub fn parse_host(item: &str) -> Result<Host, PgError> {
    let bad = || PgError::Config(format!("hosts: bad entry \"{item}\""));
    if item.starts_with("postgresql://") || item.starts_with("postgres://") || item.contains('=') {
        return Ok(Host::ConnString(item.to_string()));
    }
    if let Some(path) = item.strip_prefix("unix:") {
        // unix:/dir or unix:/dir:port
        let (dir, port) = match path.rsplit_once(':') {
            Some((d, p)) if !d.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (d, p.parse().map_err(|_| bad())?)
            }
            _ => (path, 5432),
        };
        if !dir.starts_with('/') {
            return Err(PgError::Config(format!(
                "hosts: \"{item}\": unix: needs an absolute socket directory"
            )));
        }
        return Ok(Host::Unix {
            dir: dir.to_string(),
            port,
        });
    }
    let rest = item.strip_prefix("inet:").unwrap_or(item);
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => 5432,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (rest.to_string(), 5432),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Host::Tcp { host, port })
}

fn seconds(name: &str, v: &str) -> Result<Duration, PgError> {
    let n: u64 = v
        .trim_end_matches('s')
        .parse()
        .map_err(|_| PgError::Config(format!("{name}: bad number of seconds \"{v}\"")))?;
    if n == 0 || n > 3600 {
        return Err(PgError::Config(format!(
            "{name}: {v} is out of range (1..3600 seconds)"
        )));
    }
    Ok(Duration::from_secs(n))
}

impl PgsqlConfig {
    /// Parses the text of a configuration file. `read_file` reads the files
    /// that `domain` may name (absolute paths).
    pub fn parse(
        text: &str,
        read_file: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<PgsqlConfig, PgError> {
        let mut get = std::collections::HashMap::new();
        for (line, name, value) in pairs(text)? {
            // The last setting wins, as in cfg_parser(3).
            get.insert(name, (line, value));
        }
        let val = |n: &str| get.get(n).map(|(_, v)| v.as_str());
        let hosts = match val("hosts") {
            Some(v) => list(v)
                .iter()
                .map(|h| parse_host(h))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        if hosts.is_empty() {
            return Err(PgError::Config(
                "hosts: no database host given (pgsql_table(5): hosts = host1 host2:port unix:/dir)"
                    .into(),
            ));
        }
        let query_text = match (val("query"), val("select_function"), val("table")) {
            (Some(q), _, _) => q.to_string(),
            // Postfix 2.2's select_function: "SELECT function('%s')".
            (None, Some(f), _) => format!("SELECT {f}('%s')"),
            // Postfix 2.1's field form (pgsql_table(5) "OBSOLETE QUERY INTERFACE").
            (None, None, Some(t)) => {
                let sel = val("select_field").ok_or_else(|| {
                    PgError::Config("table is set but select_field is not".into())
                })?;
                let wh = val("where_field")
                    .ok_or_else(|| PgError::Config("table is set but where_field is not".into()))?;
                let extra = val("additional_conditions").unwrap_or("");
                format!("SELECT {sel} FROM {t} WHERE {wh} = '%s' {extra}")
                    .trim_end()
                    .to_string()
            }
            (None, None, None) => {
                return Err(PgError::Config(
                    "query: no query given (pgsql_table(5): query = SELECT ... WHERE key='%s')"
                        .into(),
                ))
            }
        };
        let query = Query::compile(&query_text)?;
        let result_format = ResultFormat::parse(val("result_format").unwrap_or("%s"))?;
        let mut domains = Vec::new();
        if let Some(v) = val("domain") {
            for item in list(v) {
                if item.starts_with('/') {
                    let text = read_file(&item)
                        .map_err(|e| PgError::Config(format!("domain: {item}: {e}")))?;
                    for l in text.lines() {
                        let l = l.trim();
                        if !l.is_empty() && !l.starts_with('#') {
                            domains.extend(list(l).into_iter().take(1));
                        }
                    }
                } else if item.contains(':') {
                    return Err(PgError::Config(format!(
                        "domain: \"{item}\": yubin takes domain names and files of names here, not tables"
                    )));
                } else {
                    domains.push(item.to_ascii_lowercase());
                }
            }
        }
        let expansion_limit = match val("expansion_limit") {
            Some(v) => v
                .parse()
                .map_err(|_| PgError::Config(format!("expansion_limit: bad number \"{v}\"")))?,
            None => 0,
        };
        let pool_size = match val("pool_size") {
            Some(v) => match v.parse::<usize>() {
                Ok(n @ 1..=64) => n,
                _ => {
                    return Err(PgError::Config(format!(
                        "pool_size: \"{v}\" is not a number from 1 to 64"
                    )))
                }
            },
            None => 4,
        };
        Ok(PgsqlConfig {
            hosts,
            user: val("user").map(str::to_string),
            password: val("password").map(str::to_string),
            dbname: val("dbname")
                .map(str::to_string)
                .ok_or_else(|| PgError::Config("dbname: no database name given".into()))?,
            query,
            result_format,
            domain: DomainFilter(domains),
            expansion_limit,
            connect_timeout: val("connect_timeout")
                .map(|v| seconds("connect_timeout", v))
                .transpose()?
                .unwrap_or(Duration::from_secs(5)),
            query_timeout: val("query_timeout")
                .map(|v| seconds("query_timeout", v))
                .transpose()?
                .unwrap_or(Duration::from_secs(10)),
            retry_interval: val("retry_interval")
                .map(|v| seconds("retry_interval", v))
                .transpose()?
                .unwrap_or(Duration::from_secs(60)),
            pool_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_files(_: &str) -> Result<String, String> {
        Err("no files here".into())
    }

    #[test]
    fn postfix_example() {
        // pgsql_table(5)'s own example, with a continuation line.
        let c = PgsqlConfig::parse(
            "# comment\nhosts = host1.some.domain host2.some.domain:5433\n  unix:/var/run/postgresql\nuser = someone\npassword = some_password\ndbname = customer_database\nquery = SELECT replacement FROM aliases WHERE mailbox = '%s'\n",
            &no_files,
        )
        .unwrap();
        assert_eq!(
            c.hosts,
            vec![
                Host::Tcp {
                    host: "host1.some.domain".into(),
                    port: 5432
                },
                Host::Tcp {
                    host: "host2.some.domain".into(),
                    port: 5433
                },
                Host::Unix {
                    dir: "/var/run/postgresql".into(),
                    port: 5432
                },
            ]
        );
        assert_eq!(c.user.as_deref(), Some("someone"));
        assert_eq!(c.dbname, "customer_database");
        assert_eq!(c.expansion_limit, 0);
    }

    #[test]
    fn legacy_fields_and_errors() {
        let c = PgsqlConfig::parse(
            "hosts = [::1]:5499\ndbname = d\ntable = mxaliases\nselect_field = forw_addr\nwhere_field = alias\nadditional_conditions = and status = 'paid'\n",
            &no_files,
        )
        .unwrap();
        assert_eq!(
            c.hosts[0],
            Host::Tcp {
                host: "::1".into(),
                port: 5499
            }
        );
        assert_eq!(
            c.query.sql(),
            "SELECT forw_addr FROM mxaliases WHERE alias = $1 and status = 'paid'"
        );
        for (text, err) in [
            ("dbname = d\nquery = x\n", "hosts: no database host"),
            ("hosts = h\nquery = x\n", "dbname: no database name"),
            ("hosts = h\ndbname = d\n", "query: no query given"),
            (
                "hosts = h:99999\ndbname = d\nquery = x\n",
                "hosts: bad entry",
            ),
            ("  x = y\n", "continuation line"),
            ("hosts\n", "expected \"name = value\""),
            (
                "hosts = h\ndbname = d\nquery = x\ndomain = hash:/x\n",
                "not tables",
            ),
        ] {
            let e = PgsqlConfig::parse(text, &no_files).unwrap_err().to_string();
            assert!(e.contains(err), "{text:?}: {e}");
        }
    }

    #[test]
    fn domain_filter() {
        let f = DomainFilter(vec!["example.com".into()]);
        assert!(f.allows("a@example.com"));
        assert!(f.allows("a@EXAMPLE.com"));
        assert!(!f.allows("@example.com"));
        assert!(!f.allows("a"));
        assert!(!f.allows("a@other.com"));
        assert!(DomainFilter::default().allows("a"));
    }
}
