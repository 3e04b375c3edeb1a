//! Delivering one queued message (a job of the queue scheduler): every
//! pending recipient is expanded (virtual(5), aliases(5)) and handed to its
//! agent; each attempt is logged in Postfix's `to=<...>, relay=...,
//! delay=..., dsn=..., status=...` form; the message is then removed,
//! deferred with backoff, or bounced. The decisions (backoff, expiry, delay
//! warnings) are the scheduler's policy, the notifications the notify
//! crate's; everything from the daemon comes in through [`Env`].

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use yubin_addr::{Address, Delivery, Resolver};
use yubin_maillog::{clock, MailLog};
use yubin_notify::{Bounced, Notify, Submit};
use yubin_queue::schedule::{Destination, Finished, Job, Policy};
use yubin_queue::{QueueFile, QueuedRecipient, Spool, State, Status};

use crate::agent::{self, AsUser, Context};
use crate::{Failure, Message};

/// What a delivery run needs from the daemon: the queue, the log, the
/// resolver and settings in force, and the ways out (command/file helper,
/// the queue for notifications).
pub struct Env<'a> {
    pub spool: &'a Spool,
    pub log: &'a MailLog,
    pub resolver: &'a Resolver,
    pub policy: &'a Policy,
    pub agents: &'a agent::Settings,
    pub notify: &'a yubin_notify::Settings,
    /// myhostname, for the headers agents add.
    pub hostname: &'a str,
    pub as_user: Option<&'a dyn AsUser>,
    pub submit: &'a dyn Submit,
    /// The SMTP client for relay copies (None: they stay queued).
    pub relay: Option<&'a dyn agent::Relay>,
}

/// `delay=` numbers as Postfix prints them: 0, 0.04, 1.2, 12.
pub fn fmt_delay(secs: f64) -> String {
    if secs < 0.005 {
        "0".into()
    } else if secs < 10.0 {
        let s = format!("{secs:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{}", secs.round() as u64)
    }
}

struct Attempt<'a> {
    env: &'a Env<'a>,
    q: &'a QueueFile,
    picked: Instant,
    waited: f64,
    retry: bool,
    /// Picked by a flush: defer_transports deliver too.
    flush: bool,
}

/// Who logs a delivery and for which recipient (`to=`, `orig_to=`, `relay=`).
struct Route<'a> {
    daemon: &'a str,
    to: &'a str,
    orig: &'a str,
    relay: &'a str,
}

/// What the recipients' attempts left behind.
#[derive(Default)]
struct Tally {
    bounced: Vec<Bounced>,
    /// Final recipients already delivered in this run (one copy each).
    seen: HashSet<String>,
    /// Recipients finished in this run, and how.
    done_now: Vec<(usize, &'static str)>,
    /// Recipients deferred: index, enhanced code, reason.
    reasons: Vec<(usize, String, String)>,
    /// Destinations still pending.
    destinations: Vec<Destination>,
    /// Recipients expanded in this run, in order.
    expanded: Vec<usize>,
    /// Recipients with at least one copy deferred.
    deferred_rcpts: HashSet<usize>,
    /// Relay copies (smtp, lmtp) per destination, delivered in batches
    /// after the local ones: recipient index and the copy.
    relay: BTreeMap<Destination, Vec<(usize, Delivery)>>,
}

impl Tally {
    fn deferred(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Where a copy goes, for the scheduler: the relay next hop, or the
/// mailbox's recipient.
fn destination(d: &Delivery) -> Destination {
    let nexthop = d.target().unwrap_or_else(|| d.recipient.clone());
    Destination::new(d.transport(), &nexthop)
}

impl Attempt<'_> {
    fn log(&self, route: &Route<'_>, dsn: &str, status: &str, text: &str, started: Instant) {
        let Route {
            daemon,
            to,
            orig,
            relay,
        } = *route;
        let total = (clock::now_secs() - self.q.arrival).max(0) as f64;
        let d = started.elapsed().as_secs_f64();
        let b = started.duration_since(self.picked).as_secs_f64();
        let orig_to = if orig.eq_ignore_ascii_case(to) {
            String::new()
        } else {
            format!(", orig_to=<{orig}>")
        };
        self.env.log.log(
            daemon,
            &format!(
                "{}: to=<{to}>{orig_to}, relay={relay}, delay={}, delays={}/{}/0/{}, dsn={dsn}, status={status} ({text})",
                self.q.id,
                fmt_delay(total.max(self.waited + b + d)),
                fmt_delay(self.waited),
                fmt_delay(b),
                fmt_delay(d)
            ),
        );
    }

    /// defer_transports hold this transport until postqueue -f / sendmail -q.
    fn held(&self, transport: &str) -> Option<Failure> {
        (!self.flush && self.env.policy.defers(transport))
            .then(|| Failure::temp("4.3.2", "deferred transport"))
    }

    fn message<'m>(&'m self, d: &'m Delivery, orig: &'m str) -> Message<'m> {
        Message {
            queue_id: &self.q.id,
            sender: &self.q.sender,
            original_recipient: orig,
            recipient: &d.recipient,
            content: &self.q.message,
            hostname: self.env.hostname,
        }
    }

    fn context(&self) -> Context<'_> {
        Context {
            settings: self.env.agents,
            as_user: self.env.as_user,
            retry: self.retry,
            relay: self.env.relay,
        }
    }

    /// Runs one delivery through its agent; `Ok(description)` or the failure.
    fn run(&self, d: &Delivery, orig: &str) -> Result<String, Failure> {
        if let Some(f) = self.held(d.transport()) {
            return Err(f);
        }
        agent::deliver(d, &self.message(d, orig), &self.context())
    }

    /// The relay copies, per destination, in batches of at most its
    /// recipient limit (default_destination_recipient_limit,
    /// smtp_destination_recipient_limit).
    fn relay(&self, t: &mut Tally) {
        let policy = self.env.policy;
        for (dest, copies) in std::mem::take(&mut t.relay) {
            for batch in policy.batches(&dest.transport, copies) {
                let started = Instant::now();
                let results: Vec<agent::Relayed> = match self.held(&dest.transport) {
                    Some(f) => batch
                        .iter()
                        .map(|_| agent::Relayed {
                            result: Err(f.clone()),
                            relay: "none".into(),
                        })
                        .collect(),
                    None => {
                        let msgs: Vec<(&Delivery, Message<'_>)> = batch
                            .iter()
                            .map(|(idx, d)| (d, self.message(d, &self.q.recipients[*idx].address)))
                            .collect();
                        let q = self.q;
                        let envelope = agent::Envelope {
                            ret: q.ret.as_deref(),
                            envid: q.envid.as_deref(),
                            smtputf8: q.smtputf8,
                            dsn: batch
                                .iter()
                                .map(|(idx, _)| {
                                    let r = &q.recipients[*idx];
                                    (r.notify.as_deref(), r.orcpt.as_deref())
                                })
                                .collect(),
                        };
                        agent::relay(&msgs, &envelope, &self.context())
                    }
                };
                // A copy the agent gave no answer for stays queued, never lost.
                let results =
                    results
                        .into_iter()
                        .chain(std::iter::repeat_with(|| agent::Relayed {
                            result: Err(Failure::temp("4.3.0", "relay agent gave no result")),
                            relay: "none".into(),
                        }));
                for ((idx, d), r) in batch.iter().zip(results) {
                    self.record_via(*idx, d, r.result, Some(&r.relay), started, t);
                }
            }
        }
    }

    /// One queued recipient: expanded, each final copy delivered once.
    fn recipient(&self, idx: usize, r: &QueuedRecipient, t: &mut Tally) {
        // The queue file keeps the internal form ("quoted local@x", no
        // quotes): split it, never re-parse it, so an acknowledged recipient
        // cannot turn into a syntax bounce later (issue 16 item 8).
        let deliveries = self
            .env
            .resolver
            .expand_from(&Address::from_internal(&r.address), Some(&self.q.sender))
            .0;
        t.expanded.push(idx);
        for d in deliveries {
            let settings = self.env.agents;
            let orig = if settings.original_recipient {
                r.address.to_lowercase()
            } else {
                String::new()
            };
            let key = format!(
                "{}|{}|{}|{orig}",
                d.recipient.to_lowercase(),
                d.transport(),
                d.target().unwrap_or_default()
            );
            let limit = settings.duplicate_filter_limit;
            if (limit == 0 || t.seen.len() < limit) && !t.seen.insert(key) {
                continue; // a duplicate: one copy, as Postfix's cleanup
            }
            if agent::is_relay(&d.agent) {
                t.relay.entry(destination(&d)).or_default().push((idx, d));
            } else {
                let started = Instant::now();
                let result = self.run(&d, &r.address);
                self.record(idx, &d, result, started, t);
            }
        }
    }

    /// Logs one copy's outcome in Postfix's form and counts it.
    fn record(
        &self,
        idx: usize,
        d: &Delivery,
        result: Result<String, Failure>,
        started: Instant,
        t: &mut Tally,
    ) {
        self.record_via(idx, d, result, None, started, t)
    }

    /// As [`Attempt::record`], with the `relay=` a relay agent reported.
    fn record_via(
        &self,
        idx: usize,
        d: &Delivery,
        result: Result<String, Failure>,
        relay: Option<&str>,
        started: Instant,
        t: &mut Tally,
    ) {
        let r = &self.q.recipients[idx];
        let (daemon, default_relay) = agent::log_names(&d.agent);
        let relay = relay.unwrap_or(default_relay);
        let route = Route {
            daemon,
            to: &d.recipient,
            orig: &r.address,
            relay,
        };
        match result {
            Ok(text) => self.log(&route, "2.0.0", "sent", &text, started),
            Err(f) if f.temporary => {
                self.log(&route, &f.dsn, "deferred", &f.text, started);
                t.reasons.push((idx, f.dsn.clone(), f.text.clone()));
                t.destinations.push(destination(d));
                t.deferred_rcpts.insert(idx);
            }
            Err(f) => {
                self.log(&route, &f.dsn, "bounced", &f.text, started);
                t.bounced.push(
                    Bounced::new(r, &d.recipient, &f.dsn, &f.text).with_remote(f.remote.clone()),
                );
            }
        }
    }

    fn notify(&self) -> Notify<'_> {
        Notify {
            settings: self.env.notify,
            queue: self.env.submit,
            log: self.env.log,
        }
    }
}

/// Moves the message to `active/` and reads it. `Err` is what the run
/// ends with when that fails.
fn activate(env: &Env<'_>, id: &str) -> Result<(QueueFile, State), Finished> {
    let spool = env.spool;
    let from = match spool.find(id) {
        Some(s @ (State::Incoming | State::Deferred)) => s,
        _ => return Err(Finished::Done), // held, deleted, or active elsewhere
    };
    if spool.move_to(id, from, State::Active).is_err() {
        return Err(Finished::Done);
    }
    match spool.read(State::Active, id) {
        Ok(Ok(q)) => Ok((q, from)),
        Ok(Err(e)) => {
            let _ = spool.move_to(id, State::Active, State::Corrupt);
            env.log.log(
                "qmgr",
                &format!("warning: {id}: {e}; moved to corrupt queue"),
            );
            Err(Finished::Done)
        }
        Err(e) => {
            env.log
                .log("qmgr", &format!("warning: {id}: read queue file: {e}"));
            let _ = spool.move_to(id, State::Active, from);
            Err(Finished::Deferred {
                until: clock::now_secs() + 60,
                destinations: Vec::new(),
            })
        }
    }
}

/// Delivers every pending recipient of the job's message.
/// `picked` is when the scheduler handed the job out (the `delays=` b part).
pub fn deliver_message(env: &Env<'_>, job: &Job, picked: Instant) -> Finished {
    let id = job.id.as_str();
    let (q, from) = match activate(env, id) {
        Ok(found) => found,
        Err(finished) => return finished,
    };
    let status_path = env.spool.status_path(id);
    let st = Status::load(&status_path);
    if st.attempts == 0 && from == State::Incoming {
        env.log.log(
            "qmgr",
            &format!(
                "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
                q.sender,
                q.message.len(),
                q.recipients.len()
            ),
        );
    }
    let attempt = Attempt {
        env,
        q: &q,
        picked,
        waited: (clock::now_secs() - q.arrival).max(0) as f64,
        retry: job.retry || st.attempts > 0,
        flush: job.flush,
    };
    let mut tally = Tally::default();
    for (idx, r) in q.recipients.iter().enumerate() {
        if !st.done.contains_key(&idx) {
            attempt.recipient(idx, r, &mut tally);
        }
    }
    attempt.relay(&mut tally);
    for idx in std::mem::take(&mut tally.expanded) {
        if !tally.deferred_rcpts.contains(&idx) {
            tally.done_now.push((idx, "done"));
        }
    }
    let now = clock::now_secs();
    if !tally.bounced.is_empty() {
        attempt.notify().bounce(&q, &tally.bounced, now);
    }
    if !tally.deferred() {
        return remove(env, id);
    }
    record_progress(&status_path, &tally);
    let policy = env.policy;
    if policy.expired(q.arrival, now) {
        expire(&attempt, &status_path, now);
        return remove(env, id);
    }
    if policy.delay_warning_due(q.arrival, now, st.warned) {
        warn_delayed(&attempt, &tally, &status_path, now);
    }
    defer(env, id, st.attempts + 1, tally.destinations, now)
}

fn remove(env: &Env<'_>, id: &str) -> Finished {
    let _ = env.spool.remove(State::Active, id);
    env.log.log("qmgr", &format!("{id}: removed"));
    Finished::Done
}

/// Progress is written to the status file only when the message stays
/// queued: a message delivered in one go never creates one (after a crash,
/// Maildir delivery finds its own earlier files instead).
fn record_progress(status_path: &std::path::Path, t: &Tally) {
    for (idx, outcome) in &t.done_now {
        let _ = Status::record_done(status_path, *idx, outcome);
    }
    for (idx, _, why) in &t.reasons {
        let _ = Status::record_reason(status_path, *idx, why);
    }
}

/// maximal_queue_lifetime passed: every recipient not done is returned.
fn expire(a: &Attempt<'_>, status_path: &std::path::Path, now: i64) {
    let q = a.q;
    let st = Status::load(status_path);
    let expired: Vec<Bounced> = q
        .recipients
        .iter()
        .enumerate()
        .filter(|(i, _)| !st.done.contains_key(i))
        .map(|(i, r)| {
            let why = st
                .reasons
                .get(&i)
                .cloned()
                .unwrap_or_else(|| "delivery temporarily suspended".into());
            Bounced::new(r, &r.address, "4.4.7", &format!("message expired: {why}"))
        })
        .collect();
    a.env.log.log(
        "qmgr",
        &format!(
            "{}: from=<{}>, status=expired, returned to sender",
            q.id, q.sender
        ),
    );
    a.notify().bounce(q, &expired, now);
}

/// delay_warning_time passed: one warning for the recipients still waiting.
fn warn_delayed(a: &Attempt<'_>, t: &Tally, status_path: &std::path::Path, now: i64) {
    let delayed: Vec<Bounced> = t
        .reasons
        .iter()
        .map(|(idx, dsn, why)| {
            let r = &a.q.recipients[*idx];
            Bounced::new(r, &r.address, dsn, why)
        })
        .collect();
    if a.notify().delay(a.q, &delayed, now) {
        let _ = Status::record_warned(status_path);
    }
}

/// Back to `deferred/` until the backoff has passed.
fn defer(
    env: &Env<'_>,
    id: &str,
    attempts: u32,
    destinations: Vec<Destination>,
    now: i64,
) -> Finished {
    let until = now + env.policy.backoff(attempts) as i64;
    let _ = Status::record_attempt(&env.spool.status_path(id), attempts, until);
    if env
        .spool
        .move_to(id, State::Active, State::Deferred)
        .is_err()
    {
        return Finished::Done;
    }
    Finished::Deferred {
        until,
        destinations,
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_delay;

    #[test]
    fn delays_like_postfix() {
        assert_eq!(fmt_delay(0.0), "0");
        assert_eq!(fmt_delay(0.04), "0.04");
        assert_eq!(fmt_delay(1.2), "1.2");
        assert_eq!(fmt_delay(12.4), "12");
    }
}
