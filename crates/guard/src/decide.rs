//! Counting hits per host and deciding whom to block — DenyHosts'
//! `loginattempt.py` rules:
//!
//! * four counters per host (invalid, valid, root, restricted); before a hit
//!   is counted, each counter whose last increment is older than its
//!   `AGE_RESET_*` drops to 0;
//! * "valid" only for rules that can tell (`Failed … for <user>` without
//!   `invalid user`); root if the user is `root`, restricted if listed in
//!   `restricted-usernames` (which also adds to the restricted counter for
//!   invalid users); everything else counts as invalid;
//! * a success with `RESET_ON_SUCCESS` zeroes valid, invalid and root; a
//!   success from a host whose invalid count is over its threshold is a
//!   suspicious login;
//! * a host is a candidate when any counter is **strictly greater** than its
//!   threshold; allowed hosts and hosts already blocked are never candidates.

use std::time::Duration;

use crate::allowed::Allowed;
use crate::config::Config;
use crate::engine::Hit;
use crate::state::{Category, HostStats, State, MAX_USERS};

/// Counting rules, built once per run from the configuration.
pub struct Decider<'a> {
    pub cfg: &'a Config,
    pub allowed: &'a Allowed,
    pub restricted: Vec<String>,
}

/// A host that crossed a threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub host: String,
    pub category: Category,
    pub count: u32,
    pub threshold: u32,
    /// Taken from the shared table (SYNC_DOWNLOAD): how many other guards
    /// reported it. Such hosts are not reported back.
    pub synced: Option<u32>,
}

impl Candidate {
    pub fn reason(&self) -> String {
        if let Some(n) = self.synced {
            return format!("reported by {n} other guard(s) through SYNC_SERVER");
        }
        format!(
            "{} {} > {}",
            self.category.name(),
            self.count,
            self.threshold
        )
    }
}

impl<'a> Decider<'a> {
    pub fn new(cfg: &'a Config, allowed: &'a Allowed) -> Decider<'a> {
        Decider {
            cfg,
            allowed,
            restricted: cfg.restricted_usernames(),
        }
    }

    fn age_limit(&self, c: Category) -> Option<Duration> {
        match c {
            Category::Invalid => self.cfg.age_reset_invalid,
            Category::Valid => self.cfg.age_reset_valid,
            Category::Root => self.cfg.age_reset_root,
            Category::Restricted => self.cfg.age_reset_restricted,
        }
    }

    pub fn threshold(&self, c: Category) -> u32 {
        match c {
            Category::Invalid => self.cfg.deny_threshold_invalid,
            Category::Valid => self.cfg.deny_threshold_valid,
            Category::Root => self.cfg.deny_threshold_root,
            Category::Restricted => self.cfg.deny_threshold_restricted,
        }
    }

    /// The category a failure counts in (plus whether it also counts as
    /// restricted).
    pub fn category(&self, hit: &Hit) -> (Category, bool) {
        let user = hit.user.as_ref().map(|u| u.as_bytes()).unwrap_or(b"");
        let restricted = !user.is_empty() && self.restricted.iter().any(|r| r.as_bytes() == user);
        if !hit.valid_user {
            return (Category::Invalid, restricted);
        }
        if user == b"root" {
            (Category::Root, false)
        } else if restricted {
            (Category::Restricted, false)
        } else {
            (Category::Valid, false)
        }
    }

    /// Applies one hit at time `t`. Returns a suspicious-login line, if any.
    pub fn record(&self, state: &mut State, hit: &Hit, t: i64) -> Option<String> {
        let host_lossy;
        let host: &str = match std::str::from_utf8(hit.host.as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                host_lossy = hit.host.to_str_lossy();
                &host_lossy
            }
        };
        if hit.success {
            let stats = state.hosts.get_mut(host)?;
            self.age(stats, t);
            let user = hit.user.map(|u| u.to_str_lossy()).unwrap_or_default();
            let suspicious = stats.counter(Category::Invalid).count
                > self.cfg.deny_threshold_invalid
                && (self.cfg.suspicious_login_report_allowed_hosts || !self.allowed.contains(host));
            if self.cfg.reset_on_success {
                for c in [Category::Valid, Category::Invalid, Category::Root] {
                    stats.counter_mut(c).count = 0;
                }
            }
            return suspicious.then(|| format!("{user} - {host}"));
        }
        let (cat, also_restricted) = self.category(hit);
        // One hash lookup per failure (contains_key + insert + get_mut were
        // three; issue 16 item 5). The key is allocated only for a new host.
        let stats = match state.hosts.get_mut(host) {
            Some(s) => s,
            None => state.hosts.entry(host.to_string()).or_insert(HostStats {
                first_seen: t,
                ..HostStats::default()
            }),
        };
        self.age(stats, t);
        let n = hit.attempts.max(1);
        for c in std::iter::once(cat).chain(also_restricted.then_some(Category::Restricted)) {
            let k = stats.counter_mut(c);
            k.count = k.count.saturating_add(n);
            k.last = t;
        }
        if stats.first_seen == 0 || t < stats.first_seen {
            stats.first_seen = t;
        }
        stats.last_seen = stats.last_seen.max(t);
        if let Some(u) = hit.user {
            let u = String::from_utf8_lossy(u.as_bytes());
            if let Some(c) = stats.users.get_mut(u.as_ref()) {
                *c += n;
            } else if stats.users.len() < MAX_USERS {
                stats.users.insert(u.into_owned(), n);
            }
        }
        stats.services |= hit.service.bit();
        None
    }

    fn age(&self, stats: &mut HostStats, t: i64) {
        for c in Category::ALL {
            if let Some(limit) = self.age_limit(c) {
                let k = stats.counter_mut(c);
                if k.count > 0 && t - k.last > limit.as_secs() as i64 {
                    k.count = 0;
                }
            }
        }
    }

    /// Hosts over a threshold that are neither allowed nor already blocked.
    pub fn candidates(&self, state: &State, already: &dyn Fn(&str) -> bool) -> Vec<Candidate> {
        let mut out = Vec::new();
        for (host, stats) in &state.hosts {
            let over = Category::ALL.iter().find_map(|&c| {
                let k = stats.counter(c);
                let th = self.threshold(c);
                (k.count > th).then(|| Candidate {
                    synced: None,
                    host: host.clone(),
                    category: c,
                    count: k.count,
                    threshold: th,
                })
            });
            if let Some(c) = over {
                if !self.allowed.contains(host) && !already(host) {
                    out.push(c);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Short;
    use crate::parse::Service;
    use std::path::Path;

    fn hit(host: &str, user: &str, valid: bool) -> Hit {
        Hit {
            service: Service::Sshd,
            host: Short::new(host.as_bytes()),
            user: Some(Short::new(user.as_bytes())),
            valid_user: valid,
            attempts: 1,
            rule: "t",
            success: false,
        }
    }

    #[test]
    fn strictly_greater_than() {
        let cfg = Config::defaults(Path::new("x"));
        let allowed = Allowed::default();
        let d = Decider::new(&cfg, &allowed);
        let mut s = State::default();
        for i in 0..5 {
            d.record(&mut s, &hit("203.0.113.7", "admin", false), 1000 + i);
        }
        assert!(d.candidates(&s, &|_| false).is_empty(), "5 is not > 5");
        d.record(&mut s, &hit("203.0.113.7", "admin", false), 1006);
        assert_eq!(d.candidates(&s, &|_| false)[0].reason(), "invalid 6 > 5");
        // root: the 2nd failure.
        d.record(&mut s, &hit("198.51.100.1", "root", true), 1000);
        assert!(d.candidates(&s, &|h| h == "203.0.113.7").is_empty());
        d.record(&mut s, &hit("198.51.100.1", "root", true), 1001);
        assert_eq!(
            d.candidates(&s, &|h| h == "203.0.113.7")[0].host,
            "198.51.100.1"
        );
    }

    #[test]
    fn allowed_never_candidate_and_aging() {
        let cfg = Config::defaults(Path::new("x"));
        let allowed = Allowed::parse("a", "192.0.2.0/24\n", &|_| vec![]);
        let d = Decider::new(&cfg, &allowed);
        let mut s = State::default();
        for i in 0..20 {
            d.record(&mut s, &hit("192.0.2.5", "x", false), 1000 + i);
        }
        assert!(d.candidates(&s, &|_| false).is_empty());
        // invalid ages out after 10 days
        for i in 0..5 {
            d.record(&mut s, &hit("203.0.113.9", "x", false), 1000 + i);
        }
        d.record(&mut s, &hit("203.0.113.9", "x", false), 1000 + 11 * 86_400);
        assert_eq!(s.hosts["203.0.113.9"].counter(Category::Invalid).count, 1);
    }

    #[test]
    fn success_resets_and_suspicious_logins() {
        let mut cfg = Config::defaults(Path::new("x"));
        cfg.reset_on_success = true;
        let allowed = Allowed::parse("a", "203.0.113.0/24\n", &|_| vec![]);
        let d = Decider::new(&cfg, &allowed);
        let mut s = State::default();
        for i in 0..7 {
            d.record(&mut s, &hit("203.0.113.1", "x", false), 1000 + i);
        }
        let mut ok = hit("203.0.113.1", "alice", true);
        ok.success = true;
        // Allowed, but SUSPICIOUS_LOGIN_REPORT_ALLOWED_HOSTS defaults to yes.
        assert_eq!(
            d.record(&mut s, &ok, 1010).as_deref(),
            Some("alice - 203.0.113.1")
        );
        assert_eq!(
            s.hosts["203.0.113.1"].counter(Category::Invalid).count,
            0,
            "RESET_ON_SUCCESS"
        );
        cfg.suspicious_login_report_allowed_hosts = false;
        cfg.reset_on_success = false;
        let d = Decider::new(&cfg, &allowed);
        for i in 0..7 {
            d.record(&mut s, &hit("203.0.113.1", "x", false), 1020 + i);
        }
        assert_eq!(d.record(&mut s, &ok, 1030), None);
    }

    #[test]
    fn restricted_users_count_twice() {
        let d0 = tempfile::tempdir().unwrap();
        std::fs::write(
            d0.path().join("restricted-usernames"),
            "# no guessing\noracle\n",
        )
        .unwrap();
        let mut cfg = Config::defaults(Path::new("x"));
        cfg.work_dir = d0.path().to_path_buf();
        cfg.etc_dir = d0.path().join("none");
        let allowed = Allowed::default();
        let d = Decider::new(&cfg, &allowed);
        let mut s = State::default();
        d.record(&mut s, &hit("198.51.100.5", "oracle", false), 1);
        d.record(&mut s, &hit("198.51.100.5", "oracle", false), 2);
        let st = &s.hosts["198.51.100.5"];
        assert_eq!(
            (
                st.counter(Category::Invalid).count,
                st.counter(Category::Restricted).count
            ),
            (2, 2)
        );
        assert_eq!(d.candidates(&s, &|_| false)[0].reason(), "restricted 2 > 1");
    }
}
