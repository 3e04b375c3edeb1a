//! The daemon follows SECURE_LOG across rename rotation and copytruncate,
//! and a restart neither re-counts nor misses lines.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn start(env: &Env) -> Child {
    Child(
        Command::new(yubin())
            .args(["guard", "--config", env.conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn daemon_follows_rotation_and_restarts_without_recount() {
    let env = Env::new("DAEMON_SLEEP = 1s\n");
    let conf = std::fs::read_to_string(&env.conf).unwrap();
    std::fs::write(
        &env.conf,
        format!("{conf}DAEMON_LOG = {}/daemon.log\n", env.path().display()),
    )
    .unwrap();
    let daemon = start(&env);
    env.append(&invalid_lines("203.0.113.1", 6));
    assert!(
        wait_for(15, || env.deny_text().contains("sshd: 203.0.113.1\n")),
        "first block: {}",
        env.deny_text()
    );

    // A second daemon is refused while the first holds LOCK_FILE.
    let o = env.guard(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("another yubin guard daemon holds"),
        "{}",
        stderr(&o)
    );

    // Rename rotation: 3 lines land in the old file, 3 in the new one.
    env.append(&invalid_lines("203.0.113.2", 3));
    std::fs::rename(&env.log, env.path().join("auth.log.1")).unwrap();
    std::fs::write(&env.log, "").unwrap();
    env.append(&invalid_lines("203.0.113.2", 3));
    assert!(
        wait_for(15, || env.deny_text().contains("sshd: 203.0.113.2\n")),
        "after rotation: {}",
        env.deny_text()
    );

    // Copytruncate.
    std::fs::write(&env.log, "").unwrap();
    env.append(&invalid_lines("203.0.113.3", 6));
    assert!(
        wait_for(15, || env.deny_text().contains("sshd: 203.0.113.3\n")),
        "after truncate: {}",
        env.deny_text()
    );
    drop(daemon);

    // Stopped: 5 lines of .4 arrive (not enough); restart; 1 more: the 6th.
    env.append(&invalid_lines("203.0.113.4", 5));
    let daemon = start(&env);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(!env.deny_text().contains("203.0.113.4"));
    env.append(&invalid_lines("203.0.113.4", 1));
    assert!(
        wait_for(15, || env.deny_text().contains("sshd: 203.0.113.4\n")),
        "{}",
        env.deny_text()
    );
    drop(daemon);
    // Nothing was counted twice: .1 still has exactly 6.
    let st = stdout(&env.guard(&["status"]));
    assert!(
        st.contains("203.0.113.1\n    why: invalid 6 > 5, 6 failures"),
        "{st}"
    );
    assert!(
        st.contains("203.0.113.4\n    why: invalid 6 > 5, 6 failures"),
        "{st}"
    );
    let log = std::fs::read_to_string(env.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("yubin-guard: blocked 203.0.113.1 (invalid 6 > 5, 6 failures)"),
        "{log}"
    );
}

#[test]
fn daemon_purges_every_daemon_purge() {
    let env = Env::new("DAEMON_SLEEP = 1s\nDAEMON_PURGE = 2s\nPURGE_DENY = 2s\n");
    let daemon = start(&env);
    env.append(&invalid_lines("203.0.113.30", 6));
    assert!(
        wait_for(15, || env.deny_text().contains("sshd: 203.0.113.30\n")),
        "{}",
        env.deny_text()
    );
    assert!(
        env.deny_text().contains("# DenyHosts: "),
        "PURGE_DENY writes the timestamp comment"
    );
    assert!(
        wait_for(20, || !env.deny_text().contains("203.0.113.30")),
        "not purged: {}",
        env.deny_text()
    );
    drop(daemon);
}

#[test]
fn daemon_follows_journalctl_f() {
    let env = Env::new("DAEMON_SLEEP = 1s\nSECURE_LOG = journal\n");
    let script = env.path().join("journalctl");
    let args = env.path().join("args");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nfor i in 1 2 3 4 5 6; do echo '{{\"__CURSOR\":\"c'$i'\",\"MESSAGE\":\"Invalid user x from 203.0.113.61 port 1\",\"SYSLOG_IDENTIFIER\":\"sshd-session\",\"_PID\":\"'$i'\"}}'; done\nexec sleep 20\n",
            args.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf = std::fs::read_to_string(&env.conf).unwrap();
    std::fs::write(
        &env.conf,
        format!("{conf}JOURNALCTL = {}\n", script.display()),
    )
    .unwrap();
    let daemon = start(&env);
    assert!(
        wait_for(15, || env.deny_text().contains("sshd: 203.0.113.61\n")),
        "{}",
        env.deny_text()
    );
    drop(daemon);
    let a = std::fs::read_to_string(&args).unwrap();
    assert!(a.starts_with("-o json --no-pager -f --lines=all "), "{a}");
    assert_eq!(a.lines().count(), 1, "one long-running journalctl: {a}");
}
