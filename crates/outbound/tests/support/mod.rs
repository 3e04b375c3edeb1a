//! The offline lab for outbound tests (../shared/tools/netlab.md), shared
//! by crates/outbound/tests/lab.rs and crates/yubin/tests/outbound_lab.rs
//! (included there with `#[path]`): each user needs only part of it.
#![allow(dead_code)]

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use yubin_outbound::agent::{deliver, Delivery, Job};
use yubin_outbound::{Dns, Nexthop, Settings};
use yubin_smtp::client::Rcpt;

pub const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/tools");
pub const NET: &str = "10.61.0";

pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the outbound lab tests need root (network namespaces via netlab.sh); run them as root, e.g. in .ci/run"
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Lab {
    pub id: String,
    pub tmp: tempfile::TempDir,
}

impl Lab {
    /// A lab with hosts `client` (.2), `mx1` (.10), `mx2` (.11) and the DNS
    /// (.53) serving `records`.
    pub fn new(records: &[&str]) -> Lab {
        require_root();
        for tool in ["unbound", "python3", "ip"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                found,
                "{tool} is needed for the lab tests (.ci/packages.txt)"
            );
        }
        let id = format!(
            "yo{}_{}",
            SEQ.fetch_add(1, Ordering::SeqCst),
            std::process::id() % 1_000_000
        );
        let lab = Lab {
            id,
            tmp: tempfile::tempdir().unwrap(),
        };
        lab.sh(&[
            "up",
            "client",
            &format!("{NET}.2"),
            "mx1",
            &format!("{NET}.10"),
            "mx2",
            &format!("{NET}.11"),
        ]);
        let mut args = vec!["dns".to_string(), "--ip".into(), format!("{NET}.53")];
        for r in records {
            args.push("--rr".into());
            args.push(r.to_string());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.sh(&a);
        lab
    }

    pub fn sh(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(format!("{SHARED}/netlab.sh"))
            .args(args)
            .env("NETLAB_ID", &self.id)
            .output()
            .expect("run netlab.sh");
        assert!(
            out.status.success(),
            "netlab.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Starts smtp_peer.py on HOST:25 and waits until it listens.
    pub fn peer(&self, host: &str, ip: &str, extra: &[&str]) -> PathBuf {
        let log = self.path(&format!("{host}.peer.log"));
        let listen = format!("{ip}:25");
        let peer = format!("{SHARED}/smtp_peer.py");
        let hostname = format!("{host}.lab.test");
        let mut args = vec![
            "spawn",
            host,
            log.to_str().unwrap(),
            "python3",
            &peer,
            "--listen",
            &listen,
            "--hostname",
            &hostname,
        ];
        args.extend_from_slice(extra);
        self.sh(&args);
        self.sh(&["wait", "client", ip, "25", "10"]);
        log
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.id)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{SHARED}/netlab.sh"))
            .arg("down")
            .env("NETLAB_ID", &self.id)
            .output();
    }
}

/// Events of a smtp_peer log with this `ev`.
pub fn events(log: &Path, ev: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["ev"] == ev)
        .collect()
}

/// The number of `ev` events once there are at least `n` (the peer may
/// log an event just after its reply reached the client), or after 10 s
/// whatever there is (so a wrong count still fails the assertion).
pub fn count_events(log: &Path, ev: &str, n: usize) -> usize {
    for _ in 0..200 {
        let c = events(log, ev).len();
        if c >= n {
            return c;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    events(log, ev).len()
}

/// The peer's connection count once every connection so far has closed
/// (`netlab.sh wait`'s probe is accepted by the kernel before the peer
/// logs it: counting right after `peer` could miss it).
pub fn settled_connects(log: &Path) -> usize {
    for _ in 0..200 {
        let (c, x) = (events(log, "connect").len(), events(log, "close").len());
        if c > 0 && x >= c {
            return c;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "the peer never logged the probe's connection: {}",
        log.display()
    );
}

/// Runs `f` on a thread inside the namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let fd = File::open(format!("/run/netns/{ns}")).expect("namespace exists");
        // SAFETY: setns(2) with a namespace fd we hold open; CLONE_NEWNET
        // changes only this thread's network namespace.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("delivery thread")
}

pub fn settings() -> Settings {
    let mut s = Settings::new("client.lab.test");
    // Short enough to keep each test bounded, long enough for a slow CI.
    let t = Duration::from_secs(15);
    s.timeouts.connect = Duration::from_secs(5);
    s.timeouts.helo = t;
    s.timeouts.starttls = t;
    s.timeouts.mail = t;
    s.timeouts.rcpt = t;
    s.timeouts.data_init = t;
    s.timeouts.data_xfer = t;
    s.timeouts.data_done = t;
    s.timeouts.quit = t;
    s
}

pub fn message(id: &str) -> String {
    format!(
        "From: s@client.lab.test\nTo: someone\nMessage-Id: <{id}@client.lab.test>\nSubject: lab {id}\n\nhello from the lab\n.leading dot\n"
    )
}

/// Delivers from the lab's `client` host.
pub fn send(
    lab: &Lab,
    set: impl FnOnce(&mut Settings) + Send + 'static,
    nexthop: &str,
    rcpts: &[&str],
    msg: String,
) -> Delivery {
    let nexthop = Nexthop::parse(nexthop).unwrap();
    let rcpts: Vec<Rcpt> = rcpts.iter().map(|r| Rcpt::new(*r)).collect();
    in_ns(lab.ns("client"), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut s = settings();
            set(&mut s);
            let dns_addr: SocketAddr = format!("{NET}.53:53").parse().unwrap();
            let dns = Dns::new(Some(&[dns_addr]));
            let job = Job {
                queue_id: "LABTEST",
                sender: "s@client.lab.test",
                recipients: rcpts,
                message: msg.as_bytes(),
                ret: None,
                envid: None,
                smtputf8: false,
            };
            tokio::time::timeout(Duration::from_secs(90), deliver(&s, &dns, &nexthop, &job))
                .await
                .expect("a delivery attempt is bounded by its timeouts")
        })
    })
}
