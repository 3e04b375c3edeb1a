//! Helpers for yubin send's black-box tests: the real `yubin` binary, real
//! peers (swaks, Postfix's smtp-sink, the Python replay server) on 127.0.0.1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// The yubin binary. `cargo test -p yubin-send` does not rebuild it, so it
/// is brought up to date once per test process (a no-op when it is fresh).
pub fn yubin() -> PathBuf {
    static BUILD: Once = Once::new();
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/debug/yubin"
    ));
    BUILD.call_once(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "yubin", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        // Other crates of the binary may be mid-edit in a shared checkout;
        // an existing binary still holds this crate's last good build.
        assert!(st.success() || path.exists(), "cargo build -p yubin failed");
        if !st.success() {
            eprintln!("warning: cargo build -p yubin failed; testing the existing binary");
        }
    });
    path
}

pub fn peers_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers"))
}

/// What a finished command printed and returned.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Runs `program args` with `stdin`, waiting at most 60 s.
pub fn run(program: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LOGNAME", "tester")
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_string();
    std::thread::spawn(move || {
        let _ = input.write_all(data.as_bytes());
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "{} {args:?} hung",
            program.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// `yubin send ARGS`.
pub fn send(args: &[&str], stdin: &str) -> Output {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    run(&yubin(), &all, stdin)
}

/// `swaks ARGS` (the real one; the tests need it installed: .ci/packages.txt).
pub fn swaks(args: &[&str], stdin: &str) -> Output {
    run(Path::new("/usr/bin/swaks"), args, stdin)
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Postfix's `smtp-sink` on 127.0.0.1 with extra `flags`.
pub fn smtp_sink(flags: &[&str]) -> Peer {
    let port = free_port();
    let mut cmd = Command::new("/usr/sbin/smtp-sink");
    // As root, smtp-sink insists on dropping privileges.
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(flags).arg(format!("127.0.0.1:{port}")).arg("64");
    let child = cmd
        .stdout(Stdio::null())
        .spawn()
        .expect("smtp-sink (apt-get install postfix)");
    wait_listening(port);
    Peer { child, port }
}

/// The Python server replaying the seed's Postfix replies, with `flags`.
pub fn replay(flags: &[&str]) -> Peer {
    let mut child = Command::new("python3")
        .arg(peers_dir().join("replay_smtpd.py"))
        .args(flags)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // A TCP server prints its port; a UNIX-socket one its path (port 0).
    let port: u16 = line.trim().parse().unwrap_or(0);
    Peer { child, port }
}

/// Blanks what legitimately differs between two runs or two clients: dates,
/// message ids, the X-Mailer line, queue ids, smtp-sink's pids.
pub fn normalize(transcript: &str) -> String {
    transcript
        .lines()
        .map(|l| {
            let l = l.trim_end_matches('\r');
            // A message dumped without hints starts at column 0.
            if l.starts_with("Date: ") {
                return "Date: DATE".to_string();
            }
            // The hint (` -> ` or, inside TLS, ` ~> `) and what follows it.
            let (hint, rest) = if l.len() >= 4 && l.is_char_boundary(4) {
                l.split_at(4)
            } else {
                ("", l)
            };
            if rest.starts_with("Date: ") {
                format!("{hint}Date: DATE")
            } else if rest.starts_with("Subject: test ") {
                format!("{hint}Subject: test DATE")
            } else if rest.starts_with("Message-Id: ") {
                format!("{hint}Message-Id: ID")
            } else if rest.starts_with("X-Mailer: ") {
                format!("{hint}X-Mailer: MAILER")
            } else if let Some(i) = l.find("queued as ") {
                format!("{}queued as QID", &l[..i])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Line-by-line comparison with a readable failure.
pub fn assert_same(what: &str, ours: &str, theirs: &str) {
    let (a, b) = (normalize(ours), normalize(theirs));
    if a != b {
        panic!("{what}: transcripts differ\n--- yubin send\n{a}\n--- swaks\n{b}\n");
    }
}
