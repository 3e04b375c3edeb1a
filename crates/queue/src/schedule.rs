//! The queue manager's decisions as pure logic (qmgr(8)'s scheduler): which
//! message is due, how long a deferred one waits (exponential backoff
//! between minimal_backoff_time and maximal_backoff_time), when it expires
//! (maximal_queue_lifetime), the active set (no message is handed out twice),
//! how many deliveries run at once, per destination
//! (default_destination_concurrency_limit) and in all, how many recipients
//! one delivery carries (default_destination_recipient_limit,
//! `<transport>_destination_recipient_limit`), and the flush hooks
//! (postqueue -f, postqueue -s SITE, defer_transports).
//!
//! Time is a parameter: no clock, no socket, no runtime. The daemon feeds it
//! events and runs the jobs it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A delivery destination as qmgr(8) counts them: the transport and its
/// next hop (a domain or `[host]` for relaying, a recipient for mailboxes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub transport: String,
    pub nexthop: String,
}

impl Destination {
    pub fn new(transport: &str, nexthop: &str) -> Destination {
        Destination {
            transport: transport.to_string(),
            nexthop: nexthop.to_ascii_lowercase(),
        }
    }
}

/// The scheduling parameters, built once from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// minimal_backoff_time, seconds.
    pub minimal_backoff: u64,
    /// maximal_backoff_time, seconds.
    pub maximal_backoff: u64,
    /// maximal_queue_lifetime, seconds.
    pub maximal_queue_lifetime: u64,
    /// delay_warning_time, seconds; 0 = no delay warnings.
    pub delay_warning_time: u64,
    /// Deliveries running at once, all destinations together (the agents'
    /// process limit).
    pub workers: usize,
    /// default_destination_concurrency_limit.
    pub concurrency_limit: usize,
    /// `<transport>_destination_concurrency_limit` where set.
    pub transport_concurrency: BTreeMap<String, usize>,
    /// default_destination_recipient_limit.
    pub recipient_limit: usize,
    /// `<transport>_destination_recipient_limit` where set
    /// (smtp_destination_recipient_limit, ...).
    pub transport_recipients: BTreeMap<String, usize>,
    /// defer_transports: transports that deliver only on a flush.
    pub defer_transports: Vec<String>,
}

impl Default for Policy {
    /// Postfix's defaults.
    fn default() -> Policy {
        Policy {
            minimal_backoff: 300,
            maximal_backoff: 4000,
            maximal_queue_lifetime: 5 * 86400,
            delay_warning_time: 0,
            workers: 20,
            concurrency_limit: 20,
            transport_concurrency: BTreeMap::new(),
            recipient_limit: 50,
            transport_recipients: BTreeMap::new(),
            defer_transports: Vec::new(),
        }
    }
}

impl Policy {
    /// Seconds to wait after the `attempts`-th failed attempt: doubling from
    /// minimal_backoff_time, capped at maximal_backoff_time (qmgr(8)).
    pub fn backoff(&self, attempts: u32) -> u64 {
        self.minimal_backoff
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(20))
            .min(self.maximal_backoff.max(self.minimal_backoff))
    }

    /// A message that arrived at `arrival` and still cannot be delivered at
    /// `now` is returned to its sender (maximal_queue_lifetime).
    pub fn expired(&self, arrival: i64, now: i64) -> bool {
        (now - arrival).max(0) as u64 > self.maximal_queue_lifetime
    }

    /// A delay warning is due (delay_warning_time; one per message).
    pub fn delay_warning_due(&self, arrival: i64, now: i64, warned: bool) -> bool {
        self.delay_warning_time > 0
            && !warned
            && (now - arrival).max(0) as u64 >= self.delay_warning_time
    }

    pub fn concurrency_limit(&self, transport: &str) -> usize {
        self.transport_concurrency
            .get(transport)
            .copied()
            .unwrap_or(self.concurrency_limit)
            .max(1)
    }

    pub fn recipient_limit(&self, transport: &str) -> usize {
        self.transport_recipients
            .get(transport)
            .copied()
            .unwrap_or(self.recipient_limit)
            .max(1)
    }

    /// This transport delivers only when the queue is flushed.
    pub fn defers(&self, transport: &str) -> bool {
        self.defer_transports.iter().any(|t| t == transport)
    }

    /// Splits one destination's recipients into deliveries of at most its
    /// recipient limit, in order.
    pub fn batches<T>(&self, transport: &str, recipients: Vec<T>) -> Vec<Vec<T>> {
        let limit = self.recipient_limit(transport);
        let mut out: Vec<Vec<T>> = Vec::new();
        for r in recipients {
            match out.last_mut() {
                Some(b) if b.len() < limit => b.push(r),
                _ => out.push(vec![r]),
            }
        }
        out
    }
}

/// A message handed out for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    /// Tried before (or found at start): delivery checks for its own
    /// earlier writes.
    pub retry: bool,
    /// Picked by a flush: defer_transports do not hold it back.
    pub flush: bool,
}

/// How a message got into the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Just committed.
    New,
    /// Found in incoming/ or active/ (at start, or by a rescan).
    Recovered,
    /// Waiting in deferred/ until the given time.
    Deferred(i64),
}

/// How a delivery run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Removed from the queue (delivered, bounced, expired, or gone).
    Done,
    /// Still queued: try again at `until`; `destinations` are those still
    /// pending (for the concurrency limits, postqueue -s and defer_transports).
    Deferred {
        until: i64,
        destinations: Vec<Destination>,
    },
}

/// Waiting forever: only a flush picks the message (defer_transports).
const PARKED: i64 = i64::MAX;

#[derive(Debug, Clone)]
struct Waiting {
    at: i64,
    retry: bool,
    flush: bool,
    destinations: Vec<Destination>,
}

/// The queue manager's state: what waits (by due time), what runs.
#[derive(Debug, Default)]
pub struct Scheduler {
    policy: Policy,
    order: BTreeSet<(i64, String)>,
    waiting: HashMap<String, Waiting>,
    /// Active messages and the destinations they hold slots of.
    active: HashMap<String, Vec<Destination>>,
    per_destination: HashMap<Destination, usize>,
}

impl Scheduler {
    pub fn new(policy: Policy) -> Scheduler {
        Scheduler {
            policy,
            ..Scheduler::default()
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A reload: new limits apply to the next picks.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    pub fn is_active(&self, id: &str) -> bool {
        self.active.contains_key(id)
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Deliveries now running to `d`.
    pub fn running(&self, d: &Destination) -> usize {
        self.per_destination.get(d).copied().unwrap_or(0)
    }

    /// Adds a message. One that is being delivered is left alone (its run
    /// decides what happens next); one already waiting keeps the earlier
    /// due time.
    pub fn add(&mut self, id: &str, arrival: Arrival, now: i64) {
        if self.active.contains_key(id) {
            return;
        }
        let (at, retry) = match arrival {
            Arrival::New => (now, false),
            Arrival::Recovered => (now, true),
            Arrival::Deferred(at) => (at, true),
        };
        let w = match self.waiting.remove(id) {
            Some(mut w) => {
                self.order.remove(&(w.at, id.to_string()));
                w.at = w.at.min(at);
                w.retry |= retry;
                w
            }
            None => Waiting {
                at,
                retry,
                flush: false,
                destinations: Vec::new(),
            },
        };
        self.insert(id.to_string(), w);
    }

    fn insert(&mut self, id: String, w: Waiting) {
        self.order.insert((w.at, id.clone()));
        self.waiting.insert(id, w);
    }

    /// The messages to deliver now, marked active: due, within the global
    /// and per-destination limits. What cannot start now stays waiting and
    /// is tried again after the next [`Scheduler::finished`]. The scan stops
    /// as soon as the free worker slots are filled, so a long queue costs
    /// only what is started.
    pub fn take(&mut self, now: i64) -> Vec<Job> {
        let free = self.policy.workers.max(1).saturating_sub(self.active.len());
        if free == 0 {
            return Vec::new();
        }
        // Slots taken by this round's picks, on top of the running ones.
        let mut extra: HashMap<&Destination, usize> = HashMap::new();
        let mut picked: Vec<(i64, String)> = Vec::new();
        for (at, id) in self.order.range(..=(now, String::from("\u{10ffff}"))) {
            if picked.len() >= free {
                break;
            }
            let Some(w) = self.waiting.get(id) else {
                continue;
            };
            let fits = w.destinations.iter().all(|d| {
                self.running(d) + extra.get(d).copied().unwrap_or(0)
                    < self.policy.concurrency_limit(&d.transport)
            });
            if fits {
                for d in &w.destinations {
                    *extra.entry(d).or_default() += 1;
                }
                picked.push((*at, id.clone()));
            }
        }
        let mut jobs = Vec::with_capacity(picked.len());
        for key in picked {
            self.order.remove(&key);
            let Some(w) = self.waiting.remove(&key.1) else {
                continue;
            };
            for d in &w.destinations {
                *self.per_destination.entry(d.clone()).or_default() += 1;
            }
            self.active.insert(key.1.clone(), w.destinations);
            jobs.push(Job {
                id: key.1,
                retry: w.retry,
                flush: w.flush,
            });
        }
        jobs
    }

    /// A delivery run ended.
    pub fn finished(&mut self, id: &str, how: Finished) {
        let Some(held) = self.active.remove(id) else {
            return;
        };
        for d in held {
            if let Some(n) = self.per_destination.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    self.per_destination.remove(&d);
                }
            }
        }
        if let Finished::Deferred {
            until,
            mut destinations,
        } = how
        {
            destinations.sort();
            destinations.dedup();
            let parked = !destinations.is_empty()
                && destinations
                    .iter()
                    .all(|d| self.policy.defers(&d.transport));
            self.insert(
                id.to_string(),
                Waiting {
                    at: if parked { PARKED } else { until },
                    retry: true,
                    flush: false,
                    destinations,
                },
            );
        }
    }

    /// The earliest time after `now` at which something becomes due.
    pub fn next_wakeup(&self, now: i64) -> Option<i64> {
        self.order
            .range((now + 1, String::new())..)
            .map(|(t, _)| *t)
            .find(|t| *t != PARKED)
    }

    fn make_due(&mut self, now: i64, pick: impl Fn(&Waiting) -> bool) {
        let ids: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, w)| pick(w))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(mut w) = self.waiting.remove(&id) {
                self.order.remove(&(w.at, id.clone()));
                w.at = w.at.min(now);
                w.flush = true;
                self.insert(id, w);
            }
        }
    }

    /// postqueue -f: everything waiting is due now, defer_transports too.
    pub fn flush(&mut self, now: i64) {
        self.make_due(now, |_| true);
    }

    /// postqueue -s SITE: the messages waiting for that destination.
    pub fn flush_site(&mut self, site: &str, now: i64) {
        let site = site.trim_matches(['[', ']']).to_ascii_lowercase();
        self.make_due(now, |w| {
            w.destinations
                .iter()
                .any(|d| d.nexthop.trim_matches(['[', ']']) == site)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(site: &str) -> Destination {
        Destination::new("smtp", site)
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = Policy::default();
        assert_eq!(p.backoff(1), 300);
        assert_eq!(p.backoff(2), 600);
        assert_eq!(p.backoff(4), 2400);
        assert_eq!(p.backoff(5), 4000);
        assert_eq!(p.backoff(60), 4000);
        assert!(!p.expired(0, 5 * 86400));
        assert!(p.expired(0, 5 * 86400 + 1));
    }

    #[test]
    fn batches_follow_the_recipient_limit() {
        let mut p = Policy {
            recipient_limit: 2,
            ..Policy::default()
        };
        p.transport_recipients.insert("smtp".into(), 3);
        assert_eq!(p.batches("local", vec![1, 2, 3]), vec![vec![1, 2], vec![3]]);
        assert_eq!(
            p.batches("smtp", vec![1, 2, 3, 4]),
            vec![vec![1, 2, 3], vec![4]]
        );
    }

    #[test]
    fn due_times_active_set_and_destination_limits() {
        let mut s = Scheduler::new(Policy {
            concurrency_limit: 1,
            ..Policy::default()
        });
        s.add("A", Arrival::New, 100);
        s.add("B", Arrival::Deferred(200), 100);
        assert_eq!(s.take(100).len(), 1);
        assert!(s.take(100).is_empty(), "A is active, B is not due");
        s.add("A", Arrival::Recovered, 100);
        assert!(
            s.take(100).is_empty(),
            "an active message is not handed out twice"
        );
        s.finished(
            "A",
            Finished::Deferred {
                until: 400,
                destinations: vec![smtp("example.org")],
            },
        );
        assert_eq!(s.next_wakeup(100), Some(200));
        let jobs = s.take(200);
        assert_eq!(jobs[0].id, "B");
        assert!(jobs[0].retry);
        s.finished(
            "B",
            Finished::Deferred {
                until: 400,
                destinations: vec![smtp("example.org")],
            },
        );
        // One slot for example.org: A runs, B waits for it.
        assert_eq!(s.take(400).len(), 1);
        assert!(s.take(400).is_empty());
        let first = if s.is_active("A") { "A" } else { "B" };
        s.finished(first, Finished::Done);
        assert_eq!(s.take(400).len(), 1);
    }

    #[test]
    fn defer_transports_wait_for_a_flush_and_sites_flush_alone() {
        let mut s = Scheduler::new(Policy {
            defer_transports: vec!["smtp".into()],
            ..Policy::default()
        });
        for id in ["A", "B"] {
            s.add(id, Arrival::New, 0);
        }
        assert_eq!(s.take(0).len(), 2);
        s.finished(
            "A",
            Finished::Deferred {
                until: 300,
                destinations: vec![smtp("a.example")],
            },
        );
        s.finished(
            "B",
            Finished::Deferred {
                until: 300,
                destinations: vec![smtp("[b.example]")],
            },
        );
        assert!(s.take(1_000_000).is_empty(), "parked until a flush");
        assert_eq!(s.next_wakeup(0), None);
        s.flush_site("b.example", 10);
        let jobs = s.take(10);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].id, "B");
        assert!(jobs[0].flush);
        s.flush(20);
        assert_eq!(s.take(20)[0].id, "A");
    }
}
