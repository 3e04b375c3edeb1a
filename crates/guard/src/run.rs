//! One guard pass — read new lines, count, block, report, save — and the
//! commands built on it (purge, unblock, status).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::allowed::Allowed;
use crate::block::hosts_deny::HostsDeny;
use crate::block::nft::Nft;
use crate::config::{Blocker, Config, LogSource};
use crate::decide::{Candidate, Decider};
use crate::engine::{Hit, Short, Tracker};
use crate::follow::{read_whole, Follower};
use crate::parse::{parse_line, Parsed, Service, Stamp};
use crate::report;
use crate::state::{Block, DigestItem, State, StateLock};
use crate::timeutil::{asctime, line_time, now};

/// Per-run switches from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Explicit files (`--file`): read instead of SECURE_LOG.
    pub files: Vec<PathBuf>,
    /// Ignore saved offsets (`--ignore`, DenyHosts `-i`).
    pub ignore_offsets: bool,
    /// Decide but change nothing (`--dry-run`).
    pub dry_run: bool,
    /// No mail (`--noemail`).
    pub noemail: bool,
    /// Daemon: keep `journalctl -f` running instead of one read per pass.
    pub follow_journal: bool,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassResult {
    pub lines: u64,
    pub hits: u64,
    pub added: Vec<Candidate>,
    pub mail: Option<String>,
}

/// Long-lived pieces of a daemon (connection state, open files).
pub struct Runner {
    pub cfg: Config,
    pub allowed: Allowed,
    pub tracker: Tracker,
    followers: BTreeMap<PathBuf, Follower>,
    pub log: Box<dyn FnMut(&str)>,
    warned_journal: bool,
    journal: Option<crate::journal::JournalFollow>,
    /// SYNC_SERVER: opened at the first pass that needs it.
    sync: Option<crate::sync::Sync>,
}

fn userdef_hit(cfg: &Config, line: &[u8]) -> Option<Hit> {
    if cfg.userdef_failed_entry_regex.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(line);
    for re in &cfg.userdef_failed_entry_regex {
        if let Some(c) = re.captures(&text) {
            let host = c.name("host")?.as_str().trim();
            if !crate::parse::host::is_host(host.as_bytes()) {
                continue;
            }
            let has_invalid_group = re.capture_names().any(|n| n == Some("invalid"));
            return Some(Hit {
                service: Service::Sshd,
                host: Short::new(crate::engine::normalize_host(host.as_bytes())),
                user: c.name("user").map(|u| Short::new(u.as_str().as_bytes())),
                valid_user: has_invalid_group
                    && c.name("invalid").is_none()
                    && c.name("user").is_some(),
                attempts: 1,
                rule: "USERDEF_FAILED_ENTRY_REGEX",
                success: false,
            });
        }
    }
    None
}

impl Runner {
    pub fn new(cfg: Config) -> Runner {
        let allowed = Allowed::load(&cfg.allowed_hosts);
        let tracker = Tracker::new(cfg.sshd_mode);
        Runner {
            cfg,
            allowed,
            tracker,
            followers: BTreeMap::new(),
            log: Box::new(|m| eprintln!("yubin guard: {m}")),
            warned_journal: false,
            journal: None,
            sync: None,
        }
    }

    fn hosts_deny(&self) -> HostsDeny {
        HostsDeny {
            path: self.cfg.hosts_deny.clone(),
            service: self.cfg.block_service.clone(),
            stamped: self.cfg.purge_deny.is_some(),
        }
    }

    fn nft(&self) -> Nft {
        Nft {
            command: self.cfg.nft_command.clone(),
            table: self.cfg.nft_table.clone(),
        }
    }

    /// Reads all sources, feeding lines to `each`; offsets live in `state`.
    fn read_sources(
        &mut self,
        opts: &Options,
        state: &mut State,
        each: &mut dyn FnMut(&[u8]),
    ) -> anyhow::Result<()> {
        let sources: Vec<LogSource> = if opts.files.is_empty() {
            self.cfg.secure_log.clone()
        } else {
            opts.files.iter().cloned().map(LogSource::File).collect()
        };
        for mut src in sources {
            // Debian 12+ without rsyslog has no auth.log: read journald instead.
            if let LogSource::File(p) = &src {
                if opts.files.is_empty()
                    && !p.exists()
                    && !state.offsets.contains_key(&p.display().to_string())
                {
                    if !self.warned_journal {
                        (self.log)(&format!(
                            "{} does not exist; reading journald instead",
                            p.display()
                        ));
                        self.warned_journal = true;
                    }
                    src = LogSource::Journal;
                }
            }
            match src {
                LogSource::Journal => {
                    let cursor = if opts.ignore_offsets {
                        None
                    } else {
                        state.journal_cursor.clone()
                    };
                    if opts.follow_journal {
                        if self.journal.is_none() {
                            self.journal = Some(crate::journal::JournalFollow::start(
                                &self.cfg.journalctl,
                                cursor.as_deref(),
                            )?);
                        }
                        let j = self.journal.as_mut().expect("started above");
                        let (last, alive) = j.drain(each);
                        if last.is_some() {
                            state.journal_cursor = last;
                        }
                        if !alive {
                            (self.log)("journalctl -f ended; restarting it from the saved cursor");
                            self.journal = None;
                        }
                    } else {
                        state.journal_cursor = crate::journal::read_once(
                            &self.cfg.journalctl,
                            cursor.as_deref(),
                            each,
                        )?;
                    }
                }
                LogSource::File(p) if p.extension().is_some_and(|e| e == "gz") => {
                    read_whole(&p, each).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                }
                LogSource::File(p) => {
                    let key = p.display().to_string();
                    let mut saved = if opts.ignore_offsets {
                        None
                    } else {
                        state.offsets.get(&key).cloned()
                    };
                    let f = self
                        .followers
                        .entry(p.clone())
                        .or_insert_with(|| Follower::new(p.clone()));
                    if opts.ignore_offsets {
                        read_whole(&p, each)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    } else {
                        f.poll(&mut saved, each)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    }
                    if let Some(s) = saved {
                        state.offsets.insert(key, s);
                    }
                }
            }
        }
        Ok(())
    }

    /// One pass.
    pub fn pass(&mut self, opts: &Options) -> anyhow::Result<PassResult> {
        let _lock = if opts.dry_run {
            None
        } else {
            Some(StateLock::acquire(&self.cfg.work_dir)?)
        };
        let mut state = State::load(&self.cfg.work_dir)?;
        let t_now = now();
        let mut res = PassResult::default();
        let mut suspicious = Vec::new();
        {
            let cfg = self.cfg.clone();
            let allowed = self.allowed.clone();
            let decider = Decider::new(&cfg, &allowed);
            let mut tracker = std::mem::replace(&mut self.tracker, Tracker::new(cfg.sshd_mode));
            let mut counts = State::default();
            std::mem::swap(&mut counts.hosts, &mut state.hosts);
            let mut cache: (Vec<u8>, i64) = (Vec::new(), t_now);
            let (mut lines, mut hits) = (0u64, 0u64);
            let mut on_line = |line: &[u8]| {
                lines += 1;
                let mut apply = |hit: Hit, stamp: Stamp<'_>, counts: &mut State| {
                    let raw = match stamp {
                        Stamp::Bsd(s) | Stamp::Iso(s) => s,
                        Stamp::None => &b""[..],
                    };
                    if raw != &cache.0[..] {
                        cache.0.clear();
                        cache.0.extend_from_slice(raw);
                        cache.1 = line_time(stamp, t_now);
                    }
                    hits += u64::from(!hit.success);
                    if let Some(s) = decider.record(counts, &hit, cache.1) {
                        suspicious.push(s);
                    }
                };
                match parse_line(line) {
                    Some(p) => {
                        let p: Parsed<'_> = p;
                        tracker.feed(&p, &mut |h| apply(h, p.record.stamp, &mut counts));
                    }
                    None => {
                        if let Some(h) = userdef_hit(&cfg, line) {
                            let stamp =
                                crate::parse::syslog::split(line).map_or(Stamp::None, |r| r.stamp);
                            apply(h, stamp, &mut counts);
                        }
                    }
                }
            };
            let r = self.read_sources(opts, &mut state, &mut on_line);
            self.tracker = tracker;
            std::mem::swap(&mut counts.hosts, &mut state.hosts);
            r?;
            res.lines = lines;
            res.hits = hits;
        }
        let hd = self.hosts_deny();
        let denied = hd.hosts()?;
        let decider = Decider::new(&self.cfg, &self.allowed);
        let mut cands = decider.candidates(&state, &|h| {
            state.blocks.contains_key(h) || denied.contains(h)
        });
        if !opts.dry_run {
            for (host, n) in self.sync_exchange() {
                let known = state.blocks.contains_key(&host)
                    || denied.contains(&host)
                    || self.allowed.contains(&host)
                    || cands.iter().any(|c| c.host == host);
                if !known {
                    cands.push(Candidate {
                        host,
                        category: crate::state::Category::Invalid,
                        count: n,
                        threshold: 0,
                        synced: Some(n),
                    });
                }
            }
        }
        cands.sort_by(|a, b| a.host.cmp(&b.host));
        if opts.dry_run {
            res.added = cands;
            return Ok(res);
        }
        // A set: membership is asked once per candidate (a Vec made a pass
        // with thousands of new blocks quadratic, issue 16 item 5).
        let mut added_hosts: HashSet<String> = HashSet::new();
        if !cands.is_empty() {
            let hosts: Vec<String> = cands.iter().map(|c| c.host.clone()).collect();
            if self.cfg.blockers.contains(&Blocker::HostsDeny) {
                let stamp = asctime(t_now);
                match hd.add(&hosts, &stamp) {
                    Ok(a) => added_hosts = a.into_iter().collect(),
                    Err(e) => (self.log)(&format!(
                        "WARNING: could not add hosts to {}: {e}",
                        self.cfg.hosts_deny.display()
                    )),
                }
            }
            if self.cfg.blockers.contains(&Blocker::Nftables) {
                let timeout = self.cfg.purge_deny.map(|d| d.as_secs());
                let ips: Vec<(IpAddr, Option<u64>)> = hosts
                    .iter()
                    .filter_map(|h| h.parse::<IpAddr>().ok())
                    .map(|ip| (crate::allowed::normalize(ip), timeout))
                    .collect();
                if !ips.is_empty() {
                    match self.nft().add(&ips) {
                        Ok(()) => {
                            for (ip, _) in &ips {
                                added_hosts.insert(ip.to_string());
                            }
                        }
                        Err(e) => (self.log)(&format!("WARNING: nftables: {e}")),
                    }
                }
            }
        }
        let mut digest_new = Vec::new();
        for c in &cands {
            if !added_hosts.contains(&c.host) {
                continue;
            }
            let stats = state.hosts.get(&c.host).cloned().unwrap_or_default();
            let times = {
                let n = state.block_history.entry(c.host.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let permanent = self.cfg.purge_threshold > 0 && times >= self.cfg.purge_threshold;
            let until = match (self.cfg.purge_deny, permanent) {
                (Some(d), false) => Some(t_now + d.as_secs() as i64),
                _ => None,
            };
            let users: Vec<String> = {
                let mut u: Vec<(&String, &u32)> = stats.users.iter().collect();
                u.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                u.into_iter().map(|(n, _)| n.clone()).collect()
            };
            state.blocks.insert(
                c.host.clone(),
                Block {
                    since: t_now,
                    until,
                    reason: c.reason(),
                    count: stats.total(),
                    users: users.clone(),
                    first_seen: stats.first_seen,
                    last_seen: stats.last_seen,
                    times,
                },
            );
            (self.log)(&format!(
                "blocked {} ({}, {} failures)",
                c.host,
                c.reason(),
                stats.total()
            ));
            digest_new.push(DigestItem {
                host: c.host.clone(),
                count: stats.total(),
                users,
                first_seen: stats.first_seen,
                last_seen: stats.last_seen,
                reason: c.reason(),
            });
            res.added.push(c.clone());
        }
        // SYNC_UPLOAD: our own decisions only (not what we downloaded).
        if let Some(sync) = &mut self.sync {
            sync.report(
                res.added
                    .iter()
                    .filter(|c| c.synced.is_none())
                    .map(|c| c.host.clone()),
            );
            if !res.added.is_empty() {
                // Publish at once: the other guards should not wait for
                // SYNC_INTERVAL to learn of a new block.
                if let Err(e) = sync.exchange() {
                    (self.log)(&format!("WARNING: SYNC_SERVER: {e}"));
                }
            }
        }
        // DenyHosts' one-time warning: allowed hosts that sit in hosts.deny.
        let mut warned = Vec::new();
        for h in &denied {
            if self.allowed.contains(h) && !state.warned_allowed.contains(h) {
                state.warned_allowed.insert(h.clone());
                warned.push(h.clone());
            }
        }
        res.mail = self.report(&mut state, &warned, &digest_new, &suspicious, opts, t_now);
        state.save(&self.cfg.work_dir)?;
        Ok(res)
    }

    /// When SYNC_INTERVAL has passed: publish pending reports and fetch the
    /// hosts other guards blocked. A database that does not answer is
    /// logged and skipped (resiliency: local blocking goes on).
    fn sync_exchange(&mut self) -> Vec<(String, u32)> {
        let Some(settings) = self.cfg.sync.clone() else {
            return Vec::new();
        };
        if self.sync.is_none() {
            match crate::sync::Sync::open(settings) {
                Ok(s) => self.sync = Some(s),
                Err(e) => {
                    (self.log)(&format!("WARNING: {e}"));
                    return Vec::new();
                }
            }
        }
        let sync = self.sync.as_mut().expect("opened above");
        if !sync.due() {
            return Vec::new();
        }
        match sync.exchange() {
            Ok(v) => v,
            Err(e) => {
                (self.log)(&format!("WARNING: SYNC_SERVER: {e}"));
                Vec::new()
            }
        }
    }

    /// Sends (or queues into the digest) what this pass found.
    fn report(
        &mut self,
        state: &mut State,
        warned: &[String],
        new: &[DigestItem],
        suspicious: &[String],
        opts: &Options,
        t: i64,
    ) -> Option<String> {
        if self.cfg.recipients().is_empty() || opts.noemail {
            return None;
        }
        let msg = if self.cfg.report_interval.is_zero() {
            if new.is_empty() && suspicious.is_empty() && warned.is_empty() {
                return None;
            }
            let added: Vec<String> = new.iter().map(|i| i.host.clone()).collect();
            report::denyhosts_report(&self.cfg, warned, &added, suspicious, t).into_bytes()
        } else {
            state.digest.extend(new.iter().cloned());
            state.suspicious.extend(suspicious.iter().cloned());
            let due = t - state.last_report >= self.cfg.report_interval.as_secs() as i64;
            if (state.digest.is_empty() && state.suspicious.is_empty()) || !due {
                return None;
            }
            report::digest_mail(&self.cfg, &state.digest, &state.suspicious, t)
        };
        match report::send(&self.cfg, &msg) {
            Ok(reply) => {
                (self.log)(&format!(
                    "report mailed to {}: {reply}",
                    self.cfg.admin_email
                ));
                state.digest.clear();
                state.suspicious.clear();
                state.last_report = t;
                Some(reply)
            }
            Err(e) => {
                // DenyHosts prints the message when it cannot send it; the
                // digest keeps its items for the next try.
                (self.log)(&format!(
                    "cannot mail report via {}:{}: {e}",
                    self.cfg.smtp_host, self.cfg.smtp_port
                ));
                let _ = std::io::stdout().write_all(&msg);
                None
            }
        }
    }

    /// Lifts blocks older than PURGE_DENY (except permanent ones); returns them.
    pub fn purge(&mut self) -> anyhow::Result<Vec<String>> {
        let Some(age) = self.cfg.purge_deny else {
            anyhow::bail!(
                "{}: PURGE_DENY is not set; nothing can be purged",
                self.cfg.path.display()
            );
        };
        let _lock = StateLock::acquire(&self.cfg.work_dir)?;
        let mut state = State::load(&self.cfg.work_dir)?;
        let cutoff = now() - age.as_secs() as i64;
        let hd = self.hosts_deny();
        let mut old: BTreeSet<String> = hd
            .stamped_entries()
            .into_iter()
            .filter(|(_, t)| *t < cutoff)
            .map(|(h, _)| h)
            .collect();
        old.extend(
            state
                .blocks
                .iter()
                .filter(|(_, b)| b.since < cutoff)
                .map(|(h, _)| h.clone()),
        );
        let permanent = |h: &str| {
            self.cfg.purge_threshold > 0
                && state.block_history.get(h).copied().unwrap_or(0) >= self.cfg.purge_threshold
        };
        let hosts: Vec<String> = old.into_iter().filter(|h| !permanent(h)).collect();
        let purged = self.lift(&mut state, &hosts)?;
        state.save(&self.cfg.work_dir)?;
        Ok(purged)
    }

    /// Removes blocks and counters of `hosts` everywhere guard put them.
    fn lift(&mut self, state: &mut State, hosts: &[String]) -> anyhow::Result<Vec<String>> {
        let mut done = self.hosts_deny().remove(hosts)?;
        if self.cfg.blockers.contains(&Blocker::Nftables) {
            for h in hosts {
                if let Ok(ip) = h.parse::<IpAddr>() {
                    self.nft().remove(crate::allowed::normalize(ip))?;
                }
            }
        }
        for h in hosts {
            // Counters go too, or the next pass would block it again
            // (denyhosts#52: unblocking meant editing five files).
            let had = state.blocks.remove(h).is_some() | state.hosts.remove(h).is_some();
            if had && !done.contains(h) {
                done.push(h.clone());
            }
        }
        Ok(done)
    }

    /// `yubin guard unblock IP…`.
    pub fn unblock(&mut self, hosts: &[String]) -> anyhow::Result<Vec<String>> {
        let _lock = StateLock::acquire(&self.cfg.work_dir)?;
        let mut state = State::load(&self.cfg.work_dir)?;
        let hosts: Vec<String> = hosts
            .iter()
            .map(|h| {
                h.parse::<IpAddr>()
                    .map(|ip| crate::allowed::normalize(ip).to_string())
                    .unwrap_or_else(|_| h.clone())
            })
            .collect();
        let done = self.lift(&mut state, &hosts)?;
        state.save(&self.cfg.work_dir)?;
        Ok(done)
    }
}
