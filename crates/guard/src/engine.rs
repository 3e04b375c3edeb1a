//! Per-connection state over classified lines: turns the event stream into
//! counted failures ("hits").
//!
//! Modern OpenSSH writes several failure messages without an address
//! (`Disconnecting: Too many authentication failures`,
//! `kex_exchange_identification: …`, `User root not allowed because account
//! is locked`). Like fail2ban's multi-line failure id (`F-MLFID`), the address
//! comes from another line of the same connection, keyed by the process id;
//! helper lines (`Connection from`, `pam_unix … authentication failure`,
//! a valid user's failed public key) teach it without counting. The map is
//! bounded, so half-open connections cannot grow memory without limit.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::parse::{Kind, Parsed, Service};

/// fail2ban's `mode` parameter of the sshd filter; yubin's `SSHD_MODE` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Count scanners and floods (`Did not receive identification string`,
    /// kex and banner failures, `Connection closed … [preauth]`).
    pub ddos: bool,
    /// Count negotiation failures (`Unable to negotiate`, reason-14
    /// disconnects, `Disconnected from authenticating user … [preauth]`).
    pub extra: bool,
}

impl Mode {
    pub const NORMAL: Mode = Mode {
        ddos: false,
        extra: false,
    };
    pub const AGGRESSIVE: Mode = Mode {
        ddos: true,
        extra: true,
    };

    /// `normal`, `ddos`, `extra` or `aggressive`.
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Mode::NORMAL,
            "ddos" => Mode {
                ddos: true,
                extra: false,
            },
            "extra" => Mode {
                ddos: false,
                extra: true,
            },
            "aggressive" => Mode::AGGRESSIVE,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match (self.ddos, self.extra) {
            (false, false) => "normal",
            (true, false) => "ddos",
            (false, true) => "extra",
            (true, true) => "aggressive",
        }
    }
}

/// A short byte string stored inline (addresses, user names): no allocation
/// per line. Longer input is cut (OpenSSH itself cuts user names at 100).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Short {
    len: u8,
    buf: [u8; 100],
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, as tcp_wrappers and
/// dual-stack sshd print it) is the IPv4 host.
pub fn normalize_host(h: &[u8]) -> &[u8] {
    match h
        .strip_prefix(b"::ffff:")
        .or_else(|| h.strip_prefix(b"::FFFF:"))
    {
        Some(v4)
            if std::str::from_utf8(v4).is_ok_and(|s| s.parse::<std::net::Ipv4Addr>().is_ok()) =>
        {
            v4
        }
        _ => h,
    }
}

impl Short {
    pub fn new(s: &[u8]) -> Short {
        let n = s.len().min(100);
        let mut buf = [0u8; 100];
        buf[..n].copy_from_slice(&s[..n]);
        Short { len: n as u8, buf }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
    pub fn to_str_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl std::fmt::Debug for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}

/// One counted failure (or a success, for `RESET_ON_SUCCESS` and suspicious
/// logins).
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub service: Service,
    pub host: Short,
    pub user: Option<Short>,
    /// DenyHosts' "valid user" category (see `Event::valid_user`).
    pub valid_user: bool,
    /// Failures this hit stands for.
    pub attempts: u32,
    pub rule: &'static str,
    /// An `Accepted …` line that was not itself a failure.
    pub success: bool,
}

/// A small multiplicative hasher for the connection map, keyed by process
/// ids (chosen by the kernel, not by clients).
#[derive(Default)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

fn hash_user(u: &[u8]) -> u64 {
    let mut h = Fx(0xcbf2_9ce4_8422_2325);
    h.write(u);
    h.finish() | 1
}

struct Conn {
    host: Option<Short>,
    pending: u32,
    pending_rule: &'static str,
    pending_user: Option<Short>,
    pending_valid: bool,
    users: [u64; 4],
    seq: u64,
}

impl Conn {
    fn new(seq: u64) -> Conn {
        Conn {
            host: None,
            pending: 0,
            pending_rule: "",
            pending_user: None,
            pending_valid: false,
            users: [0; 4],
            seq,
        }
    }
    /// Records a user; true if it is a second, different user.
    fn add_user(&mut self, u: &[u8]) -> bool {
        if u.is_empty() {
            return false;
        }
        let h = hash_user(u);
        if self.users.contains(&h) {
            return false;
        }
        let known = self.users.iter().filter(|&&x| x != 0).count();
        if let Some(slot) = self.users.iter_mut().find(|x| **x == 0) {
            *slot = h;
        }
        known > 0
    }
}

/// Most connections tracked at once; beyond it the oldest half is dropped.
pub const MAX_CONNECTIONS: usize = 65_536;

/// The stateful matcher.
pub struct Tracker {
    mode: Mode,
    conns: HashMap<u32, Conn, BuildHasherDefault<Fx>>,
    seq: u64,
}

impl Tracker {
    pub fn new(mode: Mode) -> Tracker {
        Tracker {
            mode,
            conns: HashMap::default(),
            seq: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Connections currently tracked.
    pub fn tracked(&self) -> usize {
        self.conns.len()
    }

    /// Feeds one parsed line; calls `out` for each hit it produces.
    pub fn feed(&mut self, p: &Parsed<'_>, out: &mut impl FnMut(Hit)) {
        let ev = &p.event;
        if p.service != Service::Sshd {
            if let Some(h) = ev.host {
                out(Hit {
                    service: p.service,
                    host: Short::new(normalize_host(h)),
                    user: ev.user.map(Short::new),
                    valid_user: false,
                    attempts: ev.attempts,
                    rule: ev.rule,
                    success: false,
                });
            }
            return;
        }
        let m = self.mode;
        let is_fail = match ev.kind {
            Kind::Fail => true,
            Kind::Ddos => m.ddos,
            Kind::Extra => m.extra,
            Kind::Close { extra_fail } => ev.preauth && (m.ddos || (extra_fail && m.extra)),
            Kind::Helper | Kind::Success => false,
        };
        if !is_fail && matches!(ev.kind, Kind::Ddos | Kind::Extra) {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        let pid = p.record.pid;
        let hit =
            |host: Short, user: Option<Short>, valid: bool, attempts: u32, rule: &'static str| {
                Hit {
                    service: Service::Sshd,
                    host,
                    user,
                    valid_user: valid,
                    attempts,
                    rule,
                    success: false,
                }
            };
        let user = ev.user.filter(|u| !u.is_empty());
        match ev.host {
            Some(h) => {
                let mut host = Short::new(normalize_host(h));
                if ev.weak_host {
                    if let Some(known) = self.conns.get(&pid).and_then(|c| c.host) {
                        host = known;
                    }
                }
                // Lines that end a connection need no new state.
                let needs_state = !ev.forget || self.conns.contains_key(&pid);
                let mut several_users = false;
                let mut pending = None;
                if needs_state {
                    let c = self.conns.entry(pid).or_insert_with(|| Conn::new(seq));
                    c.seq = seq;
                    if c.pending > 0 {
                        pending =
                            Some((c.pending, c.pending_rule, c.pending_user, c.pending_valid));
                        c.pending = 0;
                    }
                    if let Some(u) = user {
                        let grew = c.add_user(u);
                        several_users = grew && matches!(ev.kind, Kind::Helper | Kind::Success);
                    }
                    c.host = Some(host);
                }
                if is_fail {
                    let extra = pending.map_or(0, |p| p.0);
                    out(hit(
                        host,
                        user.map(Short::new),
                        ev.valid_user,
                        ev.attempts + extra,
                        ev.rule,
                    ));
                } else if let Some((n, rule, pu, pv)) = pending {
                    out(hit(host, pu, pv, n, rule));
                } else if several_users {
                    out(hit(
                        host,
                        user.map(Short::new),
                        ev.valid_user,
                        1,
                        "several users in one connection",
                    ));
                } else if ev.kind == Kind::Success {
                    let mut s = hit(host, user.map(Short::new), true, 0, ev.rule);
                    s.success = true;
                    out(s);
                }
                if ev.forget {
                    self.conns.remove(&pid);
                }
            }
            None => {
                if !is_fail {
                    return;
                }
                let c = self.conns.entry(pid).or_insert_with(|| Conn::new(seq));
                c.seq = seq;
                if let Some(host) = c.host {
                    out(hit(
                        host,
                        user.map(Short::new),
                        ev.valid_user,
                        ev.attempts,
                        ev.rule,
                    ));
                    if ev.forget {
                        self.conns.remove(&pid);
                    }
                } else {
                    c.pending += ev.attempts;
                    c.pending_rule = ev.rule;
                    c.pending_user = user.map(Short::new);
                    c.pending_valid = ev.valid_user;
                }
            }
        }
        if self.conns.len() > MAX_CONNECTIONS {
            let keep_after = self.seq.saturating_sub((MAX_CONNECTIONS / 2) as u64);
            self.conns.retain(|_, c| c.seq > keep_after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_line;

    fn run(mode: Mode, lines: &[&str]) -> Vec<Vec<String>> {
        let mut t = Tracker::new(mode);
        lines
            .iter()
            .map(|l| {
                let mut v = Vec::new();
                if let Some(p) = parse_line(l.as_bytes()) {
                    t.feed(&p, &mut |h| {
                        if !h.success {
                            v.push(h.host.to_str_lossy())
                        }
                    });
                }
                v
            })
            .collect()
    }

    #[test]
    fn hostless_failure_resolved_by_later_close() {
        let r = run(
            Mode::NORMAL,
            &[
                "Nov 23 21:50:19 sshd[8148]: Disconnecting: Too many authentication failures for root [preauth]",
                "Nov 23 21:50:37 sshd[8148]: Connection closed by 61.0.0.1 [preauth]",
            ],
        );
        assert_eq!(r, vec![vec![], vec!["61.0.0.1".to_string()]]);
    }

    #[test]
    fn different_pid_does_not_resolve() {
        let r = run(
            Mode::NORMAL,
            &[
                "Nov 23 21:50:19 sshd[9148]: Disconnecting: Too many authentication failures for root [preauth]",
                "Nov 23 21:50:37 sshd[7148]: Connection closed by 61.0.0.1",
            ],
        );
        assert_eq!(r, vec![Vec::<String>::new(), vec![]]);
    }

    #[test]
    fn pam_helpers_then_success_of_same_user() {
        let r = run(
            Mode::NORMAL,
            &[
                "Mar  7 18:53:20 bar sshd[1556]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.113  user=rda",
                "Mar  7 18:53:20 bar sshd[1556]: Accepted password for rda from 192.0.2.113 port 52100 ssh2",
            ],
        );
        assert!(r.iter().all(|v| v.is_empty()));
    }

    #[test]
    fn change_of_username_prefers_the_connection_address() {
        let u = "a 10.0.0.1 port 1: Change of username or service not allowed: (a,";
        let r = run(
            Mode::NORMAL,
            &[
                &format!("Jan  1 00:00:00 h sshd[7]: Invalid user {u} from 203.0.113.5 port 2"),
                &format!("Jan  1 00:00:01 h sshd[7]: Disconnecting invalid user {u} 203.0.113.5 port 2: Change of username or service not allowed: ({u},ssh-connection) -> (v,ssh-connection) [preauth]"),
            ],
        );
        assert_eq!(
            r,
            vec![
                vec!["203.0.113.5".to_string()],
                vec!["203.0.113.5".to_string()]
            ]
        );
    }

    #[test]
    fn fuzz_regressions_hosts_stay_hosts() {
        // Found by fuzz/guard_line: a 100+ byte token cut to non-host bytes,
        // and "::ffff:" followed by something that is not IPv4.
        let long = format!(
            "Jan  1 00:00:00 h sshd[1]: Invalid user x from {}z",
            "%".repeat(120)
        );
        let dot = "Jan  1 00:00:00 h sshd[1]: Invalid user x from ::ffff:.";
        let r = run(Mode::AGGRESSIVE, &[&long, dot]);
        assert_eq!(r[0], Vec::<String>::new());
        assert_eq!(r[1], vec!["::ffff:.".to_string()]);
    }

    #[test]
    fn bounded() {
        let mut t = Tracker::new(Mode::AGGRESSIVE);
        for pid in 0..(MAX_CONNECTIONS as u32 * 2) {
            let l = format!("Jan  1 00:00:00 h sshd[{pid}]: error: kex_exchange_identification: Connection closed by remote host");
            t.feed(&parse_line(l.as_bytes()).unwrap(), &mut |_| {});
        }
        assert!(t.tracked() <= MAX_CONNECTIONS + 1);
    }
}
