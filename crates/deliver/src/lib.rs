//! Delivery: the agents (Maildir and mbox as virtual(8) and local(8) write
//! them, aliases(5) `/file` and `|command`, error, discard; relay's entry
//! point), chosen by a match on the resolver's `Agent`, and the run of one
//! queued message over them. It does not schedule, and owns no socket.

pub mod agent;
pub mod envelope_headers;
pub mod maildir;
pub mod mbox;
pub mod pipe;
pub mod queued;

/// A failed delivery: temporary (retry later) or permanent (bounce), with
/// the RFC 3463 enhanced status code and the text for the log and DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub temporary: bool,
    pub dsn: String,
    pub text: String,
    /// For a remote server's refusal: its name (`Remote-MTA: dns; NAME`)
    /// and the typed diagnostic (`smtp; 550 5.1.1 ...`), RFC 3464 section 2.3.
    pub remote: Option<(String, String)>,
}

impl Failure {
    pub fn temp(dsn: &str, text: impl Into<String>) -> Failure {
        Failure {
            temporary: true,
            dsn: dsn.into(),
            text: text.into(),
            remote: None,
        }
    }
    pub fn perm(dsn: &str, text: impl Into<String>) -> Failure {
        Failure {
            temporary: false,
            dsn: dsn.into(),
            text: text.into(),
            remote: None,
        }
    }
    /// The remote server that refused, and its reply as a Diagnostic-Code.
    pub fn with_remote(mut self, mta: impl Into<String>, diagnostic: impl Into<String>) -> Failure {
        self.remote = Some((mta.into(), diagnostic.into()));
        self
    }

    /// An I/O error: out of space and quota are temporary, as in Postfix.
    pub fn io(what: &str, e: &std::io::Error) -> Failure {
        Failure::temp("4.2.0", format!("{what}: {e}"))
    }
}

/// What every agent needs to know about the message.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub queue_id: &'a str,
    /// Envelope sender, empty for `<>`.
    pub sender: &'a str,
    /// The recipient as originally given (for X-Original-To).
    pub original_recipient: &'a str,
    /// The final recipient (for Delivered-To).
    pub recipient: &'a str,
    pub content: &'a [u8],
    pub hostname: &'a str,
}
