//! Connections to PostgreSQL: a small pool per table over tokio-postgres,
//! failover across `hosts`, and the one bridge from synchronous callers.
//!
//! The connections live on one private runtime thread (`yubin-pgsql`), so
//! the same pool serves the daemon, `yubin postmap -q` and the delivery
//! workers. A synchronous caller hands its query to that runtime and waits
//! on a oneshot channel with `blocking_recv`, which tokio refuses (panics)
//! on an async worker thread: lookups must come from a blocking thread
//! (`spawn_blocking`, the delivery workers, a CLI), never from a task. See
//! docs/ARCHITECTURE.md "Remote tables".
//!
//! Failover follows Postfix's dict_pgsql.c: hosts that work are tried in
//! random order; a host that failed is marked down for `retry_interval`
//! and tried only after the others. When every host is down each is tried
//! again at the next lookup (so service resumes as soon as one is back), and
//! the lookup fails *temporarily*, never as "not found".

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, Format, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use crate::config::Host;
use crate::PgError;

/// How to reach the database: the connection part of a pgsql_table(5) file.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub hosts: Vec<Host>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: String,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    pub retry_interval: Duration,
    pub pool_size: usize,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("yubin-pgsql")
            .enable_all()
            .build()
            .expect("cannot start the PostgreSQL client thread")
    })
}

/// Runs `fut` on the pgsql runtime and waits for it. Must not be called
/// from an async task (tokio panics in `blocking_recv` there).
pub fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.blocking_recv()
        .expect("the PostgreSQL client thread stopped")
}

/// A query parameter sent in text format whatever the column type, so the
/// server converts it as it converts the quoted literal Postfix would have
/// written (`WHERE uid = '%s'` works for an integer column).
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }
    to_sql_checked!();
}

/// A result column as text, as libpq's PQgetvalue gives it to Postfix.
struct AnyText(Option<String>);

impl<'a> FromSql<'a> for AnyText {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let s = match *ty {
            Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
            Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
            Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
            Type::OID => u32::from_sql(ty, raw)?.to_string(),
            Type::FLOAT4 => f32::from_sql(ty, raw)?.to_string(),
            Type::FLOAT8 => f64::from_sql(ty, raw)?.to_string(),
            Type::BOOL => (if bool::from_sql(ty, raw)? { "t" } else { "f" }).to_string(),
            Type::CHAR => (i8::from_sql(ty, raw)? as u8 as char).to_string(),
            // text, varchar, bpchar, name, unknown, citext and other
            // text-like types travel as their UTF-8 bytes.
            _ if matches!(
                *ty,
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
            ) || ty.name() == "citext" =>
            {
                String::from_utf8(raw.to_vec())?
            }
            _ => {
                return Err(format!(
                "result column of type {} cannot be read as text; cast it in the query (col::text)",
                ty.name()
            )
                .into())
            }
        };
        Ok(AnyText(Some(s)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(AnyText(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

struct Conn {
    client: Client,
    host: usize,
    statements: HashMap<String, Statement>,
}

struct HostState {
    host: Host,
    down_until: Mutex<Option<Instant>>,
}

struct Inner {
    settings: ConnSettings,
    hosts: Vec<HostState>,
    slots: Vec<tokio::sync::Mutex<Option<Conn>>>,
    next: AtomicUsize,
}

/// A pool of connections to one database (one per table file).
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// Rows of text columns (`None`: SQL NULL).
pub type Rows = Vec<Vec<Option<String>>>;

/// A cheap random number for the host order (no need for a CSPRNG).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

impl Pool {
    pub fn new(settings: ConnSettings) -> Pool {
        let hosts = settings
            .hosts
            .iter()
            .map(|h| HostState {
                host: h.clone(),
                down_until: Mutex::new(None),
            })
            .collect();
        let slots = (0..settings.pool_size.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Pool {
            inner: Arc::new(Inner {
                settings,
                hosts,
                slots,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// Runs one statement with text parameters and returns its rows, from a
    /// blocking thread.
    pub fn query_blocking(&self, sql: &str, params: &[String]) -> Result<Rows, PgError> {
        self.query_named_blocking(sql, params).map(|(_, rows)| rows)
    }

    /// `query_blocking`, with the result's column names.
    pub fn query_named_blocking(
        &self,
        sql: &str,
        params: &[String],
    ) -> Result<(Vec<String>, Rows), PgError> {
        let pool = self.clone();
        let sql = sql.to_string();
        let params = params.to_vec();
        block_on(async move { pool.query_named(&sql, &params).await })
    }

    /// Runs one statement with text parameters and returns its rows.
    /// Connection failures are retried once on another host; a statement
    /// the server refuses (SQL error) is not retried. Either is temporary.
    pub async fn query(&self, sql: &str, params: &[String]) -> Result<Rows, PgError> {
        self.query_named(sql, params).await.map(|(_, rows)| rows)
    }

    /// `query`, with the result's column names.
    pub async fn query_named(
        &self,
        sql: &str,
        params: &[String],
    ) -> Result<(Vec<String>, Rows), PgError> {
        let inner = &self.inner;
        let slot = inner.next.fetch_add(1, Ordering::Relaxed) % inner.slots.len();
        let mut guard = inner.slots[slot].lock().await;
        let mut last_err = String::new();
        for _attempt in 0..2 {
            if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
                *guard = None;
                *guard = Some(self.connect().await?);
            }
            let conn = guard.as_mut().expect("connected above");
            match self.run(conn, sql, params).await {
                Ok(rows) => return Ok(rows),
                Err(RunError::Sql(e)) => return Err(PgError::Temporary(e)),
                Err(RunError::Conn(e)) => {
                    let h = conn.host;
                    self.mark_down(h);
                    last_err = format!("{}: {e}", inner.hosts[h].host);
                    tracing::warn!("pgsql: {last_err}");
                    *guard = None;
                }
            }
        }
        Err(PgError::Temporary(last_err))
    }

    async fn run(
        &self,
        conn: &mut Conn,
        sql: &str,
        params: &[String],
    ) -> Result<(Vec<String>, Rows), RunError> {
        let t = self.inner.settings.query_timeout;
        let classify = |e: tokio_postgres::Error| match e.as_db_error() {
            Some(db) => RunError::Sql(format!("{}: {}", db.code().code(), db.message())),
            None => RunError::Conn(e.to_string()),
        };
        let stmt = match conn.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = tokio::time::timeout(t, conn.client.prepare(sql))
                    .await
                    .map_err(|_| RunError::Conn(format!("no answer within {t:?}")))?
                    .map_err(classify)?;
                conn.statements.insert(sql.to_string(), s.clone());
                s
            }
        };
        let names = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let texts: Vec<TextParam<'_>> = params.iter().map(|p| TextParam(p)).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = texts.iter().map(|p| p as _).collect();
        let rows = tokio::time::timeout(t, conn.client.query(&stmt, &refs))
            .await
            .map_err(|_| RunError::Conn(format!("no answer within {t:?}")))?
            .map_err(classify)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cols = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                let v: AnyText = row
                    .try_get(i)
                    .map_err(|e| RunError::Sql(format!("column {}: {e}", i + 1)))?;
                cols.push(v.0);
            }
            out.push(cols);
        }
        Ok((names, out))
    }

    fn mark_down(&self, h: usize) {
        if let Ok(mut d) = self.inner.hosts[h].down_until.lock() {
            *d = Some(Instant::now() + self.inner.settings.retry_interval);
        }
    }

    /// The hosts in the order to try them: those up in random order, then
    /// those down, longest-down first.
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let mut up = Vec::new();
        let mut down = Vec::new();
        for (i, h) in self.inner.hosts.iter().enumerate() {
            match *h.down_until.lock().unwrap_or_else(|p| p.into_inner()) {
                Some(t) if t > now => down.push((t, i)),
                _ => up.push(i),
            }
        }
        let mut r = random();
        for i in (1..up.len()).rev() {
            up.swap(i, (r % (i as u64 + 1)) as usize);
            r = r.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
        }
        down.sort();
        up.extend(down.into_iter().map(|(_, i)| i));
        up
    }

    async fn connect(&self) -> Result<Conn, PgError> {
        let s = &self.inner.settings;
        let mut errors = Vec::new();
        for h in self.order() {
            let host = &self.inner.hosts[h].host;
            match connect_one(s, host).await {
                Ok(client) => {
                    if let Ok(mut d) = self.inner.hosts[h].down_until.lock() {
                        *d = None;
                    }
                    return Ok(Conn {
                        client,
                        host: h,
                        statements: HashMap::new(),
                    });
                }
                Err(e) => {
                    self.mark_down(h);
                    tracing::warn!("pgsql: cannot connect to {host}: {e}");
                    errors.push(format!("{host}: {e}"));
                }
            }
        }
        Err(PgError::Temporary(format!(
            "no database host answers ({})",
            errors.join("; ")
        )))
    }
}

enum RunError {
    /// The server refused the statement (the connection is still good).
    Sql(String),
    /// The connection broke or timed out.
    Conn(String),
}

fn default_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "postgres".into())
}

async fn connect_one(s: &ConnSettings, host: &Host) -> Result<Client, String> {
    let mut c = match host {
        Host::ConnString(text) => text
            .parse::<tokio_postgres::Config>()
            .map_err(|e| format!("bad connection string: {e}"))?,
        Host::Tcp { host, port } => {
            let mut c = tokio_postgres::Config::new();
            c.host(host).port(*port);
            c
        }
        Host::Unix { dir, port } => {
            let mut c = tokio_postgres::Config::new();
            c.host_path(dir).port(*port);
            c
        }
    };
    if c.get_user().is_none() {
        c.user(s.user.clone().unwrap_or_else(default_user));
    }
    if c.get_password().is_none() {
        if let Some(p) = &s.password {
            c.password(p);
        }
    }
    if c.get_dbname().is_none() {
        c.dbname(&s.dbname);
    }
    c.connect_timeout(s.connect_timeout);
    c.application_name("yubin");
    let (client, connection) = tokio::time::timeout(s.connect_timeout, c.connect(NoTls))
        .await
        .map_err(|_| format!("no answer within {:?}", s.connect_timeout))?
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("pgsql connection closed: {e}");
        }
    });
    Ok(client)
}
