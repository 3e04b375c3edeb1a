//! The one way out of this crate: a finished message, from the null sender,
//! handed to the queue. The daemon implements [`Submit`] (group commit, then
//! a wake-up for the queue manager); tests implement it with a Vec.

use yubin_maillog::MailLog;
use yubin_queue::{QueueFile, QueuedRecipient};

use crate::Settings;

/// Queues a complete message durably and returns its queue id.
pub trait Submit {
    fn submit(&self, file: QueueFile) -> Result<String, String>;
}

/// What every notification needs: the settings in force, the queue to hand
/// messages to, and the log for Postfix's `bounce:` / `smtpd:` lines.
pub struct Notify<'a> {
    pub settings: &'a Settings,
    pub queue: &'a dyn Submit,
    pub log: &'a MailLog,
}

impl Notify<'_> {
    /// Queues `message` (LF line ends, headers included) from `<>` to
    /// `recipient` with NOTIFY=NEVER; `envid` marks a double bounce, which
    /// is never sent on again when it fails.
    pub(crate) fn enqueue(
        &self,
        id: String,
        recipient: &str,
        message: Vec<u8>,
        envid: Option<&str>,
        now: i64,
    ) -> Result<String, String> {
        self.queue.submit(QueueFile {
            id,
            arrival: now,
            sender: String::new(),
            client: "local".into(),
            helo: String::new(),
            protocol: "local".into(),
            ret: None,
            envid: envid.map(str::to_string),
            smtputf8: false,
            recipients: vec![QueuedRecipient {
                address: recipient.to_string(),
                notify: Some("NEVER".into()),
                orcpt: None,
            }],
            message,
        })
    }
}
