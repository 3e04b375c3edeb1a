//! smtpd_milters end to end: the real binary talking to a small Python
//! milter (tests/milter/test_milter.py: edits, per-recipient refusals,
//! quarantine, and broken milters for milter_default_action) and to a real
//! rspamd (Debian package) in milter mode (its headers, its GTUBE reject).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, repo, Client, Server, VIRTUAL_AFTER};

/// The Python milter, stopped (SIGKILL of our own child) on drop.
struct PyMilter {
    child: Child,
    port: u16,
    events: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyMilter {
    fn start(mode: &str) -> PyMilter {
        let dir = tempfile::tempdir().unwrap();
        let portfile = dir.path().join("port");
        let events = dir.path().join("events");
        let child = Command::new("python3")
            .arg(repo().join("crates/yubin/tests/milter/test_milter.py"))
            .arg(&portfile)
            .arg(&events)
            .arg(mode)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&portfile) {
                break p.trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "test milter did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        PyMilter {
            child,
            port,
            events,
            _dir: dir,
        }
    }

    /// The commands received: (command letter, data).
    fn events(&self) -> Vec<(char, Vec<u8>)> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (c, hex) = l.split_once(' ')?;
                let data = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                Some((c.chars().next()?, data))
            })
            .collect()
    }
}

impl Drop for PyMilter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(milters: &str, extra: &str) -> Server {
    let mut s = Server::seed(
        VIRTUAL_AFTER,
        &format!("smtpd_milters = {milters}\n{extra}"),
    );
    s.start();
    s
}

fn hello(port: u16) -> Client {
    let mut c = Client::connect(port);
    assert!(c.cmd("EHLO client.example").starts_with("250"));
    c
}

fn held(s: &Server) -> Vec<PathBuf> {
    std::fs::read_dir(s.path("queue/hold"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn end_of_message_edits_reach_the_queued_message() {
    let m = PyMilter::start("edit");
    let s = server(&format!("inet:127.0.0.1:{}", m.port), "");
    let mut c = hello(s.port);
    let r = c.mail(
        "a@b.example",
        &["hoge@mydomain.com", "hoge+gone@mydomain.com"],
        "Subject: original\nFrom: a@b.example\n\noriginal body\n",
    );
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("QUIT");
    let log = s.wait_log("to=<hoge+added@mydomain.com>");
    // The deleted recipient is gone, the added one delivered.
    assert!(!log.contains("to=<hoge+gone@mydomain.com>"), "{log}");
    let mail = s.wait_mail(1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("X-Inserted: first\n"), "{text}");
    assert!(text.contains("Subject: [milter] changed\n"), "{text}");
    assert!(!text.contains("Subject: original"), "{text}");
    assert!(text.contains("X-Test-Milter: edited\n"), "{text}");
    assert!(text.ends_with("\n\nreplaced body\n"), "{text}");
    // X-Inserted went before yubin's own Received: header (index 0).
    let ins = text.find("X-Inserted:").unwrap();
    let rcvd = text.find("Received: from client.example").unwrap();
    assert!(ins < rcvd, "{text}");

    // What the milter was told: connect macros and the connect event,
    // HELO, MAIL with {mail_addr}, the headers (yubin's Received first),
    // the body with CRLF, and the queue id at the end of message.
    let ev = m.events();
    let find = |c: char, needle: &[u8]| {
        ev.iter()
            .any(|(k, d)| *k == c && d.windows(needle.len()).any(|w| w == needle))
    };
    assert!(find('D', b"Cj\0mail.mydomain.com\0"), "{ev:?}");
    assert!(
        find('D', b"{daemon_name}\0mail.mydomain.com\0"),
        "{:?}",
        ev.iter()
            .filter(|e| e.0 == 'D')
            .map(|e| String::from_utf8_lossy(&e.1).to_string())
            .collect::<Vec<_>>()
    );
    assert!(find('D', b"_\0localhost [127.0.0.1]\0"));
    assert!(find('C', b"localhost\x004"));
    assert!(find('H', b"client.example\0"));
    assert!(find('D', b"{mail_addr}\0a@b.example\0"));
    assert!(find('M', b"<a@b.example>\0"));
    assert!(find('R', b"<hoge+gone@mydomain.com>\0"));
    assert!(find('L', b"Received\0from client.example"));
    assert!(find('L', b"Subject\0original\0"));
    assert!(find('B', b"original body\r\n"));
    assert!(ev
        .iter()
        .any(|(k, d)| *k == 'D' && d.first() == Some(&b'E') && d.starts_with(b"Ei\0")));
    let order: Vec<char> = ev.iter().map(|(k, _)| *k).filter(|k| *k != 'D').collect();
    let pos = |c: char| order.iter().position(|k| *k == c).unwrap();
    assert!(pos('O') < pos('C') && pos('C') < pos('H') && pos('H') < pos('M'));
    assert!(pos('M') < pos('R') && pos('R') < pos('T') && pos('T') < pos('L'));
    assert!(pos('L') < pos('N') && pos('N') < pos('B') && pos('B') < pos('E'));
}

#[test]
fn per_recipient_refusal_with_postfix_log_line() {
    let m = PyMilter::start("reject-rcpt");
    let s = server(&format!("inet:127.0.0.1:{}", m.port), "");
    let mut c = hello(s.port);
    assert!(c.cmd("MAIL FROM:<a@b.example>").starts_with("250"));
    assert_eq!(
        c.cmd("RCPT TO:<hoge+bad@mydomain.com>"),
        "550 5.7.1 No such user here"
    );
    assert_eq!(c.cmd("RCPT TO:<hoge@mydomain.com>"), "250 2.1.5 Ok");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("Subject: x\r\n\r\nhi\r\n.");
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("QUIT");
    s.wait_log("NOQUEUE: milter-reject: RCPT from localhost[127.0.0.1]: 550 5.7.1 No such user here; from=<a@b.example> to=<hoge+bad@mydomain.com> proto=ESMTP helo=<client.example>");
    s.wait_mail(1);
}

#[test]
fn quarantine_puts_the_message_on_hold() {
    let m = PyMilter::start("quarantine");
    let s = server(&format!("inet:127.0.0.1:{}", m.port), "");
    let mut c = hello(s.port);
    let r = c.mail("a@b.example", &["hoge@mydomain.com"], "Subject: q\n\nx\n");
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let id = r.rsplit(' ').next().unwrap().to_string();
    c.cmd("QUIT");
    s.wait_log(&format!(
        "{id}: milter-hold: END-OF-MESSAGE from localhost[127.0.0.1]: milter triggers HOLD action; from=<a@b.example> to=<hoge@mydomain.com> proto=ESMTP helo=<client.example>"
    ));
    assert_eq!(held(&s), [s.path("queue/hold").join(&id)]);
    assert!(s.hoge_mail().is_empty());
}

/// A port nobody listens on (bound once, then closed).
fn closed_port() -> u16 {
    free_port()
}

#[test]
fn refused_milter_tempfails_by_default() {
    let port = closed_port();
    let s = server(&format!("inet:127.0.0.1:{port}"), "");
    let mut c = hello(s.port);
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.example>"),
        "451 4.7.1 Service unavailable - try again later"
    );
    c.cmd("QUIT");
    let log = s.wait_log("NOQUEUE: milter-reject: MAIL from localhost[127.0.0.1]: 451 4.7.1 Service unavailable - try again later; from=<a@b.example> proto=ESMTP helo=<client.example>");
    assert!(log.contains(&format!(
        "warning: connect to Milter service inet:127.0.0.1:{port}: Connection refused"
    )));
    assert!(log.contains("NOQUEUE: milter-reject: CONNECT from localhost[127.0.0.1]: 451 4.7.1 Service unavailable - try again later; proto=SMTP"));
}

#[test]
fn garbage_milter_with_default_accept_lets_mail_through() {
    let m = PyMilter::start("garbage");
    let s = server(
        &format!("inet:127.0.0.1:{}", m.port),
        "milter_default_action = accept\n",
    );
    let mut c = hello(s.port);
    let r = c.mail("a@b.example", &["hoge@mydomain.com"], "Subject: g\n\nx\n");
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("QUIT");
    s.wait_mail(1);
    assert!(
        s.log().contains(&format!(
            "warning: milter inet:127.0.0.1:{}: read error: packet too long",
            m.port
        )),
        "{}",
        s.log()
    );
}

#[test]
fn silent_milter_times_out_into_reject() {
    let m = PyMilter::start("hang");
    let s = server(
        &format!("inet:127.0.0.1:{}", m.port),
        "milter_default_action = reject\nmilter_command_timeout = 1s\n",
    );
    let mut c = hello(s.port);
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.example>"),
        "550 5.7.1 Command rejected"
    );
    c.cmd("QUIT");
    s.wait_log(&format!(
        "warning: milter inet:127.0.0.1:{}: can't read SMFIC_CONNECT reply packet header: Connection timed out",
        m.port
    ));
}

#[test]
fn oversized_frame_with_default_quarantine_holds() {
    let m = PyMilter::start("huge");
    let s = server(
        &format!("inet:127.0.0.1:{}", m.port),
        "milter_default_action = quarantine\n",
    );
    let mut c = hello(s.port);
    let r = c.mail("a@b.example", &["hoge@mydomain.com"], "Subject: h\n\nx\n");
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("QUIT");
    wait_until("a held message", || held(&s).len() == 1);
    assert!(s.log().contains("packet too long: 4294967295 bytes"));
}

/// A private rspamd: its own configuration folder (overriding the Debian
/// package's /etc/rspamd), pid file, database and log folders, and only the
/// proxy worker in milter mode with self_scan, on a loopback port. No
/// redis (rspamd runs without it; Bayes and the like are off) and no
/// hyperscan compilation (slow at first start; the plain regexp engine
/// gives the same verdicts).
struct Rspamd {
    dir: tempfile::TempDir,
    port: u16,
}

impl Rspamd {
    fn start() -> Option<Rspamd> {
        if Command::new("rspamd").arg("--version").output().is_err() {
            eprintln!("rspamd is not installed (.ci/packages.txt lists it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        for sub in ["local.d", "override.d", "db", "run", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let w = |p: &str, text: String| std::fs::write(d.join(p), text).unwrap();
        w(
            "override.d/worker-proxy.inc",
            format!(
                "bind_socket = \"127.0.0.1:{port}\";\nmilter = yes;\ntimeout = 120s;\n\
                 upstream \"local\" {{ default = yes; self_scan = yes; }}\ncount = 1;\n"
            ),
        );
        w("override.d/worker-normal.inc", "enabled = false;\n".into());
        w(
            "override.d/worker-controller.inc",
            "enabled = false;\n".into(),
        );
        w(
            "override.d/logging.inc",
            format!(
                "type = \"file\";\nfilename = \"{}/log/rspamd.log\";\nlevel = \"info\";\n",
                d.display()
            ),
        );
        // No DNS outside the machine: a resolver that answers nothing. A
        // short public suffix list: compiling the whole one costs rspamd
        // some 35 s at every start with an empty cache (measured here).
        w("tld.dat", "com\norg\nnet\nexample\n".into());
        w(
            "local.d/options.inc",
            format!(
                "dns {{ nameserver = [\"127.0.0.1:1\"]; timeout = 0.2s; retransmits = 1; }}\n\
                 disable_hyperscan = true;\nurl_tld = \"{}/tld.dat\";\n",
                d.display()
            ),
        );
        w(
            "local.d/milter_headers.conf",
            "use = [\"x-spamd-result\", \"x-rspamd-server\", \"x-rspamd-queue-id\", \"authentication-results\"];\n\
             skip_local = false;\nskip_authenticated = false;\n".into(),
        );
        let (user, group) = whoami();
        let var = |k: &str, v: &Path| format!("{k}={}", v.display());
        let st = Command::new("rspamd")
            .arg("-c")
            .arg("/etc/rspamd/rspamd.conf")
            .args(["--var", &var("LOCAL_CONFDIR", d)])
            .args(["--var", &var("DBDIR", &d.join("db"))])
            .args(["--var", &var("RUNDIR", &d.join("run"))])
            .args(["--var", &var("LOGDIR", &d.join("log"))])
            .args(["-u", &user, "-g", &group])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "rspamd did not start");
        let r = Rspamd { dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rspamd never listened:\n{}",
                std::fs::read_to_string(r.dir.path().join("log/rspamd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("run/rspamd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        // The main process (from its pid file, our own instance) stops its
        // workers on SIGTERM.
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the rspamd main process this test started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            // SAFETY: signal 0 only checks that the process exists.
            while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn whoami() -> (String, String) {
    let run = |a: &str| {
        String::from_utf8_lossy(&Command::new("id").arg(a).output().unwrap().stdout)
            .trim()
            .to_string()
    };
    (run("-un"), run("-gn"))
}

/// The Generic Test for Unsolicited Bulk Email: rspamd rejects it.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[test]
fn rspamd_adds_its_headers_and_rejects_gtube() {
    let t0 = Instant::now();
    let Some(rspamd) = Rspamd::start() else {
        return;
    };
    eprintln!("rspamd listening after {:?}", t0.elapsed());
    let s = server(
        &format!("inet:127.0.0.1:{}", rspamd.port),
        "milter_default_action = reject\n",
    );
    let mut c = hello(s.port);
    let r = c.mail(
        "someone@example.org",
        &["hoge@mydomain.com"],
        "From: Someone <someone@example.org>\nTo: hoge@mydomain.com\nSubject: lunch\nMessage-ID: <1@example.org>\nDate: Wed, 2 Dec 2026 10:00:00 +0000\n\nShall we have lunch at noon?\n",
    );
    assert!(
        r.starts_with("250 2.0.0 Ok: queued as "),
        "{r}\n{}",
        s.log()
    );
    let id = r.rsplit(' ').next().unwrap().to_string();
    let mail = s.wait_mail(1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    let rlog =
        || std::fs::read_to_string(rspamd.dir.path().join("log/rspamd.log")).unwrap_or_default();
    assert!(
        text.contains("\nX-Spamd-Result: default: False ["),
        "{text}\n{}\n{}",
        s.log(),
        rlog()
    );
    assert!(text.contains("\nX-Rspamd-Server: "), "{text}");
    assert!(
        text.contains(&format!("\nX-Rspamd-Queue-Id: {id}")),
        "{text}"
    );
    assert!(text.contains("\nAuthentication-Results: "), "{text}");

    let r = c.cmd("MAIL FROM:<someone@example.org>");
    assert!(r.starts_with("250"), "{r}\n{}", s.log());
    assert!(c.cmd("RCPT TO:<hoge@mydomain.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd(&format!(
        "From: someone@example.org\r\nSubject: test\r\n\r\n{GTUBE}\r\n."
    ));
    // rspamd's own reply for its test pattern (the "reject" action).
    assert_eq!(r, "554 5.7.1 Gtube pattern");
    c.cmd("QUIT");
    s.wait_log(": milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.1 Gtube pattern; from=<someone@example.org> to=<hoge@mydomain.com> proto=ESMTP helo=<client.example>");
    assert_eq!(s.hoge_mail().len(), 1);
    eprintln!("rspamd test done after {:?}:\n{text}", t0.elapsed());
}

/// `yubin sendmail ARGS` with `input` on stdin.
fn sendmail(s: &Server, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(common::bin())
        .arg("-c")
        .arg(s.dir.path())
        .arg("sendmail")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn non_smtpd_milters_edit_mail_from_sendmail() {
    let m = PyMilter::start("edit");
    let s = server(
        "",
        &format!("non_smtpd_milters = inet:127.0.0.1:{}\n", m.port),
    );
    let out = sendmail(
        &s,
        &[
            "-f",
            "a@b.example",
            "hoge@mydomain.com",
            "hoge+gone@mydomain.com",
        ],
        "Subject: original\n\noriginal body\n",
    );
    assert!(out.status.success(), "{out:?}");
    let log = s.wait_log("to=<hoge+added@mydomain.com>");
    assert!(!log.contains("to=<hoge+gone@mydomain.com>"), "{log}");
    let mail = s.wait_mail(1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("Subject: [milter] changed\n"), "{text}");
    assert!(text.contains("X-Test-Milter: edited\n"), "{text}");
    assert!(text.ends_with("\n\nreplaced body\n"), "{text}");
    // cleanup's emulated session: connect from localhost 127.0.0.1, HELO
    // localhost, then the envelope.
    let ev = m.events();
    let has = |c: char, needle: &[u8]| {
        ev.iter()
            .any(|(k, d)| *k == c && d.windows(needle.len()).any(|w| w == needle))
    };
    assert!(has('C', b"localhost\x004\x00\x00127.0.0.1\0"), "{ev:?}");
    assert!(has('H', b"localhost\0"));
    assert!(has('M', b"<a@b.example>\0"));
    assert!(has('R', b"<hoge+gone@mydomain.com>\0"));
}

#[test]
fn non_smtpd_milter_refusal_bounces_to_the_sender() {
    let m = PyMilter::start("reject-rcpt");
    let s = server(
        "",
        &format!("non_smtpd_milters = inet:127.0.0.1:{}\n", m.port),
    );
    // The sender is hoge, so the bounce lands in hoge's mailbox.
    let out = sendmail(
        &s,
        &["-f", "hoge@mydomain.com", "hoge+bad@mydomain.com"],
        "Subject: refused\n\nx\n",
    );
    assert!(out.status.success(), "{out:?}");
    s.wait_log(": milter-reject: RCPT from localhost[127.0.0.1]: 5.7.1 No such user here; from=<hoge@mydomain.com> to=<hoge+bad@mydomain.com>");
    let mail = s.wait_mail(1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(
        text.contains("Undelivered Mail Returned to Sender"),
        "{text}"
    );
    assert!(text.contains("No such user here"), "{text}");
}

#[test]
fn several_milters_in_order_each_sees_the_edits_before_it() {
    let first = PyMilter::start("edit");
    let second = PyMilter::start("quarantine");
    let s = server(
        &format!(
            "inet:127.0.0.1:{}, inet:127.0.0.1:{}",
            first.port, second.port
        ),
        "",
    );
    let mut c = hello(s.port);
    let r = c.mail(
        "a@b.example",
        &["hoge@mydomain.com"],
        "Subject: original\n\noriginal body\n",
    );
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("QUIT");
    wait_until("a held message", || held(&s).len() == 1);
    let queued = std::fs::read(&held(&s)[0]).unwrap();
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(has(&queued, b"X-Test-Milter: edited\n"));
    assert!(has(&queued, b"replaced body\n"));
    // The second milter got the first one's changes.
    let ev = second.events();
    assert!(
        ev.iter()
            .any(|(k, d)| *k == 'L' && has(d, b"Subject\0[milter] changed\0")),
        "{ev:?}"
    );
    assert!(ev
        .iter()
        .any(|(k, d)| *k == 'B' && has(d, b"replaced body\r\n")));
}

#[test]
fn per_milter_default_action_in_braces() {
    // Postfix 3.0's form: this milter's default_action, not the global one.
    let port = closed_port();
    let s = server(
        &format!("{{ inet:127.0.0.1:{port}, default_action = accept }}"),
        "milter_default_action = tempfail\n",
    );
    let mut c = hello(s.port);
    let r = c.mail("a@b.example", &["hoge@mydomain.com"], "Subject: b\n\nx\n");
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    c.cmd("QUIT");
    s.wait_mail(1);
    assert!(s.log().contains(&format!(
        "warning: connect to Milter service inet:127.0.0.1:{port}: Connection refused"
    )));
}

#[test]
fn connect_refusal_answers_mail_from_as_postfix() {
    let m = PyMilter::start("reject-connect");
    let s = server(&format!("inet:127.0.0.1:{}", m.port), "");
    let mut c = hello(s.port);
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.example>"),
        "550 5.7.1 Command rejected"
    );
    c.cmd("QUIT");
    let log = s.wait_log("NOQUEUE: milter-reject: MAIL from localhost[127.0.0.1]: 550 5.7.1 Command rejected; from=<a@b.example> proto=ESMTP helo=<client.example>");
    assert!(log.contains(
        "NOQUEUE: milter-reject: CONNECT from localhost[127.0.0.1]: 550 5.7.1 Command rejected; proto=SMTP"
    ));
}

#[test]
fn shutdown_at_connect_closes_with_421() {
    use std::io::Read;
    let m = PyMilter::start("shutdown");
    let s = server(&format!("inet:127.0.0.1:{}", m.port), "");
    let mut t = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut said = String::new();
    let _ = t.read_to_string(&mut said);
    // No greeting: the 421, then the connection closes.
    assert_eq!(said, "421 4.7.0 Server closing connection\r\n");
    s.wait_log(
        "NOQUEUE: milter-reject: CONNECT from localhost[127.0.0.1]: 421 4.7.0 Server closing connection; proto=SMTP",
    );
}
