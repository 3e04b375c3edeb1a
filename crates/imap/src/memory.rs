//! An in-memory mail store answering [`Request`]s with the semantics the
//! Maildir store has (UIDs ascending per folder, `\Recent` claimed once),
//! and a loop that drives a [`Session`] against it. Tests and the fuzz
//! target use them; `yubin serve` uses the Maildir store instead.

use std::collections::BTreeMap;

use crate::session::{Action, AuthOutcome, Session};
use crate::store::{
    Flags, MailboxEntry, MessageData, MessageMeta, Reply, Request, Snapshot, SpecialUse, StoreError,
};

#[derive(Debug, Clone)]
struct Message {
    uid: u32,
    flags: Flags,
    unclaimed: bool,
    modseq: u64,
    date: i64,
    data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Folder {
    uidvalidity: u32,
    uidnext: u32,
    /// Every change (arrival, flag change, expunge) takes the next one.
    highest_modseq: u64,
    messages: Vec<Message>,
    subscribed: bool,
}

impl Folder {
    fn bump(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }
}

/// A user's mailboxes in memory.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    folders: BTreeMap<String, Folder>,
    next_validity: u32,
    /// What QUOTA reports (none by default).
    pub quota: Option<crate::store::QuotaUsage>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// INBOX and the special-use folders of a new user.
    pub fn new() -> MemoryStore {
        let mut s = MemoryStore {
            folders: BTreeMap::new(),
            next_validity: 1,
            quota: None,
        };
        for n in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"] {
            s.create(n);
        }
        s
    }

    fn create(&mut self, name: &str) {
        self.folders.insert(
            name.to_string(),
            Folder {
                uidvalidity: self.next_validity,
                uidnext: 1,
                highest_modseq: 1,
                messages: Vec::new(),
                subscribed: true,
            },
        );
        self.next_validity += 1;
    }

    /// New mail, as the MTA would deliver it to `new/`.
    pub fn deliver(&mut self, folder: &str, data: &[u8]) {
        if let Some(f) = self.folders.get_mut(folder) {
            let uid = f.uidnext;
            f.uidnext += 1;
            let modseq = f.bump();
            f.messages.push(Message {
                uid,
                flags: Flags::new(),
                unclaimed: true,
                modseq,
                date: 1_700_000_000,
                data: data.to_vec(),
            });
        }
    }

    fn special(name: &str) -> Option<SpecialUse> {
        match name {
            "Sent" => Some(SpecialUse::Sent),
            "Drafts" => Some(SpecialUse::Drafts),
            "Trash" => Some(SpecialUse::Trash),
            "Junk" => Some(SpecialUse::Junk),
            "Archive" => Some(SpecialUse::Archive),
            _ => None,
        }
    }

    pub fn execute(&mut self, req: Request) -> Reply {
        match req {
            Request::ListMailboxes => Reply::Mailboxes(
                self.folders
                    .iter()
                    .map(|(n, f)| MailboxEntry {
                        name: n.clone(),
                        special_use: Self::special(n),
                        subscribed: f.subscribed,
                        exists: true,
                    })
                    .collect(),
            ),
            Request::Create { name } => {
                if self.folders.contains_key(&name) {
                    return Reply::Failed(StoreError::AlreadyExists);
                }
                self.create(&name);
                Reply::Done
            }
            Request::Delete { name } => match self.folders.remove(&name) {
                Some(_) => Reply::Done,
                None => Reply::Failed(StoreError::NoSuchMailbox),
            },
            Request::Rename { from, to } => {
                if self.folders.contains_key(&to) {
                    return Reply::Failed(StoreError::AlreadyExists);
                }
                match self.folders.remove(&from) {
                    Some(f) => {
                        self.folders.insert(to, f);
                        Reply::Done
                    }
                    None => Reply::Failed(StoreError::NoSuchMailbox),
                }
            }
            Request::Subscribe { name, subscribe } => match self.folders.get_mut(&name) {
                Some(f) => {
                    f.subscribed = subscribe;
                    Reply::Done
                }
                None => Reply::Failed(StoreError::NoSuchMailbox),
            },
            Request::Open { name, claim_recent } => {
                let Some(f) = self.folders.get_mut(&name) else {
                    return Reply::Failed(StoreError::NoSuchMailbox);
                };
                let messages = f
                    .messages
                    .iter_mut()
                    .map(|m| {
                        let recent = m.unclaimed;
                        if claim_recent {
                            m.unclaimed = false;
                        }
                        MessageMeta {
                            uid: m.uid,
                            flags: m.flags.clone(),
                            recent,
                            modseq: m.modseq,
                        }
                    })
                    .collect();
                Reply::Snapshot(Snapshot {
                    uidvalidity: f.uidvalidity,
                    uidnext: f.uidnext,
                    highest_modseq: f.highest_modseq,
                    messages,
                })
            }
            Request::Append {
                mailbox,
                flags,
                internal_date,
                message,
            } => {
                let Some(f) = self.folders.get_mut(&mailbox) else {
                    return Reply::Failed(StoreError::NoSuchMailbox);
                };
                let uid = f.uidnext;
                f.uidnext += 1;
                let modseq = f.bump();
                f.messages.push(Message {
                    uid,
                    flags,
                    unclaimed: true,
                    modseq,
                    date: internal_date.unwrap_or(1_700_000_000),
                    data: message,
                });
                Reply::Appended {
                    uidvalidity: f.uidvalidity,
                    uid,
                }
            }
            Request::Fetch {
                mailbox,
                uids,
                content,
            } => {
                let Some(f) = self.folders.get(&mailbox) else {
                    return Reply::Failed(StoreError::NoSuchMailbox);
                };
                Reply::Messages(
                    uids.iter()
                        .filter_map(|u| f.messages.iter().find(|m| m.uid == *u))
                        .map(|m| MessageData {
                            uid: m.uid,
                            internal_date: m.date,
                            size: m.data.len() as u64,
                            content: content.then(|| m.data.clone()),
                        })
                        .collect(),
                )
            }
            Request::Store {
                mailbox,
                uids,
                op,
                flags,
                unchanged_since,
            } => {
                let Some(f) = self.folders.get_mut(&mailbox) else {
                    return Reply::Failed(StoreError::NoSuchMailbox);
                };
                let (mut out, mut modified) = (Vec::new(), Vec::new());
                for uid in uids {
                    let Some(i) = f.messages.iter().position(|m| m.uid == uid) else {
                        continue;
                    };
                    let m = &f.messages[i];
                    if unchanged_since.is_some_and(|u| m.modseq > u) {
                        modified.push(uid);
                        out.push((uid, m.flags.clone(), m.modseq));
                        continue;
                    }
                    let new = m.flags.apply(op, &flags);
                    if new != m.flags {
                        let modseq = f.bump();
                        let m = &mut f.messages[i];
                        m.flags = new;
                        m.modseq = modseq;
                    }
                    let m = &f.messages[i];
                    out.push((uid, m.flags.clone(), m.modseq));
                }
                Reply::Flags {
                    flags: out,
                    modified,
                }
            }
            Request::Copy {
                from,
                uids,
                to,
                remove_source,
            } => {
                let Some(src) = self.folders.get(&from) else {
                    return Reply::Failed(StoreError::NoSuchMailbox);
                };
                let copies: Vec<Message> = src
                    .messages
                    .iter()
                    .filter(|m| uids.contains(&m.uid))
                    .cloned()
                    .collect();
                let Some(dst) = self.folders.get_mut(&to) else {
                    return Reply::Failed(StoreError::NoSuchMailbox);
                };
                let mut map = Vec::new();
                for mut m in copies {
                    let new = dst.uidnext;
                    dst.uidnext += 1;
                    m.modseq = dst.bump();
                    map.push((m.uid, new));
                    m.uid = new;
                    m.unclaimed = true;
                    dst.messages.push(m);
                }
                let uidvalidity = dst.uidvalidity;
                if remove_source {
                    if let Some(src) = self.folders.get_mut(&from) {
                        src.messages.retain(|m| !uids.contains(&m.uid));
                        src.bump();
                    }
                }
                Reply::Copied { uidvalidity, map }
            }
            Request::Expunge { mailbox, uids } => {
                let Some(f) = self.folders.get_mut(&mailbox) else {
                    return Reply::Failed(StoreError::NoSuchMailbox);
                };
                let gone: Vec<u32> = f
                    .messages
                    .iter()
                    .filter(|m| uids.contains(&m.uid))
                    .map(|m| m.uid)
                    .collect();
                f.messages.retain(|m| !uids.contains(&m.uid));
                if !gone.is_empty() {
                    f.bump();
                }
                Reply::Expunged(gone)
            }
            Request::Quota => Reply::Quota(self.quota),
        }
    }
}

/// Runs the session until it needs input: writes go to the returned
/// bytes, store requests to `store`, credentials are good when the
/// password is `secret`, STARTTLS completes at once.
pub fn drive(session: &mut Session, store: &mut MemoryStore) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(a) = session.next_action() {
        match a {
            Action::Write(b) => out.extend(b),
            Action::Authenticate(c) => {
                let ok = if c.password == b"secret" {
                    AuthOutcome::Success
                } else {
                    AuthOutcome::Failure
                };
                session.auth_result(&c.user, ok);
            }
            Action::StartTls => session.tls_established(),
            Action::Store(r) => {
                let reply = store.execute(r);
                session.store_reply(reply);
            }
            // The in-memory driver speaks uncompressed bytes to its tests.
            Action::Idle | Action::Compress => {}
            Action::Close => break,
        }
    }
    out
}
