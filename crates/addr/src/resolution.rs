//! The result of resolving one address, with every step that led to it, so
//! that `yubin trace` can explain a decision and the server can act on it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::nexthop::Nexthop;

/// Postfix's address classes (ADDRESS_CLASS_README), in the order
/// trivial-rewrite(8) tests them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Local,
    VirtualAlias,
    VirtualMailbox,
    Relay,
    Default,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Local => "local",
            Class::VirtualAlias => "virtual alias",
            Class::VirtualMailbox => "virtual mailbox",
            Class::Relay => "relay",
            Class::Default => "default",
        }
    }

    /// Whether mail for this class is for us or for a domain we relay to
    /// (reject_unauth_destination lets these through).
    pub fn is_authorized_destination(self) -> bool {
        self != Class::Default
    }

    /// This server delivers mail for the domain itself (local, virtual alias,
    /// virtual mailbox), rather than passing it on.
    pub fn is_final_destination(self) -> bool {
        matches!(
            self,
            Class::Local | Class::VirtualAlias | Class::VirtualMailbox
        )
    }
}

/// One line of the explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Nesting level in the expansion tree.
    pub depth: usize,
    pub text: String,
    /// `file:line` that decided this step, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// What smtpd answers to `RCPT TO` for this address (recipient validation
/// only; relay permission depends on the client and is decided in smtpd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    Reject {
        code: u16,
        enhanced: String,
        /// The full reply text after the enhanced code.
        text: String,
        /// What an admin can change to make the address valid.
        hint: String,
    },
}

impl Verdict {
    /// The whole reply line, e.g. `550 5.1.1 <root@localhost>: Recipient ...`.
    pub fn reply(&self) -> Option<String> {
        match self {
            Verdict::Accept => None,
            Verdict::Reject {
                code,
                enhanced,
                text,
                ..
            } => Some(format!("{code} {enhanced} {text}")),
        }
    }
}

/// Where one final recipient's copy goes, and which agent takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The final address (after alias expansion).
    pub recipient: String,
    pub agent: Agent,
}

/// Which mailbox service writes a mailbox: virtual(8) or local(8). They
/// differ in their size limit (virtual_mailbox_limit, mailbox_size_limit)
/// and in the name they log under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxKind {
    Virtual,
    Local,
}

/// A mailbox and the user that owns it (virtual_uid_maps/virtual_gid_maps,
/// or the passwd entry of a local user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub kind: MailboxKind,
    pub path: String,
    pub uid: u32,
    pub gid: u32,
}

/// The two names smtp(8) runs under in Postfix's master.cf: `smtp`
/// (default_transport) and `relay` (relay_transport). Logs, defer_transports
/// and the per-transport limits see the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpService {
    Smtp,
    Relay,
}

/// The delivery agents (Postfix's transports), each implemented in the
/// deliver crate and chosen there by a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// A Maildir (the path ends in `/`).
    Maildir(Mailbox),
    /// An mbox file.
    Mbox(Mailbox),
    /// `|command` of aliases(5) (the command without the `|`).
    Command(String),
    /// `/file` of aliases(5).
    File(String),
    /// smtp(8) to a next hop (`[host]`, or a domain looked up by MX),
    /// under the service name that routed it (`smtp` or `relay`).
    Smtp {
        service: SmtpService,
        nexthop: Nexthop,
    },
    /// lmtp(8) to a next hop, in lmtp(8)'s form as [`LmtpNexthop`]'s
    /// Display writes it (`unix:private/dovecot-lmtp`, `inet:host:24`):
    /// checked when routed, so `LmtpNexthop::parse` of it cannot fail.
    Lmtp { nexthop: String },
    /// error(8) (and address errors): the reason with its enhanced status
    /// code; temporary errors defer instead of bouncing.
    Error { reason: String, temporary: bool },
    /// discard(8): accepted and dropped, with the reason logged.
    Discard(String),
}

impl Delivery {
    /// The transport name, as master.cf and the logs call it.
    pub fn transport(&self) -> &'static str {
        match &self.agent {
            Agent::Maildir(m) | Agent::Mbox(m) => match m.kind {
                MailboxKind::Virtual => "virtual",
                MailboxKind::Local => "local",
            },
            Agent::Command(_) => "pipe",
            Agent::File(_) => "file",
            Agent::Smtp {
                service: SmtpService::Smtp,
                ..
            } => "smtp",
            Agent::Smtp {
                service: SmtpService::Relay,
                ..
            } => "relay",
            Agent::Lmtp { .. } => "lmtp",
            Agent::Error { .. } => "error",
            Agent::Discard(_) => "discard",
        }
    }

    /// The mailbox (Maildir ends in `/`), for mailbox deliveries.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match &self.agent {
            Agent::Maildir(m) | Agent::Mbox(m) => Some(m),
            _ => None,
        }
    }

    /// The target as aliases(5) wrote it (`|command`, `/file`), or the next
    /// hop of a relay transport.
    pub fn target(&self) -> Option<String> {
        match &self.agent {
            Agent::Command(c) => Some(format!("|{c}")),
            Agent::File(f) => Some(f.clone()),
            Agent::Smtp { nexthop, .. } => Some(nexthop.to_string()),
            Agent::Lmtp { nexthop } => Some(nexthop.clone()),
            _ => None,
        }
    }

    pub fn uid(&self) -> Option<u32> {
        self.mailbox().map(|m| m.uid)
    }

    pub fn gid(&self) -> Option<u32> {
        self.mailbox().map(|m| m.gid)
    }

    /// For `error`: the reason, with its enhanced status code.
    pub fn error(&self) -> Option<&str> {
        match &self.agent {
            Agent::Error { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Whether the error is temporary (defer) rather than permanent (bounce).
    pub fn temporary(&self) -> bool {
        matches!(
            self.agent,
            Agent::Error {
                temporary: true,
                ..
            }
        )
    }
}

/// `yubin trace --json` keeps its flat form: recipient, transport,
/// mailbox, target, uid, gid, error, temporary.
impl Serialize for Delivery {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Delivery", 8)?;
        st.serialize_field("recipient", &self.recipient)?;
        st.serialize_field("transport", self.transport())?;
        match self.mailbox() {
            Some(m) => st.serialize_field("mailbox", &m.path)?,
            None => st.skip_field("mailbox")?,
        }
        match self.target() {
            Some(t) => st.serialize_field("target", &t)?,
            None => st.skip_field("target")?,
        }
        match self.mailbox() {
            Some(m) => {
                st.serialize_field("uid", &m.uid)?;
                st.serialize_field("gid", &m.gid)?;
            }
            None => {
                st.skip_field("uid")?;
                st.skip_field("gid")?;
            }
        }
        match self.error() {
            Some(e) => st.serialize_field("error", e)?,
            None => st.skip_field("error")?,
        }
        if self.temporary() {
            st.serialize_field("temporary", &true)?;
        } else {
            st.skip_field("temporary")?;
        }
        st.end()
    }
}

/// The answer for one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// As given (internal form).
    pub address: String,
    /// After canonicalisation (`@$myorigin` appended, domain lower-cased).
    pub canonical: String,
    pub class: Class,
    pub verdict: Verdict,
    pub deliveries: Vec<Delivery>,
    pub steps: Vec<Step>,
}

impl Resolution {
    /// The explanation for a person, as `yubin trace` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.address);
        for s in &self.steps {
            let _ = write!(out, "{}{}", "  ".repeat(s.depth + 1), s.text);
            if let Some(src) = &s.source {
                let _ = write!(out, "  [{src}]");
            }
            out.push('\n');
        }
        match &self.verdict {
            Verdict::Accept => {
                let _ = writeln!(out, "  RCPT TO: accepted (250 2.1.5 Ok)");
            }
            Verdict::Reject {
                code,
                enhanced,
                text,
                hint,
            } => {
                let _ = writeln!(out, "  RCPT TO: rejected: {code} {enhanced} {text}");
                let _ = writeln!(out, "  to accept it: {hint}");
            }
        }
        if matches!(self.verdict, Verdict::Accept) {
            for d in &self.deliveries {
                let _ = write!(out, "  => {} via {}", d.recipient, d.transport());
                if let Some(m) = d.mailbox() {
                    let kind = match d.agent {
                        Agent::Maildir(_) => "Maildir",
                        _ => "mbox",
                    };
                    let _ = write!(out, ": {kind} {}", m.path);
                }
                if let Some(t) = d.target() {
                    let _ = write!(out, ": {t}");
                }
                if let (Some(u), Some(g)) = (d.uid(), d.gid()) {
                    let _ = write!(out, " (uid {u}, gid {g})");
                }
                if let Some(e) = d.error() {
                    let _ = write!(
                        out,
                        ": {} ({e})",
                        if d.temporary() { "deferred" } else { "bounced" }
                    );
                }
                out.push('\n');
            }
        }
        out
    }
}
