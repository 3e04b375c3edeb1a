//! `mailq` / `postqueue -p` output in Postfix's layout, and `postqueue -j`
//! JSON (one object per line, Postfix 3.1's field names).

use std::fmt::Write as _;

use serde::Serialize;

use crate::spool::{Spool, State};

#[derive(Debug, Serialize)]
pub struct JsonRecipient {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct JsonEntry {
    pub queue_name: String,
    pub queue_id: String,
    pub arrival_time: i64,
    pub message_size: usize,
    pub forced_expire: bool,
    pub sender: String,
    pub recipients: Vec<JsonRecipient>,
}

/// Every message in the queue, oldest first, with its pending recipients.
pub fn entries(spool: &Spool) -> Vec<JsonEntry> {
    let mut out = Vec::new();
    for state in [State::Incoming, State::Active, State::Deferred, State::Hold] {
        let Ok(ids) = spool.list(state) else { continue };
        for id in ids {
            let Ok(Ok(q)) = spool.read(state, &id) else {
                continue;
            };
            let st = spool.status(&id);
            let recipients = q
                .recipients
                .iter()
                .enumerate()
                .filter(|(i, _)| !st.done.contains_key(i))
                .map(|(i, r)| JsonRecipient {
                    address: r.address.clone(),
                    delay_reason: st.reasons.get(&i).cloned(),
                })
                .collect();
            out.push(JsonEntry {
                queue_name: state.dir_name().into(),
                queue_id: id,
                arrival_time: q.arrival,
                message_size: q.message.len(),
                forced_expire: false,
                sender: q.sender,
                recipients,
            });
        }
    }
    out.sort_by_key(|e| e.arrival_time);
    out
}

/// "Fri Jan 29 19:24:35": showq's ctime-like local time.
fn arrival_text(secs: i64) -> String {
    let Some(tm) = yubin_sys::local_time(secs) else {
        return "Thu Jan  1 00:00:00".into();
    };
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const D: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02}",
        D[tm.weekday], M[tm.month], tm.day, tm.hour, tm.min, tm.sec
    )
}

/// The `mailq` text.
pub fn mailq(spool: &Spool) -> String {
    let list = entries(spool);
    if list.is_empty() {
        return "Mail queue is empty\n".into();
    }
    let mut out =
        String::from("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
    let mut total = 0usize;
    for e in &list {
        total += e.message_size;
        let mark = match e.queue_name.as_str() {
            "active" => "*",
            "hold" => "!",
            _ => "",
        };
        let id = format!("{}{mark}", e.queue_id);
        let _ = writeln!(
            out,
            "{id:<11} {:>8} {}  {}",
            e.message_size,
            arrival_text(e.arrival_time),
            if e.sender.is_empty() {
                "MAILER-DAEMON"
            } else {
                &e.sender
            }
        );
        let mut last_reason: Option<&str> = None;
        for r in &e.recipients {
            if let Some(why) = r.delay_reason.as_deref() {
                if last_reason != Some(why) {
                    let _ = writeln!(out, "{:>w$}({why})", "", w = 0);
                    last_reason = Some(why);
                }
            }
            let _ = writeln!(out, "{:41}{}", "", r.address);
        }
        out.push('\n');
    }
    let kbytes = total.div_ceil(1024);
    let n = list.len();
    let _ = writeln!(
        out,
        "-- {kbytes} Kbytes in {n} Request{}.",
        if n == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{QueueFile, QueuedRecipient};

    #[test]
    fn empty_and_one() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        assert_eq!(mailq(&s), "Mail queue is empty\n");
        let q = QueueFile {
            id: "A438C186C09".into(),
            arrival: 1,
            sender: "a@b".into(),
            client: "x".into(),
            protocol: "ESMTP".into(),
            recipients: vec![QueuedRecipient {
                address: "root@localhost".into(),
                notify: None,
                orcpt: None,
            }],
            message: vec![b'x'; 286],
            ..Default::default()
        };
        std::fs::write(s.path(State::Deferred, &q.id), q.encode()).unwrap();
        crate::status::Status::record_reason(&s.status_path(&q.id), 0, "connection refused")
            .unwrap();
        let text = mailq(&s);
        assert!(text.starts_with("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\nA438C186C09      286 "), "{text}");
        assert!(
            text.contains(
                "(connection refused)\n                                         root@localhost\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("-- 1 Kbytes in 1 Request.\n"), "{text}");
    }
}
