//! Library warnings for the admin commands, printed the way Postfix's tools
//! print theirs: `postmap: warning: database ... is older than source file ...`.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::{format::Writer, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

struct PostfixStyle(&'static str);

impl<S, N> FormatEvent<S, N> for PostfixStyle
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut m = Message(String::new());
        event.record(&mut m);
        let level = match *event.metadata().level() {
            Level::ERROR => "fatal",
            Level::WARN => "warning",
            _ => "info",
        };
        writeln!(w, "{}: {level}: {}", self.0, m.0)
    }
}

/// Installs the stderr logger for a command named `program`.
pub fn init(program: &'static str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(Level::WARN)
        .event_format(PostfixStyle(program))
        .init();
}
