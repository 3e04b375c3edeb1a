//! `yubin serve`: the daemon. Postfix's processes become tasks here:
//! smtpd sessions (one task per connection), cleanup (headers, queue file),
//! the queue manager and the delivery agents, sharing one configuration that
//! `yubin reload` / SIGHUP replaces without dropping sessions.

pub mod cleanup;
pub mod control;
pub mod dovecot_auth;
pub mod embedded;
pub mod imap_store;
pub mod imapd;
pub mod listeners;
pub mod milter;
pub mod msgauth;
pub mod pickup;
pub mod privilege;
pub mod privsep;
pub mod qmgr;
pub mod relay;
pub mod runtime;
pub mod sasl;
pub mod settings;
pub mod smtpd;
pub mod spawn;
pub mod tls;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use yubin_conf::Config;
use yubin_maillog::{MailLog, Target};
use yubin_queue::{Committer, Spool};

use runtime::{Runtime, Shared};

/// Options of `yubin serve`.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Log to stderr instead of maillog_file.
    #[arg(long)]
    pub log_stderr: bool,
}

/// Runs the server until SIGTERM/SIGINT. Returns the exit code.
pub fn run(dir: &Path, args: ServeArgs, embedded: bool) -> anyhow::Result<i32> {
    let shown = std::fs::canonicalize(dir)
        .with_context(|| format!("configuration directory {}", dir.display()))?;
    let dir = embedded::enter(&shown, embedded)?;
    let cfg = Config::load(&dir)?;
    for w in cfg.warnings() {
        eprintln!("yubin: warning: {w}");
    }
    let runtime = Runtime::build(&cfg)?;
    let spool_dir = cfg.get("queue_directory").to_string();
    let spool = Spool::open(Path::new(&spool_dir))
        .with_context(|| format!("queue_directory {spool_dir}"))?;
    let log_target = match cfg.get("maillog_file") {
        "" | "/dev/stderr" => Target::Stderr,
        _ if args.log_stderr => Target::Stderr,
        path => {
            if let Some(parent) = Path::new(path).parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            Target::File(path.into())
        }
    };
    // Before any thread exists: the helper that runs alias commands and
    // files as default_privs (only when started as root).
    let privsep = privsep::start(cfg.get("default_privs"))?;
    // master.cf spawn(8) services (policy daemons), also before any thread.
    spawn::start(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("yubin")
        .build()?;
    rt.block_on(async move {
        let bound = listeners::bind(&runtime).await?;
        let unix_bound = listeners::bind_unix(&runtime)?;
        let imap_bound = imapd::bind(&cfg).await?;
        privilege::drop_to(&cfg, &[spool.root()])?;
        let _lock = spool.lock()?;
        let log = MailLog::start(log_target, cfg.get("myhostname"), cfg.get("syslog_name"));
        let committer = Committer::start(spool.clone());
        let (qmgr_tx, qmgr_rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(
            runtime,
            spool.clone(),
            committer,
            log.clone(),
            qmgr_tx,
            dir.clone(),
            privsep,
        ));
        log.log(
            "master",
            &format!(
                "daemon started -- version {}, configuration {}",
                env!("CARGO_PKG_VERSION"),
                shown.display()
            ),
        );
        let qmgr = tokio::spawn(qmgr::run(shared.clone(), qmgr_rx));
        let _ = yubin_queue::maildrop::prepare_dir(&spool);
        tokio::spawn(pickup::run(shared.clone(), pickup::waker()));
        qmgr::recover(&shared)?;
        control::start(shared.clone())?;
        if embedded {
            embedded::print_summary(&shared.current(), &bound, &imap_bound, &shown);
        } else {
            for b in &bound {
                eprintln!("yubin: {} listening on {}", b.service, b.addr);
            }
            for b in &imap_bound {
                eprintln!("yubin: {} listening on {} (IMAP)", b.service.name, b.addr);
            }
            for b in &unix_bound {
                eprintln!("yubin: {} listening on {}", b.service, b.path.display());
            }
        }
        let accept = listeners::serve(shared.clone(), bound);
        let unix_accept = listeners::serve_unix(shared.clone(), unix_bound);
        let imap_accept = imapd::serve(shared.clone(), imap_bound);
        {
            // Grouped postmaster notices go out when their interval ends.
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let sh = shared.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        let rt = sh.current();
                        sh.notices
                            .flush_due(&sh.notify(&rt), yubin_maillog::clock::now_secs())
                    })
                    .await;
                }
            });
        }
        notify_systemd("READY=1");
        let code = wait_for_signals(shared.clone()).await;
        notify_systemd("STOPPING=1");
        accept.abort();
        unix_accept.abort();
        imap_accept.abort();
        shared.shutdown.notify_waiters();
        // Let sessions in progress finish (bounded), then stop the queue manager.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while shared.sessions() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shared.stop_qmgr();
        let _ = tokio::time::timeout(Duration::from_secs(30), qmgr).await;
        log.log("master", "terminating on signal");
        tokio::time::sleep(Duration::from_millis(100)).await;
        anyhow::Ok(code)
    })
}

async fn wait_for_signals(shared: Arc<Shared>) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return 1;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return 0,
            _ = int.recv() => return 0,
            _ = hup.recv() => shared.reload(),
            _ = shared.stop_request.notified() => return 0,
        }
    }
}

/// sd_notify(3) for systemd `Type=notify`, without libsystemd.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    if let Some(abstract_name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) =
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
        {
            let _ = sock.send_to_addr(state.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(state.as_bytes(), &path);
    }
}
