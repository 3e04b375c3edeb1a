//! Property tests of the queue scheduler: under random arrivals, failures,
//! deferrals, flushes and restarts, no message is lost, none is handed out
//! twice, and the concurrency limits hold.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use yubin_queue::schedule::{Arrival, Destination, Finished, Job, Policy, Scheduler};

#[derive(Debug, Clone)]
enum Op {
    Arrive,
    Tick(u16),
    Take,
    /// Finish the n-th running job: delivered, or deferred to some sites.
    Finish(usize, Option<Vec<u8>>),
    Flush,
    FlushSite(u8),
    /// The daemon stops (running deliveries die with it) and starts again.
    Restart,
    /// A rescan or flush lists the queue directories and adds what it
    /// finds, including messages already waiting or running.
    Rescan,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Arrive),
        2 => (0u16..2000).prop_map(Op::Tick),
        4 => Just(Op::Take),
        4 => (0usize..8, proptest::option::of(proptest::collection::vec(0u8..4, 0..3)))
            .prop_map(|(n, d)| Op::Finish(n, d)),
        1 => Just(Op::Flush),
        1 => (0u8..4).prop_map(Op::FlushSite),
        1 => Just(Op::Restart),
        1 => Just(Op::Rescan),
    ]
}

/// Site 3 goes through a transport in defer_transports.
fn dest(i: u8) -> Destination {
    if i == 3 {
        Destination::new("uucp", "site3")
    } else {
        Destination::new("smtp", &format!("site{i}"))
    }
}

fn policy() -> Policy {
    Policy {
        workers: 4,
        concurrency_limit: 2,
        minimal_backoff: 100,
        maximal_backoff: 800,
        defer_transports: vec!["uucp".into()],
        ..Policy::default()
    }
}

/// What the disk holds: each queued message, its due time and attempts.
#[derive(Debug, Clone)]
struct OnDisk {
    due: i64,
    attempts: u32,
}

struct World {
    s: Scheduler,
    now: i64,
    next_id: u32,
    disk: BTreeMap<String, OnDisk>,
    running: Vec<(Job, Vec<Destination>)>,
    /// Destinations each message was deferred to last (what the scheduler
    /// knows about it).
    dests: HashMap<String, Vec<Destination>>,
}

impl World {
    fn new() -> World {
        World {
            s: Scheduler::new(policy()),
            now: 1_000,
            next_id: 0,
            disk: BTreeMap::new(),
            running: Vec::new(),
            dests: HashMap::new(),
        }
    }

    fn take(&mut self) {
        for job in self.s.take(self.now) {
            assert!(self.disk.contains_key(&job.id), "{} is not queued", job.id);
            assert!(
                !self.running.iter().any(|(j, _)| j.id == job.id),
                "{} handed out twice",
                job.id
            );
            let d = self.dests.get(&job.id).cloned().unwrap_or_default();
            self.running.push((job, d));
        }
    }

    fn finish(&mut self, n: usize, how: Option<Vec<u8>>) {
        if self.running.is_empty() {
            return;
        }
        let (job, _) = self.running.remove(n % self.running.len());
        match how {
            None => {
                self.disk.remove(&job.id);
                self.dests.remove(&job.id);
                self.s.finished(&job.id, Finished::Done);
            }
            Some(sites) => {
                let m = self.disk.get_mut(&job.id).unwrap();
                m.attempts += 1;
                m.due = self.now + self.s.policy().backoff(m.attempts) as i64;
                let mut destinations: Vec<Destination> = sites.into_iter().map(dest).collect();
                destinations.sort();
                destinations.dedup();
                self.dests.insert(job.id.clone(), destinations.clone());
                self.s.finished(
                    &job.id,
                    Finished::Deferred {
                        until: m.due,
                        destinations,
                    },
                );
            }
        }
    }

    /// As the daemon's recover(): a new scheduler, every queued message
    /// re-added (those that were running as recovered, the rest deferred).
    fn restart(&mut self) {
        let running: Vec<String> = self.running.drain(..).map(|(j, _)| j.id).collect();
        self.s = Scheduler::new(policy());
        self.dests.clear();
        for (id, m) in &self.disk {
            let arrival = if running.contains(id) || m.attempts == 0 {
                Arrival::Recovered
            } else {
                Arrival::Deferred(m.due)
            };
            self.s.add(id, arrival, self.now);
        }
    }

    fn check(&self) {
        let p = policy();
        assert!(self.running.len() <= p.workers);
        assert_eq!(self.s.active_count(), self.running.len());
        let mut per: HashMap<&Destination, usize> = HashMap::new();
        for (_, ds) in &self.running {
            for d in ds {
                *per.entry(d).or_default() += 1;
            }
        }
        for (d, n) in per {
            assert!(n <= p.concurrency_limit, "{d:?} has {n} deliveries");
            assert_eq!(self.s.running(d), n);
        }
        // Nothing lost: every queued message is running or waiting.
        assert_eq!(
            self.s.active_count() + self.s.waiting_count(),
            self.disk.len(),
            "scheduler and disk disagree"
        );
        for (j, _) in &self.running {
            assert!(self.s.is_active(&j.id));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn nothing_lost_nothing_twice_limits_hold(ops in proptest::collection::vec(op(), 1..120)) {
        let mut w = World::new();
        for op in ops {
            match op {
                Op::Arrive => {
                    let id = format!("M{:05}", w.next_id);
                    w.next_id += 1;
                    w.disk.insert(id.clone(), OnDisk { due: w.now, attempts: 0 });
                    w.s.add(&id, Arrival::New, w.now);
                }
                Op::Tick(dt) => w.now += dt as i64,
                Op::Take => w.take(),
                Op::Finish(n, how) => w.finish(n, how),
                Op::Flush => w.s.flush(w.now),
                Op::FlushSite(i) => w.s.flush_site(&dest(i).nexthop, w.now),
                Op::Restart => w.restart(),
                Op::Rescan => {
                    let ids: Vec<String> = w.disk.keys().cloned().collect();
                    for id in ids {
                        w.s.add(&id, Arrival::Recovered, w.now);
                    }
                }
            }
            w.check();
        }
        // Drain: a flush, then every delivery succeeds; every queued message
        // must come out, within a bounded number of rounds.
        w.s.flush(w.now);
        for _ in 0..=w.disk.len() * 2 + 2 {
            w.take();
            w.check();
            while !w.running.is_empty() {
                w.finish(0, None);
            }
            w.check();
            if w.disk.is_empty() {
                break;
            }
        }
        prop_assert!(w.disk.is_empty(), "left behind: {:?}", w.disk.keys().collect::<Vec<_>>());
    }
}
