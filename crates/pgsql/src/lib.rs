//! PostgreSQL for yubin: pgsql_table(5) configuration files, their query
//! templates (keys go to the server only as bind parameters), and a pool with
//! failover across hosts whose failures are *temporary* errors.
//! It must not decide what a lookup means (that is the table and resolver's
//! job), and it must not be called from an async task (see pool.rs).

pub mod config;
pub mod pool;
pub mod template;
pub mod testserver;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{Host, PgsqlConfig};
pub use pool::{block_on, ConnSettings, Pool, Rows};
pub use template::{Query, ResultFormat};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PgError {
    /// The configuration file is wrong: a configuration error at start.
    #[error("{0}")]
    Config(String),
    /// The database could not answer now (down, unreachable, timed out,
    /// refused the statement, or the expansion limit was exceeded): the
    /// caller must defer (Postfix's DICT_ERR_RETRY), never say "not found".
    #[error("{0}")]
    Temporary(String),
}

/// The answer of one lookup, with the statement that ran (for
/// `yubin trace` and `postmap -q`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub value: Option<String>,
    /// The statement and its parameters; `None` when no query was sent, and
    /// then `skipped` says why.
    pub query: Option<String>,
    pub skipped: Option<&'static str>,
}

/// An open `pgsql:` table. Opening reads the file; it connects at the first
/// lookup (as Postfix does), so a server starts while the database is down.
pub struct PgsqlTable {
    file: PathBuf,
    cfg: Arc<PgsqlConfig>,
    pool: Pool,
}

impl PgsqlTable {
    pub fn open(file: &Path) -> Result<PgsqlTable, PgError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| PgError::Config(format!("{}: {e}", file.display())))?;
        let cfg = PgsqlConfig::parse(&text, &|p| {
            std::fs::read_to_string(p).map_err(|e| e.to_string())
        })
        .map_err(|e| PgError::Config(format!("{}: {e}", file.display())))?;
        Ok(PgsqlTable::new(file, cfg))
    }

    pub fn new(file: &Path, cfg: PgsqlConfig) -> PgsqlTable {
        let pool = Pool::new(ConnSettings {
            hosts: cfg.hosts.clone(),
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            dbname: cfg.dbname.clone(),
            connect_timeout: cfg.connect_timeout,
            query_timeout: cfg.query_timeout,
            retry_interval: cfg.retry_interval,
            pool_size: cfg.pool_size,
        });
        PgsqlTable {
            file: file.to_path_buf(),
            cfg: Arc::new(cfg),
            pool,
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn config(&self) -> &PgsqlConfig {
        &self.cfg
    }

    /// Looks `key` up (already case-folded by the caller, as Postfix folds
    /// keys for tables). Every column of every row is formatted with
    /// `result_format` and the results are joined with commas
    /// (dict_pgsql.c); more than `expansion_limit` of them is a temporary
    /// error, as in Postfix. From a blocking thread only.
    pub fn lookup(&self, key: &str) -> Result<Lookup, PgError> {
        let cfg = &self.cfg;
        if !cfg.domain.allows(key) {
            return Ok(Lookup {
                value: None,
                query: None,
                skipped: Some("the key is not user@domain with a domain listed in \"domain\""),
            });
        }
        let Some(values) = cfg.query.bind(key) else {
            return Ok(Lookup {
                value: None,
                query: None,
                skipped: Some("the key lacks a part the query needs (%u, %d or %1..%9)"),
            });
        };
        let shown = cfg.query.render(&values);
        if values.iter().any(|v| v.contains('\0')) {
            // PostgreSQL text cannot hold NUL, so no row can match.
            return Ok(Lookup {
                value: None,
                query: None,
                skipped: Some("the key contains a NUL byte, which no PostgreSQL text can match"),
            });
        }
        let params: Vec<String> = values.into_iter().map(|v| v.into_owned()).collect();
        let rows = self
            .pool
            .query_blocking(cfg.query.sql(), &params)
            .map_err(|e| match e {
                PgError::Temporary(m) => {
                    PgError::Temporary(format!("pgsql:{}: {m}", self.file.display()))
                }
                other => other,
            })?;
        let mut out = String::new();
        let mut n = 0usize;
        for row in &rows {
            for col in row.iter().flatten() {
                if let Some(v) = cfg.result_format.apply(col, key) {
                    n += 1;
                    if cfg.expansion_limit > 0 && n > cfg.expansion_limit {
                        return Err(PgError::Temporary(format!(
                            "pgsql:{}: expansion limit exceeded for key: '{key}'",
                            self.file.display()
                        )));
                    }
                    if !out.is_empty() {
                        out.push(',');
                    }
                    out.push_str(&v);
                }
            }
        }
        Ok(Lookup {
            value: (!out.is_empty()).then_some(out),
            query: Some(shown),
            skipped: None,
        })
    }
}
