//! Log-line parsing: syslog framing, then a per-program message classifier.
//! Everything here is pure (bytes in, borrowed event out) so that the fuzz
//! targets and `yubin guard test` call exactly what the daemon runs.

pub mod host;
pub mod maillog;
pub mod sshd;
pub mod syslog;

pub use sshd::{Event, Kind};
pub use syslog::{Record, Stamp};

/// Longest line considered; longer lines are skipped (bounded work per line).
pub const MAX_LINE: usize = 64 * 1024;

/// Which service a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Sshd,
    Smtp,
    Imap,
}

impl Service {
    /// A flag bit per service (for compact per-host sets).
    pub fn bit(self) -> u8 {
        match self {
            Service::Sshd => 1,
            Service::Smtp => 2,
            Service::Imap => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Sshd => "sshd",
            Service::Smtp => "smtp",
            Service::Imap => "imap",
        }
    }
}

/// One parsed line: its syslog record, service and event.
#[derive(Debug, Clone, Copy)]
pub struct Parsed<'a> {
    pub record: Record<'a>,
    pub service: Service,
    pub event: Event<'a>,
}

/// The service a syslog program name belongs to, if any.
#[inline]
pub fn service_of(program: &[u8]) -> Option<Service> {
    match program {
        b"sshd" | b"sshd-session" | b"sshd-auth" => Some(Service::Sshd),
        p if p.starts_with(b"postfix") && p.ends_with(b"/smtpd") => Some(Service::Smtp),
        b"dovecot" => Some(Service::Imap),
        p if p.ends_with(b"-login") => Some(Service::Imap),
        _ => None,
    }
}

/// Parses one line (without its newline). `None` for lines that are no
/// concern of the guard.
pub fn parse_line(line: &[u8]) -> Option<Parsed<'_>> {
    if line.len() > MAX_LINE {
        return None;
    }
    let record = match syslog::split(line) {
        Some(r) if r.stamp != Stamp::None || !matches!(r.program, b"error" | b"fatal") => r,
        // Not syslog-shaped: a file written by `sshd -E FILE` holds bare
        // messages (no stamp, no tag); they are read as one sshd connection
        // stream. (`error: …`/`fatal: …` look like a tag, hence the guard.)
        _ => Record {
            stamp: Stamp::None,
            program: b"sshd",
            pid: 0,
            message: line,
        },
    };
    let service = service_of(record.program)?;
    let event = match service {
        Service::Sshd => sshd::classify(record.message)?,
        Service::Smtp => maillog::postfix_smtpd(record.message)?,
        Service::Imap => maillog::dovecot_login(record.message)?,
    };
    Some(Parsed {
        record,
        service,
        event,
    })
}
