//! The agents behind [`Agent`]: one match chooses how a copy is delivered.
//! Mailboxes as virtual(8)/local(8), aliases(5) commands and files as
//! local(8), `error:` as error(8), `discard:` as discard(8). Relaying
//! (smtp(8)/lmtp(8)) defers until the SMTP client agent is in place.

use std::path::Path;
use std::time::Duration;

use yubin_addr::{Agent, Delivery, Mailbox, MailboxKind};

use crate::{maildir, mbox, pipe, Failure, Message};

/// The agents' settings, built once from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// virtual_mailbox_limit (bytes; 0 = none).
    pub virtual_mailbox_limit: u64,
    /// mailbox_size_limit (bytes; 0 = none), also for `/file` targets.
    pub mailbox_size_limit: u64,
    /// allow_mail_to_commands lists `alias`.
    pub alias_commands: bool,
    /// allow_mail_to_files lists `alias`.
    pub alias_files: bool,
    /// How long a `|command` may run (command_time_limit).
    pub command_time_limit: Duration,
    /// enable_original_recipient: duplicates are eliminated per (original
    /// recipient, final recipient) pair, so two addresses that lead to one
    /// mailbox each get their copy with its own X-Original-To (postconf(5));
    /// with `no`, per final recipient.
    pub original_recipient: bool,
    /// duplicate_filter_limit: how many addresses the duplicate filter
    /// remembers per message (0 = no limit); past it, copies are no
    /// longer filtered, as in Postfix.
    pub duplicate_filter_limit: usize,
}

impl Default for Settings {
    /// Postfix's defaults.
    fn default() -> Settings {
        Settings {
            virtual_mailbox_limit: 51_200_000,
            mailbox_size_limit: 51_200_000,
            alias_commands: true,
            alias_files: true,
            command_time_limit: Duration::from_secs(1000),
            original_recipient: true,
            duplicate_filter_limit: 1000,
        }
    }
}

/// Runs `|command` and `/file` targets as default_privs: the daemon's
/// privilege-separated helper when it was started as root.
pub trait AsUser {
    fn deliver(&self, file: bool, target: &str, m: &Message<'_>, limit: u64)
        -> Result<(), Failure>;
}

/// What one delivery needs besides the message.
pub struct Context<'a> {
    pub settings: &'a Settings,
    /// Command and file targets run through this when set.
    pub as_user: Option<&'a dyn AsUser>,
    /// The message was tried before: Maildir looks for its own earlier copy.
    pub retry: bool,
    /// The SMTP client (smtp(8)), provided by the daemon; `None`: relay
    /// copies stay queued with a clear reason.
    pub relay: Option<&'a dyn Relay>,
}

/// One relay copy's result and the `relay=` value of its log line
/// (`mx.example.org[192.0.2.1]:25`, or `none` when no server answered).
#[derive(Debug, Clone)]
pub struct Relayed {
    pub result: Result<String, Failure>,
    pub relay: String,
}

/// The relay agent (smtp(8)): delivers copies of one message for one
/// destination in one transaction. Implemented by the daemon around
/// yubin-outbound, so that this crate stays free of sockets and async.
pub trait Relay: Sync {
    /// `nexthop` as the resolver gave it; one result per copy, in order.
    fn relay(
        &self,
        nexthop: &str,
        copies: &[(&Delivery, Message<'_>)],
        envelope: &Envelope<'_>,
    ) -> Vec<Relayed>;
}

/// What a relay passes on from the queued envelope: RFC 3461 DSN
/// parameters and the RFC 6531 SMTPUTF8 request.
#[derive(Debug, Clone, Default)]
pub struct Envelope<'a> {
    /// RET=FULL|HDRS.
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
    pub smtputf8: bool,
    /// Per copy, in order: NOTIFY and ORCPT as received.
    pub dsn: Vec<(Option<&'a str>, Option<&'a str>)>,
}

/// The daemon name and `relay=` value Postfix logs for this agent.
pub fn log_names(agent: &Agent) -> (&'static str, &'static str) {
    match agent {
        Agent::Maildir(m) | Agent::Mbox(m) => match m.kind {
            MailboxKind::Virtual => ("virtual", "virtual"),
            MailboxKind::Local => ("local", "local"),
        },
        Agent::Command(_) | Agent::File(_) => ("local", "local"),
        Agent::Error { .. } => ("error", "none"),
        Agent::Discard(_) => ("discard", "none"),
        Agent::Lmtp { .. } => ("lmtp", "none"),
        Agent::Smtp { .. } => ("smtp", "none"),
    }
}

/// Delivers one copy; `Ok(text)` is the `status=sent (text)` of the log.
pub fn deliver(d: &Delivery, m: &Message<'_>, cx: &Context<'_>) -> Result<String, Failure> {
    match &d.agent {
        Agent::Error { reason, temporary } => error(reason, *temporary),
        Agent::Maildir(mb) => {
            check_owner(mb)?;
            let p = maildir::deliver(Path::new(&mb.path), m, cx.retry, limit(mb, cx.settings))?;
            chown_delivery(mb, &p);
            Ok("delivered to maildir".into())
        }
        Agent::Mbox(mb) => {
            check_owner(mb)?;
            mbox::deliver(Path::new(&mb.path), m, limit(mb, cx.settings))?;
            chown_delivery(mb, Path::new(&mb.path));
            Ok("delivered to mailbox".into())
        }
        Agent::Command(cmd) => command(cmd, m, cx),
        Agent::File(path) => file(path, m, cx),
        Agent::Discard(text) => Ok(text.clone()),
        Agent::Smtp { .. } | Agent::Lmtp { .. } => relay(
            std::slice::from_ref(&(d, m.clone())),
            &Envelope::default(),
            cx,
        )
        .pop()
        .map(|r| r.result)
        .unwrap_or_else(|| Err(Failure::temp("4.3.0", "no delivery"))),
    }
}

/// Whether this agent relays (smtp(8), lmtp(8)): its copies go out in
/// batches per destination, see [`relay`].
pub fn is_relay(agent: &Agent) -> bool {
    matches!(agent, Agent::Smtp { .. } | Agent::Lmtp { .. })
}

/// One relay delivery: copies of one message for one destination (same
/// transport and next hop), at most the destination's recipient limit, as
/// one SMTP/LMTP transaction would carry them. One result per copy, in order.
pub fn relay(
    copies: &[(&Delivery, Message<'_>)],
    envelope: &Envelope<'_>,
    cx: &Context<'_>,
) -> Vec<Relayed> {
    let nexthop = copies
        .first()
        .and_then(|(d, _)| d.target())
        .unwrap_or_default();
    match cx.relay {
        Some(agent) => agent.relay(&nexthop, copies, envelope),
        _ => copies
            .iter()
            .map(|_| Relayed {
                result: Err(Failure::temp(
                    "4.4.1",
                    format!(
                        "delivery to remote domains ({nexthop}) is not available in this yubin release: relaying is planned; the message stays queued"
                    ),
                )),
                relay: "none".into(),
            })
            .collect(),
    }
}

fn limit(mb: &Mailbox, s: &Settings) -> u64 {
    match mb.kind {
        MailboxKind::Virtual => s.virtual_mailbox_limit,
        MailboxKind::Local => s.mailbox_size_limit,
    }
}

/// error(8): the reason starts with its enhanced status code.
fn error(reason: &str, temporary: bool) -> Result<String, Failure> {
    let (dsn, text) = reason.split_once(' ').unwrap_or(("5.0.0", reason));
    Err(if temporary {
        Failure::temp(dsn, text)
    } else {
        Failure::perm(dsn, text)
    })
}

/// local(8): aliases(5) commands only where allow_mail_to_commands lists
/// `alias`.
fn command(cmd: &str, m: &Message<'_>, cx: &Context<'_>) -> Result<String, Failure> {
    if !cx.settings.alias_commands {
        return Err(Failure::perm("5.7.1", "mail to command is restricted"));
    }
    match cx.as_user {
        Some(helper) => helper.deliver(false, cmd, m, 0)?,
        None => pipe::command(cmd, m, cx.settings.command_time_limit)?,
    }
    Ok(format!("delivered to command: {cmd}"))
}

/// local(8): aliases(5) files only where allow_mail_to_files lists `alias`.
fn file(path: &str, m: &Message<'_>, cx: &Context<'_>) -> Result<String, Failure> {
    if !cx.settings.alias_files {
        return Err(Failure::perm("5.7.1", "mail to file is restricted"));
    }
    let limit = cx.settings.mailbox_size_limit;
    match cx.as_user {
        Some(helper) => helper.deliver(true, path, m, limit)?,
        None => mbox::deliver(Path::new(path), m, limit)?,
    }
    Ok(format!("delivered to file: {path}"))
}

/// Files must end up owned by the uid/gid of virtual_uid_maps and
/// virtual_gid_maps. Running as root, yubin chowns them; running as
/// mail_owner, it can only write as itself, so a different uid is a
/// configuration error reported as a deferral (nothing is written).
fn check_owner(mb: &Mailbox) -> Result<(), Failure> {
    let me = yubin_sys::geteuid();
    if me != 0 && me != mb.uid && mb.kind == MailboxKind::Virtual {
        return Err(Failure::temp(
            "4.3.0",
            format!("mail system configuration error: virtual_uid_maps gives uid {} but yubin runs as uid {me}; set mail_owner to the user that owns virtual_mailbox_base", mb.uid),
        ));
    }
    Ok(())
}

fn chown_delivery(mb: &Mailbox, path: &Path) {
    if !yubin_sys::is_root() {
        return;
    }
    // lchown: a link planted in the mailbox must not redirect the chown.
    let chown = |p: &Path| {
        let _ = yubin_sys::lchown(p, Some(mb.uid), Some(mb.gid));
    };
    chown(path);
    if mb.path.ends_with('/') {
        let dir = Path::new(&mb.path);
        chown(dir);
        for sub in ["tmp", "new", "cur"] {
            chown(&dir.join(sub));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message<'static> {
        Message {
            queue_id: "4ABCD",
            sender: "a@example.org",
            original_recipient: "b@example.org",
            recipient: "b@example.org",
            content: b"Subject: t\n\nhi\n",
            hostname: "mail.example.org",
        }
    }

    fn run(agent: Agent, settings: &Settings) -> Result<String, Failure> {
        let d = Delivery {
            recipient: "b@example.org".into(),
            agent,
        };
        deliver(
            &d,
            &msg(),
            &Context {
                settings,
                as_user: None,
                retry: false,
                relay: None,
            },
        )
    }

    #[test]
    fn each_agent_by_its_variant() {
        let s = Settings::default();
        let dir = tempfile::tempdir().unwrap();
        let uid = yubin_sys::geteuid();
        let gid = std::fs::metadata(dir.path())
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.gid()
            })
            .unwrap();
        let md = format!("{}/md/", dir.path().display());
        let mb = Mailbox {
            kind: MailboxKind::Virtual,
            path: md.clone(),
            uid,
            gid,
        };
        assert_eq!(run(Agent::Maildir(mb), &s).unwrap(), "delivered to maildir");
        assert_eq!(std::fs::read_dir(format!("{md}new")).unwrap().count(), 1);
        let f = format!("{}/file", dir.path().display());
        assert_eq!(
            run(Agent::File(f.clone()), &s).unwrap(),
            format!("delivered to file: {f}")
        );
        assert!(std::fs::read_to_string(&f).unwrap().contains("hi\n"));
        let e = run(
            Agent::Error {
                reason: "5.1.1 unknown user".into(),
                temporary: false,
            },
            &s,
        )
        .unwrap_err();
        assert_eq!(
            (e.temporary, e.dsn.as_str(), e.text.as_str()),
            (false, "5.1.1", "unknown user")
        );
        let e = run(
            Agent::Smtp {
                nexthop: "[example.net]".into(),
            },
            &s,
        )
        .unwrap_err();
        assert!(
            e.temporary
                && e.text
                    .contains("delivery to remote domains ([example.net]) is not available")
        );
        assert_eq!(
            run(Agent::Discard("discarded".into()), &s).unwrap(),
            "discarded"
        );
        let closed = Settings {
            alias_commands: false,
            alias_files: false,
            ..Settings::default()
        };
        assert_eq!(
            run(Agent::Command("cat".into()), &closed).unwrap_err().text,
            "mail to command is restricted"
        );
        assert_eq!(
            run(Agent::File(f), &closed).unwrap_err().text,
            "mail to file is restricted"
        );
    }
}
