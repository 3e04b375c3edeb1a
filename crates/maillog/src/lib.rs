//! mail.log in Postfix's format, and the clock formats mail needs.
//!
//! Every line is `Mon DD HH:MM:SS host syslog_name/daemon[pid]: text`, the
//! layout pflogsumm and fail2ban's postfix filters parse. The default
//! `syslog_name` is `postfix` so those tools work on yubin's log unchanged
//! (docs/logging.md).

pub mod clock;
mod writer;

pub use writer::{MailLog, Target};

/// `delay=` and `delays=` numbers as Postfix prints them: 0, 0.04, 1.2, 12
/// (two significant decimals below 10 s, whole seconds above).
pub fn fmt_delay(secs: f64) -> String {
    // NaN and negatives print as 0.
    if secs.is_nan() || secs < 0.005 {
        "0".into()
    } else if secs < 10.0 {
        let s = format!("{secs:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{}", secs.round() as u64)
    }
}
