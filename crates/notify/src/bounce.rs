//! Non-delivery notifications (RFC 3464 multipart/report), in the layout and
//! wording of Postfix's bounce(8) default template, honouring NOTIFY=NEVER
//! and RET=HDRS (RFC 3461). A bounce is sent from the null sender and so
//! never bounces again; bounces of bounces are only logged.

use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;
use yubin_maillog::clock;
use yubin_queue::{QueueFile, QueuedRecipient};

use crate::{Class, Notify, Settings};

/// The ENVID that marks a double bounce (so that its own failure stops there).
const DOUBLE_BOUNCE: &str = "yubin-2bounce";

/// One recipient that failed.
pub struct Bounced {
    pub original: String,
    pub orcpt: Option<String>,
    pub final_recipient: String,
    pub notify: Option<String>,
    pub dsn: String,
    pub text: String,
    /// A remote server's refusal: `Remote-MTA: dns; NAME` and its typed
    /// `Diagnostic-Code` (`smtp; 550 5.1.1 ...`), RFC 3464 section 2.3.
    pub remote: Option<(String, String)>,
}

impl Bounced {
    /// `dsn` is the RFC 3463 enhanced status code, `text` the reason.
    pub fn new(r: &QueuedRecipient, final_recipient: &str, dsn: &str, text: &str) -> Bounced {
        Bounced {
            original: r.address.clone(),
            orcpt: r.orcpt.clone(),
            final_recipient: final_recipient.to_string(),
            notify: r.notify.clone(),
            dsn: dsn.to_string(),
            text: text.to_string(),
            remote: None,
        }
    }

    /// Quotes the remote server's reply, as Postfix's smtp(8) bounces do.
    pub fn with_remote(mut self, remote: Option<(String, String)>) -> Bounced {
        self.remote = remote;
        self
    }

    fn wants_failure_notice(&self) -> bool {
        match &self.notify {
            None => true,
            Some(n) => n.split(',').any(|w| w == "FAILURE"),
        }
    }
}

/// The header section of a message.
fn headers_of(message: &[u8]) -> &[u8] {
    match message.windows(2).position(|w| w == b"\n\n") {
        Some(p) => &message[..p + 1],
        None => message,
    }
}

/// Which report: a bounce, or a delay warning (delay_warning_time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failed,
    Delayed,
    /// The postmaster's copy (notify_classes bounce or delay): headers only,
    /// "Postmaster Copy:" in the subject.
    PostmasterCopy(bool),
}

/// Builds the notification to `to` (the sender, or postmaster for a double
/// bounce) with mail-builder: multipart/report (RFC 6522) of the template's
/// text, the message/delivery-status fields (RFC 3464 section 2) and the
/// returned message or its headers. LF line ends, as queue files hold them.
pub fn build(
    s: &Settings,
    q: &QueueFile,
    failed: &[&Bounced],
    new_id: &str,
    now: i64,
    to: &str,
    kind: Kind,
) -> Vec<u8> {
    let host = &s.hostname;
    let (template, delayed, copy) = match kind {
        Kind::Failed => (&s.templates.failure, false, false),
        Kind::Delayed => (&s.templates.delay, true, false),
        Kind::PostmasterCopy(delay) => (
            if delay {
                &s.templates.delay
            } else {
                &s.templates.failure
            },
            delay,
            true,
        ),
    };
    let mut human = template.text.clone();
    human.push('\n');
    for b in failed {
        human.push_str(&format!("<{}>: {}\n", b.final_recipient, b.text));
    }
    let mut report = format!(
        "Reporting-MTA: dns; {host}\nX-Postfix-Queue-ID: {}\nX-Postfix-Sender: rfc822; {}\nArrival-Date: {}\n",
        q.id,
        q.sender,
        clock::rfc5322(q.arrival)
    );
    for b in failed {
        report.push_str(&format!(
            "\nFinal-Recipient: rfc822; {}\n",
            b.final_recipient
        ));
        match &b.orcpt {
            Some(o) => report.push_str(&format!("Original-Recipient: {o}\n")),
            None => report.push_str(&format!("Original-Recipient: rfc822;{}\n", b.original)),
        }
        let action = if delayed { "delayed" } else { "failed" };
        match &b.remote {
            Some((mta, diagnostic)) => report.push_str(&format!(
                "Action: {action}\nStatus: {}\nRemote-MTA: dns; {mta}\nDiagnostic-Code: {diagnostic}\n",
                b.dsn
            )),
            None => report.push_str(&format!(
                "Action: {action}\nStatus: {}\nDiagnostic-Code: X-Postfix; {}\n",
                b.dsn, b.text
            )),
        }
        if delayed {
            let until = q.arrival + s.maximal_queue_lifetime as i64;
            report.push_str(&format!("Will-Retry-Until: {}\n", clock::rfc5322(until)));
        }
    }
    // A delay warning returns the headers only, as Postfix's does.
    let headers_only = q.ret.as_deref() == Some("HDRS") || delayed || copy;
    let (returned_type, returned, what) = if headers_only {
        (
            "text/rfc822-headers",
            headers_of(&q.message),
            "Undelivered Message Headers",
        )
    } else {
        ("message/rfc822", &q.message[..], "Undelivered Message")
    };
    // "MAILER-DAEMON (Mail Delivery System)": the comment is the display name.
    let display = template
        .from
        .split_once('(')
        .and_then(|(_, c)| c.strip_suffix(')'))
        .unwrap_or("Mail Delivery System")
        .to_string();
    let message = MessageBuilder::new()
        .from((display, format!("MAILER-DAEMON@{host}")))
        .to(to.to_string())
        .subject(if copy {
            format!("Postmaster Copy: {}", template.subject)
        } else {
            template.subject.clone()
        })
        .message_id(format!("{new_id}.{now}@{host}"))
        .date(now)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(MimePart::new(
            ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
            vec![
                MimePart::new("text/plain", human)
                    .header("Content-Description", Raw::new("Notification")),
                MimePart::new("message/delivery-status", report)
                    .header("Content-Description", Raw::new("Delivery report"))
                    .transfer_encoding("7bit"),
                MimePart::new(returned_type, returned.to_vec())
                    .header("Content-Description", Raw::new(what))
                    .transfer_encoding("8bit"),
            ],
        ))
        .write_to_vec()
        .unwrap_or_default();
    // The queue keeps LF line ends; mail-builder writes CRLF.
    let mut out = Vec::with_capacity(message.len());
    let mut i = 0;
    while i < message.len() {
        if message[i] == b'\r' && message.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(message[i]);
        i += 1;
    }
    out
}

impl Notify<'_> {
    /// Queues a notification to the sender for the failed recipients that
    /// asked for one.
    pub fn bounce(&self, q: &QueueFile, failed: &[Bounced], now: i64) {
        let wanted: Vec<&Bounced> = failed.iter().filter(|b| b.wants_failure_notice()).collect();
        if wanted.is_empty() {
            return;
        }
        let s = self.settings;
        // A bounce or notice (null sender) that cannot be delivered goes to
        // postmaster as a double bounce (2bounce_notice_recipient); a double
        // bounce that fails is only logged, so nothing can loop.
        let (recipient, what, envid) = if q.sender.is_empty() {
            if q.envid.as_deref() == Some(DOUBLE_BOUNCE) {
                self.log.log(
                    "bounce",
                    &format!("{}: undeliverable postmaster notification discarded", q.id),
                );
                return;
            }
            (
                s.double_bounce_recipient.clone(),
                "postmaster non-delivery notification",
                Some(DOUBLE_BOUNCE),
            )
        } else {
            (q.sender.clone(), "sender non-delivery notification", None)
        };
        let new_id = s.new_id();
        let message = build(s, q, &wanted, &new_id, now, &recipient, Kind::Failed);
        match self.enqueue(new_id, &recipient, message, envid, now) {
            Ok(id) => self.log.log("bounce", &format!("{}: {what}: {id}", q.id)),
            Err(e) => self.log.log(
                "bounce",
                &format!("warning: {}: cannot queue notification: {e}", q.id),
            ),
        }
        if envid.is_none() {
            self.postmaster_copy(q, &wanted, false, now);
        }
    }

    /// notify_classes `bounce` / `delay`: a headers-only copy of the report
    /// to bounce_notice_recipient / delay_notice_recipient (Postfix's
    /// "Postmaster Copy"). Marked as a double bounce, so a failed copy goes
    /// nowhere.
    fn postmaster_copy(&self, q: &QueueFile, failed: &[&Bounced], delay: bool, now: i64) {
        let s = self.settings;
        let (class, to) = if delay {
            (Class::Delay, &s.delay_notice_recipient)
        } else {
            (Class::Bounce, &s.bounce_notice_recipient)
        };
        if !s.classes.contains(class) {
            return;
        }
        let new_id = s.new_id();
        let message = build(s, q, failed, &new_id, now, to, Kind::PostmasterCopy(delay));
        match self.enqueue(new_id, to, message, Some(DOUBLE_BOUNCE), now) {
            Ok(id) => self.log.log(
                "bounce",
                &format!("{}: postmaster {} notification: {id}", q.id, class.name()),
            ),
            Err(e) => self.log.log(
                "bounce",
                &format!("warning: {}: cannot queue postmaster copy: {e}", q.id),
            ),
        }
    }

    /// A delay warning to the sender for the recipients still waiting, when
    /// they asked for one (NOTIFY=DELAY, or no NOTIFY). Returns whether one
    /// was queued.
    pub fn delay(&self, q: &QueueFile, delayed: &[Bounced], now: i64) -> bool {
        let wanted: Vec<&Bounced> = delayed
            .iter()
            .filter(|b| {
                b.notify
                    .as_deref()
                    .is_none_or(|n| n.split(',').any(|w| w == "DELAY"))
            })
            .collect();
        if wanted.is_empty() || q.sender.is_empty() {
            return false;
        }
        let s = self.settings;
        let new_id = s.new_id();
        let message = build(s, q, &wanted, &new_id, now, &q.sender, Kind::Delayed);
        match self.enqueue(new_id, &q.sender, message, None, now) {
            Ok(id) => {
                self.log.log(
                    "bounce",
                    &format!("{}: sender delay notification: {id}", q.id),
                );
                self.postmaster_copy(q, &wanted, true, now);
                true
            }
            Err(e) => {
                self.log.log(
                    "bounce",
                    &format!("warning: {}: cannot queue delay notification: {e}", q.id),
                );
                false
            }
        }
    }
}
