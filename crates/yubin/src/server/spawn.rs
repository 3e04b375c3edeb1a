//! spawn(8): master.cf services such as
//! `policyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf`.
//! Each listens on `$queue_directory/private/NAME`; every connection gets a
//! new process running `argv` as `user`, its standard input and output
//! connected to the client (how Postfix runs policy daemons that smtpd
//! reaches with `check_policy_service unix:private/NAME`).
//!
//! Started as root, before the server drops its privileges and before any
//! thread exists, a supervisor process is forked that keeps root only to
//! start each command as its `user`; it ends when the server ends. The
//! sockets are bound before the fork. Changing spawn services needs a restart.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use yubin_conf::{Config, MasterCf};

/// One spawn service from master.cf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnService {
    pub name: String,
    pub user: String,
    pub argv: Vec<String>,
    /// At most this many commands at once (0: no limit).
    pub maxproc: usize,
    /// spawn(8)'s `${service}_time_limit`, else command_time_limit.
    pub time_limit: Duration,
    pub line: usize,
}

/// Reads the `user=` and `argv=` attributes (spawn(8): argv must come last;
/// everything after it is the command line).
pub fn parse(svc: &yubin_conf::Service, cfg: &Config) -> anyhow::Result<SpawnService> {
    let mut user = None;
    let mut argv = Vec::new();
    let mut it = svc.args.iter();
    while let Some(a) = it.next() {
        if let Some(u) = a.strip_prefix("user=") {
            user = Some(u.split(':').next().unwrap_or(u).to_string());
        } else if let Some(cmd) = a.strip_prefix("argv=") {
            argv.push(cmd.to_string());
            argv.extend(it.by_ref().cloned());
        } else {
            bail!(
                "master.cf:{}: service {}: unknown spawn attribute \"{a}\"",
                svc.line,
                svc.name
            );
        }
    }
    let user = user.ok_or_else(|| {
        anyhow!(
            "master.cf:{}: service {}: spawn needs user=NAME",
            svc.line,
            svc.name
        )
    })?;
    if argv.is_empty() || argv[0].is_empty() {
        bail!(
            "master.cf:{}: service {}: spawn needs argv=COMMAND",
            svc.line,
            svc.name
        );
    }
    let limit_name = format!("{}_time_limit", svc.name);
    let secs = match cfg.get_raw(&limit_name) {
        Some(_) => cfg.time(&limit_name, 's'),
        None => cfg.time("command_time_limit", 's'),
    }
    .map_err(|e| anyhow!("{e}"))?;
    Ok(SpawnService {
        name: svc.name.clone(),
        user,
        argv,
        maxproc: svc.maxproc.unwrap_or(100),
        time_limit: Duration::from_secs(secs),
        line: svc.line,
    })
}

/// The socket of a service.
pub fn socket_path(cfg: &Config, name: &str) -> PathBuf {
    Path::new(cfg.get("queue_directory"))
        .join("private")
        .join(name)
}

/// Binds every spawn service's socket and forks the supervisor. Must be
/// called while the process is single-threaded.
pub fn start(cfg: &Config) -> anyhow::Result<()> {
    let master = MasterCf::load(cfg.dir())?;
    let services: Vec<SpawnService> = master
        .services
        .iter()
        .filter(|s| s.command == "spawn")
        .map(|s| {
            if s.kind != "unix" {
                bail!(
                    "master.cf:{}: service {}: yubin runs spawn services of type unix",
                    s.line,
                    s.name
                );
            }
            parse(s, cfg)
        })
        .collect::<anyhow::Result<_>>()?;
    if services.is_empty() {
        return Ok(());
    }
    let root = yubin_sys::is_root();
    let mut bound = Vec::new();
    for s in services {
        let user = yubin_addr::passwd::lookup(&s.user).ok_or_else(|| {
            anyhow!(
                "master.cf:{}: service {}: user={}: no such user",
                s.line,
                s.name,
                s.user
            )
        })?;
        if user.uid == 0 {
            bail!(
                "master.cf:{}: service {}: user={} must not be root",
                s.line,
                s.name,
                s.user
            );
        }
        let path = socket_path(cfg, &s.name);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("spawn service {}: bind {}", s.name, path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        bound.push((s, listener, (user.uid, user.gid)));
    }
    let (keep, watch) = UnixStream::pair()?;
    // SAFETY: called before the async runtime or any other thread starts;
    // the child only runs the supervisor below and exits.
    match unsafe { yubin_sys::fork() }? {
        yubin_sys::Forked::Child => {
            drop(keep);
            supervise(bound, watch, root);
            yubin_sys::exit_now(0)
        }
        yubin_sys::Forked::Parent(_) => {
            drop(watch);
            drop(bound);
            // Held open for the server's lifetime: the supervisor ends when
            // it reads end-of-file here.
            std::mem::forget(keep);
            Ok(())
        }
    }
}

fn supervise(
    bound: Vec<(SpawnService, UnixListener, (u32, u32))>,
    mut watch: UnixStream,
    root: bool,
) {
    for (svc, listener, ids) in bound {
        let svc = Arc::new(svc);
        std::thread::spawn(move || accept_loop(svc, listener, ids, root));
    }
    let mut b = [0u8; 1];
    // Blocks until the server exits (end of file) or the socket fails.
    while let Ok(n) = watch.read(&mut b) {
        if n == 0 {
            break;
        }
    }
}

fn accept_loop(svc: Arc<SpawnService>, listener: UnixListener, (uid, gid): (u32, u32), root: bool) {
    let running = Arc::new(AtomicUsize::new(0));
    loop {
        while svc.maxproc > 0 && running.load(Ordering::SeqCst) >= svc.maxproc {
            std::thread::sleep(Duration::from_millis(20));
        }
        let Ok((conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let (Ok(a), Ok(b)) = (conn.try_clone(), conn.try_clone()) else {
            continue;
        };
        let mut cmd = Command::new(&svc.argv[0]);
        cmd.args(&svc.argv[1..])
            .stdin(Stdio::from(OwnedFd::from(a)))
            .stdout(Stdio::from(OwnedFd::from(b)))
            .stderr(Stdio::null())
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin");
        if root {
            // std drops supplementary groups (setgroups) before setuid.
            cmd.uid(uid).gid(gid);
        }
        drop(conn);
        let Ok(mut child) = cmd.spawn() else {
            continue;
        };
        running.fetch_add(1, Ordering::SeqCst);
        let running = running.clone();
        let limit = svc.time_limit;
        std::thread::spawn(move || {
            let started = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if started.elapsed() > limit => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
            running.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes() {
        let cfg = Config::from_bytes(
            Path::new("/etc/yubin"),
            Path::new("/etc/yubin/main.cf"),
            b"",
        )
        .unwrap();
        let m = yubin_conf::mastercf::parse(
            Path::new("master.cf"),
            b"policyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf -v x\n",
        )
        .unwrap();
        let s = parse(&m.services[0], &cfg).unwrap();
        assert_eq!(s.user, "nobody");
        assert_eq!(s.argv, ["/usr/bin/policyd-spf", "-v", "x"]);
        assert_eq!(s.maxproc, 0);
        assert_eq!(s.time_limit, Duration::from_secs(1000));
        let bad = yubin_conf::mastercf::parse(
            Path::new("master.cf"),
            b"p unix - n n - 0 spawn argv=/bin/true\n",
        )
        .unwrap();
        assert!(parse(&bad.services[0], &cfg).is_err());
    }
}
