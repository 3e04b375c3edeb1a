//! Non-delivery notifications (RFC 3464 multipart/report), in the layout and
//! wording of Postfix's bounce(8) default template, honouring NOTIFY=NEVER
//! and RET=HDRS (RFC 3461). A bounce is sent from the null sender and so
//! never bounces again; bounces of bounces are only logged.

use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;
use yubin_deliver::Failure;
use yubin_maillog::clock;
use yubin_queue::{QueueFile, QueuedRecipient};

use super::runtime::{Runtime, Shared};

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
}

impl Bounced {
    pub fn new(r: &QueuedRecipient, final_recipient: &str, f: &Failure) -> Bounced {
        Bounced {
            original: r.address.clone(),
            orcpt: r.orcpt.clone(),
            final_recipient: final_recipient.to_string(),
            notify: r.notify.clone(),
            dsn: f.dsn.clone(),
            text: f.text.clone(),
        }
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

/// Builds the notification (LF line ends, as queue files hold them).
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
#[allow(clippy::too_many_arguments)]
pub fn build(
    rt: &Runtime,
    q: &QueueFile,
    failed: &[&Bounced],
    new_id: &str,
    now: i64,
    to: &str,
    kind: Kind,
) -> Vec<u8> {
    let host = &rt.hostname;
    let (template, delayed, copy) = match kind {
        Kind::Failed => (&rt.templates.failure, false, false),
        Kind::Delayed => (&rt.templates.delay, true, false),
        Kind::PostmasterCopy(delay) => (
            if delay {
                &rt.templates.delay
            } else {
                &rt.templates.failure
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
        report.push_str(&format!(
            "Action: {action}\nStatus: {}\nDiagnostic-Code: X-Postfix; {}\n",
            b.dsn, b.text
        ));
        if delayed {
            let until = q.arrival + rt.maximal_queue_lifetime as i64;
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

/// Queues a notification to the sender for the failed recipients that
/// asked for one.
pub fn send(shared: &Shared, rt: &Runtime, q: &QueueFile, failed: &[Bounced]) {
    let wanted: Vec<&Bounced> = failed.iter().filter(|b| b.wants_failure_notice()).collect();
    if wanted.is_empty() {
        return;
    }
    // A bounce or notice (null sender) that cannot be delivered goes to
    // postmaster as a double bounce (2bounce_notice_recipient); a double
    // bounce that fails is only logged, so nothing can loop.
    let (recipient, what, envid) = if q.sender.is_empty() {
        if q.envid.as_deref() == Some(DOUBLE_BOUNCE) {
            shared.log.log(
                "bounce",
                &format!("{}: undeliverable postmaster notification discarded", q.id),
            );
            return;
        }
        (
            rt.cfg.get("2bounce_notice_recipient").to_string(),
            "postmaster non-delivery notification",
            Some(DOUBLE_BOUNCE),
        )
    } else {
        (q.sender.clone(), "sender non-delivery notification", None)
    };
    let new_id = super::internal_mail::new_id(rt);
    let now = clock::now_secs();
    let message = build(rt, q, &wanted, &new_id, now, &recipient, Kind::Failed);
    match super::internal_mail::enqueue(shared, new_id, &recipient, message, envid) {
        Ok(id) => shared.log.log("bounce", &format!("{}: {what}: {id}", q.id)),
        Err(e) => shared.log.log(
            "bounce",
            &format!("warning: {}: cannot queue notification: {e}", q.id),
        ),
    }
    if envid.is_none() {
        postmaster_copy(shared, rt, q, &wanted, false);
    }
}

/// notify_classes `bounce` / `delay`: a headers-only copy of the report to
/// bounce_notice_recipient / delay_notice_recipient (Postfix's "Postmaster
/// Copy"). Marked as a double bounce, so a failed copy goes nowhere.
fn postmaster_copy(shared: &Shared, rt: &Runtime, q: &QueueFile, failed: &[&Bounced], delay: bool) {
    let (class, param) = if delay {
        ("delay", "delay_notice_recipient")
    } else {
        ("bounce", "bounce_notice_recipient")
    };
    if !rt.notify_classes.iter().any(|c| c == class) {
        return;
    }
    let to = rt.cfg.get(param).to_string();
    let new_id = super::internal_mail::new_id(rt);
    let message = build(
        rt,
        q,
        failed,
        &new_id,
        clock::now_secs(),
        &to,
        Kind::PostmasterCopy(delay),
    );
    match super::internal_mail::enqueue(shared, new_id, &to, message, Some(DOUBLE_BOUNCE)) {
        Ok(id) => shared.log.log(
            "bounce",
            &format!("{}: postmaster {class} notification: {id}", q.id),
        ),
        Err(e) => shared.log.log(
            "bounce",
            &format!("warning: {}: cannot queue postmaster copy: {e}", q.id),
        ),
    }
}

/// A delay warning to the sender for the recipients still waiting, when
/// they asked for one (NOTIFY=DELAY, or no NOTIFY). Returns whether one
/// was queued.
pub fn send_delay(shared: &Shared, rt: &Runtime, q: &QueueFile, delayed: &[Bounced]) -> bool {
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
    let new_id = super::internal_mail::new_id(rt);
    let message = build(
        rt,
        q,
        &wanted,
        &new_id,
        clock::now_secs(),
        &q.sender,
        Kind::Delayed,
    );
    match super::internal_mail::enqueue(shared, new_id, &q.sender, message, None) {
        Ok(id) => {
            shared.log.log(
                "bounce",
                &format!("{}: sender delay notification: {id}", q.id),
            );
            postmaster_copy(shared, rt, q, &wanted, true);
            true
        }
        Err(e) => {
            shared.log.log(
                "bounce",
                &format!("warning: {}: cannot queue delay notification: {e}", q.id),
            );
            false
        }
    }
}
