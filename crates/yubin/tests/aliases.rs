//! aliases(5) command targets, and allow_mail_to_commands.

mod common;

use std::process::Command;

use common::{Client, Server, VIRTUAL_AFTER};

fn send_to(port: u16, to: &str) -> String {
    let mut c = Client::connect(port);
    c.cmd("EHLO x");
    c.mail("a@example.org", &[to], "Subject: to a command\n\nbody\n")
}

#[test]
fn command_alias_runs_as_default_privs_only_when_allowed() {
    // Started as root the server runs as mail_owner (nobody in the tests);
    // alias commands must run as default_privs instead: use `daemon` to tell
    // the two apart. Without root, everything runs as the current user.
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let extra = if root {
        "local_recipient_maps = $alias_maps\ndefault_privs = daemon\n"
    } else {
        "local_recipient_maps = $alias_maps\n"
    };
    let mut s = Server::seed(VIRTUAL_AFTER, extra);
    let out = std::env::temp_dir().join(format!("yubin-alias-{}.txt", s.port));
    let _ = std::fs::remove_file(&out);
    std::fs::write(
        s.path("aliases"),
        format!(
            "postmaster: root\nlogger: \"|/bin/sh -c 'id -u > {o}; cat >> {o}'\"\n",
            o = out.display()
        ),
    )
    .unwrap();
    s.yubin(&["newaliases"]);
    s.start();
    assert!(send_to(s.port, "logger@localhost").starts_with("250"));
    s.wait_log("delivered to command:");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("Subject: to a command"), "{text}");
    let want = if root {
        String::from_utf8_lossy(
            &Command::new("id")
                .args(["-u", "daemon"])
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .to_string()
    } else {
        // SAFETY: no preconditions.
        unsafe { libc::geteuid() }.to_string()
    };
    assert_eq!(
        text.lines().next(),
        Some(want.as_str()),
        "the command's uid"
    );
    let _ = std::fs::remove_file(&out);
    // Forbidden: the same alias bounces with local(8)'s reason.
    let mut main = std::fs::read_to_string(s.path("main.cf")).unwrap();
    main.push_str("allow_mail_to_commands = forward\n");
    std::fs::write(s.path("main.cf"), main).unwrap();
    s.yubin(&["reload"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(send_to(s.port, "logger@localhost").starts_with("250"));
    s.wait_log("status=bounced (mail to command is restricted)");
}
