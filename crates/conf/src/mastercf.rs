//! `master.cf` (master(5)): one service per logical line,
//! `service type private unpriv chroot wakeup maxproc command [args]`, with
//! continuation lines that start with white space and `-o name=value`
//! overrides of main.cf parameters for that service.
//!
//! yubin runs Postfix's daemons as tasks in one process, so only `inet`
//! services that run `smtpd` (or yubin's `imap`) open listeners; the internal services of a
//! Debian master.cf (pickup, cleanup, qmgr, ...) are recognised and need no
//! action. Anything else is reported with its line.

use std::path::Path;

use crate::error::ConfError;

/// One master.cf service entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `smtp`, `submission`, `127.0.0.1:2525`, ...
    pub name: String,
    /// `inet`, `unix`, `unix-dgram`, `fifo`, `pass`.
    pub kind: String,
    /// The private column: `y` (and `-`, the default) restricts a `unix`
    /// service to the mail system (Postfix's private/ directory).
    pub private: bool,
    pub command: String,
    pub args: Vec<String>,
    /// `-o name=value` pairs, in order.
    pub overrides: Vec<(String, String)>,
    /// The maxproc column (master(5)): `None` for `-` (default_process_limit),
    /// `Some(0)` for no limit, else the most processes (here: sessions) at once.
    pub maxproc: Option<usize>,
    pub line: usize,
}

/// Postfix's daemons that yubin replaces by in-process tasks.
const INTERNAL: &[&str] = &[
    "anvil",
    "bounce",
    "cleanup",
    "discard",
    "error",
    "flush",
    "lmtp",
    "local",
    "oqmgr",
    "pickup",
    "proxywrite",
    "relay",
    "retry",
    "rewrite",
    "defer",
    "trace",
    "postlogd",
    "proxymap",
    "qmgr",
    "scache",
    "showq",
    "smtp",
    "tlsmgr",
    "trivial-rewrite",
    "verify",
    "virtual",
];

#[derive(Debug, Clone, Default)]
pub struct MasterCf {
    pub services: Vec<Service>,
    pub warnings: Vec<String>,
}

impl MasterCf {
    /// Loads `DIR/master.cf`; a missing file means no services.
    pub fn load(dir: &Path) -> Result<MasterCf, ConfError> {
        let path = dir.join("master.cf");
        match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MasterCf::default()),
            Err(source) => Err(ConfError::Io { file: path, source }),
        }
    }

    /// The services that accept SMTP connections.
    pub fn smtpd_services(&self) -> impl Iterator<Item = &Service> {
        self.services
            .iter()
            .filter(|s| s.kind == "inet" && s.command == "smtpd")
    }

    /// yubin's LMTP server (command `lmtpd`, a yubin extension: Postfix has
    /// no LMTP server), on `inet` or `unix`.
    pub fn lmtpd_services(&self) -> impl Iterator<Item = &Service> {
        self.services
            .iter()
            .filter(|s| (s.kind == "inet" || s.kind == "unix") && s.command == "lmtpd")
    }

    /// The services that accept IMAP connections (yubin's own command
    /// `imap`, the IMAP side of `yubin serve`).
    pub fn imap_services(&self) -> impl Iterator<Item = &Service> {
        self.services
            .iter()
            .filter(|s| s.kind == "inet" && s.command == "imap")
    }
}

impl Service {
    /// The address and port to listen on: `host:port` or just `port`, where a
    /// port may be a name from /etc/services (the common mail ones are built in).
    pub fn listen(&self) -> Option<(Option<String>, u16)> {
        let (host, port) = match self.name.rsplit_once(':') {
            Some((h, p)) => (Some(h.trim_matches(['[', ']']).to_string()), p),
            None => (None, self.name.as_str()),
        };
        let port = match port {
            "smtp" => 25,
            "submission" => 587,
            "smtps" | "submissions" => 465,
            "imap" | "imap2" => 143,
            "imaps" => 993,
            "lmtp" => 24,
            p => p.parse().ok()?,
        };
        Some((host.filter(|h| !h.is_empty() && h != "*"), port))
    }
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<MasterCf, ConfError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ConfError::syntax(file, line, "invalid UTF-8 byte")
    })?;
    let mut logical: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match logical.last_mut() {
                Some((_, l)) => {
                    l.push(' ');
                    l.push_str(t);
                }
                None => {
                    return Err(ConfError::syntax(
                        file,
                        i + 1,
                        "continuation line without a service",
                    ))
                }
            }
        } else {
            logical.push((i + 1, line.to_string()));
        }
    }
    let mut out = MasterCf::default();
    for (line, text) in logical {
        let words = split_words(&text);
        if words.len() < 8 {
            return Err(ConfError::syntax(
                file,
                line,
                format!("expected 8 fields (service type private unpriv chroot wakeup maxproc command), found {}", words.len()),
            ));
        }
        let mut args = Vec::new();
        let mut overrides = Vec::new();
        let mut it = words[8..].iter();
        while let Some(w) = it.next() {
            if w == "-o" {
                let Some(kv) = it.next() else {
                    return Err(ConfError::syntax(file, line, "-o without name=value"));
                };
                let kv = kv.trim_start_matches('{').trim_end_matches('}');
                let Some((k, v)) = kv.split_once('=') else {
                    return Err(ConfError::syntax(
                        file,
                        line,
                        format!("-o {kv}: expected name=value"),
                    ));
                };
                overrides.push((k.trim().to_string(), v.trim().to_string()));
            } else {
                args.push(w.clone());
            }
        }
        let maxproc = match words[6].as_str() {
            "-" => None,
            // Postfix accepts a trailing "?" (3.3+: "no warning if the limit
            // is reached") on wakeup only; maxproc is a plain number.
            n => Some(n.parse::<usize>().map_err(|_| {
                ConfError::syntax(
                    file,
                    line,
                    format!("maxproc \"{n}\": expected a number or \"-\""),
                )
            })?),
        };
        let svc = Service {
            name: words[0].clone(),
            kind: words[1].clone(),
            private: words[2] != "n",
            command: words[7].clone(),
            args,
            overrides,
            maxproc,
            line,
        };
        if !["inet", "unix", "unix-dgram", "fifo", "pass"].contains(&svc.kind.as_str()) {
            return Err(ConfError::syntax(
                file,
                line,
                format!("unknown service type \"{}\"", svc.kind),
            ));
        }
        if svc.kind == "inet"
            && (svc.command == "smtpd" || svc.command == "lmtpd")
            && svc.listen().is_none()
        {
            return Err(ConfError::syntax(
                file,
                line,
                format!("bad service address \"{}\"", svc.name),
            ));
        }
        if svc.command != "smtpd"
            && svc.command != "lmtpd"
            && svc.command != "imap"
            && svc.command != "spawn"
            && !INTERNAL.contains(&svc.command.as_str())
        {
            out.warnings.push(format!(
                "{}:{}: service {} runs \"{}\", which yubin does not provide; it is ignored",
                file.display(),
                line,
                svc.name,
                svc.command
            ));
        }
        out.services.push(svc);
    }
    Ok(out)
}

/// Splits on white space, keeping `{ ... }` groups (Postfix 3.0 syntax) whole.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c)
            }
            '}' if depth > 0 => {
                depth -= 1;
                cur.push(c)
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_style_services() {
        let text = "# comment\nsmtp      inet  n       -       y       -       -       smtpd\n127.0.0.1:2587 inet n - n - - smtpd\n  -o syslog_name=postfix/submission\n  -o smtpd_tls_security_level=encrypt\npickup    unix  n       -       y       60      1       pickup\nmaildrop  unix  -       n       n       -       -       pipe\n  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n";
        let m = parse(Path::new("master.cf"), text.as_bytes()).unwrap();
        let smtpd: Vec<_> = m.smtpd_services().collect();
        assert_eq!(smtpd.len(), 2);
        assert_eq!(smtpd[0].listen(), Some((None, 25)));
        assert_eq!(smtpd[1].listen(), Some((Some("127.0.0.1".into()), 2587)));
        assert_eq!(
            smtpd[1].overrides[1],
            ("smtpd_tls_security_level".into(), "encrypt".into())
        );
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].starts_with("master.cf:7: service maildrop runs \"pipe\""));
        let bad = parse(Path::new("master.cf"), b"smtp inet n - y\n")
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("master.cf:1: expected 8 fields"), "{bad}");
    }

    #[test]
    fn maxproc_column() {
        let text = "smtp inet n - y - 2 smtpd
2525 inet n - y - - smtpd
2526 inet n - y - 0 smtpd
";
        let m = parse(Path::new("master.cf"), text.as_bytes()).unwrap();
        let got: Vec<_> = m.services.iter().map(|s| s.maxproc).collect();
        assert_eq!(got, [Some(2), None, Some(0)]);
        let bad = parse(
            Path::new("master.cf"),
            b"smtp inet n - y - many smtpd
",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.starts_with("master.cf:1: maxproc \"many\""), "{bad}");
    }
}
