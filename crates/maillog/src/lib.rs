//! mail.log in Postfix's format, and the clock formats mail needs.
//!
//! Every line is `Mon DD HH:MM:SS host syslog_name/daemon[pid]: text`, the
//! layout pflogsumm and fail2ban's postfix filters parse. The default
//! `syslog_name` is `postfix` so those tools work on yubin's log unchanged
//! (docs/logging.md).

pub mod clock;
mod writer;

pub use writer::{MailLog, Target};
