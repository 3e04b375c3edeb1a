//! `yubin log QUEUEID | ADDRESS | --client IP`: follows messages through
//! mail.log, the way Postfix admins do with grep, but stitched together:
//! every line of each matching queue id (receipt, cleanup, pickup and its
//! submitter, every delivery attempt, bounces and the notification's own
//! id), grouped per message in time order, plus the rejects (NOQUEUE) that
//! match.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::Path;

use clap::Args;
use yubin_conf::Config;

use crate::fail::fatal;

#[derive(Args, Debug)]
pub struct LogArgs {
    /// A queue id, or an address (sender or recipient, original or final).
    what: Option<String>,
    /// Every message and reject from this client IP address.
    #[arg(long, value_name = "IP")]
    client: Option<String>,
    /// Read this log instead of maillog_file.
    #[arg(long, value_name = "FILE")]
    file: Option<std::path::PathBuf>,
}

/// The queue id a log line is about: `... daemon[pid]: ID: text`.
fn queue_id(line: &str) -> Option<&str> {
    let after = line.split_once("]: ")?.1;
    let (id, _) = after.split_once(": ")?;
    (id.len() >= 8
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && id != "NOQUEUE"
        && id != "warning")
        .then_some(id)
}

pub fn run(dir: &Path, a: LogArgs) -> i32 {
    let path = match &a.file {
        Some(p) => p.clone(),
        None => match Config::load(dir) {
            Ok(c) if !c.get("maillog_file").is_empty() => c.get("maillog_file").into(),
            Ok(_) => {
                return fatal(
                    "log",
                    "maillog_file is empty (logging to stderr): give the log with --file",
                )
            }
            Err(e) => return fatal("log", e),
        },
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => return fatal("log", format!("{}: {e}", path.display())),
    };
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .collect();
    let needle_addr = a
        .what
        .as_deref()
        .filter(|w| w.contains('@'))
        .map(|w| format!("<{}>", w.trim_matches(['<', '>']).to_lowercase()));
    let needle_id = a.what.as_deref().filter(|w| !w.contains('@'));
    let needle_client = a.client.as_deref().map(|ip| format!("[{ip}]"));
    if needle_addr.is_none() && needle_id.is_none() && needle_client.is_none() {
        return fatal("log", "give a queue id, an address, or --client IP");
    }
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut rejects: Vec<&str> = Vec::new();
    for l in &lines {
        let lower = l.to_lowercase();
        let hit = needle_addr.as_ref().is_some_and(|n| {
            lower.contains(&format!("to={n}"))
                || lower.contains(&format!("from={n}"))
                || lower.contains(&format!("orig_to={n}"))
        }) || needle_client
            .as_ref()
            .is_some_and(|n| l.contains(": client=") && l.contains(n.as_str()))
            || needle_id.is_some_and(|n| queue_id(l) == Some(n));
        if hit {
            if let Some(id) = queue_id(l) {
                ids.insert(id.to_string());
            } else if l.contains("reject:") {
                rejects.push(l);
            }
        } else if l.contains("NOQUEUE: reject:")
            && (needle_client
                .as_ref()
                .is_some_and(|n| l.contains(n.as_str()))
                || needle_addr.as_ref().is_some_and(|n| lower.contains(n)))
        {
            rejects.push(l);
        }
    }
    // A bounce names its notification's queue id: follow it too.
    let mut more = Vec::new();
    for l in &lines {
        if let (Some(id), Some(pos)) = (queue_id(l), l.find("notification: ")) {
            if ids.contains(id) {
                more.push(l[pos + 14..].trim().to_string());
            }
        }
    }
    ids.extend(more);
    let mut per_id: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for l in &lines {
        if let Some(id) = queue_id(l).filter(|id| ids.contains(*id)) {
            if !per_id.contains_key(id) {
                order.push(id);
            }
            per_id.entry(id).or_default().push(l);
        }
    }
    if order.is_empty() && rejects.is_empty() {
        eprintln!("log: nothing in {} matches", path.display());
        return 1;
    }
    for id in order {
        println!("== {id}");
        for l in &per_id[id] {
            println!("{l}");
        }
        println!();
    }
    if !rejects.is_empty() {
        println!("== rejected (no queue id)");
        for l in rejects {
            println!("{l}");
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::queue_id;

    #[test]
    fn ids() {
        assert_eq!(
            queue_id("Nov 29 03:12:41 mail postfix/qmgr[1]: EE56F2D4100: removed"),
            Some("EE56F2D4100")
        );
        assert_eq!(
            queue_id("Nov 29 03:12:41 mail postfix/smtpd[1]: NOQUEUE: reject: RCPT"),
            None
        );
        assert_eq!(
            queue_id("Nov 29 03:12:41 mail postfix/smtpd[1]: connect from x"),
            None
        );
    }
}
