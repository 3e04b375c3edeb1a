//! pickup(8): takes the messages `yubin sendmail` left in `maildrop/`
//! (postdrop(1)'s queue) and queues them like cleanup(8) does for smtpd:
//! Postfix's local `Received: by HOST (yubin, from userid UID)` header,
//! missing `From:`, `Message-Id:` and `Date:` added, the group commit, then
//! the queue manager.
//!
//! The maildrop is world-writable, so nothing in it is trusted: files are
//! opened by [`maildrop::take`] (no links, no FIFOs, bounded, strict
//! decoding); the submitting user is the file's owner, not what the file
//! says; the `X-Yubin-Submitter` header is replaced by one carrying that
//! owner. Files that cannot be taken are moved to `corrupt/` and logged.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use yubin_addr::parse_address;
use yubin_maillog::clock;
use yubin_queue::maildrop::header::{header_value, split_message, without_header};
use yubin_queue::maildrop::{self, Dropped, PickupError, SUBMITTER_HEADER};
use yubin_queue::{QueueFile, QueuedRecipient, State};

use super::runtime::{QmgrMsg, Runtime, Shared};

/// The process's pickup wake-up: the control socket's `pickup` request
/// notifies it (see [`wake`]).
pub fn waker() -> Arc<Notify> {
    static WAKE: std::sync::OnceLock<Arc<Notify>> = std::sync::OnceLock::new();
    WAKE.get_or_init(|| Arc::new(Notify::new())).clone()
}

/// Makes [`run`] scan the maildrop now (`yubin sendmail` asks for this).
pub fn wake() {
    waker().notify_one();
}

/// Scans `maildrop/` every second, or at once when `wake` is notified
/// (`yubin sendmail` pokes the control socket with `pickup`).
pub async fn run(shared: Arc<Shared>, wake: Arc<Notify>) {
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        scan(&shared).await;
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shared.shutdown.notified() => return,
        }
    }
}

/// One pass over the maildrop.
pub async fn scan(shared: &Arc<Shared>) {
    let spool = shared.spool.clone();
    let names = match tokio::task::spawn_blocking(move || {
        remove_stale_temporaries(&spool);
        maildrop::list(&spool)
    })
    .await
    {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            shared
                .log
                .log("pickup", &format!("warning: maildrop: cannot list: {e}"));
            return;
        }
        Err(_) => return,
    };
    for name in names {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        pick_one(shared, name).await;
    }
}

/// Hidden `.ID.PID` files are submissions in progress; one a day old was
/// left by a `sendmail` that died.
fn remove_stale_temporaries(spool: &yubin_queue::Spool) {
    let Ok(rd) = std::fs::read_dir(maildrop::dir(spool)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with('.') {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(86_400));
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

async fn pick_one(shared: &Arc<Shared>, name: String) {
    let rt = shared.current();
    let max = rt.cfg.u64("message_size_limit").unwrap_or(10_240_000);
    let spool = shared.spool.clone();
    let n = name.clone();
    let taken = tokio::task::spawn_blocking(move || maildrop::take(&spool, &n, max)).await;
    let dropped = match taken {
        Ok(Ok(d)) => d,
        Ok(Err(PickupError::Gone)) | Err(_) => return,
        Ok(Err(PickupError::Refused(why))) => return move_aside(shared, &name, &why).await,
        Ok(Err(PickupError::Io(e))) => {
            shared.log.log(
                "pickup",
                &format!("warning: maildrop/{name}: {e}; will try again"),
            );
            return;
        }
    };
    let uid = dropped.uid;
    let id = if shared.spool.find(&name).is_none() {
        name.clone()
    } else {
        new_id(&rt)
    };
    let (q, notes) = match build(&rt, &id, dropped) {
        Ok(v) => v,
        Err(why) => return move_aside(shared, &name, &why).await,
    };
    shared.log.log(
        "pickup",
        &format!("{id}: uid={uid} from=<{}>", notes.original_sender),
    );
    shared
        .log
        .log("cleanup", &format!("{id}: message-id={}", notes.message_id));
    shared
        .log
        .log("pickup", &format!("{id}: submitted by {}", notes.submitter));
    // milter: begin
    let mut q = q;
    if let Some(ms) = &rt.non_smtpd_milters {
        use super::milter::Picked;
        match super::milter::pickup(shared, &rt, ms, &mut q).await {
            Picked::Queue => {}
            Picked::Done => {
                let path = maildrop::dir(&shared.spool).join(&name);
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
                return;
            }
            Picked::Retry(why) => {
                let msg = format!("warning: {}: maildrop/{name}: {why}; will try again", q.id);
                shared.log.log("pickup", &msg);
                return;
            }
        }
    }
    // milter: end
    let mut result = commit(shared, &q).await;
    if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists) {
        // Another message took the id meanwhile: once more with a new one.
        let fresh = new_id(&rt);
        shared
            .log
            .log("pickup", &format!("{}: queue id in use, now {fresh}", q.id));
        q.id = fresh;
        result = commit(shared, &q).await;
    }
    match result {
        Ok(()) => {
            let path = maildrop::dir(&shared.spool).join(&name);
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
            let _ = shared.qmgr.send(QmgrMsg::New(q.id.clone()));
        }
        Err(e) => shared.log.log(
            "pickup",
            &format!(
                "warning: {}: cannot queue maildrop/{name}: {e}; will try again",
                q.id
            ),
        ),
    }
}

async fn commit(shared: &Arc<Shared>, q: &QueueFile) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.committer.commit(q.id.clone(), q.encode(), move |r| {
        let _ = tx.send(r);
    });
    rx.await
        .unwrap_or_else(|_| Err(std::io::Error::other("queue committer stopped")))
}

fn new_id(rt: &Runtime) -> String {
    if rt.cfg.bool("enable_long_queue_ids").unwrap_or(false) {
        yubin_queue::id::long()
    } else {
        yubin_queue::id::short()
    }
}

/// Moves a refused maildrop file to `corrupt/` (never reading it again)
/// and logs why.
async fn move_aside(shared: &Arc<Shared>, name: &str, why: &str) {
    let spool = shared.spool.clone();
    let src = maildrop::dir(&spool).join(name);
    let target = if yubin_queue::id::is_valid(name) && spool.find(name).is_none() {
        name.to_string()
    } else {
        yubin_queue::id::short()
    };
    let dst = spool.path(State::Corrupt, &target);
    let moved = tokio::task::spawn_blocking(move || std::fs::rename(&src, &dst))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("task failed")));
    let shown = maildrop::sanitize(name, 64);
    match moved {
        Ok(()) => shared.log.log(
            "pickup",
            &format!("warning: maildrop/{shown}: refused: {why}; moved to corrupt/{target}"),
        ),
        Err(e) => shared.log.log(
            "pickup",
            &format!("warning: maildrop/{shown}: refused: {why}; cannot move it to corrupt/: {e}"),
        ),
    }
}

/// What pickup logs about a message.
struct Notes {
    original_sender: String,
    message_id: String,
    submitter: String,
}

/// The queue file for a dropped message: envelope from the maildrop file
/// (addresses canonicalised, the rest of its records ignored), headers
/// added as cleanup(8) does for local submissions.
fn build(rt: &Runtime, id: &str, d: Dropped) -> Result<(QueueFile, Notes), String> {
    let now = clock::now_secs();
    let f = d.file;
    let sender = if f.sender.is_empty() {
        String::new()
    } else {
        let a = parse_address(&f.sender, true)
            .map_err(|e| format!("bad sender {:?}: {e}", maildrop::sanitize(&f.sender, 80)))?;
        rt.resolver.canonical(&a).internal()
    };
    let mut recipients = Vec::with_capacity(f.recipients.len());
    for r in &f.recipients {
        let a = parse_address(&r.address, true).map_err(|e| {
            format!(
                "bad recipient {:?}: {e}",
                maildrop::sanitize(&r.address, 80)
            )
        })?;
        recipients.push(QueuedRecipient {
            address: rt.resolver.canonical(&a).internal(),
            notify: r.notify.clone(),
            orcpt: r.orcpt.clone(),
        });
    }
    let (head, body) = split_message(&f.message);
    let claimed = header_value(head, SUBMITTER_HEADER);
    let user = maildrop::user_name(d.uid).unwrap_or_else(|| "unknown".into());
    let via = claimed
        .as_deref()
        .and_then(|c| c.split_once(" via ").map(|(_, v)| v.to_string()))
        .map(|v| maildrop::sanitize(&v, 200))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown command".into());
    let mut submitter = format!("uid={} ({user}) via {via}", d.uid);
    if let Some(c) = &claimed {
        let claimed_uid = c
            .strip_prefix("uid=")
            .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u32>().ok());
        if claimed_uid != Some(d.uid) {
            submitter.push_str(&format!(
                " (the message claimed {})",
                maildrop::sanitize(c.split(" via ").next().unwrap_or(""), 40)
            ));
        }
    }
    let mut message = format!(
        "Received: by {} ({}, from userid {})\n\tid {id}; {}\n",
        rt.hostname,
        rt.mail_name,
        d.uid,
        clock::rfc5322(now)
    )
    .into_bytes();
    message.extend_from_slice(format!("{SUBMITTER_HEADER}: {submitter}\n").as_bytes());
    let message_id = match header_value(head, "Message-ID") {
        Some(m) => m,
        None => {
            let mid = super::cleanup::message_id(now, id, &rt.hostname);
            message.extend_from_slice(format!("Message-Id: {mid}\n").as_bytes());
            mid
        }
    };
    if header_value(head, "Date").is_none() {
        message.extend_from_slice(format!("Date: {}\n", clock::rfc5322(now)).as_bytes());
    }
    if header_value(head, "From").is_none() {
        let from = if sender.is_empty() {
            format!("MAILER-DAEMON@{}", rt.hostname)
        } else {
            sender.clone()
        };
        message.extend_from_slice(format!("From: {from}\n").as_bytes());
    }
    message.extend_from_slice(&without_header(head, SUBMITTER_HEADER));
    message.extend_from_slice(body);
    let q = QueueFile {
        id: id.to_string(),
        arrival: now,
        sender,
        client: "local".into(),
        helo: String::new(),
        protocol: "local".into(),
        ret: f.ret,
        envid: f.envid,
        smtputf8: f.smtputf8,
        recipients,
        message,
    };
    let notes = Notes {
        original_sender: maildrop::sanitize(&f.sender, 256),
        message_id,
        submitter,
    };
    Ok((q, notes))
}
