//! Delivering one queued message: every pending recipient is expanded
//! (virtual(5), aliases(5)) and handed to its agent; each attempt is logged
//! in Postfix's `to=<...>, relay=..., delay=..., dsn=..., status=...` form;
//! the message is then removed, deferred with backoff, or bounced.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use yubin_addr::Address;
use yubin_deliver::{maildir, mbox, pipe, Failure, Message};
use yubin_maillog::clock;
use yubin_queue::{QueueFile, State, Status};

use super::bounce::{self, Bounced};
use super::runtime::{Runtime, Shared};

pub enum Outcome {
    /// Removed (delivered and/or bounced), or no longer in the queue.
    Done,
    /// Try again at this Unix time.
    Deferred(i64),
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
    shared: &'a Shared,
    rt: &'a Runtime,
    q: &'a QueueFile,
    picked: Instant,
    waited: f64,
    retry: bool,
}

/// Who logs a delivery and for which recipient (`to=`, `orig_to=`, `relay=`).
struct Route<'a> {
    daemon: &'a str,
    to: &'a str,
    orig: &'a str,
    relay: &'a str,
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
        self.shared.log.log(
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

    fn allowed(&self, param: &str) -> bool {
        self.rt.cfg.list(param).iter().any(|v| v == "alias")
    }

    /// Runs one delivery; `Ok(description)` or the failure.
    fn run(&self, d: &yubin_addr::Delivery, orig: &str) -> Result<String, Failure> {
        if let Some(e) = &d.error {
            let (dsn, text) = e.split_once(' ').unwrap_or(("5.0.0", e.as_str()));
            return Err(if d.temporary {
                Failure::temp(dsn, text)
            } else {
                Failure::perm(dsn, text)
            });
        }
        let msg = Message {
            queue_id: &self.q.id,
            sender: &self.q.sender,
            original_recipient: orig,
            recipient: &d.recipient,
            content: &self.q.message,
            hostname: &self.rt.hostname,
        };
        check_owner(d)?;
        match d.transport.as_str() {
            "virtual" | "local" => {
                let Some(mb) = d.mailbox.as_deref() else {
                    return Err(Failure::temp("4.3.0", "no mailbox"));
                };
                let limit = if d.transport == "virtual" { self.rt.virtual_mailbox_limit } else { self.rt.mailbox_size_limit };
                if mb.ends_with('/') {
                    let p = maildir::deliver(Path::new(mb), &msg, self.retry, limit)?;
                    chown_delivery(d, &p);
                    Ok("delivered to maildir".into())
                } else {
                    mbox::deliver(Path::new(mb), &msg, limit)?;
                    chown_delivery(d, Path::new(mb));
                    Ok("delivered to mailbox".into())
                }
            }
            // local(8): aliases(5) command and file targets only where
            // allow_mail_to_commands / allow_mail_to_files list "alias".
            "pipe" if !self.allowed("allow_mail_to_commands") => {
                Err(Failure::perm("5.7.1", "mail to command is restricted"))
            }
            "file" if !self.allowed("allow_mail_to_files") => {
                Err(Failure::perm("5.7.1", "mail to file is restricted"))
            }
            "pipe" => {
                let cmd = d.target.as_deref().unwrap_or("").trim_start_matches('|');
                match &self.shared.privsep {
                    Some(helper) => helper.deliver(false, cmd, &msg, 0)?,
                    None => pipe::command(cmd, &msg, std::time::Duration::from_secs(1000))?,
                }
                Ok(format!("delivered to command: {cmd}"))
            }
            "file" => {
                let f = d.target.as_deref().unwrap_or("");
                match &self.shared.privsep {
                    Some(helper) => helper.deliver(true, f, &msg, self.rt.mailbox_size_limit)?,
                    None => mbox::deliver(Path::new(f), &msg, self.rt.mailbox_size_limit)?,
                }
                Ok(format!("delivered to file: {f}"))
            }
            _ => Err(Failure::temp(
                "4.4.1",
                format!(
                    "delivery to remote domains ({}) is not available in this yubin release: relaying is planned; the message stays queued",
                    d.target.as_deref().unwrap_or("?")
                ),
            )),
        }
    }
}

/// Files must end up owned by the uid/gid of virtual_uid_maps and
/// virtual_gid_maps. Running as root, yubin chowns them; running as
/// mail_owner, it can only write as itself, so a different uid is a
/// configuration error reported as a deferral (nothing is written).
fn check_owner(d: &yubin_addr::Delivery) -> Result<(), Failure> {
    let Some(uid) = d.uid else { return Ok(()) };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if me != 0 && me != uid && d.transport == "virtual" {
        return Err(Failure::temp(
            "4.3.0",
            format!("mail system configuration error: virtual_uid_maps gives uid {uid} but yubin runs as uid {me}; set mail_owner to the user that owns virtual_mailbox_base"),
        ));
    }
    Ok(())
}

fn chown_delivery(d: &yubin_addr::Delivery, path: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let (Some(uid), Some(gid)) = (d.uid, d.gid) else {
        return;
    };
    let chown = |p: &Path| {
        let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
    };
    chown(path);
    if let Some(mb) = d.mailbox.as_deref().filter(|m| m.ends_with('/')) {
        let mb = Path::new(mb);
        chown(mb);
        for sub in ["tmp", "new", "cur"] {
            chown(&mb.join(sub));
        }
    }
}

/// Delivers every pending recipient of message `id`.
pub fn deliver_message(shared: &Shared, id: &str, retry: bool, picked: Instant) -> Outcome {
    let spool = &shared.spool;
    let from = match spool.find(id) {
        Some(s @ (State::Incoming | State::Deferred)) => s,
        _ => return Outcome::Done, // held, deleted, or already active elsewhere
    };
    if spool.move_to(id, from, State::Active).is_err() {
        return Outcome::Done;
    }
    let q = match spool.read(State::Active, id) {
        Ok(Ok(q)) => q,
        Ok(Err(e)) => {
            let _ = spool.move_to(id, State::Active, State::Corrupt);
            shared.log.log(
                "qmgr",
                &format!("warning: {id}: {e}; moved to corrupt queue"),
            );
            return Outcome::Done;
        }
        Err(e) => {
            shared
                .log
                .log("qmgr", &format!("warning: {id}: read queue file: {e}"));
            let _ = spool.move_to(id, State::Active, from);
            return Outcome::Deferred(clock::now_secs() + 60);
        }
    };
    let rt = shared.current();
    let status_path = spool.status_path(id);
    let st = Status::load(&status_path);
    if st.attempts == 0 && from == State::Incoming {
        shared.log.log(
            "qmgr",
            &format!(
                "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
                q.sender,
                q.message.len(),
                q.recipients.len()
            ),
        );
    }
    let waited = (clock::now_secs() - q.arrival).max(0) as f64;
    let attempt = Attempt {
        shared,
        rt: &rt,
        q: &q,
        picked,
        waited,
        retry: retry || st.attempts > 0,
    };
    let mut deferred = false;
    let mut bounced: Vec<Bounced> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    // Progress is written to the status file only when the message stays
    // queued: a message delivered in one go never creates one (after a
    // crash, Maildir delivery finds its own earlier files instead).
    let mut done_now: Vec<(usize, &str)> = Vec::new();
    let mut reasons: Vec<(usize, String, String)> = Vec::new();
    for (idx, r) in q.recipients.iter().enumerate() {
        if st.done.contains_key(&idx) {
            continue;
        }
        // The queue file keeps the internal form ("quoted local@x", no
        // quotes): split it, never re-parse it, so an acknowledged recipient
        // cannot turn into a syntax bounce later (issue 16 item 8).
        let deliveries = rt.resolver.expand(&Address::from_internal(&r.address)).0;
        let mut rcpt_deferred = false;
        for d in &deliveries {
            if !seen.insert(format!(
                "{}|{}|{}",
                d.recipient.to_lowercase(),
                d.transport,
                d.target.as_deref().unwrap_or("")
            )) {
                continue; // duplicate final recipient: one copy, as Postfix
            }
            let daemon = match d.transport.as_str() {
                "virtual" => "virtual",
                "local" | "pipe" | "file" => "local",
                "error" => "error",
                _ => "smtp",
            };
            let relay = match d.transport.as_str() {
                "virtual" => "virtual",
                "local" | "pipe" | "file" => "local",
                _ => "none",
            };
            let started = Instant::now();
            let route = Route {
                daemon,
                to: &d.recipient,
                orig: &r.address,
                relay,
            };
            match attempt.run(d, &r.address) {
                Ok(text) => attempt.log(&route, "2.0.0", "sent", &text, started),
                Err(f) if f.temporary => {
                    attempt.log(&route, &f.dsn, "deferred", &f.text, started);
                    reasons.push((idx, f.dsn.clone(), f.text.clone()));
                    rcpt_deferred = true;
                }
                Err(f) => {
                    attempt.log(&route, &f.dsn, "bounced", &f.text, started);
                    bounced.push(Bounced::new(r, &d.recipient, &f));
                }
            }
        }
        if rcpt_deferred {
            deferred = true;
        } else {
            done_now.push((idx, "done"));
        }
    }
    if !bounced.is_empty() {
        bounce::send(shared, &rt, &q, &bounced);
    }
    if !deferred {
        let _ = spool.remove(State::Active, id);
        shared.log.log("qmgr", &format!("{id}: removed"));
        return Outcome::Done;
    }
    for (idx, outcome) in &done_now {
        let _ = Status::record_done(&status_path, *idx, outcome);
    }
    for (idx, _, why) in &reasons {
        let _ = Status::record_reason(&status_path, *idx, why);
    }
    let now = clock::now_secs();
    if (now - q.arrival) as u64 > rt.maximal_queue_lifetime {
        let st = Status::load(&status_path);
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
                Bounced::new(
                    r,
                    &r.address,
                    &Failure::perm("4.4.7", format!("message expired: {why}")),
                )
            })
            .collect();
        shared.log.log(
            "qmgr",
            &format!(
                "{id}: from=<{}>, status=expired, returned to sender",
                q.sender
            ),
        );
        bounce::send(shared, &rt, &q, &expired);
        let _ = spool.remove(State::Active, id);
        shared.log.log("qmgr", &format!("{id}: removed"));
        return Outcome::Done;
    }
    if rt.delay_warning_time > 0 && !st.warned && (now - q.arrival) as u64 >= rt.delay_warning_time
    {
        let delayed: Vec<Bounced> = reasons
            .iter()
            .map(|(idx, dsn, why)| {
                let r = &q.recipients[*idx];
                Bounced::new(r, &r.address, &Failure::temp(dsn, why.clone()))
            })
            .collect();
        if bounce::send_delay(shared, &rt, &q, &delayed) {
            let _ = Status::record_warned(&status_path);
        }
    }
    let attempts = st.attempts + 1;
    let backoff = rt
        .minimal_backoff
        .saturating_mul(1u64 << (attempts - 1).min(20))
        .min(rt.maximal_backoff.max(rt.minimal_backoff));
    let next = now + backoff as i64;
    let _ = Status::record_attempt(&status_path, attempts, next);
    if spool.move_to(id, State::Active, State::Deferred).is_err() {
        return Outcome::Done;
    }
    Outcome::Deferred(next)
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
