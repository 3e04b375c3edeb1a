//! aliases(5) command targets, and allow_mail_to_commands.

mod common;

use common::{Client, Server, VIRTUAL_AFTER};

fn send_to(port: u16, to: &str) -> String {
    let mut c = Client::connect(port);
    c.cmd("EHLO x");
    c.mail("a@example.org", &[to], "Subject: to a command\n\nbody\n")
}

#[test]
fn command_alias_runs_only_when_allowed() {
    let mut s = Server::seed(VIRTUAL_AFTER, "local_recipient_maps = $alias_maps\n");
    let out = s.path("piped.txt");
    std::fs::write(
        s.path("aliases"),
        format!(
            "postmaster: root\nlogger: \"|/bin/sh -c 'cat > {}'\"\n",
            out.display()
        ),
    )
    .unwrap();
    let (_, uid, gid) = common::owner();
    let _ = std::os::unix::fs::chown(s.dir.path(), Some(uid), Some(gid));
    s.yubin(&["newaliases"]);
    s.start();
    assert!(send_to(s.port, "logger@localhost").starts_with("250"));
    s.wait_log("delivered to command:");
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("Subject: to a command"));
    // Forbidden: the same alias bounces with local(8)'s reason.
    let mut main = std::fs::read_to_string(s.path("main.cf")).unwrap();
    main.push_str("allow_mail_to_commands = forward\n");
    std::fs::write(s.path("main.cf"), main).unwrap();
    s.yubin(&["reload"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(send_to(s.port, "logger@localhost").starts_with("250"));
    s.wait_log("status=bounced (mail to command is restricted)");
}
