//! The queue manager: picks up committed messages, runs the delivery agents
//! on a bounded pool, retries deferred messages with exponential backoff
//! (minimal_backoff_time .. maximal_backoff_time), expires them after
//! maximal_queue_lifetime, and recovers everything that was in flight when
//! the server stopped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Semaphore;
use yubin_maillog::clock;
use yubin_queue::{State, Status};

use super::deliver_one::{deliver_message, Outcome};
use super::runtime::{QmgrMsg, Shared};

/// Concurrent deliveries (Postfix's default_destination_concurrency_limit is
/// 20 per destination; local mailboxes are one destination).
const WORKERS: usize = 20;

pub async fn run(shared: Arc<Shared>, mut rx: UnboundedReceiver<QmgrMsg>) {
    let workers = Arc::new(Semaphore::new(WORKERS));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Outcome)>();
    let mut timers: BinaryHeap<Reverse<(i64, String)>> = BinaryHeap::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut stopping = false;
    let mut rescan = tokio::time::interval(Duration::from_secs(60));
    rescan.tick().await;
    loop {
        if stopping && in_flight.is_empty() {
            return;
        }
        let next_due = timers.peek().map(|Reverse((t, _))| *t);
        let sleep = match next_due {
            Some(t) => Duration::from_secs(t.saturating_sub(clock::now_secs()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        let mut start: Vec<(String, bool)> = Vec::new();
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(QmgrMsg::New(id)) => start.push((id, false)),
                Some(QmgrMsg::Recover(id)) => start.push((id, true)),
                Some(QmgrMsg::Schedule(id, at)) => timers.push(Reverse((at, id))),
                Some(QmgrMsg::Flush) => {
                    let all: Vec<_> = timers.drain().map(|Reverse((_, id))| id).collect();
                    start.extend(all.into_iter().map(|id| (id, true)));
                    if let Ok(ids) = shared.spool.list(State::Deferred) {
                        start.extend(ids.into_iter().map(|id| (id, true)));
                    }
                }
                Some(QmgrMsg::Stop) | None => stopping = true,
            },
            Some((id, outcome)) = done_rx.recv() => {
                in_flight.remove(&id);
                if let Outcome::Deferred(at) = outcome {
                    timers.push(Reverse((at, id)));
                }
            }
            _ = tokio::time::sleep(sleep) => {
                let now = clock::now_secs();
                while timers.peek().is_some_and(|Reverse((t, _))| *t <= now) {
                    if let Some(Reverse((_, id))) = timers.pop() {
                        start.push((id, true));
                    }
                }
            }
            _ = rescan.tick() => {
                // Pick up what commands changed on disk (postsuper -H, -r).
                if let Ok(ids) = shared.spool.list(State::Incoming) {
                    start.extend(ids.into_iter().map(|id| (id, true)));
                }
            }
        }
        if stopping {
            continue;
        }
        for (id, retry) in start {
            if !in_flight.insert(id.clone()) {
                continue;
            }
            let shared = shared.clone();
            let workers = workers.clone();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                let Ok(_permit) = workers.acquire_owned().await else {
                    return;
                };
                let picked = Instant::now();
                let sh = shared.clone();
                let id2 = id.clone();
                let outcome =
                    tokio::task::spawn_blocking(move || deliver_message(&sh, &id2, retry, picked))
                        .await
                        .unwrap_or(Outcome::Deferred(clock::now_secs() + 300));
                let _ = done_tx.send((id, outcome));
            });
        }
    }
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
