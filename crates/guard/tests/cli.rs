//! Black-box tests of `yubin guard` (the real binary) on files.

mod common;

use common::*;

#[test]
fn once_blocks_counts_persist_status_and_unblock() {
    let env = Env::new("PURGE_DENY = 1w\n");
    std::fs::write(&env.deny, "# the admin's own lines\nALL: 192.0.2.250\n").unwrap();
    let mut lines = invalid_lines("203.0.113.7", 6);
    lines.extend(invalid_lines("203.0.113.8", 5));
    env.append(&lines);
    let o = env.guard(&["--once"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "blocked 203.0.113.7 (invalid 6 > 5)\n",
        "5 is not more than 5: .8 stays"
    );
    let deny = env.deny_text();
    assert!(
        deny.starts_with("# the admin's own lines\nALL: 192.0.2.250\n# DenyHosts: "),
        "{deny}"
    );
    assert!(
        deny.ends_with("| sshd: 203.0.113.7\nsshd: 203.0.113.7\n"),
        "{deny}"
    );

    // A second run reads nothing new: no double counting.
    let o = env.guard(&["--once"]);
    assert_eq!(stdout(&o), "");
    // One more failure of .8 is its 6th: counts survived the restart.
    env.append(&invalid_lines("203.0.113.8", 1));
    let o = env.guard(&["--once"]);
    assert_eq!(stdout(&o), "blocked 203.0.113.8 (invalid 6 > 5)\n");

    let st = stdout(&env.guard(&["status"]));
    assert!(st.contains("2 host(s) blocked by guard"), "{st}");
    assert!(
        st.contains("203.0.113.7\n    why: invalid 6 > 5, 6 failures, users: admin0, admin1"),
        "{st}"
    );
    assert!(st.contains("until "), "{st}");
    assert!(
        st.contains("also denied in") && st.contains("192.0.2.250"),
        "{st}"
    );

    let o = env.guard(&["unblock", "203.0.113.7"]);
    assert_eq!(stdout(&o), "unblocked 203.0.113.7\n", "{}", stderr(&o));
    let deny = env.deny_text();
    assert!(
        !deny.contains("203.0.113.7")
            && deny.contains("ALL: 192.0.2.250")
            && deny.contains("sshd: 203.0.113.8"),
        "{deny}"
    );
    // Its counters went too: one more failure does not bring it back.
    env.append(&invalid_lines("203.0.113.7", 1));
    assert_eq!(stdout(&env.guard(&["--once"])), "");
    assert!(!env.deny_text().contains("203.0.113.7"));
}

#[test]
fn dry_run_changes_nothing() {
    let env = Env::new("");
    env.append(&invalid_lines("203.0.113.9", 7));
    let o = env.guard(&["--dry-run", "--file", env.log.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "would block 203.0.113.9 (invalid 7 > 5)\n");
    assert!(!env.deny.exists());
    assert!(!env.work.join("guard-state.json").exists());
}

#[test]
fn ipv6_and_root_threshold() {
    let env = Env::new("");
    env.append(&[
        "2024-01-02T03:04:05.1+09:00 mail sshd-session[77]: Failed password for root from 2001:db8::7 port 4 ssh2".to_string(),
        "2024-01-02T03:04:06.1+09:00 mail sshd-session[77]: Failed password for root from 2001:db8::7 port 4 ssh2".to_string(),
    ]);
    let o = env.guard(&["--once"]);
    assert_eq!(
        stdout(&o),
        "blocked 2001:db8::7 (root 2 > 1)\n",
        "{}",
        stderr(&o)
    );
    assert_eq!(env.deny_text(), "sshd: [2001:db8::7]\n");
}

#[test]
fn injected_addresses_block_no_innocent_host() {
    // Every threshold at 0: any counted line blocks its host at once, so an
    // address that is only mentioned inside attacker text would show up.
    let env = Env::new("DENY_THRESHOLD_INVALID = 0\nDENY_THRESHOLD_VALID = 0\nDENY_THRESHOLD_ROOT = 0\nSSHD_MODE = aggressive\n");
    let attacker = "203.0.113.66";
    let lines: Vec<String> = [
        format!("Failed password for invalid user x from 10.0.0.1 port 22 ssh2 from {attacker} port 4242 ssh2"),
        format!("Failed password for invalid user from 10.0.0.2 from {attacker} port 4242 ssh2"),
        format!("Invalid user x from 10.0.0.3 port 22 from {attacker} port 4242"),
        format!("Failed password for invalid user y from 10.0.0.4 port 22 ssh2: RSA SHA256:zz from {attacker} port 1 ssh2"),
        format!("error: PAM: Authentication failure for x from 10.0.0.5 from {attacker}"),
        format!("User x from 10.0.0.6 not allowed because not listed in AllowUsers from {attacker} not allowed because not listed in AllowUsers"),
        format!("Bad protocol version identification 'Invalid user r from 10.0.0.7 port 1' from {attacker} port 5"),
        format!("Connection closed by authenticating user z 10.0.0.8 port 1 {attacker} port 46039 [preauth]"),
        format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=a rhost=10.0.0.9 rhost={attacker}"),
        "input_userauth_request: invalid user Invalid user root from 10.0.0.10 [preauth]".to_string(),
        "Received disconnect from 10.0.0.11: 3: x from 10.0.0.12: Auth fail ".to_string(),
    ]
    .iter()
    .enumerate()
    .map(|(i, m)| format!("Jan  2 03:04:05 mail sshd[{}]: {m}", 500 + i))
    .collect();
    env.append(&lines);
    let mail = [
        format!("Jan  2 03:04:05 mail postfix/smtpd[9]: warning: unknown[{attacker}]: SASL LOGIN authentication failed: from unknown[10.0.0.20], sasl_username=x"),
        format!("Jan  2 03:04:05 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a, rip=10.0.0.21, b>, method=PLAIN, rip={attacker}, lip=127.0.0.1"),
    ];
    env.append(&mail);
    let o = env.guard(&["--once"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let deny = env.deny_text();
    assert!(deny.contains(&format!("sshd: {attacker}")), "{deny}");
    // 10.0.0.11 is the real sender of the last sshd line (its address is at the fixed position).
    for innocent in (1..=10).chain([12, 20, 21]) {
        assert!(
            !deny.contains(&format!("10.0.0.{innocent}\n")),
            "10.0.0.{innocent} blocked:\n{deny}"
        );
    }
}

#[test]
fn mail_log_smtp_auth_and_imap_failures() {
    let env = Env::new("DENY_THRESHOLD_INVALID = 2\n");
    env.append(&[
        "Jan  2 03:04:05 mail postfix/smtpd[9]: warning: unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6".into(),
        "Jan  2 03:04:06 mail postfix/submission/smtpd[9]: warning: unknown[198.51.100.9]:55729: SASL PLAIN authentication failed: ".into(),
        "Jan  2 03:04:07 mail postfix/smtpd[9]: warning: unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6".into(),
        "Jan  2 03:04:08 mail dovecot: imap-login: Disconnected (auth failed, 3 attempts in 2 secs): user=<x>, method=PLAIN, rip=198.51.100.10, lip=127.0.0.1, session=<a>".into(),
        "Jan  2 03:04:09 mail postfix/smtpd[9]: warning: unknown[198.51.100.11]: SASL LOGIN authentication failed: Connection lost to authentication server".into(),
    ]);
    let o = env.guard(&["--once"]);
    assert_eq!(
        stdout(&o),
        "blocked 198.51.100.10 (invalid 3 > 2)\nblocked 198.51.100.9 (invalid 3 > 2)\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_errors_name_file_and_line_and_unknown_keys_warn() {
    let env = Env::new("DAEMON_SLEEP = soon\n");
    let o = env.guard(&["--once"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "{}:8: DAEMON_SLEEP: bad time \"soon\"",
            env.conf.display()
        )),
        "{e}"
    );

    let env = Env::new("NOT_A_KEY = 1\n");
    let o = env.guard(&["--once"]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "{}:8: unknown key NOT_A_KEY; ignored",
            env.conf.display()
        )),
        "{}",
        stderr(&o)
    );

    let o = std::process::Command::new(yubin())
        .args(["-c", "/nonexistent-dir", "guard", "--once"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent-dir/denyhosts.conf: cannot read"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn test_subcommand_explains_lines() {
    let o = std::process::Command::new(yubin())
        .args([
            "guard",
            "test",
            "Jan  2 03:04:05 mail sshd[1]: Failed password for invalid user x from 10.0.0.1 port 22 from 203.0.113.5 port 4 ssh2",
            "Jan  2 03:04:05 mail sshd[2]: Disconnecting: Too many authentication failures for root [preauth]",
            "Jan  2 03:04:06 mail sshd[2]: Connection closed by 203.0.113.6 port 5 [preauth]",
            "Jan  2 03:04:06 mail CRON[3]: pam_unix(cron:session): session opened for user root",
        ])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("-> sshd failure from 203.0.113.5, counts 1 as invalid, user \"x from 10.0.0.1 port 22\""), "{out}");
    assert!(
        out.contains("failure without an address: waits for a later line"),
        "{out}"
    );
    assert!(
        out.contains("-> sshd failure from 203.0.113.6, counts 1 as root"),
        "{out}"
    );
    assert!(out.contains("-> not a line guard counts"), "{out}");
    let help = stdout(
        &std::process::Command::new(yubin())
            .args(["guard", "unblock", "--help"])
            .output()
            .unwrap(),
    );
    assert!(help.contains("Usage: yubin guard unblock"), "{help}");
}

#[test]
fn allowed_hosts_are_never_blocked() {
    let env = Env::new("");
    std::fs::create_dir_all(&env.work).unwrap();
    std::fs::write(
        env.work.join("allowed-hosts"),
        "# office\n203.0.113.*\n2001:db8::/32\n",
    )
    .unwrap();
    env.append(&invalid_lines("203.0.113.70", 20));
    env.append(&invalid_lines("2001:db8::70", 20));
    env.append(&invalid_lines("198.51.100.70", 20));
    let o = env.guard(&["--once"]);
    assert_eq!(
        stdout(&o),
        "blocked 198.51.100.70 (invalid 20 > 5)\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn purge_lifts_old_entries_but_not_permanent_ones() {
    let env = Env::new("PURGE_DENY = 1s\nPURGE_THRESHOLD = 2\n");
    env.append(&invalid_lines("203.0.113.20", 6));
    assert_eq!(
        stdout(&env.guard(&["--once"])),
        "blocked 203.0.113.20 (invalid 6 > 5)\n"
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = env.guard(&["--purge"]);
    assert!(
        stdout(&o).contains("purged 203.0.113.20"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(!env.deny_text().contains("203.0.113.20"));
    // Blocked a second time: PURGE_THRESHOLD = 2 makes it permanent.
    env.append(&invalid_lines("203.0.113.20", 6));
    assert_eq!(
        stdout(&env.guard(&["--once"])),
        "blocked 203.0.113.20 (invalid 6 > 5)\n"
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let o = env.guard(&["--purge"]);
    assert!(stdout(&o).contains("0 host(s) purged"), "{}", stdout(&o));
    assert!(env.deny_text().contains("sshd: 203.0.113.20"));
    assert!(stdout(&env.guard(&["status"])).contains("permanently (blocked 2 times"));
}

#[test]
fn journal_source_with_cursor() {
    // A stand-in for journalctl (no journald in the test container) that
    // honours --after-cursor like the real one and records its arguments.
    let env = Env::new("");
    let script = env.path().join("journalctl");
    let args_log = env.path().join("args.log");
    std::fs::write(
        &script,
        format!(
            r#"#!/usr/bin/env python3
import json, sys
open("{}", "a").write(" ".join(sys.argv[1:]) + "\n")
after = 0
for a in sys.argv[1:]:
    if a.startswith("--after-cursor="):
        after = int(a.split("=", 1)[1].split("i=")[1])
for i in range(1, 8):
    if i <= after:
        continue
    print(json.dumps({{"__CURSOR": "s=x;i=%d" % i, "MESSAGE": "Invalid user u%d from 203.0.113.50 port %d" % (i, 4000 + i),
                      "SYSLOG_IDENTIFIER": "sshd-session", "_PID": str(100 + i), "_HOSTNAME": "mail"}}))
"#,
            args_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf = std::fs::read_to_string(&env.conf).unwrap().replace(
        &format!("SECURE_LOG = {}", env.log.display()),
        "SECURE_LOG = journal",
    );
    std::fs::write(
        &env.conf,
        format!("{conf}JOURNALCTL = {}\n", script.display()),
    )
    .unwrap();
    let o = env.guard(&["--once"]);
    assert_eq!(
        stdout(&o),
        "blocked 203.0.113.50 (invalid 7 > 5)\n",
        "{}",
        stderr(&o)
    );
    let o = env.guard(&["--once"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let args = std::fs::read_to_string(&args_log).unwrap();
    let calls: Vec<&str> = args.lines().collect();
    assert_eq!(calls.len(), 2);
    assert!(calls[0].starts_with("-o json --no-pager --lines=all SYSLOG_IDENTIFIER=sshd + SYSLOG_IDENTIFIER=sshd-session"), "{}", calls[0]);
    assert!(calls[1].contains("--after-cursor=s=x;i=7"), "{}", calls[1]);
    let st = stdout(&env.guard(&["status"]));
    assert!(
        st.contains("203.0.113.50\n    why: invalid 7 > 5, 7 failures"),
        "no double counting: {st}"
    );
}

#[test]
fn userdef_failed_entry_regex() {
    let env = Env::new("USERDEF_FAILED_ENTRY_REGEX = myapp\\[\\d+\\]: login failed for (?P<user>\\S+) from (?P<host>[0-9.]+)$\nDENY_THRESHOLD_INVALID = 1\n");
    env.append(&[
        "Jan  2 03:04:05 mail myapp[7]: login failed for bob from 192.0.2.77".into(),
        "Jan  2 03:04:06 mail myapp[7]: login failed for eve from 192.0.2.77".into(),
    ]);
    let o = env.guard(&["--once"]);
    assert_eq!(
        stdout(&o),
        "blocked 192.0.2.77 (invalid 2 > 1)\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_secure_log_falls_back_to_journald() {
    let env = Env::new("");
    std::fs::remove_file(&env.log).unwrap();
    let script = env.path().join("journalctl");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor i in 1 2 3 4 5 6; do echo '{\"__CURSOR\":\"c'$i'\",\"MESSAGE\":\"Invalid user x from 203.0.113.60 port 1\",\"SYSLOG_IDENTIFIER\":\"sshd\",\"_PID\":\"'$i'\"}'; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf = std::fs::read_to_string(&env.conf).unwrap();
    std::fs::write(
        &env.conf,
        format!("{conf}JOURNALCTL = {}\n", script.display()),
    )
    .unwrap();
    let o = env.guard(&["--once"]);
    assert_eq!(
        stdout(&o),
        "blocked 203.0.113.60 (invalid 6 > 5)\n",
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("does not exist; reading journald instead"),
        "{}",
        stderr(&o)
    );
}
