//! The result of resolving one address, with every step that led to it, so
//! that `yubin trace` can explain a decision and the server can act on it.

use std::fmt::Write as _;

use serde::Serialize;

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

/// Where one final recipient's copy goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The final address (after alias expansion).
    pub recipient: String,
    /// `virtual`, `local`, `smtp` or `error`.
    pub transport: String,
    /// Maildir (ends in `/`) or mbox file path, for mailbox deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// `|command` or `/file` targets from aliases(5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// For `error`: the bounce reason, with its enhanced status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the error is temporary (defer) rather than permanent (bounce).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
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
                let _ = write!(out, "  => {} via {}", d.recipient, d.transport);
                if let Some(m) = &d.mailbox {
                    let kind = if m.ends_with('/') { "Maildir" } else { "mbox" };
                    let _ = write!(out, ": {kind} {m}");
                }
                if let Some(t) = &d.target {
                    let _ = write!(out, ": {t}");
                }
                if let (Some(u), Some(g)) = (d.uid, d.gid) {
                    let _ = write!(out, " (uid {u}, gid {g})");
                }
                if let Some(e) = &d.error {
                    let _ = write!(
                        out,
                        ": {} ({e})",
                        if d.temporary { "deferred" } else { "bounced" }
                    );
                }
                out.push('\n');
            }
        }
        out
    }
}
