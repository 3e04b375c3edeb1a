//! The durable mail queue under `queue_directory`: the durability boundary.
//!
//! A message is one file, named by its queue id, that moves between the
//! state directories `incoming/`, `active/`, `deferred/`, `hold/` and
//! `corrupt/` by rename, as in Postfix (QSHAPE_README). Files are written
//! and fsynced (file and directory) by the group committer before smtpd
//! answers `250 ... queued as ID`; the committer batches concurrent
//! messages so that one journal commit covers many of them. `schedule` is
//! the queue manager's decisions as pure logic (no clock, no I/O).

pub mod commit;
pub mod file;
pub mod id;
pub mod listing;
pub mod maildrop;
pub mod schedule;
pub mod spool;
pub mod status;

pub use commit::Committer;
pub use file::{QueueFile, QueuedRecipient};
pub use schedule::{Policy, Scheduler};
pub use spool::{Spool, State};
pub use status::Status;
