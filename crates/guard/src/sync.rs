//! Shared bans through PostgreSQL: DenyHosts' sync (SYNC_SERVER and the
//! SYNC_* keys of denyhosts.conf) with a database instead of the XML-RPC
//! sync server. Each guard publishes the hosts it blocked itself
//! (SYNC_UPLOAD) and blocks the hosts that at least
//! SYNC_DOWNLOAD_THRESHOLD *other* guards reported (SYNC_DOWNLOAD), when
//! their reports span at least SYNC_DOWNLOAD_RESILIENCY, every
//! SYNC_INTERVAL. A database that cannot be reached only delays sharing:
//! the local blocking goes on and unsent reports wait for the next sync.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use yubin_pgsql::{PgsqlConfig, Pool};

/// The SYNC_* settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    /// `SYNC_SERVER = pgsql:/etc/yubin/guard-sync.cf` (hosts, user,
    /// password, dbname as in pgsql_table(5); `query` is not needed).
    pub server: PathBuf,
    pub upload: bool,
    pub download: bool,
    pub threshold: u32,
    pub interval: Duration,
    pub resiliency: Duration,
    /// This guard's name in the shared table (SYNC_NODE_NAME, yubin; the
    /// host name by default).
    pub node: String,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS yubin_guard_blocks (
    host text NOT NULL,
    reporter text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, reporter))";
const UPLOAD: &str = "INSERT INTO yubin_guard_blocks (host, reporter) VALUES ($1, $2)
    ON CONFLICT (host, reporter) DO UPDATE SET last_seen = now()";
const DOWNLOAD: &str = "SELECT host, count(DISTINCT reporter) FROM yubin_guard_blocks
    WHERE reporter <> $1 GROUP BY host
    HAVING count(DISTINCT reporter) >= $2::int
       AND extract(epoch FROM max(last_seen) - min(first_seen)) >= $3::float8";

/// A connection to the shared table and what is waiting to be sent.
pub struct Sync {
    pub settings: SyncSettings,
    pool: Pool,
    schema_ready: bool,
    last: Option<Instant>,
    pending: Vec<String>,
}

impl Sync {
    pub fn open(settings: SyncSettings) -> Result<Sync, String> {
        // The connection part of a pgsql_table(5) file; a query is optional.
        let text = std::fs::read_to_string(&settings.server)
            .map_err(|e| format!("SYNC_SERVER {}: {e}", settings.server.display()))?;
        let text = if text.lines().any(|l| l.trim_start().starts_with("query")) {
            text
        } else {
            format!("{text}\nquery = SELECT 1\n")
        };
        let cfg = PgsqlConfig::parse(&text, &|p| {
            std::fs::read_to_string(p).map_err(|e| e.to_string())
        })
        .map_err(|e| format!("SYNC_SERVER {}: {e}", settings.server.display()))?;
        let pool = Pool::new(yubin_pgsql::ConnSettings {
            hosts: cfg.hosts,
            user: cfg.user,
            password: cfg.password,
            dbname: cfg.dbname,
            connect_timeout: cfg.connect_timeout.min(Duration::from_secs(3)),
            query_timeout: cfg.query_timeout.min(Duration::from_secs(5)),
            retry_interval: Duration::from_secs(5),
            pool_size: 1,
        });
        Ok(Sync {
            settings,
            pool,
            schema_ready: false,
            last: None,
            pending: Vec::new(),
        })
    }

    /// Queues hosts this guard blocked by its own decision.
    pub fn report(&mut self, hosts: impl IntoIterator<Item = String>) {
        if self.settings.upload {
            self.pending.extend(hosts);
        }
    }

    /// Whether SYNC_INTERVAL has passed since the last sync.
    pub fn due(&self) -> bool {
        self.last
            .is_none_or(|t| t.elapsed() >= self.settings.interval)
    }

    /// Sends pending reports and returns the hosts to block (with how many
    /// other guards reported each). On error nothing is lost: the reports
    /// stay pending.
    pub fn exchange(&mut self) -> Result<Vec<(String, u32)>, String> {
        self.last = Some(Instant::now());
        if !self.schema_ready {
            self.pool
                .query_blocking(SCHEMA, &[])
                .map_err(|e| e.to_string())?;
            self.schema_ready = true;
        }
        while let Some(h) = self.pending.first().cloned() {
            self.pool
                .query_blocking(UPLOAD, &[h, self.settings.node.clone()])
                .map_err(|e| e.to_string())?;
            self.pending.remove(0);
        }
        if !self.settings.download {
            return Ok(Vec::new());
        }
        let rows = self
            .pool
            .query_blocking(
                DOWNLOAD,
                &[
                    self.settings.node.clone(),
                    self.settings.threshold.to_string(),
                    self.settings.resiliency.as_secs().to_string(),
                ],
            )
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let host = r.first()?.clone()?;
                let n = r.get(1)?.as_ref()?.parse().ok()?;
                crate::parse::host::is_host(host.as_bytes()).then_some((host, n))
            })
            .collect())
    }
}
