//! Running the real `yubin` binary on a private configuration and talking
//! to it over real sockets. Every server gets its own temporary folder and
//! loopback port.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_yubin"))
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The user the server runs as, and its ids: `nobody` when the tests run as
/// root (the server drops privileges), else the current user.
pub fn owner() -> (String, u32, u32) {
    // SAFETY: no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
        let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let out = Command::new("id").args(["-g", "nobody"]).output().unwrap();
        let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        ("nobody".into(), uid, gid)
    } else {
        // SAFETY: no preconditions.
        let gid = unsafe { libc::getegid() };
        let name = String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
            .trim()
            .to_string();
        (name, euid, gid)
    }
}

/// The seed's virtual table before the fix.
pub const VIRTUAL_BEFORE: &str =
    "root@mydomain.com       hoge@mydomain.com\npostadmin@mydomain.com   hoge@mydomain.com\n";
/// And after (the `user` form).
pub const VIRTUAL_AFTER: &str =
    "root    hoge@mydomain.com\npostadmin@mydomain.com   hoge@mydomain.com\n";

pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
}

impl Server {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The seed's configuration (shared/seeds: main.cf's virtual_* lines,
    /// mydestination = localhost, $myhostname), with `extra` main.cf lines.
    /// The seed added its lines to a distribution's stock main.cf, which
    /// sets `compatibility_level = 3.6` (Debian's does); so does this one.
    pub fn seed(virtual_table: &str, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let port = free_port();
        let (owner, uid, gid) = owner();
        std::fs::create_dir_all(d.join("vmail")).unwrap();
        std::fs::create_dir_all(d.join("log")).unwrap();
        for sub in ["vmail", "log"] {
            let _ = std::os::unix::fs::chown(d.join(sub), Some(uid), Some(gid));
        }
        let main = format!(
            "compatibility_level = 3.6\nmyhostname = mail.mydomain.com\nmydomain = mydomain.com\nmyorigin = $mydomain\nmydestination = localhost, $myhostname\n\
             smtpd_banner = $myhostname ESMTP\ninet_interfaces = loopback-only\nmynetworks = 127.0.0.1/32\nrecipient_delimiter = +\n\
             queue_directory = {d}/queue\nmaillog_file = {d}/log/mail.log\nmail_owner = {owner}\n\
             alias_maps = hash:{d}/aliases\nalias_database = hash:{d}/aliases\n\
             virtual_alias_maps = hash:{d}/virtual\nvirtual_mailbox_base = {d}/vmail\nvirtual_mailbox_domains = {d}/virtual_domains\n\
             virtual_mailbox_maps = hash:{d}/virtual_maps\nvirtual_uid_maps = static:{uid}\nvirtual_gid_maps = static:{gid}\nvirtual_minimum_uid = 0\n\
             local_recipient_maps = $virtual_mailbox_maps\n{extra}",
            d = d.display()
        );
        std::fs::write(d.join("main.cf"), main).unwrap();
        std::fs::write(
            d.join("master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n"),
        )
        .unwrap();
        std::fs::write(d.join("virtual"), virtual_table).unwrap();
        std::fs::write(d.join("virtual_domains"), "mydomain.com\n").unwrap();
        std::fs::write(
            d.join("virtual_maps"),
            "hoge@mydomain.com mydomain.com/hoge/\n",
        )
        .unwrap();
        std::fs::write(d.join("aliases"), "postmaster: root\n").unwrap();
        let s = Server {
            dir,
            port,
            child: None,
        };
        s.yubin(&["postmap", &s.path("virtual").display().to_string()]);
        s.yubin(&["postmap", &s.path("virtual_maps").display().to_string()]);
        s.yubin(&["newaliases"]);
        s
    }

    /// The embedded default configuration, as `yubin serve` writes it on
    /// first start (crates/yubin/src/server/embedded.rs), with its two
    /// listeners (2525 and 2587) moved to free ports. Returns the server and
    /// the submission port. `yubin serve` is stopped as soon as it has
    /// written the folder.
    pub fn embedded() -> (Server, u16) {
        let dir = tempfile::tempdir().unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut child = Command::new(bin())
            .arg("serve")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        let _ = err.read_line(&mut first);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            first.contains("created the embedded default"),
            "yubin serve: {first}"
        );
        let data = dir.path().join("yubin-data");
        let (port, submission) = (free_port(), free_port());
        let master = std::fs::read_to_string(data.join("master.cf"))
            .unwrap()
            .replace("127.0.0.1:2525 ", &format!("127.0.0.1:{port} "))
            .replace("127.0.0.1:2587 ", &format!("127.0.0.1:{submission} "));
        std::fs::write(data.join("master.cf"), master).unwrap();
        // Served as `yubin -c DIR`: the folder's contents move up into the
        // temporary folder (main.cf names its files by $config_directory).
        for e in std::fs::read_dir(&data).unwrap() {
            let e = e.unwrap();
            std::fs::rename(e.path(), dir.path().join(e.file_name())).unwrap();
        }
        std::fs::remove_dir(&data).unwrap();
        let s = Server {
            dir,
            port,
            child: None,
        };
        (s, submission)
    }

    /// Runs `yubin -c DIR args...`, asserting success; returns stdout.
    pub fn yubin(&self, args: &[&str]) -> String {
        let out = self.yubin_output(args);
        assert!(
            out.status.success(),
            "yubin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn yubin_output(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .arg("-c")
            .arg(self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }

    pub fn start(&mut self) {
        let child = Command::new(bin())
            .arg("-c")
            .arg(self.dir.path())
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                self.child
                    .as_mut()
                    .unwrap()
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("yubin serve exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "yubin serve did not start listening"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// SIGKILL: the crash case.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the graceful case.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("log/mail.log")).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (the queue manager is asynchronous).
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never contained {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until hoge's Maildir holds at least `n` messages; returns them.
    pub fn wait_mail(&self, n: usize) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mail = self.hoge_mail();
            if mail.len() >= n {
                return mail;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages arrived:\n{}",
                mail.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Files in hoge's Maildir new/.
    pub fn hoge_mail(&self) -> Vec<PathBuf> {
        let dir = self.path("vmail/mydomain.com/hoge/new");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal SMTP client for tests: sends a line, reads one reply.
pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let greet = c.reply();
        assert!(greet.starts_with("220 "), "{greet}");
        c
    }

    /// Reads one (possibly multi-line) reply; returns its last line.
    pub fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return "(closed)".into();
            }
            let line = line.trim_end().to_string();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.reply()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.w.write_all(bytes);
    }

    /// One whole transaction; returns the reply to the final dot.
    pub fn mail(&mut self, from: &str, to: &[&str], body: &str) -> String {
        assert!(self.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
        for t in to {
            let r = self.cmd(&format!("RCPT TO:<{t}>"));
            assert!(r.starts_with("250"), "{t}: {r}");
        }
        assert!(self.cmd("DATA").starts_with("354"));
        self.w
            .write_all(body.replace('\n', "\r\n").as_bytes())
            .unwrap();
        self.cmd(".")
    }
}

/// A self-signed certificate for mail.mydomain.com in `dir/cert.pem` and
/// `dir/key.pem` (openssl), the key readable by the server's user.
pub fn make_cert(dir: &Path) {
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mail.mydomain.com",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl (Debian package openssl)")
        .status
        .success();
    assert!(ok, "openssl req failed");
    let (_, uid, gid) = owner();
    let _ = std::os::unix::fs::chown(dir.join("key.pem"), Some(uid), Some(gid));
}

/// A SHA512-CRYPT hash of `password` (fixed salt) as Dovecot's passwd-file
/// holds it, made by openssl as `doveadm pw -s SHA512-CRYPT` would.
#[allow(dead_code)]
pub fn sha512_crypt(password: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args(["passwd", "-6", "-salt", "saltsalt", password])
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
