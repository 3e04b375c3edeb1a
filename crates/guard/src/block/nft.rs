//! nftables backend: a table of family `inet` with two named sets that carry
//! per-element timeouts (`deny4`, `deny6`), and an input chain that rejects
//! TCP from them with a reset (so the client sees "connection refused" at
//! once) and drops everything else from them. Elements expire on their own
//! when `PURGE_DENY` is set; `unblock` deletes them.
//!
//! Commands go to `nft -f -` as a script; addresses are re-printed from a
//! parsed `IpAddr`, so no log text ever reaches nft.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// The nftables blocker.
pub struct Nft {
    pub command: String,
    pub table: String,
}

impl Nft {
    /// The idempotent script that creates the table, sets and chain.
    pub fn setup_script(&self) -> String {
        let t = &self.table;
        format!(
            "add table inet {t}\n\
             add set inet {t} deny4 {{ type ipv4_addr; flags timeout; }}\n\
             add set inet {t} deny6 {{ type ipv6_addr; flags timeout; }}\n\
             add chain inet {t} input {{ type filter hook input priority -10; policy accept; }}\n\
             flush chain inet {t} input\n\
             add rule inet {t} input ip saddr @deny4 meta l4proto tcp reject with tcp reset\n\
             add rule inet {t} input ip saddr @deny4 drop\n\
             add rule inet {t} input ip6 saddr @deny6 meta l4proto tcp reject with tcp reset\n\
             add rule inet {t} input ip6 saddr @deny6 drop\n"
        )
    }

    fn element(&self, verb: &str, ip: IpAddr, timeout: Option<u64>) -> String {
        let set = if ip.is_ipv4() { "deny4" } else { "deny6" };
        let to = match timeout {
            Some(s) if verb == "add" => format!(" timeout {}s", s.max(1)),
            _ => String::new(),
        };
        format!("{verb} element inet {} {set} {{ {ip}{to} }}\n", self.table)
    }

    /// Script adding `hosts` (address, seconds until expiry).
    pub fn add_script(&self, hosts: &[(IpAddr, Option<u64>)]) -> String {
        let mut s = self.setup_script();
        for (ip, t) in hosts {
            s.push_str(&self.element("add", *ip, *t));
        }
        s
    }

    fn run(&self, script: &str) -> anyhow::Result<()> {
        let mut child = Command::new(&self.command)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", self.command))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            anyhow::bail!(
                "{} -f - failed: {}",
                self.command,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Blocks the addresses.
    pub fn add(&self, hosts: &[(IpAddr, Option<u64>)]) -> anyhow::Result<()> {
        self.run(&self.add_script(hosts))
    }

    /// Unblocks one address (absent elements are not an error).
    pub fn remove(&self, ip: IpAddr) -> anyhow::Result<()> {
        self.run(&self.setup_script())?;
        // Adding first makes the delete succeed whether or not it was there.
        self.run(&format!(
            "{}{}",
            self.element("add", ip, None),
            self.element("delete", ip, None)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts() {
        let n = Nft {
            command: "nft".into(),
            table: "yubin_guard".into(),
        };
        let s = n.add_script(&[
            ("203.0.113.7".parse().unwrap(), Some(3600)),
            ("2001:db8::1".parse().unwrap(), None),
        ]);
        assert!(s.contains("add element inet yubin_guard deny4 { 203.0.113.7 timeout 3600s }\n"));
        assert!(s.contains("add element inet yubin_guard deny6 { 2001:db8::1 }\n"));
        assert!(s.starts_with("add table inet yubin_guard\n"));
    }
}
