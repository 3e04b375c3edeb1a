//! Daemon plumbing: the pid lock (DenyHosts' LOCK_FILE: a second instance
//! exits), the daemon's own log (DAEMON_LOG), and the start-up note on which
//! blocker actually has an effect.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::config::{Blocker, Config};

/// Holds `flock` on LOCK_FILE with our pid in it while the daemon runs.
pub struct PidLock {
    _file: std::fs::File,
}

impl PidLock {
    pub fn acquire(path: &Path) -> anyhow::Result<PidLock> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("LOCK_FILE {}: {e}", path.display()))?;
        if yubin_sys::lock_exclusive(&f, false).is_err() {
            let pid = std::fs::read_to_string(path).unwrap_or_default();
            anyhow::bail!(
                "another yubin guard daemon holds {} (pid {})",
                path.display(),
                pid.trim()
            );
        }
        f.set_len(0)?;
        writeln!(f, "{}", std::process::id())?;
        Ok(PidLock { _file: f })
    }
}

/// Appends timestamped lines to DAEMON_LOG.
pub struct DaemonLog {
    file: Mutex<std::fs::File>,
}

impl DaemonLog {
    pub fn open(path: &Path) -> anyhow::Result<DaemonLog> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("DAEMON_LOG {}: {e}", path.display()))?;
        Ok(DaemonLog {
            file: Mutex::new(f),
        })
    }

    pub fn write(&self, m: &str) {
        let line = format!(
            "{} - yubin-guard: {m}\n",
            crate::timeutil::strftime("%Y-%m-%d %H:%M:%S", crate::timeutil::now())
        );
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Does this sshd honour /etc/hosts.deny? Only when linked with libwrap
/// (upstream OpenSSH dropped tcp_wrappers in 6.7; Debian 12 patches it back).
pub fn sshd_uses_libwrap(sshd: &Path) -> Option<bool> {
    if !sshd.exists() {
        return None;
    }
    let out = std::process::Command::new("ldd").arg(sshd).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).contains("libwrap"))
}

/// One line saying which blockers are configured and whether they bite.
pub fn effective_blockers(cfg: &Config) -> String {
    let mut parts = Vec::new();
    for b in &cfg.blockers {
        match b {
            Blocker::HostsDeny => {
                let note = match sshd_uses_libwrap(Path::new("/usr/sbin/sshd")) {
                    Some(true) => "sshd is linked with libwrap, so it honours it",
                    Some(false) => {
                        "WARNING: /usr/sbin/sshd is not linked with libwrap and ignores it"
                    }
                    None => "no /usr/sbin/sshd to check whether it honours it",
                };
                parts.push(format!("{} ({note})", cfg.hosts_deny.display()));
            }
            Blocker::Nftables => parts.push(format!("nftables table inet {}", cfg.nft_table)),
        }
    }
    parts.join("; ")
}
