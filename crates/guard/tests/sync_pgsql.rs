//! Shared bans through a real PostgreSQL (Debian's postgresql 15, started
//! privately): guard A blocks an attacker and publishes it; guard B, which
//! never saw the attack, blocks it at its next pass. A host reported by too
//! few guards (SYNC_DOWNLOAD_THRESHOLD), an allowed host, and a database
//! that is down (local blocking goes on, the report is sent later) too.

mod common;

use std::path::Path;

use yubin_guard::config::Config;
use yubin_guard::run::{Options, Runner};
use yubin_pgsql::testserver::TestServer;

struct Guard {
    dir: tempfile::TempDir,
    runner: Runner,
}

impl Guard {
    fn new(pg_conf: &Path, node: &str, threshold: u32) -> Guard {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("auth.log"), "").unwrap();
        std::fs::create_dir_all(p.join("work")).unwrap();
        std::fs::write(p.join("work/allowed-hosts"), "192.0.2.99\n").unwrap();
        let text = format!(
            "SECURE_LOG = {d}/auth.log\nHOSTS_DENY = {d}/hosts.deny\nWORK_DIR = {d}/work\nLOCK_FILE = {d}/pid\nHOSTNAME_LOOKUP = NO\nADMIN_EMAIL =\n\
             SYNC_SERVER = pgsql:{conf}\nSYNC_INTERVAL = 1s\nSYNC_DOWNLOAD_THRESHOLD = {threshold}\nSYNC_DOWNLOAD_RESILIENCY = 0\nSYNC_NODE_NAME = {node}\n",
            d = p.display(),
            conf = pg_conf.display()
        );
        let cfg = Config::from_text(&p.join("denyhosts.conf"), &text, &|_| None).unwrap();
        let mut runner = Runner::new(cfg);
        runner.log = Box::new(|m| eprintln!("guard: {m}"));
        Guard { dir, runner }
    }

    fn attack(&self, host: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("auth.log"))
            .unwrap();
        for l in common::invalid_lines(host, 12) {
            writeln!(f, "{l}").unwrap();
        }
    }

    fn pass(&mut self) -> Vec<String> {
        let r = self.runner.pass(&Options::default()).unwrap();
        r.added.into_iter().map(|c| c.host).collect()
    }

    fn denied(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hosts.deny")).unwrap_or_default()
    }
}

#[test]
fn blocks_are_shared_through_postgresql() {
    let mut pg = TestServer::start().expect("private PostgreSQL");
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("guard-sync.cf");
    std::fs::write(&conf, pg.conf_head()).unwrap();

    let mut a = Guard::new(&conf, "mx1", 1);
    let mut b = Guard::new(&conf, "mx2", 1);
    let mut c = Guard::new(&conf, "mx3", 2);
    assert!(b.pass().is_empty());

    a.attack("198.51.100.7");
    assert_eq!(a.pass(), ["198.51.100.7"]);
    assert!(a.denied().contains("198.51.100.7"));
    // B never saw a failure from it, and blocks it at its next sync.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(b.pass(), ["198.51.100.7"]);
    assert!(b.denied().contains("sshd: 198.51.100.7"), "{}", b.denied());
    // C wants two other guards' word: A's alone is not enough...
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(c.pass().is_empty());
    // ... and B does not echo what it downloaded, so it stays one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(c.pass().is_empty());
    // An allowed host is never taken from the table.
    pg.psql(
        "yubin",
        "INSERT INTO yubin_guard_blocks (host, reporter) VALUES ('192.0.2.99', 'mx9')",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(b.pass().is_empty());
    assert!(!b.denied().contains("192.0.2.99"));

    // The database goes away: A still blocks locally; its report waits and
    // is sent when the database is back, and B then blocks too.
    pg.stop().unwrap();
    a.attack("203.0.113.5");
    assert_eq!(a.pass(), ["203.0.113.5"]);
    pg.start_again().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(a.pass().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(b.pass(), ["203.0.113.5"]);
    let rows = pg
        .psql(
            "yubin",
            "SELECT host || ' ' || reporter FROM yubin_guard_blocks ORDER BY 1",
        )
        .unwrap();
    assert_eq!(rows, "192.0.2.99 mx9\n198.51.100.7 mx1\n203.0.113.5 mx1\n");
}
