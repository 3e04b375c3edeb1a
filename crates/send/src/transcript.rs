//! The transcript in swaks' layout (swaks(1), "OUTPUT OPTIONS"): every line
//! carries a hint saying who produced it.
//!
//! | hint  | meaning                                   | stream |
//! |-------|-------------------------------------------|--------|
//! | `===` | information from the client               | stdout |
//! | `***` | an error inside the client                | stderr |
//! | ` ->` | a line sent (` ~>` inside TLS)            | stdout |
//! | `**>` | an unexpected line sent (`*~>` in TLS)    | stdout |
//! | `<- ` | an expected reply (`<~ ` inside TLS)      | stdout |
//! | `<**` | an unexpected reply (`<~*` inside TLS)    | stdout |
//!
//! The hint is followed by one space, so a reply reads `<-  250 Ok`.

use std::io::Write;

/// What produced a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Info,
    Error,
    Send,
    SendError,
    Recv,
    RecvError,
}

impl Kind {
    /// Errors are what `--silent` still shows (swaks: odd/even ptrans codes).
    fn is_error(self) -> bool {
        matches!(self, Kind::Error | Kind::SendError | Kind::RecvError)
    }
}

/// Which lines to show, from the `--hide-*`, `--no-*-hints` and `--silent`
/// options.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub hide_send: bool,
    pub hide_receive: bool,
    pub hide_informational: bool,
    pub hide_all: bool,
    pub no_send_hints: bool,
    pub no_receive_hints: bool,
    pub no_info_hints: bool,
    /// 0: everything; 1: nothing until the first error, then everything;
    /// 2: errors only; 3: nothing.
    pub silent: u8,
    /// `--suppress-data`: show the message as "N lines sent".
    pub suppress_data: bool,
}

/// Writes transcript lines to stdout/stderr (or to buffers in tests).
pub struct Transcript {
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    pub filter: Filter,
    /// Inside TLS the send/receive hints change to `~>`/`<~`.
    pub tls_active: bool,
    seen_error: bool,
}

impl Transcript {
    pub fn new(out: Box<dyn Write + Send>, err: Box<dyn Write + Send>, filter: Filter) -> Self {
        Transcript {
            out,
            err,
            filter,
            tls_active: false,
            seen_error: false,
        }
    }

    /// A transcript on the process's stdout and stderr.
    pub fn stdio(filter: Filter) -> Self {
        Self::new(
            Box::new(std::io::stdout()),
            Box::new(std::io::stderr()),
            filter,
        )
    }

    fn hint(&self, kind: Kind) -> &'static str {
        let f = &self.filter;
        let tls = self.tls_active;
        match kind {
            Kind::Info | Kind::Error if f.no_info_hints => "",
            Kind::Send | Kind::SendError if f.no_send_hints => "",
            Kind::Recv | Kind::RecvError if f.no_receive_hints => "",
            Kind::Info => "===",
            Kind::Error => "***",
            Kind::Send => {
                if tls {
                    " ~>"
                } else {
                    " ->"
                }
            }
            Kind::SendError => {
                if tls {
                    "*~>"
                } else {
                    "**>"
                }
            }
            Kind::Recv => {
                if tls {
                    "<~ "
                } else {
                    "<- "
                }
            }
            Kind::RecvError => {
                if tls {
                    "<~*"
                } else {
                    "<**"
                }
            }
        }
    }

    fn shown(&mut self, kind: Kind) -> bool {
        let f = &self.filter;
        if f.hide_all
            || (f.hide_send && matches!(kind, Kind::Send | Kind::SendError))
            || (f.hide_receive && matches!(kind, Kind::Recv | Kind::RecvError))
            || (f.hide_informational && kind == Kind::Info)
        {
            return false;
        }
        match f.silent {
            0 => true,
            1 => {
                if kind.is_error() {
                    self.seen_error = true;
                }
                self.seen_error
            }
            2 => kind.is_error(),
            _ => false,
        }
    }

    /// Prints `msg` (which may span lines) with `kind`'s hint on every line.
    pub fn line(&mut self, kind: Kind, msg: &str) {
        if !self.shown(kind) {
            return;
        }
        let hint = self.hint(kind);
        let prefix = if hint.is_empty() {
            String::new()
        } else {
            format!("{hint} ")
        };
        let mut text = String::with_capacity(msg.len() + 8);
        for (i, l) in msg.split('\n').enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(&prefix);
            text.push_str(l);
        }
        text.push('\n');
        let w = if kind == Kind::Error {
            &mut self.err
        } else {
            &mut self.out
        };
        // A closed stdout must not abort the SMTP session half-way.
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }

    pub fn info(&mut self, msg: &str) {
        self.line(Kind::Info, msg);
    }

    pub fn error(&mut self, msg: &str) {
        self.line(Kind::Error, msg);
    }

    /// Prints the DATA that was sent: every line, or with `--suppress-data`
    /// swaks' summary `N lines sent` (N counts the lines of the data, the
    /// final dot included, as Perl's `split /\n/` does).
    pub fn data(&mut self, data: &str) {
        if self.filter.suppress_data {
            let n = data.trim_end_matches('\n').split('\n').count();
            self.line(Kind::Send, &format!("{n} lines sent"));
        } else {
            self.line(Kind::Send, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn transcript(filter: Filter) -> (Transcript, Buf, Buf) {
        let (o, e) = (Buf::default(), Buf::default());
        (
            Transcript::new(Box::new(o.clone()), Box::new(e.clone()), filter),
            o,
            e,
        )
    }

    #[test]
    fn hints_as_swaks_prints_them() {
        let (mut t, o, e) = transcript(Filter::default());
        t.info("Trying localhost:25...");
        t.line(Kind::Recv, "250-a\n250 b");
        t.line(Kind::Send, "QUIT");
        t.line(Kind::RecvError, "550 5.1.1 no");
        t.error("Remote host closed connection unexpectedly.");
        t.tls_active = true;
        t.line(Kind::Send, "EHLO x");
        t.line(Kind::Recv, "250 ok");
        assert_eq!(
            o.text(),
            "=== Trying localhost:25...\n<-  250-a\n<-  250 b\n -> QUIT\n<** 550 5.1.1 no\n ~> EHLO x\n<~  250 ok\n"
        );
        assert_eq!(
            e.text(),
            "*** Remote host closed connection unexpectedly.\n"
        );
    }

    #[test]
    fn silent_and_hide() {
        let (mut t, o, _) = transcript(Filter {
            silent: 1,
            ..Filter::default()
        });
        t.line(Kind::Recv, "250 ok");
        t.line(Kind::RecvError, "550 no");
        t.line(Kind::Send, "QUIT");
        assert_eq!(o.text(), "<** 550 no\n -> QUIT\n");
        let (mut t, o, _) = transcript(Filter {
            hide_receive: true,
            suppress_data: true,
            ..Filter::default()
        });
        t.line(Kind::Recv, "250 ok");
        t.data("a\r\nb\r\n.");
        assert_eq!(o.text(), " -> 3 lines sent\n");
    }
}
