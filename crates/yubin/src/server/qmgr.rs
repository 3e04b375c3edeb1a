//! The queue manager's driver: feeds the scheduler (yubin_queue::schedule)
//! with arrivals, finished runs, flushes and the clock, and runs the jobs it
//! hands out on the blocking pool. At start, everything that was in flight
//! is recovered. The decisions themselves are the scheduler's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use yubin_maillog::clock;
use yubin_queue::schedule::{Arrival, Finished, Scheduler};
use yubin_queue::{QueueFile, State, Status};

use yubin_deliver::queued::{deliver_message, Env};

use super::runtime::{QmgrMsg, Shared};

pub async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<QmgrMsg>) {
    let mut rt = shared.current();
    let mut sched = Scheduler::new(rt.queue.schedule.clone());
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Finished)>();
    let mut stopping = false;
    let mut rescan = tokio::time::interval(Duration::from_secs(60));
    rescan.tick().await;
    loop {
        if stopping && sched.active_count() == 0 {
            return;
        }
        let now = clock::now_secs();
        let sleep = match sched.next_wakeup(now) {
            Some(t) => Duration::from_secs(t.saturating_sub(now).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            msg = rx.recv() => {
                let now = clock::now_secs();
                match msg {
                    Some(QmgrMsg::New(id)) => sched.add(&id, Arrival::New, now),
                    Some(QmgrMsg::Recover(id)) => sched.add(&id, Arrival::Recovered, now),
                    Some(QmgrMsg::Schedule(id, at)) => sched.add(&id, Arrival::Deferred(at), now),
                    Some(QmgrMsg::Flush) => {
                        // Also what commands put into deferred/ meanwhile.
                        if let Ok(ids) = shared.spool.list(State::Deferred) {
                            for id in ids {
                                sched.add(&id, Arrival::Recovered, now);
                            }
                        }
                        sched.flush(now);
                    }
                    Some(QmgrMsg::FlushSite(site)) => sched.flush_site(&site, now),
                    Some(QmgrMsg::Stop) | None => stopping = true,
                }
            }
            Some((id, finished)) = done_rx.recv() => sched.finished(&id, finished),
            _ = tokio::time::sleep(sleep) => {}
            _ = rescan.tick() => {
                // Pick up what commands changed on disk (postsuper -H, -r).
                if let Ok(ids) = shared.spool.list(State::Incoming) {
                    let now = clock::now_secs();
                    for id in ids {
                        sched.add(&id, Arrival::Recovered, now);
                    }
                }
            }
        }
        if stopping {
            continue;
        }
        // A reload's limits apply from the next pick on.
        let current = shared.current();
        if !Arc::ptr_eq(&rt, &current) {
            sched.set_policy(current.queue.schedule.clone());
            rt = current;
        }
        for job in sched.take(clock::now_secs()) {
            let shared = shared.clone();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                let picked = Instant::now();
                let sh = shared.clone();
                let id = job.id.clone();
                let finished = tokio::task::spawn_blocking(move || run_job(&sh, &job, picked))
                    .await
                    .unwrap_or(Finished::Deferred {
                        until: clock::now_secs() + 300,
                        destinations: Vec::new(),
                    });
                let _ = done_tx.send((id, finished));
            });
        }
    }
}

/// One delivery run with the settings in force now.
fn run_job(shared: &Shared, job: &yubin_queue::schedule::Job, picked: Instant) -> Finished {
    let rt = shared.current();
    // Runs on a blocking worker of the server's runtime: the SMTP client
    // is awaited there with block_on.
    let relay = tokio::runtime::Handle::try_current()
        .ok()
        .map(|handle| super::relay::SmtpRelay {
            outbound: rt.outbound.clone(),
            handle,
            log: &shared.log,
            queue_directory: rt.cfg.get("queue_directory").into(),
        });
    let env = Env {
        spool: &shared.spool,
        log: &shared.log,
        resolver: &rt.resolver,
        policy: &rt.queue.schedule,
        agents: &rt.queue.deliver,
        notify: &rt.queue.notify,
        hostname: &rt.queue.hostname,
        as_user: shared
            .privsep
            .as_ref()
            .map(|p| p as &dyn yubin_deliver::agent::AsUser),
        submit: shared,
        relay: relay
            .as_ref()
            .map(|r| r as &dyn yubin_deliver::agent::Relay),
    };
    deliver_message(&env, job, picked)
}

/// At start: what was being delivered goes back to incoming (as Postfix's
/// qmgr does), then every incoming message is delivered with the
/// duplicate check on, and every deferred one is scheduled.
pub fn recover(shared: &Shared) -> anyhow::Result<()> {
    let spool = &shared.spool;
    for id in spool.list(State::Active)? {
        spool.move_to(&id, State::Active, State::Incoming)?;
    }
    for id in spool.list(State::Incoming)? {
        let _ = shared.qmgr.send(QmgrMsg::Recover(id));
    }
    let now = clock::now_secs();
    for id in spool.list(State::Deferred)? {
        let st: Status = spool.status(&id);
        let _ = shared
            .qmgr
            .send(QmgrMsg::Schedule(id, st.next_attempt.min(now + 3600)));
    }
    Ok(())
}

impl Shared {
    /// The notify crate's view of the daemon: settings in force, the queue
    /// (through [`yubin_notify::Submit`] below) and the log.
    pub fn notify<'a>(&'a self, rt: &'a super::runtime::Runtime) -> yubin_notify::Notify<'a> {
        yubin_notify::Notify {
            settings: &rt.queue.notify,
            queue: self,
            log: &self.log,
        }
    }
}

/// Mail the server writes itself (bounces, notices) enters the queue here:
/// the same group commit as everything else, then the queue manager hears
/// of it.
impl yubin_notify::Submit for Shared {
    fn submit(&self, file: QueueFile) -> Result<String, String> {
        let id = file.id.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.committer.commit(id.clone(), file.encode(), move |r| {
            let _ = tx.send(r);
        });
        match rx.recv() {
            Ok(Ok(())) => {
                let _ = self.qmgr.send(QmgrMsg::New(id.clone()));
                Ok(id)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("queue committer stopped".into()),
        }
    }
}
