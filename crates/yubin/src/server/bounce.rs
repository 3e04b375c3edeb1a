//! Non-delivery notifications (RFC 3464 multipart/report), in the layout and
//! wording of Postfix's bounce(8) default template, honouring NOTIFY=NEVER
//! and RET=HDRS (RFC 3461). A bounce is sent from the null sender and so
//! never bounces again; bounces of bounces are only logged.

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
}

/// Builds the notification to `to` (the sender, or postmaster for a double bounce).
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
    let boundary = format!("{new_id}.{now}/{host}");
    let mut human = String::new();
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
        let action = if kind == Kind::Delayed {
            "delayed"
        } else {
            "failed"
        };
        report.push_str(&format!(
            "Action: {action}\nStatus: {}\nDiagnostic-Code: X-Postfix; {}\n",
            b.dsn, b.text
        ));
        if kind == Kind::Delayed {
            let until = q.arrival + rt.maximal_queue_lifetime as i64;
            report.push_str(&format!("Will-Retry-Until: {}\n", clock::rfc5322(until)));
        }
    }
    // A delay warning returns the headers only, as Postfix's does.
    let headers_only = q.ret.as_deref() == Some("HDRS") || kind == Kind::Delayed;
    let (subject, intro) = match kind {
        Kind::Failed => (
            "Undelivered Mail Returned to Sender",
            "I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.\n".to_string(),
        ),
        Kind::Delayed => (
            "Delayed Mail (still being retried)",
            format!(
                "####################################################################\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
                 ####################################################################\n\
                 \n\
                 Your message could not be delivered for more than {} hour(s).\n\
                 It will be retried until it is {} day(s) old.\n",
                (rt.delay_warning_time / 3600).max(1),
                (rt.maximal_queue_lifetime / 86400).max(1)
            ),
        ),
    };
    let (returned_type, returned) = if headers_only {
        ("text/rfc822-headers", headers_of(&q.message))
    } else {
        ("message/rfc822", &q.message[..])
    };
    let mut out = format!(
        "From: MAILER-DAEMON@{host} (Mail Delivery System)\n\
         Subject: {subject}\n\
         To: {to}\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n\
         Content-Transfer-Encoding: 8bit\n\
         Message-Id: <{new_id}.{now}@{host}>\n\
         Date: {date}\n\
         \n\
         This is a MIME-encapsulated message.\n\
         \n\
         --{boundary}\n\
         Content-Description: Notification\n\
         Content-Type: text/plain; charset=utf-8\n\
         \n\
         This is the mail system at host {host}.\n\
         \n\
         {intro}\
         \n\
         For further assistance, please send mail to postmaster.\n\
         \n\
         If you do so, please include this problem report. You can\n\
         delete your own text from the attached returned message.\n\
         \n\
         \x20                  The mail system\n\
         \n\
         {human}\n\
         --{boundary}\n\
         Content-Description: Delivery report\n\
         Content-Type: message/delivery-status\n\
         \n\
         {report}\n\
         --{boundary}\n\
         Content-Description: Undelivered {what}\n\
         Content-Type: {returned_type}\n\
         Content-Transfer-Encoding: 8bit\n\
         \n",
        date = clock::rfc5322(now),
        what = if headers_only {
            "Message Headers"
        } else {
            "Message"
        },
    )
    .into_bytes();
    out.extend_from_slice(returned);
    if !returned.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
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
