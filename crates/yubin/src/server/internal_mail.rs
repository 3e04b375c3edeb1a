//! Mail the server writes itself (bounces, postmaster notices): queued from
//! the null sender through the same group commit as everything else.

use yubin_maillog::clock;
use yubin_queue::{QueueFile, QueuedRecipient};

use super::runtime::{QmgrMsg, Runtime, Shared};

/// A new queue id in the configured style.
pub fn new_id(rt: &Runtime) -> String {
    if rt.cfg.bool("enable_long_queue_ids").unwrap_or(false) {
        yubin_queue::id::long()
    } else {
        yubin_queue::id::short()
    }
}

/// Queues `message` (LF line ends, headers included) from `<>` to
/// `recipient`; returns the queue id. If it cannot be delivered, the
/// bounce code sends it on to postmaster as a double bounce (`envid` marks
/// a double bounce, which is never sent on again).
pub fn enqueue(
    shared: &Shared,
    id: String,
    recipient: &str,
    message: Vec<u8>,
    envid: Option<&str>,
) -> Result<String, String> {
    let q = QueueFile {
        id: id.clone(),
        arrival: clock::now_secs(),
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
    };
    let (tx, rx) = std::sync::mpsc::channel();
    shared.committer.commit(id.clone(), q.encode(), move |r| {
        let _ = tx.send(r);
    });
    match rx.recv() {
        Ok(Ok(())) => {
            let _ = shared.qmgr.send(QmgrMsg::New(id.clone()));
            Ok(id)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("queue committer stopped".into()),
    }
}
