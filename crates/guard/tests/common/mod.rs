//! Helpers for black-box tests of the real `yubin` binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use std::time::{Duration, Instant};

/// `target/debug/yubin`, built once per test process (cargo does not build
/// other packages' binaries for this crate's tests).
pub fn yubin() -> PathBuf {
    static BUILD: Once = Once::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    BUILD.call_once(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "yubin", "--quiet"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(st.success(), "cargo build -p yubin failed");
    });
    root.join("target/debug/yubin")
}

/// A scratch guard setup: config, log, hosts.deny and WORK_DIR in a temp dir.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub log: PathBuf,
    pub deny: PathBuf,
    pub work: PathBuf,
}

impl Env {
    /// `extra` lines are appended to the generated denyhosts.conf.
    pub fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let (log, deny, work) = (p.join("auth.log"), p.join("hosts.deny"), p.join("work"));
        let conf = p.join("denyhosts.conf");
        std::fs::write(
            &conf,
            format!(
                "# test config\nSECURE_LOG = {}\nHOSTS_DENY = {}\nWORK_DIR = {}\nLOCK_FILE = {}/pid\nHOSTNAME_LOOKUP = NO\nADMIN_EMAIL =\n{extra}\n",
                log.display(),
                deny.display(),
                work.display(),
                p.display()
            ),
        )
        .unwrap();
        std::fs::write(&log, "").unwrap();
        Env {
            dir,
            conf,
            log,
            deny,
            work,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `yubin guard --config CONF ARGS…`.
    pub fn guard(&self, args: &[&str]) -> Output {
        let mut a = vec!["guard", "--config", self.conf.to_str().unwrap()];
        a.extend_from_slice(args);
        Command::new(yubin()).args(&a).output().unwrap()
    }

    pub fn append(&self, lines: &[String]) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
    }

    pub fn deny_text(&self) -> String {
        std::fs::read_to_string(&self.deny).unwrap_or_default()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `n` sshd "Invalid user" lines from `host` (each one counts 1 as invalid).
pub fn invalid_lines(host: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "Jan  2 03:04:{:02} mail sshd[{}]: Invalid user admin{i} from {host} port {}",
                i % 60,
                1000 + i,
                40000 + i
            )
        })
        .collect()
}

/// Waits until `f` is true or `secs` pass.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails with a clear message when a tool the test needs is missing.
pub fn require(tool: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("{tool} is not installed: add its Debian package to .ci/packages.txt and install it (this test does not skip)");
}

/// A child process killed on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Postfix's smtp-sink on 127.0.0.1, dumping each message into a directory.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    _child: Child,
}

impl SmtpSink {
    pub fn start(parent: &Path) -> SmtpSink {
        let bin = require("smtp-sink");
        let dir = parent.join("sink");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let mut p = parent;
        while let Some(up) = p.parent() {
            // smtp-sink drops to nobody: it must be able to reach the directory.
            let _ =
                std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755));
            p = up;
            if p == Path::new("/tmp") || p == Path::new("/") {
                break;
            }
        }
        let port = free_port();
        let child = Command::new(bin)
            .args([
                "-u",
                "nobody",
                "-d",
                &format!("{}/%M.", dir.display()),
                &format!("127.0.0.1:{port}"),
                "5",
            ])
            .spawn()
            .unwrap();
        let child = Child(child);
        assert!(
            wait_for(10, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "smtp-sink did not start"
        );
        SmtpSink {
            port,
            dir,
            _child: child,
        }
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Fails clearly unless running as root (CI runs as root).
pub fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc_geteuid() };
    assert_eq!(
        uid, 0,
        "{what} needs root (network namespaces, sshd, /etc/hosts.deny); CI runs as root"
    );
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// `prefix` (e.g. `ip netns exec NS`) + command.
pub fn cmd_in(prefix: &[String], prog: &str) -> Command {
    if prefix.is_empty() {
        Command::new(prog)
    } else {
        let mut c = Command::new(&prefix[0]);
        c.args(&prefix[1..]).arg(prog);
        c
    }
}

/// A real OpenSSH server on 127.0.0.1:port with its own host key, logging to
/// a file with `-E` (bare messages), password auth on, PAM off.
pub struct SshServer {
    pub port: u16,
    pub log: PathBuf,
    _child: Child,
}

impl SshServer {
    pub fn start(dir: &Path, prefix: &[String]) -> SshServer {
        let sshd = require("sshd");
        require("ssh-keygen");
        std::fs::create_dir_all("/run/sshd").unwrap();
        let key = dir.join("host_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let port = free_port();
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {}\nPidFile {}/sshd.pid\nUsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nPermitRootLogin no\nStrictModes no\n",
                key.display(),
                dir.display()
            ),
        )
        .unwrap();
        let log = dir.join("sshd.log");
        let child = cmd_in(prefix, sshd.to_str().unwrap())
            .args(["-D", "-p", &port.to_string(), "-E"])
            .arg(&log)
            .arg("-f")
            .arg(&cfg)
            .spawn()
            .unwrap();
        let child = Child(child);
        assert!(
            wait_for(10, || std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Server listening")),
            "sshd did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        SshServer {
            port,
            log,
            _child: child,
        }
    }

    /// One password login attempt as `user` from source address `from`;
    /// returns ssh's stderr.
    pub fn attempt(&self, prefix: &[String], from: &str, user: &str) -> String {
        require("sshpass");
        let o = cmd_in(prefix, "sshpass")
            .args([
                "-p",
                "wrong-password",
                "ssh",
                "-b",
                from,
                "-p",
                &self.port.to_string(),
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=30",
            ])
            .arg(format!("{user}@127.0.0.1"))
            .arg("true")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
