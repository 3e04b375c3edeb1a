//! SMTP connection reuse, as Postfix's smtp(8) with scache(8)
//! (CONNECTION_CACHE_README): after a transaction the session is parked,
//! idle, under its nexthop; the next delivery to the same nexthop takes it,
//! sends RSET to check it still works, and runs its transaction on it.
//! Bounded: a session idles at most `smtp_connection_cache_time_limit`
//! (then QUIT), is reused at most `smtp_connection_reuse_count_limit`
//! times (0: no limit) and for at most `smtp_connection_reuse_time_limit`
//! after it was opened; at most [`MAX_IDLE`] sessions idle in all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yubin_conf::Config;
use yubin_smtp::client::Client;

use crate::agent::Conn;
use crate::nexthop::Nexthop;

/// At most this many idle sessions in all (each holds a socket).
pub const MAX_IDLE: usize = 256;

/// postconf(5) `smtp_connection_cache_*` and `smtp_connection_reuse_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// `smtp_connection_cache_on_demand`: cache sessions to every
    /// destination. (Postfix caches on demand, when the queue manager sees
    /// a backlog for the destination; yubin parks every session for at
    /// most `idle`, which costs one idle socket for that long.)
    pub on_demand: bool,
    /// `smtp_connection_cache_destinations`: nexthops cached even without
    /// `on_demand` (as written: `example.com`, `[relay.test]:587`).
    pub destinations: Vec<String>,
    /// `smtp_connection_cache_time_limit` (2s).
    pub idle: Duration,
    /// `smtp_connection_reuse_time_limit` (300s).
    pub reuse_time: Duration,
    /// `smtp_connection_reuse_count_limit` (0: no limit).
    pub reuse_count: u32,
}

impl Default for CacheSettings {
    /// Postfix 3.7's defaults.
    fn default() -> CacheSettings {
        CacheSettings {
            on_demand: true,
            destinations: Vec::new(),
            idle: Duration::from_secs(2),
            reuse_time: Duration::from_secs(300),
            reuse_count: 0,
        }
    }
}

impl CacheSettings {
    pub fn from_config(cfg: &Config) -> Result<CacheSettings, String> {
        let at = |n: &str, e: String| format!("{}: {n}: {e}", cfg.origin_text(n));
        let time = |n: &str| {
            cfg.time(n, 's')
                .map(Duration::from_secs)
                .map_err(|e| at(n, e.to_string()))
        };
        Ok(CacheSettings {
            on_demand: cfg
                .bool("smtp_connection_cache_on_demand")
                .map_err(|e| at("smtp_connection_cache_on_demand", e.to_string()))?,
            destinations: cfg
                .list("smtp_connection_cache_destinations")
                .into_iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            idle: time("smtp_connection_cache_time_limit")?,
            reuse_time: time("smtp_connection_reuse_time_limit")?,
            reuse_count: cfg
                .u64("smtp_connection_reuse_count_limit")
                .map(|n| n.min(u32::MAX as u64) as u32)
                .map_err(|e| at("smtp_connection_reuse_count_limit", e.to_string()))?,
        })
    }

    /// Whether sessions to this nexthop are parked after a transaction.
    pub fn applies(&self, nexthop: &Nexthop) -> bool {
        if self.idle.is_zero() {
            return false;
        }
        self.on_demand
            || self
                .destinations
                .iter()
                .any(|d| *d == nexthop.to_string() || *d == nexthop.name())
    }

    /// Whether a session opened at `born` and used `uses` times may carry
    /// another transaction.
    fn reusable(&self, born: Instant, uses: u32) -> bool {
        (self.reuse_count == 0 || uses < self.reuse_count) && born.elapsed() < self.reuse_time
    }
}

/// An idle session and what the delivery that takes it needs to know.
pub(crate) struct Idle {
    pub conn: Conn,
    pub client: Box<Client>,
    /// The server's name (MX host), `host[ip]:port` and `host[ip]`.
    pub server: String,
    pub relay: String,
    pub hostaddr: String,
    /// When the TCP connection was made.
    pub born: Instant,
    /// Transactions carried so far.
    pub uses: u32,
}

struct Parked {
    id: u64,
    idle: Idle,
}

/// The idle sessions, by nexthop. Cheap to share: clones see one cache.
#[derive(Clone, Default)]
pub struct ConnCache {
    inner: Arc<Mutex<HashMap<String, Vec<Parked>>>>,
    next_id: Arc<AtomicU64>,
}

impl ConnCache {
    /// An idle session for `nexthop` that may carry one more transaction.
    pub(crate) fn take(&self, nexthop: &Nexthop, s: &CacheSettings) -> Option<Idle> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.get_mut(&nexthop.to_string())?;
        // Newest first: the one least likely to have been timed out by the
        // server.
        while let Some(p) = list.pop() {
            if s.reusable(p.idle.born, p.idle.uses) && p.idle.client.is_idle() {
                return Some(p.idle);
            }
            // Expired: dropped here (the socket closes without QUIT; the
            // idle timer would have sent it within `idle` anyway).
        }
        None
    }

    /// Parks a session after a transaction, or ends it with QUIT when it
    /// may not carry another one (or the cache is full).
    pub(crate) fn put(&self, nexthop: &Nexthop, idle: Idle, s: &CacheSettings, quit: Duration) {
        if !s.reusable(idle.born, idle.uses) || !idle.client.is_idle() {
            tokio::spawn(goodbye(idle, quit));
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = nexthop.to_string();
        {
            let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let total: usize = map.values().map(Vec::len).sum();
            if total >= MAX_IDLE {
                drop(map);
                tokio::spawn(goodbye(idle, quit));
                return;
            }
            map.entry(key.clone())
                .or_default()
                .push(Parked { id, idle });
        }
        // smtp_connection_cache_time_limit: still parked then, it goes.
        let cache = self.clone();
        let limit = s.idle;
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            let idle = {
                let mut map = cache.inner.lock().unwrap_or_else(|p| p.into_inner());
                let Some(list) = map.get_mut(&key) else {
                    return;
                };
                let found = list.iter().position(|p| p.id == id).map(|i| list.remove(i));
                if list.is_empty() {
                    map.remove(&key);
                }
                found
            };
            if let Some(p) = idle {
                goodbye(p.idle, quit).await;
            }
        });
    }

    /// How many sessions are idle now (for tests and `yubin trace`).
    pub fn idle_count(&self) -> usize {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }
}

/// QUIT and close, waiting at most `limit` (smtp_quit_timeout) for the
/// reply; the answer does not matter.
async fn goodbye(mut idle: Idle, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        idle.conn.write_all(b"QUIT\r\n").await?;
        let mut buf = [0u8; 512];
        let _ = idle.conn.read(&mut buf).await?;
        idle.conn.shutdown().await
    })
    .await;
}
