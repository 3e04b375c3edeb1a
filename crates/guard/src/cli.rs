//! `yubin guard` command line (DenyHosts' flags where they exist).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::config::{Blocker, Config};
use crate::engine::{Mode, Tracker};
use crate::parse::parse_line;
use crate::run::{Options, Runner};
use crate::state::State;
use crate::timeutil::{now, strftime};

#[derive(Parser, Debug)]
#[command(
    name = "yubin guard",
    about = "DenyHosts-compatible brute-force blocker for sshd, SMTP AUTH and IMAP logins",
    long_about = "Reads denyhosts.conf (CONFIG_DIR/denyhosts.conf or --config), follows SECURE_LOG \
                  (files across rotation, or journald), counts failures per host with DenyHosts' \
                  thresholds and blocks through /etc/hosts.deny and/or an nftables set.\n\n\
                  Without a subcommand or --once/--file/--purge it runs as a daemon, polling every DAEMON_SLEEP."
)]
struct Cli {
    /// denyhosts.conf to read instead of CONFIG_DIR/denyhosts.conf (`-c` is
    /// yubin's own --config-dir, so there is no short form here).
    #[arg(long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Process what is new in the logs once and exit.
    #[arg(long)]
    once: bool,
    /// Read this log instead of SECURE_LOG (repeatable; implies --once, as DenyHosts' --file).
    #[arg(short = 'f', long = "file", value_name = "LOG")]
    file: Vec<PathBuf>,
    /// Show what would be blocked; change nothing (no hosts.deny, nftables, state or mail).
    #[arg(long)]
    dry_run: bool,
    /// Send no report mail.
    #[arg(short = 'n', long)]
    noemail: bool,
    /// Ignore the saved offsets and read the logs from the start.
    #[arg(short = 'i', long)]
    ignore: bool,
    /// Lift blocks older than PURGE_DENY and exit.
    #[arg(long)]
    purge: bool,
    /// Run as daemon (the default without --once/--file/--purge); stays in the foreground.
    #[arg(long, alias = "foreground")]
    daemon: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List blocked hosts: why, since when, until when.
    Status,
    /// Lift the block of each IP (hosts.deny, nftables) and forget its counters.
    Unblock {
        /// Addresses to unblock.
        #[arg(required = true, value_name = "IP")]
        hosts: Vec<String>,
    },
    /// Tell whether each log line counts, and as what (lines share connection state, in order).
    Test {
        /// sshd mode: normal, ddos, extra or aggressive (default: SSHD_MODE from the config).
        #[arg(long)]
        mode: Option<String>,
        /// Log lines, e.g. 'Jan  2 03:04:05 mail sshd[1]: Invalid user x from 203.0.113.7 port 22'.
        #[arg(required = true, value_name = "LINE")]
        lines: Vec<String>,
    },
}

/// Runs the command; returns the exit code.
pub fn run(config_dir: &Path, args: Vec<OsString>) -> i32 {
    let argv = std::iter::once(OsString::from("yubin guard")).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(config_dir, cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("yubin guard: {e:#}");
            1
        }
    }
}

fn load_config(
    config_dir: &Path,
    explicit: &Option<PathBuf>,
    required: bool,
) -> anyhow::Result<Config> {
    let path = explicit
        .clone()
        .unwrap_or_else(|| config_dir.join("denyhosts.conf"));
    if !required && explicit.is_none() && !path.exists() {
        return Ok(Config::defaults(&path));
    }
    let cfg = Config::load(&path)?;
    for w in &cfg.warnings {
        eprintln!("yubin guard: warning: {w}");
    }
    Ok(cfg)
}

fn dispatch(config_dir: &Path, cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        Some(Command::Test { mode, lines }) => {
            let cfg = load_config(config_dir, &cli.config, false)?;
            let mode = match mode {
                Some(m) => Mode::parse(m).ok_or_else(|| {
                    anyhow::anyhow!("--mode: expected normal, ddos, extra or aggressive, got {m:?}")
                })?,
                None => cfg.sshd_mode,
            };
            return Ok(test_lines(&cfg, mode, lines));
        }
        Some(Command::Status) => {
            let cfg = load_config(config_dir, &cli.config, true)?;
            status(&cfg)?;
            return Ok(0);
        }
        Some(Command::Unblock { hosts }) => {
            let cfg = load_config(config_dir, &cli.config, true)?;
            let mut r = Runner::new(cfg);
            let done = r.unblock(hosts)?;
            for h in hosts {
                let norm = h
                    .parse::<std::net::IpAddr>()
                    .map(|ip| crate::allowed::normalize(ip).to_string())
                    .unwrap_or_else(|_| h.clone());
                if done.contains(&norm) {
                    println!("unblocked {norm}");
                } else {
                    println!("{norm}: not blocked by guard");
                }
            }
            let still = crate::block::hosts_deny::HostsDeny {
                path: r.cfg.hosts_deny.clone(),
                service: String::new(),
                stamped: false,
            }
            .hosts()?;
            for h in hosts {
                if still.contains(h) {
                    eprintln!("yubin guard: warning: {h} is still denied by a line in {} that guard did not write", r.cfg.hosts_deny.display());
                }
            }
            return Ok(0);
        }
        None => {}
    }
    let cfg = load_config(config_dir, &cli.config, true)?;
    let opts = Options {
        files: cli.file.clone(),
        ignore_offsets: cli.ignore,
        dry_run: cli.dry_run,
        noemail: cli.noemail || cli.dry_run,
        follow_journal: false,
    };
    let mut runner = Runner::new(cfg);
    for w in runner.allowed.warnings.clone() {
        eprintln!("yubin guard: warning: {w}");
    }
    if cli.purge {
        let purged = runner.purge()?;
        for h in &purged {
            println!("purged {h}");
        }
        println!("{} host(s) purged", purged.len());
        return Ok(0);
    }
    if cli.once || !cli.file.is_empty() || cli.dry_run && !cli.daemon {
        // One-shot runs print blocked hosts on stdout; stderr gets problems only.
        runner.log = Box::new(|m| {
            if !m.starts_with("blocked ") {
                eprintln!("yubin guard: {m}")
            }
        });
        let t0 = Instant::now();
        let res = runner.pass(&opts)?;
        let secs = t0.elapsed().as_secs_f64();
        // Buffered: stdout is line-buffered, one write(2) per blocked host.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for c in &res.added {
            if opts.dry_run {
                writeln!(out, "would block {} ({})", c.host, c.reason())?;
            } else {
                writeln!(out, "blocked {} ({})", c.host, c.reason())?;
            }
        }
        eprintln!(
            "yubin guard: {} lines, {} failures counted, {} host(s) {} in {:.3} s ({:.0} lines/s)",
            res.lines,
            res.hits,
            res.added.len(),
            if opts.dry_run {
                "would be blocked"
            } else {
                "blocked"
            },
            secs,
            res.lines as f64 / secs.max(1e-9)
        );
        out.flush()?;
        return Ok(0);
    }
    daemon(runner, opts)
}

fn daemon(mut runner: Runner, mut opts: Options) -> anyhow::Result<i32> {
    opts.follow_journal = true;
    let _pid = crate::daemon::PidLock::acquire(&runner.cfg.lock_file)?;
    if let Some(p) = runner.cfg.daemon_log.clone() {
        let log = crate::daemon::DaemonLog::open(&p)?;
        runner.log = Box::new(move |m| log.write(m));
    }
    (runner.log)(&format!(
        "started (pid {}), {}",
        std::process::id(),
        crate::daemon::effective_blockers(&runner.cfg)
    ));
    let mut last_purge = Instant::now();
    loop {
        match runner.pass(&opts) {
            Ok(r) if r.hits > 0 || !r.added.is_empty() => (runner.log)(&format!(
                "{} lines, {} failures, {} blocked",
                r.lines,
                r.hits,
                r.added.len()
            )),
            Ok(_) => {}
            Err(e) => (runner.log)(&format!("error: {e:#}")),
        }
        if runner.cfg.purge_deny.is_some() && last_purge.elapsed() >= runner.cfg.daemon_purge {
            last_purge = Instant::now();
            match runner.purge() {
                Ok(p) if !p.is_empty() => (runner.log)(&format!("purged {}", p.join(", "))),
                Ok(_) => {}
                Err(e) => (runner.log)(&format!("purge error: {e:#}")),
            }
        }
        std::thread::sleep(runner.cfg.daemon_sleep.max(Duration::from_millis(100)));
    }
}

fn fmt_t(t: i64) -> String {
    strftime("%Y-%m-%d %H:%M:%S %z", t)
}

fn status(cfg: &Config) -> anyhow::Result<()> {
    let state = State::load(&cfg.work_dir)?;
    let denied = crate::block::hosts_deny::HostsDeny {
        path: cfg.hosts_deny.clone(),
        service: cfg.block_service.clone(),
        stamped: false,
    }
    .hosts()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "blockers: {}", crate::daemon::effective_blockers(cfg))?;
    writeln!(out, "{} host(s) blocked by guard", state.blocks.len())?;
    for (h, b) in &state.blocks {
        let until = match b.until {
            Some(u) => format!("until {}", fmt_t(u)),
            None if cfg.purge_deny.is_some() => format!(
                "permanently (blocked {} times, PURGE_THRESHOLD {})",
                b.times, cfg.purge_threshold
            ),
            None => "until unblocked (PURGE_DENY not set)".to_string(),
        };
        writeln!(out, "{h}\n    why: {}, {} failures, users: {}\n    since {}, {until}\n    first seen {}, last seen {}", b.reason, b.count, if b.users.is_empty() { "-".into() } else { b.users.join(", ") }, fmt_t(b.since), fmt_t(b.first_seen), fmt_t(b.last_seen))?;
    }
    let others: Vec<&String> = denied
        .iter()
        .filter(|h| !state.blocks.contains_key(*h))
        .collect();
    if !others.is_empty() {
        writeln!(
            out,
            "also denied in {} (not by this guard):",
            cfg.hosts_deny.display()
        )?;
        for h in others {
            writeln!(out, "{h}")?;
        }
    }
    if !state.digest.is_empty() {
        writeln!(
            out,
            "{} host(s) waiting for the next digest mail",
            state.digest.len()
        )?;
    }
    let _ = now();
    Ok(())
}

fn test_lines(cfg: &Config, mode: Mode, lines: &[String]) -> i32 {
    let mut tracker = Tracker::new(mode);
    let allowed = crate::allowed::Allowed::load(&cfg.allowed_hosts);
    let decider = crate::decide::Decider::new(cfg, &allowed);
    let mut any = false;
    for l in lines {
        println!("{l}");
        let Some(p) = parse_line(l.as_bytes()) else {
            println!("  -> not a line guard counts (mode {})", mode.name());
            continue;
        };
        let mut hits = Vec::new();
        tracker.feed(&p, &mut |h| hits.push(h));
        if hits.is_empty() {
            let what = match p.event.kind {
                crate::parse::Kind::Helper | crate::parse::Kind::Close { .. } => {
                    "helper: remembered for its connection, not counted"
                }
                crate::parse::Kind::Ddos => "not counted in this mode (counts in ddos/aggressive)",
                crate::parse::Kind::Extra => {
                    "not counted in this mode (counts in extra/aggressive)"
                }
                crate::parse::Kind::Fail => {
                    "failure without an address: waits for a later line of the same connection"
                }
                crate::parse::Kind::Success => "successful login",
            };
            println!("  -> {} rule {}: {what}", p.service.name(), p.event.rule);
        }
        for h in hits {
            if h.success {
                println!(
                    "  -> {} successful login of {} from {}",
                    h.service.name(),
                    h.user.map(|u| u.to_str_lossy()).unwrap_or_default(),
                    h.host.to_str_lossy()
                );
                continue;
            }
            any = true;
            let (cat, restricted) = decider.category(&h);
            println!(
                "  -> {} failure from {}{}, counts {} as {}{}{} (rule {}, threshold {})",
                h.service.name(),
                h.host.to_str_lossy(),
                if allowed.contains(&h.host.to_str_lossy()) {
                    " [allowed: never blocked]"
                } else {
                    ""
                },
                h.attempts,
                cat.name(),
                if restricted { " and restricted" } else { "" },
                h.user
                    .map(|u| format!(", user {:?}", u.to_str_lossy()))
                    .unwrap_or_default(),
                h.rule,
                decider.threshold(cat)
            );
        }
    }
    let _ = Blocker::HostsDeny;
    if any {
        0
    } else {
        1
    }
}
