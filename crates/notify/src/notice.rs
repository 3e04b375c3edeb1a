//! Postmaster notices about SMTP sessions with errors (postconf(5)
//! notify_classes; smtpd's "Transcript of session follows."), in Postfix's
//! layout: subject `MAIL_NAME SMTP server: errors from HOST[IP]`, each
//! `In:`/`Out:` line wrapped at 78 columns with a 5-space indent, the note
//! about the log at the end.
//!
//! Beyond Postfix: notices about the same client and error classes are
//! grouped. The first goes out at once with its transcript; the next ones
//! within `yubin_notice_interval` (default 10 min) are only counted, and go
//! out as one summary (how many sessions, which addresses were refused) with
//! the next transcript or when the interval ends — so a misconfigured cron
//! job or a DenyHosts with a bad ADMIN_EMAIL cannot bury the admin.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use yubin_maillog::clock;

use crate::{Class, Notify};

/// What an SMTP session with errors leaves for the postmaster: its error
/// classes (in the session's order), its transcript (`In:`/`Out:` lines) and
/// the addresses it had refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    pub classes: Vec<Class>,
    pub transcript: Vec<String>,
    pub rejected: Vec<String>,
}

#[derive(Default)]
struct Group {
    last_sent: i64,
    /// Sessions counted but not mailed since `last_sent`.
    suppressed: u32,
    rejected: BTreeMap<String, u32>,
}

/// The grouping state: one group per client and set of error classes.
#[derive(Default)]
pub struct Notices {
    groups: Mutex<HashMap<(String, String), Group>>,
}

/// Wraps `text` at word boundaries: lines of at most `width` columns after
/// the first, continuation lines indented by 5 spaces (Postfix's line_wrap
/// as smtpd_chat_notify uses it).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        let limit = if lines.is_empty() { width } else { width - 5 };
        if !cur.is_empty() && cur.len() + 1 + word.len() > limit {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    lines.push(cur);
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| if i == 0 { l } else { format!("     {l}") })
        .collect()
}

fn summary(client: &str, classes: &str, g: &Group, interval: u64) -> String {
    let mut out = format!(
        "{} more session{} from {client} with {classes} errors since the last notice at {} were not mailed separately (yubin_notice_interval = {}s).\n",
        g.suppressed,
        if g.suppressed == 1 { "" } else { "s" },
        clock::rfc5322(g.last_sent),
        interval
    );
    if !g.rejected.is_empty() {
        out.push_str("Refused in those sessions:\n");
        for (addr, n) in &g.rejected {
            out.push_str(&format!(
                "  {addr} ({n} time{})\n",
                if *n == 1 { "" } else { "s" }
            ));
        }
    }
    out.push('\n');
    out
}

impl Notices {
    fn send(n: &Notify<'_>, client: &str, body: String, summary_only: bool, now: i64) {
        let s = n.settings;
        let id = s.new_id();
        let host = &s.hostname;
        let subject = format!(
            "{} SMTP server: errors from {client}{}",
            s.mail_name,
            if summary_only { " (summary)" } else { "" }
        );
        let recipient = &s.error_notice_recipient;
        let msg = format!(
            "From: MAILER-DAEMON@{host} (Mail Delivery System)\nTo: {recipient} (Postmaster)\nSubject: {subject}\nDate: {}\nMessage-Id: <{id}.notice@{host}>\nAuto-Submitted: auto-generated\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}",
            clock::rfc5322(now)
        );
        match n.enqueue(id, recipient, msg.into_bytes(), None, now) {
            Ok(id) => n.log.log(
                "smtpd",
                &format!("{id}: postmaster notified of errors from {client}"),
            ),
            Err(e) => n.log.log(
                "smtpd",
                &format!("warning: cannot queue the error notice about {client}: {e}"),
            ),
        }
    }

    /// A session ended at `now`: mail the postmaster if its errors are in
    /// notify_classes, or count it into the client's group.
    pub fn session_ended(&self, n: &Notify<'_>, client: &str, report: SessionReport, now: i64) {
        let wanted: Vec<&str> = report
            .classes
            .iter()
            .filter(|c| n.settings.classes.contains(**c))
            .map(|c| c.name())
            .collect();
        if wanted.is_empty() {
            return;
        }
        let classes = wanted.join(", ");
        let interval = n.settings.notice_interval;
        let body = {
            let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            let g = groups
                .entry((client.to_string(), classes.clone()))
                .or_default();
            if g.last_sent != 0 && (now - g.last_sent) < interval as i64 {
                g.suppressed += 1;
                for r in report.rejected {
                    *g.rejected.entry(r).or_default() += 1;
                }
                return;
            }
            let mut body = String::new();
            if g.suppressed > 0 {
                body.push_str(&summary(client, &classes, g, interval));
            }
            body.push_str("Transcript of session follows.\n\n");
            // " Out: ..." with continuation lines indented to column 5, as
            // in the seed's notice.
            for line in &report.transcript {
                for (i, l) in wrap(line, 77).into_iter().enumerate() {
                    if i == 0 {
                        body.push(' ');
                    }
                    body.push_str(&l);
                    body.push('\n');
                }
            }
            body.push_str("\nFor other details, see the local mail logfile\n");
            *g = Group {
                last_sent: now,
                ..Group::default()
            };
            body
        };
        Self::send(n, client, body, false, now);
    }

    /// Mails the summaries whose interval has ended by `now`.
    pub fn flush_due(&self, n: &Notify<'_>, now: i64) {
        let interval = n.settings.notice_interval;
        let due: Vec<(String, String)> = {
            let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = Vec::new();
            for ((client, classes), g) in groups.iter_mut() {
                if g.suppressed > 0 && now - g.last_sent >= interval as i64 {
                    out.push((client.clone(), summary(client, classes, g, interval)));
                    *g = Group {
                        last_sent: now,
                        ..Group::default()
                    };
                }
            }
            groups.retain(|_, g| now - g.last_sent < 2 * interval as i64 || g.suppressed > 0);
            out
        };
        for (client, body) in due {
            Self::send(
                n,
                &client,
                body + "For other details, see the local mail logfile\n",
                true,
                now,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_like_the_seed() {
        let lines = wrap("Out: 550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in local recipient table", 77);
        assert_eq!(
            lines,
            [
                "Out: 550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in",
                "     local recipient table"
            ]
        );
        assert_eq!(wrap("In:  quit", 77), ["In:  quit"]);
    }
}
