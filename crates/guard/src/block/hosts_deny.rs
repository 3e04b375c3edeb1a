//! `/etc/hosts.deny` in DenyHosts' line format (research note 1.6):
//! `BLOCK_SERVICE: ADDR` (bare `ADDR` when the service is blank), preceded by
//! `# DenyHosts: <asctime> | <entry>` when `PURGE_DENY` is set — the comment
//! `--purge` keys on. IPv6 is written in brackets (`sshd: [2001:db8::1]`), the
//! form tcp_wrappers needs (DenyHosts wrote it bare and broke, denyhosts#13).
//!
//! Writes are safe against a concurrent writer: take `flock` on the file,
//! check the locked inode is still the one at the path (else retry), re-read,
//! write a temp file in the same directory, fsync, rename. Lines guard did not
//! write are kept byte for byte.

use std::collections::{BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::state::{flock, write_atomic};

/// The hosts.deny writer.
pub struct HostsDeny {
    pub path: PathBuf,
    pub service: String,
    /// Write `# DenyHosts:` timestamp comments (PURGE_DENY set).
    pub stamped: bool,
}

/// `sshd: 203.0.113.7`, `sshd: [2001:db8::1]`, or the bare address.
pub fn entry_line(service: &str, host: &str) -> String {
    let addr = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if service.is_empty() {
        addr
    } else {
        format!("{service}: {addr}")
    }
}

/// The address of a deny line, as DenyHosts reads them back (comment lines
/// ignored, trailing comment stripped, `svc: addr[ : deny]`), understanding
/// bracketed IPv6.
pub fn line_host(line: &str) -> Option<String> {
    let l = line.split('#').next().unwrap_or("").trim();
    if l.is_empty() {
        return None;
    }
    let rest = match l.find(": ").or_else(|| l.find(":[")) {
        Some(p) if !l[..p].contains('[') && !l[..p].contains("::") => l[p + 1..].trim(),
        _ if l.parse::<std::net::IpAddr>().is_ok() || l.starts_with('[') => l,
        _ => match l.split_once(':') {
            Some((_, r)) => r.trim(),
            None => l,
        },
    };
    let rest = rest.split(" : ").next().unwrap_or(rest).trim();
    let first = rest.split_whitespace().next()?;
    let h = first.trim_start_matches('[').trim_end_matches(']');
    (!h.is_empty()).then(|| h.to_string())
}

struct Locked {
    _file: File,
}

fn lock(path: &Path) -> anyhow::Result<Locked> {
    loop {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        flock(&f)?;
        let locked_ino = f.metadata()?.ino();
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == locked_ino => return Ok(Locked { _file: f }),
            _ => continue, // replaced while we waited: lock the new file
        }
    }
}

impl HostsDeny {
    /// Addresses currently denied (by any line, the admin's too).
    pub fn hosts(&self) -> anyhow::Result<BTreeSet<String>> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => Ok(t.lines().filter_map(line_host).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", self.path.display())),
        }
    }

    /// Appends entries for `hosts` not yet denied; returns those added.
    pub fn add(&self, hosts: &[String], stamp: &str) -> anyhow::Result<Vec<String>> {
        let _l = lock(&self.path)?;
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let present: BTreeSet<String> = text.lines().filter_map(line_host).collect();
        let mut out = text.clone();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let mut added = Vec::new();
        // A set beside the list: with thousands of hosts in one pass a
        // `Vec::contains` here made adding quadratic (issue 16 item 5).
        let mut seen: HashSet<&str> = HashSet::with_capacity(hosts.len());
        for h in hosts {
            if present.contains(h) || !seen.insert(h.as_str()) {
                continue;
            }
            let entry = entry_line(&self.service, h);
            if self.stamped {
                out.push_str(&format!("# DenyHosts: {stamp} | {entry}\n"));
            }
            out.push_str(&entry);
            out.push('\n');
            added.push(h.clone());
        }
        if !added.is_empty() {
            write_atomic(&self.path, out.as_bytes())?;
        }
        Ok(added)
    }

    /// Removes guard's entries (exact `entry_line` lines and their
    /// `# DenyHosts:` comment) for `hosts`; the admin's own lines stay.
    pub fn remove(&self, hosts: &[String]) -> anyhow::Result<Vec<String>> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let _l = lock(&self.path)?;
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        let targets: Vec<(String, String)> = hosts
            .iter()
            .map(|h| (entry_line(&self.service, h), h.clone()))
            .collect();
        let lines: Vec<&str> = text.lines().collect();
        let mut keep = vec![true; lines.len()];
        let mut removed = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if let Some((_, h)) = targets.iter().find(|(e, _)| l.trim() == e) {
                keep[i] = false;
                if i > 0
                    && lines[i - 1].starts_with("# DenyHosts:")
                    && lines[i - 1].ends_with(&format!("| {}", l.trim()))
                {
                    keep[i - 1] = false;
                }
                if !removed.contains(h) {
                    removed.push(h.clone());
                }
            }
        }
        if !removed.is_empty() {
            let mut out = String::with_capacity(text.len());
            for (l, k) in lines.iter().zip(&keep) {
                if *k {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            write_atomic(&self.path, out.as_bytes())?;
        }
        Ok(removed)
    }

    /// Entries written with a `# DenyHosts: <asctime> | entry` comment:
    /// (host, time).
    pub fn stamped_entries(&self) -> Vec<(String, i64)> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for w in lines.windows(2) {
            if let Some(c) = w[0].strip_prefix("# DenyHosts: ") {
                if let Some((when, entry)) = c.split_once(" | ") {
                    if entry.trim() == w[1].trim() {
                        if let (Some(t), Some(h)) =
                            (crate::timeutil::parse_asctime(when), line_host(w[1]))
                        {
                            out.push((h, t));
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_formats() {
        assert_eq!(entry_line("sshd", "203.0.113.7"), "sshd: 203.0.113.7");
        assert_eq!(entry_line("sshd", "2001:db8::1"), "sshd: [2001:db8::1]");
        assert_eq!(entry_line("", "203.0.113.7"), "203.0.113.7");
        for (l, h) in [
            ("sshd: 203.0.113.7", "203.0.113.7"),
            ("ALL: 1.2.3.4 # why", "1.2.3.4"),
            ("sshd: 1.2.3.4 : deny", "1.2.3.4"),
            ("sshd: [2001:db8::1]", "2001:db8::1"),
            ("1.2.3.4", "1.2.3.4"),
        ] {
            assert_eq!(line_host(l).as_deref(), Some(h), "{l}");
        }
        assert_eq!(line_host("# DenyHosts: x | sshd: 1.2.3.4"), None);
    }

    #[test]
    fn add_keeps_admin_lines_and_remove_only_ours() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts.deny");
        std::fs::write(&p, "# admin comment\nALL: 192.0.2.1").unwrap();
        let hd = HostsDeny {
            path: p.clone(),
            service: "sshd".into(),
            stamped: true,
        };
        let added = hd
            .add(
                &[
                    "203.0.113.7".into(),
                    "192.0.2.1".into(),
                    "2001:db8::5".into(),
                ],
                "Tue Jan  2 03:04:05 2024",
            )
            .unwrap();
        assert_eq!(
            added,
            vec!["203.0.113.7".to_string(), "2001:db8::5".to_string()]
        );
        let t = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            t,
            "# admin comment\nALL: 192.0.2.1\n# DenyHosts: Tue Jan  2 03:04:05 2024 | sshd: 203.0.113.7\nsshd: 203.0.113.7\n# DenyHosts: Tue Jan  2 03:04:05 2024 | sshd: [2001:db8::5]\nsshd: [2001:db8::5]\n"
        );
        assert_eq!(hd.stamped_entries().len(), 2);
        let removed = hd
            .remove(&["203.0.113.7".into(), "192.0.2.1".into()])
            .unwrap();
        assert_eq!(removed, vec!["203.0.113.7".to_string()]);
        let t = std::fs::read_to_string(&p).unwrap();
        assert_eq!(t, "# admin comment\nALL: 192.0.2.1\n# DenyHosts: Tue Jan  2 03:04:05 2024 | sshd: [2001:db8::5]\nsshd: [2001:db8::5]\n");
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts.deny");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let hd = HostsDeny {
                        path: p,
                        service: "sshd".into(),
                        stamped: false,
                    };
                    for j in 0..10 {
                        hd.add(&[format!("10.0.{i}.{j}")], "").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let hd = HostsDeny {
            path: p,
            service: "sshd".into(),
            stamped: false,
        };
        assert_eq!(hd.hosts().unwrap().len(), 80);
    }
}
