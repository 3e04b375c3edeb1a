//! The log writer: lines go through a channel to one thread that appends
//! them to `maillog_file` (or stderr), so a slow disk never blocks an SMTP
//! session, and the order of lines is the order of events.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use crate::clock;

/// Where the lines go.
#[derive(Debug, Clone)]
pub enum Target {
    File(PathBuf),
    Stderr,
}

struct Inner {
    tx: SyncSender<String>,
    host: String,
    ident: String,
    pid: u32,
}

/// A cheap, cloneable handle to the log.
#[derive(Clone)]
pub struct MailLog {
    inner: Arc<Inner>,
}

fn pump(rx: Receiver<String>, target: Target) {
    let mut out: Box<dyn Write> = match &target {
        Target::File(p) => match OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Box::new(BufWriter::with_capacity(64 * 1024, f)),
            Err(e) => {
                eprintln!(
                    "yubin: cannot open maillog_file {}: {e}; logging to stderr",
                    p.display()
                );
                Box::new(std::io::stderr())
            }
        },
        Target::Stderr => Box::new(std::io::stderr()),
    };
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        // Write whatever else is already queued before flushing.
        while let Ok(more) = rx.try_recv() {
            let _ = out.write_all(more.as_bytes());
        }
        let _ = out.flush();
    }
}

impl MailLog {
    /// Starts the writer. `host` is the short host name syslog would show,
    /// `ident` the syslog_name (`postfix`).
    pub fn start(target: Target, host: &str, ident: &str) -> MailLog {
        let (tx, rx) = sync_channel(65536);
        std::thread::Builder::new()
            .name("maillog".into())
            .spawn(move || pump(rx, target))
            .expect("spawn maillog thread");
        MailLog {
            inner: Arc::new(Inner {
                tx,
                host: host.split('.').next().unwrap_or(host).to_string(),
                ident: ident.to_string(),
                pid: std::process::id(),
            }),
        }
    }

    /// Logs `text` as `daemon` (smtpd, cleanup, qmgr, virtual, local, ...).
    pub fn log(&self, daemon: &str, text: &str) {
        let i = &self.inner;
        let line = format!(
            "{} {} {}/{}[{}]: {}\n",
            clock::syslog_stamp(clock::now_secs()),
            i.host,
            i.ident,
            daemon,
            i.pid,
            text.replace('\n', " ")
        );
        let _ = i.tx.send(line);
    }
}
