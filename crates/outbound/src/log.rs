//! The mail.log line of one SMTP delivery attempt, in Postfix's words:
//! `ID: to=<r>, relay=host[ip]:port, delay=T, delays=a/b/c/d, dsn=X.Y.Z,
//! status=sent (250 2.0.0 Ok: queued as ABC)` (logged by `postfix/smtp`).

use std::time::Duration;

use yubin_maillog::fmt_delay;

use crate::agent::RcptResult;

/// Times the queue manager knows: `a` (before the queue manager: arrival
/// until the message became active) and `b` (in the queue manager).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueTimes {
    pub before_qmgr: Duration,
    pub in_qmgr: Duration,
    /// Arrival until now (`delay=`).
    pub total: Duration,
}

/// The text after `postfix/smtp[pid]: `.
pub fn delivery_line(
    queue_id: &str,
    to: &str,
    orig_to: Option<&str>,
    r: &RcptResult,
    q: QueueTimes,
) -> String {
    let orig = match orig_to {
        Some(o) if !o.eq_ignore_ascii_case(to) => format!(", orig_to=<{o}>"),
        _ => String::new(),
    };
    let sum = q.before_qmgr + q.in_qmgr + r.conn_setup + r.transmission;
    format!(
        "{queue_id}: to=<{to}>{orig}, relay={}, delay={}, delays={}/{}/{}/{}, dsn={}, status={} ({})",
        r.relay_field(),
        fmt_delay(q.total.max(sum).as_secs_f64()),
        fmt_delay(q.before_qmgr.as_secs_f64()),
        fmt_delay(q.in_qmgr.as_secs_f64()),
        fmt_delay(r.conn_setup.as_secs_f64()),
        fmt_delay(r.transmission.as_secs_f64()),
        r.dsn,
        r.status.as_str(),
        r.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Status;
    use yubin_smtp::{parse_reply, Enhanced};

    #[test]
    fn postfix_format() {
        let (reply, _) = parse_reply(b"250 2.0.0 Ok: queued as 4F2A1B\r\n")
            .unwrap()
            .unwrap();
        let r = RcptResult {
            status: Status::Sent,
            dsn: Enhanced::new(2, 0, 0),
            relay: "mx1.lab.test[10.0.0.10]:25".into(),
            text: "250 2.0.0 Ok: queued as 4F2A1B".into(),
            reply: Some(reply),
            remote_mta: Some("mx1.lab.test".into()),
            conn_setup: Duration::from_millis(30),
            transmission: Duration::from_millis(12),
            conn_use: 1,
        };
        let q = QueueTimes {
            before_qmgr: Duration::from_millis(100),
            in_qmgr: Duration::ZERO,
            total: Duration::from_millis(150),
        };
        assert_eq!(
            delivery_line("ABC", "u@example.test", None, &r, q),
            "ABC: to=<u@example.test>, relay=mx1.lab.test[10.0.0.10]:25, delay=0.15, delays=0.1/0/0.03/0.01, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F2A1B)"
        );
        assert_eq!(r.diagnostic_code(), "smtp; 250 2.0.0 Ok: queued as 4F2A1B");
        let reused = RcptResult { conn_use: 3, ..r };
        assert!(delivery_line("ABC", "u@example.test", None, &reused, q)
            .contains("relay=mx1.lab.test[10.0.0.10]:25, conn_use=3, delay=0.15"));
    }
}
