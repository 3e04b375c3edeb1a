//! The server's state: the reloadable part (configuration, resolver,
//! per-service session settings) behind one lock, and the long-lived parts
//! (queue, committer, log, queue manager channel).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{anyhow, Context};
use yubin_addr::Resolver;
use yubin_conf::{Config, MasterCf};
use yubin_dns::Dns;
use yubin_maillog::MailLog;
use yubin_policy::Policy;
use yubin_queue::{Committer, Spool};
use yubin_smtp::{Authenticator, SessionConfig};
use yubin_table::cidr::{contains, parse_network};
use yubin_table::Maps;

/// One smtpd listener's settings.
pub struct Service {
    /// The master.cf service name (`smtp`, `127.0.0.1:2525`, ...).
    pub name: String,
    pub addrs: Vec<SocketAddr>,
    /// A master.cf `unix` service (lmtpd): the socket's path and mode.
    pub unix: Option<(PathBuf, u32)>,
    /// yubin's LMTP server (master.cf command `lmtpd`) rather than smtpd.
    pub lmtp: bool,
    pub session: SessionConfig,
    /// The restrictions of this service (master.cf -o may change them)
    /// with the lookups they need.
    pub policy: Arc<Policy>,
    /// SMTP AUTH's user database; `None` when AUTH is off.
    pub auth: Option<Arc<dyn Authenticator>>,
    /// smtpd_timeout.
    pub timeout: Duration,
    pub queue_space: super::smtpd::QueueSpace,
    /// (sessions at once, listen backlog): master.cf maxproc.
    pub process_limit: (usize, u32),
    pub tls: super::tls::TlsPolicy,
    // milter: begin
    /// smtpd_milters with the milter_* settings; `None` without milters.
    pub milters: Option<Arc<super::settings::MilterSettings>>,
    // milter: end
    /// yubin-msgauth at the end of DATA; None when msgauth_enable = no.
    pub msgauth: Option<Arc<super::msgauth::MsgAuth>>,
}

impl Service {
    /// The daemon name of its log lines: `smtpd`, or `lmtpd` for yubin's
    /// LMTP server.
    pub fn daemon(&self) -> &'static str {
        if self.lmtp {
            "lmtpd"
        } else {
            "smtpd"
        }
    }
}

/// Everything a reload replaces.
pub struct Runtime {
    pub cfg: Config,
    pub resolver: Arc<Resolver>,
    pub services: Vec<Arc<Service>>,
    pub mynetworks: Vec<(IpAddr, u8)>,
    pub client_connection_limit: usize,
    pub hostname: String,
    pub mail_name: String,
    pub tls_received_header: bool,
    pub sasl_authenticated_header: bool,
    /// Queue manager, delivery agents and notifications (typed, built once).
    pub queue: super::settings::QueueSettings,
    /// The SMTP client (smtp(8)): settings, TLS, SASL, DKIM, on the shared resolver.
    pub outbound: Arc<yubin_outbound::Outbound>,
    // milter: begin
    /// non_smtpd_milters (mail from sendmail, through pickup).
    pub non_smtpd_milters: Option<Arc<super::settings::MilterSettings>>,
    // milter: end
}

fn parse_mynetworks(cfg: &Config) -> anyhow::Result<Vec<(IpAddr, u8)>> {
    let mut out = Vec::new();
    for item in cfg.list("mynetworks") {
        let net = parse_network(&item).map_err(|e| {
            anyhow!(
                "{}: parameter mynetworks: {e}",
                cfg.origin_text("mynetworks")
            )
        })?;
        out.push(net);
    }
    Ok(out)
}

/// The addresses a service listens on: its own `host:port`, or the port on
/// every `inet_interfaces` address.
fn service_addrs(cfg: &Config, svc: &yubin_conf::Service) -> anyhow::Result<Vec<SocketAddr>> {
    let (host, port) = svc
        .listen()
        .ok_or_else(|| anyhow!("master.cf:{}: bad service address {}", svc.line, svc.name))?;
    let hosts: Vec<String> = match host {
        Some(h) => vec![h],
        None => cfg
            .list("inet_interfaces")
            .into_iter()
            .flat_map(|i| match i.as_str() {
                "all" => vec!["0.0.0.0".to_string()],
                "loopback-only" | "localhost" => vec!["127.0.0.1".to_string()],
                other => vec![other.trim_matches(['[', ']']).to_string()],
            })
            .collect(),
    };
    hosts
        .iter()
        .map(|h| {
            let ip: IpAddr = h
                .parse()
                .map_err(|_| anyhow!("bad listen address \"{h}\" for service {}", svc.name))?;
            Ok(SocketAddr::new(ip, port))
        })
        .collect()
}

/// A `unix` service's socket, as master(8) places it: an absolute name as
/// is, else `$queue_directory/private/NAME` (private column `y` or `-`:
/// mode 0660) or `$queue_directory/public/NAME` (mode 0666).
fn unix_socket(cfg: &Config, svc: &yubin_conf::Service) -> (PathBuf, u32) {
    let mode = if svc.private { 0o660 } else { 0o666 };
    let name = std::path::Path::new(&svc.name);
    if name.is_absolute() {
        return (name.to_path_buf(), mode);
    }
    let dir = if svc.private { "private" } else { "public" };
    (
        PathBuf::from(cfg.get("queue_directory"))
            .join(dir)
            .join(name),
        mode,
    )
}

fn session_config(
    cfg: &Config,
    tls: &super::tls::TlsPolicy,
    auth: Option<&Arc<dyn Authenticator>>,
) -> anyhow::Result<SessionConfig> {
    let long_ids = cfg.bool("enable_long_queue_ids")?;
    Ok(SessionConfig {
        hostname: cfg.get("myhostname").to_string(),
        banner: cfg.get("smtpd_banner").to_string(),
        message_size_limit: cfg.u64("message_size_limit")?,
        recipient_limit: cfg.u64("smtpd_recipient_limit")? as usize,
        hard_error_limit: cfg.u64("smtpd_hard_error_limit")? as u32,
        soft_error_limit: cfg.u64("smtpd_soft_error_limit")? as u32,
        error_sleep: Duration::from_secs(cfg.time("smtpd_error_sleep_time", 's')?),
        disable_vrfy: cfg.bool("disable_vrfy_command")?,
        smtputf8_enable: cfg.bool("smtputf8_enable")?,
        helo_required: cfg.bool("smtpd_helo_required")?,
        line_limit: 2048,
        new_queue_id: if long_ids {
            Arc::new(yubin_queue::id::long)
        } else {
            Arc::new(yubin_queue::id::short)
        },
        tls_offered: tls.offered,
        tls_required: tls.required,
        auth_mechanisms: auth.map(|a| a.mechanisms()),
        auth_mechanisms_tls: auth.map(|a| a.mechanisms_tls()),
        auth_requires_tls: cfg.bool("smtpd_tls_auth_only")?,
        broken_sasl_auth_clients: cfg.bool("broken_sasl_auth_clients")?,
        check_client: false,
        check_helo: false,
        lmtp: false,
    })
}

/// master(5) maxproc: `-` is default_process_limit, 0 is no limit.
/// Returns (sessions at once, listen backlog); the backlog is Postfix's
/// `max(maxproc, default_process_limit)` (master_listen.c).
fn process_limit(cfg: &Config, maxproc: Option<usize>) -> (usize, u32) {
    let default = cfg.u64("default_process_limit").unwrap_or(100).max(1) as usize;
    let limit = match maxproc {
        None => default,
        Some(0) => tokio::sync::Semaphore::MAX_PERMITS,
        Some(n) => n,
    };
    (limit, maxproc.unwrap_or(0).max(default).min(65535) as u32)
}

impl Runtime {
    /// Builds and validates everything; any error means "do not serve".
    pub fn build(cfg: &Config) -> anyhow::Result<Runtime> {
        let resolver = Arc::new(Resolver::new(cfg)?);
        let dns = Arc::new(Dns::new(
            yubin_dns::parse_servers(&cfg.list("dns_servers"))
                .map_err(|e| anyhow!("{}: dns_servers: {e}", cfg.origin_text("dns_servers")))?,
        ));
        let sender_login_maps = Arc::new(
            Maps::open(
                &cfg.list("smtpd_sender_login_maps"),
                cfg.get("default_database_type"),
                cfg.dir(),
            )
            .map_err(|e| {
                anyhow!(
                    "{}: smtpd_sender_login_maps: {e}",
                    cfg.origin_text("smtpd_sender_login_maps")
                )
            })?,
        );
        let master = MasterCf::load(cfg.dir())?;
        for w in &master.warnings {
            eprintln!("yubin: warning: {w}");
        }
        let mut services = Vec::new();
        let policy_clients = yubin_policy::config::PolicyClients::default();
        let smtpd: Vec<_> = master.smtpd_services().cloned().collect();
        let smtpd = if smtpd.is_empty() && !cfg.dir().join("master.cf").exists() {
            // No master.cf: Postfix's default "smtp inet ... smtpd".
            vec![yubin_conf::Service {
                name: "smtp".into(),
                kind: "inet".into(),
                private: false,
                command: "smtpd".into(),
                args: vec![],
                overrides: vec![],
                maxproc: None,
                line: 0,
            }]
        } else {
            smtpd
        };
        let lmtpd = master.lmtpd_services().cloned().map(|mut svc| {
            // An LMTP server is a final destination (RFC 2033 section 1):
            // it takes recipients of this host's own domains, never mail to
            // relay, and has no AUTH. The service's own -o come after and
            // may change that.
            let mut o: Vec<(String, String)> = [
                ("smtpd_relay_restrictions", "reject_unauth_destination"),
                ("smtpd_recipient_restrictions", ""),
                ("smtpd_sasl_auth_enable", "no"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            o.append(&mut svc.overrides);
            svc.overrides = o;
            (svc, true)
        });
        for (svc, lmtp) in smtpd.into_iter().map(|s| (s, false)).chain(lmtpd) {
            let scfg = cfg
                .with_overrides(&svc.name, &svc.overrides)
                .with_context(|| format!("master.cf:{}: service {}", svc.line, svc.name))?;
            let context = || format!("service {} (master.cf:{})", svc.name, svc.line);
            let tls = super::tls::policy(&scfg).with_context(context)?;
            let auth = super::sasl::authenticator(&scfg).with_context(context)?;
            let mut session = session_config(&scfg, &tls, auth.as_ref()).with_context(context)?;
            session.lmtp = lmtp;
            let unix = (svc.kind == "unix").then(|| unix_socket(&scfg, &svc));
            if unix.is_some() {
                // No TLS on a local socket.
                session.tls_offered = false;
                session.tls_required = false;
            }
            // smtpd restrictions (issue 14): lists, tables, policy servers.
            let restrictions = yubin_policy::config::restrictions(&scfg, &policy_clients)
                .map_err(|e| anyhow!(e))
                .with_context(context)?;
            let settings = yubin_policy::config::settings(&scfg)
                .map_err(|e| anyhow!(e))
                .with_context(context)?;
            session.check_client = !settings.delay_reject && !restrictions.client.is_empty();
            session.check_helo = !settings.delay_reject && !restrictions.helo.is_empty();
            let policy = Arc::new(Policy {
                resolver: resolver.clone(),
                sender_login_maps: sender_login_maps.clone(),
                dns: restrictions.uses_dns().then(|| dns.clone()),
                restrictions,
                settings: Arc::new(settings),
            });
            services.push(Arc::new(Service {
                name: svc.name.clone(),
                addrs: if unix.is_some() {
                    Vec::new()
                } else {
                    service_addrs(cfg, &svc)?
                },
                unix,
                lmtp,
                session,
                policy,
                auth,
                timeout: Duration::from_secs(scfg.time("smtpd_timeout", 's')?),
                queue_space: super::smtpd::QueueSpace {
                    queue_minfree: scfg.u64("queue_minfree")?,
                    message_size_limit: scfg.u64("message_size_limit")?,
                },
                process_limit: process_limit(&scfg, svc.maxproc),
                tls,
                // milter: begin
                milters: super::settings::MilterSettings::from_config(&scfg, "smtpd_milters")
                    .with_context(context)?
                    .map(Arc::new),
                // milter: end
                msgauth: super::msgauth::from_config(&scfg, &dns).with_context(context)?,
            }));
        }
        let outbound = Arc::new(
            yubin_outbound::Outbound::with_resolver(cfg, dns.clone()).map_err(|e| anyhow!(e))?,
        );
        Ok(Runtime {
            outbound,
            resolver,
            services,
            mynetworks: parse_mynetworks(cfg)?,
            client_connection_limit: cfg.u64("smtpd_client_connection_count_limit")? as usize,
            hostname: cfg.get("myhostname").to_string(),
            mail_name: cfg.get("mail_name").to_string(),
            tls_received_header: cfg.bool("smtpd_tls_received_header")?,
            sasl_authenticated_header: cfg.bool("smtpd_sasl_authenticated_header")?,
            queue: super::settings::QueueSettings::from_config(cfg)?,
            // milter: begin
            non_smtpd_milters: super::settings::MilterSettings::from_config(
                cfg,
                "non_smtpd_milters",
            )?
            .map(Arc::new),
            // milter: end
            cfg: cfg.clone(),
        })
    }

    pub fn in_mynetworks(&self, ip: IpAddr) -> bool {
        self.mynetworks
            .iter()
            .any(|(net, p)| contains(*net, *p, ip))
    }
}

/// Messages for the queue manager.
#[derive(Debug)]
pub enum QmgrMsg {
    /// A message was committed to `incoming/`.
    New(String),
    /// A message found in the queue at start: deliver with the duplicate check.
    Recover(String),
    /// Try this deferred message at this Unix time.
    Schedule(String, i64),
    /// Try every deferred message now (`postqueue -f`).
    Flush,
    /// Try the messages waiting for this destination now (`postqueue -s`).
    FlushSite(String),
    Stop,
}

pub struct Shared {
    current: RwLock<Arc<Runtime>>,
    pub spool: Spool,
    pub committer: Committer,
    pub log: MailLog,
    pub qmgr: tokio::sync::mpsc::UnboundedSender<QmgrMsg>,
    pub config_dir: PathBuf,
    sessions: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
    pub shutdown: Arc<tokio::sync::Notify>,
    pub stop_request: tokio::sync::Notify,
    pub stopping: AtomicBool,
    /// Grouping of postmaster notices (yubin_notice_interval).
    pub notices: yubin_notify::Notices,
    /// Runs alias command/file targets as default_privs (started as root).
    pub privsep: Option<super::privsep::PrivSep>,
}

impl Shared {
    pub fn new(
        rt: Runtime,
        spool: Spool,
        committer: Committer,
        log: MailLog,
        qmgr: tokio::sync::mpsc::UnboundedSender<QmgrMsg>,
        config_dir: PathBuf,
        privsep: Option<super::privsep::PrivSep>,
    ) -> Shared {
        Shared {
            current: RwLock::new(Arc::new(rt)),
            spool,
            committer,
            log,
            qmgr,
            config_dir,
            sessions: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
            shutdown: Arc::new(tokio::sync::Notify::new()),
            stop_request: tokio::sync::Notify::new(),
            stopping: AtomicBool::new(false),
            notices: Default::default(),
            privsep,
        }
    }

    pub fn current(&self) -> Arc<Runtime> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads main.cf, master.cf and the tables. A configuration that
    /// fails to load is reported and the running one kept.
    pub fn reload(&self) {
        let result = Config::load(&self.config_dir)
            .map_err(anyhow::Error::from)
            .and_then(|c| Runtime::build(&c));
        match result {
            Ok(rt) => {
                for w in rt.cfg.warnings() {
                    self.log.log("master", &format!("warning: {w}"));
                }
                if let Ok(mut g) = self.current.write() {
                    *g = Arc::new(rt);
                }
                self.log.log(
                    "master",
                    &format!(
                        "reload -- version {}, configuration {}",
                        env!("CARGO_PKG_VERSION"),
                        self.config_dir.display()
                    ),
                );
            }
            Err(e) => self.log.log(
                "master",
                &format!("warning: reload failed, keeping the running configuration: {e:#}"),
            ),
        }
    }

    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    /// Counts a new session; returns the client's concurrent session count.
    pub fn session_started(&self, ip: IpAddr) -> usize {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        let mut m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        *n += 1;
        *n
    }

    pub fn session_ended(&self, ip: IpAddr) {
        self.sessions.fetch_sub(1, Ordering::SeqCst);
        let mut m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }

    pub fn stop_qmgr(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.qmgr.send(QmgrMsg::Stop);
    }
}
