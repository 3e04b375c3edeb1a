//! `yubin mailq`, `postqueue` and `postsuper` (postqueue(1), postsuper(1)):
//! list, flush and edit the queue.

use std::path::Path;

use clap::Args;
use yubin_conf::Config;
use yubin_queue::listing;
use yubin_queue::{Spool, State};

use crate::fail::fatal;
use crate::server::control;

fn open_spool(program: &str, dir: &Path) -> Result<Spool, i32> {
    let cfg = Config::load(dir).map_err(|e| fatal(program, e))?;
    let q = cfg.get("queue_directory").to_string();
    if !Path::new(&q).is_dir() {
        return Err(fatal(
            program,
            format!("queue_directory {q}: no such directory (has yubin serve run?)"),
        ));
    }
    Spool::open(Path::new(&q)).map_err(|e| fatal(program, format!("{q}: {e}")))
}

#[derive(Args, Debug)]
pub struct PostqueueArgs {
    /// List the queue (like mailq).
    #[arg(short = 'p')]
    list: bool,
    /// List the queue as JSON, one object per line.
    #[arg(short = 'j')]
    json: bool,
    /// Flush: try every deferred message now.
    #[arg(short = 'f')]
    flush: bool,
    /// Flush the mail waiting for one destination (a domain, or [host]).
    #[arg(short = 's', value_name = "SITE")]
    site: Option<String>,
}

pub fn mailq(dir: &Path) -> i32 {
    match open_spool("mailq", dir) {
        Ok(s) => {
            print!("{}", listing::mailq(&s));
            0
        }
        Err(code) => code,
    }
}

pub fn postqueue(dir: &Path, a: PostqueueArgs) -> i32 {
    let spool = match open_spool("postqueue", dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let request = match (&a.site, a.flush) {
        (Some(site), _) if site.trim().is_empty() || site.contains(['\n', '\r']) => {
            return fatal("postqueue", format!("bad site name: \"{site}\""));
        }
        (Some(site), _) => Some(format!("flush {}", site.trim())),
        (None, true) => Some("flush".to_string()),
        (None, false) => None,
    };
    if let Some(request) = request {
        return match control::request(&spool.control_socket(), &request) {
            Ok(_) => 0,
            Err(e) => fatal(
                "postqueue",
                format!("cannot reach the mail system (is yubin serve running?): {e}"),
            ),
        };
    }
    if a.json {
        for e in listing::entries(&spool) {
            match serde_json::to_string(&e) {
                Ok(s) => println!("{s}"),
                Err(e) => return fatal("postqueue", e),
            }
        }
        return 0;
    }
    let _ = a.list;
    print!("{}", listing::mailq(&spool));
    0
}

#[derive(Args, Debug)]
// `-h` is postsuper(1)'s hold option: help is `--help` only.
#[command(disable_help_flag = true)]
pub struct PostsuperArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Delete a message (queue id, or ALL); "-" reads ids from stdin.
    #[arg(short = 'd', value_name = "ID")]
    delete: Vec<String>,
    /// Put a message on hold.
    #[arg(short = 'h', value_name = "ID")]
    hold: Vec<String>,
    /// Release a message from hold.
    #[arg(short = 'H', value_name = "ID")]
    release: Vec<String>,
    /// Requeue a message (deliver again, as if new).
    #[arg(short = 'r', value_name = "ID")]
    requeue: Vec<String>,
    /// Limit ALL to these queues (incoming, active, deferred, hold).
    queues: Vec<String>,
}

fn expand_ids(spool: &Spool, ids: &[String], queues: &[State]) -> Vec<(String, State)> {
    let mut out = Vec::new();
    for id in ids {
        if id == "ALL" {
            for q in queues {
                for i in spool.list(*q).unwrap_or_default() {
                    out.push((i, *q));
                }
            }
        } else if let Some(s) = spool.find(id) {
            if queues.contains(&s) {
                out.push((id.clone(), s));
            }
        }
    }
    out
}

pub fn postsuper(dir: &Path, a: PostsuperArgs) -> i32 {
    let spool = match open_spool("postsuper", dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut queues = Vec::new();
    for q in &a.queues {
        match State::parse(q) {
            Some(s) => queues.push(s),
            None => return fatal("postsuper", format!("invalid queue name: {q}")),
        }
    }
    if queues.is_empty() {
        queues = vec![State::Incoming, State::Active, State::Deferred, State::Hold];
    }
    let mut deleted = 0;
    for (id, s) in expand_ids(&spool, &a.delete, &queues) {
        if spool.remove(s, &id).is_ok() {
            deleted += 1;
        }
    }
    if deleted > 0 {
        eprintln!(
            "postsuper: Deleted: {deleted} message{}",
            if deleted == 1 { "" } else { "s" }
        );
    }
    let mut held = 0;
    for (id, s) in expand_ids(&spool, &a.hold, &queues) {
        if s != State::Hold && spool.move_to(&id, s, State::Hold).is_ok() {
            held += 1;
        }
    }
    if held > 0 {
        eprintln!(
            "postsuper: Placed on hold: {held} message{}",
            if held == 1 { "" } else { "s" }
        );
    }
    let mut released = 0;
    for (id, s) in expand_ids(&spool, &a.release, &[State::Hold]) {
        if spool.move_to(&id, s, State::Deferred).is_ok() {
            released += 1;
        }
    }
    if released > 0 {
        eprintln!(
            "postsuper: Released from hold: {released} message{}",
            if released == 1 { "" } else { "s" }
        );
    }
    let mut requeued = 0;
    for (id, s) in expand_ids(&spool, &a.requeue, &queues) {
        if s != State::Incoming && spool.move_to(&id, s, State::Incoming).is_ok() {
            requeued += 1;
        }
    }
    if requeued > 0 {
        eprintln!(
            "postsuper: Requeued: {requeued} message{}",
            if requeued == 1 { "" } else { "s" }
        );
    }
    if released + requeued > 0 {
        let _ = control::request(&spool.control_socket(), "flush");
    }
    0
}

/// `yubin reload` / `yubin stop`.
pub fn control_request(dir: &Path, what: &str) -> i32 {
    let spool = match open_spool(what, dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match control::request(&spool.control_socket(), what) {
        Ok(answer) if answer == "ok" => 0,
        Ok(answer) => fatal(what, answer),
        Err(e) => fatal(
            what,
            format!("cannot reach the mail system (is yubin serve running?): {e}"),
        ),
    }
}
