//! Two yubin hosts (MX 10 mx1, MX 20 mx2), each in its own network
//! namespace (../shared/tools/netlab.sh), and one PostgreSQL in a third
//! (`client`): a user created once with `yubin passwd` on mx1 logs in (SMTP
//! AUTH) on both; a host blocked by mx1's guard is blocked by mx2's guard
//! daemon within 5 s. Needs root (network namespaces), like outbound_lab.rs.

mod common;
#[path = "../../outbound/tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, VIRTUAL_AFTER};
use support::*;
use yubin_pgsql::testserver::TestServer;

fn in_lab(lab: &Lab, host: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.ns(host)])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn mx(lab: &Lab, name: &str, ip: &str, db: &str) -> Server {
    let s = Server::seed(VIRTUAL_AFTER, "");
    std::fs::write(
        s.path("master.cf"),
        format!("{ip}:25 inet n - n - - smtpd\n"),
    )
    .unwrap();
    std::fs::write(
        s.path("users-sql.cf"),
        format!(
            "connect = host={db} port=5432 dbname=yubin user=postgres\n\
             password_query = SELECT username AS user, password FROM users WHERE username = '%u'\n\
             password_update_query = UPDATE users SET password = '%w' WHERE username = '%u'\n\
             user_insert_query = INSERT INTO users (username, password) VALUES ('%u', '%w')\n"
        ),
    )
    .unwrap();
    let main = std::fs::read_to_string(s.path("main.cf"))
        .unwrap()
        .replace("inet_interfaces = loopback-only", "inet_interfaces = all")
        .replace("myhostname = mail.mydomain.com", &format!("myhostname = {name}.lab.test"))
        + &format!(
            "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = passwd-file\nsmtpd_sasl_path = pgsql:{}\nsmtpd_tls_auth_only = no\nsmtpd_sasl_mechanisms = PLAIN LOGIN\n",
            s.path("users-sql.cf").display()
        );
    std::fs::write(s.path("main.cf"), main).unwrap();
    let log = lab.path(&format!("yubin-{name}.log"));
    lab.sh(&[
        "spawn",
        name,
        log.to_str().unwrap(),
        common::bin().to_str().unwrap(),
        "-c",
        s.dir.path().to_str().unwrap(),
        "serve",
    ]);
    lab.sh(&["wait", "client", ip, "25", "20"]);
    s
}

fn auth(lab: &Lab, server: &str, user: &str, pw: &str) -> String {
    let out = in_lab(
        lab,
        "client",
        &[
            "swaks",
            "--server",
            &format!("{server}:25"),
            "--auth",
            "LOGIN",
            "--auth-user",
            user,
            "--auth-password",
            pw,
            "--quit-after",
            "AUTH",
        ],
        b"",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn guard_conf(dir: &Path, node: &str, db: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("work")).unwrap();
    std::fs::write(dir.join("auth.log"), "").unwrap();
    std::fs::write(
        dir.join("sync.cf"),
        format!("hosts = inet:{db}:5432\nuser = postgres\ndbname = yubin\n"),
    )
    .unwrap();
    let conf = dir.join("denyhosts.conf");
    std::fs::write(
        &conf,
        format!(
            "SECURE_LOG = {d}/auth.log\nHOSTS_DENY = {d}/hosts.deny\nWORK_DIR = {d}/work\nLOCK_FILE = {d}/pid\nHOSTNAME_LOOKUP = NO\nADMIN_EMAIL =\nDAEMON_SLEEP = 1s\n\
             SYNC_SERVER = pgsql:{d}/sync.cf\nSYNC_INTERVAL = 1s\nSYNC_DOWNLOAD_THRESHOLD = 1\nSYNC_DOWNLOAD_RESILIENCY = 0\nSYNC_NODE_NAME = {node}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    conf
}

#[test]
fn two_mx_hosts_share_users_and_bans_through_one_postgresql() {
    let lab = Lab::new(&[
        "mydomain.com. MX 10 mx1.lab.test.",
        "mydomain.com. MX 20 mx2.lab.test.",
    ]);
    let (db, mx1, mx2) = (format!("{NET}.2"), format!("{NET}.10"), format!("{NET}.11"));

    // One PostgreSQL, in the lab host `client`, reachable from both MX hosts.
    let mut pg = TestServer::start().expect("private PostgreSQL");
    pg.psql(
        "yubin",
        "CREATE TABLE users (username text PRIMARY KEY, password text NOT NULL)",
    )
    .unwrap();
    pg.stop().unwrap();
    pg.trust_network(&format!("{NET}.0/24")).unwrap();
    let (postgres, user) = pg.server_command();
    let mut cmd: Vec<String> = Vec::new();
    if let Some(u) = user {
        cmd.extend(["runuser".into(), "-u".into(), u, "--".into()]);
    }
    cmd.extend([
        postgres.display().to_string(),
        "-D".into(),
        pg.data_dir().display().to_string(),
        "-c".into(),
        format!("listen_addresses={db}"),
        "-c".into(),
        "port=5432".into(),
        "-c".into(),
        format!("unix_socket_directories={}", pg.dir().display()),
        "-c".into(),
        "fsync=off".into(),
    ]);
    let pg_log = lab.path("postgres.log");
    let mut spawn = vec![
        "spawn".to_string(),
        "client".into(),
        pg_log.display().to_string(),
    ];
    spawn.extend(cmd);
    let spawn: Vec<&str> = spawn.iter().map(String::as_str).collect();
    let pg_pid = lab.sh(&spawn);
    lab.sh(&["wait", "mx1", &db, "5432", "20"]);

    let s1 = mx(&lab, "mx1", &mx1, &db);
    let s2 = mx(&lab, "mx2", &mx2, &db);

    // A user created once, on mx1...
    let out = in_lab(
        &lab,
        "mx1",
        &[
            common::bin().to_str().unwrap(),
            "-c",
            s1.dir.path().to_str().unwrap(),
            "passwd",
            "new@mydomain.com",
        ],
        b"n3w-pass\nn3w-pass\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... logs in to both.
    for server in [&mx1, &mx2] {
        let t = auth(&lab, server, "new@mydomain.com", "n3w-pass");
        assert!(
            t.contains("<-  235 2.7.0 Authentication successful"),
            "{server}: {t}"
        );
        let t = auth(&lab, server, "new@mydomain.com", "wrong");
        assert!(t.contains("535 5.7.8"), "{server}: {t}");
    }

    // Guards: mx2's runs as a daemon; mx1's sees an attack and blocks it.
    let g1 = tempfile::tempdir().unwrap();
    let g2 = tempfile::tempdir().unwrap();
    let c1 = guard_conf(g1.path(), "mx1", &db);
    let c2 = guard_conf(g2.path(), "mx2", &db);
    let daemon_log = lab.path("guard-mx2.log");
    let daemon = lab.sh(&[
        "spawn",
        "mx2",
        daemon_log.to_str().unwrap(),
        common::bin().to_str().unwrap(),
        "guard",
        "--config",
        c2.to_str().unwrap(),
    ]);
    let attacker = "198.51.100.23";
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(g1.path().join("auth.log"))
        .unwrap();
    for i in 0..12 {
        writeln!(
            f,
            "Jan  2 03:04:{i:02} mx1 sshd[{}]: Invalid user admin{i} from {attacker} port {}",
            1000 + i,
            40000 + i
        )
        .unwrap();
    }
    drop(f);
    let out = in_lab(
        &lab,
        "mx1",
        &[
            common::bin().to_str().unwrap(),
            "guard",
            "--config",
            c1.to_str().unwrap(),
            "--once",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deny1 = std::fs::read_to_string(g1.path().join("hosts.deny")).unwrap_or_default();
    assert!(deny1.contains(attacker), "mx1 did not block: {deny1}");
    let blocked_at = Instant::now();
    let deny2 = || std::fs::read_to_string(g2.path().join("hosts.deny")).unwrap_or_default();
    while !deny2().contains(attacker) && blocked_at.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        deny2().contains(attacker),
        "mx2 did not block {attacker} within 5 s: {}\n{}",
        deny2(),
        std::fs::read_to_string(&daemon_log).unwrap_or_default()
    );

    lab.sh(&["stop", &daemon]);
    drop(s1);
    drop(s2);
    lab.sh(&["stop", &pg_pid]);
}
