//! End to end with Debian's OpenSSH: failed logins from 127.0.0.2 get it
//! blocked through /etc/hosts.deny, the next connection from it is refused,
//! 127.0.0.1 still connects.
//!
//! Debian 12's sshd (openssh-server 1:9.2p1-2+deb12u10) is linked with
//! libwrap and honours /etc/hosts.deny, whose path is compiled into libwrap:
//! the test therefore writes the real /etc/hosts.deny (only a `sshd:
//! 127.0.0.2` line, removed again by `unblock`; the file's previous content is
//! restored even if the test fails).

mod common;

use common::*;

struct RestoreFile(std::path::PathBuf, Option<Vec<u8>>);

impl Drop for RestoreFile {
    fn drop(&mut self) {
        match &self.1 {
            Some(b) => {
                let _ = std::fs::write(&self.0, b);
            }
            None => {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }
}

#[test]
fn sshd_hosts_deny_end_to_end() {
    require_root("the sshd end-to-end test");
    let sshd = require("sshd");
    let ldd = std::process::Command::new("ldd")
        .arg(&sshd)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ldd.stdout).contains("libwrap"),
        "{} is not linked with libwrap: hosts.deny has no effect; use the nftables test",
        sshd.display()
    );
    let deny = std::path::PathBuf::from("/etc/hosts.deny");
    let original = std::fs::read(&deny).ok();
    let _restore = RestoreFile(deny.clone(), original.clone());

    let tmp = tempfile::tempdir().unwrap();
    let server = SshServer::start(tmp.path(), &[]);
    let env = Env::new("");
    let conf = std::fs::read_to_string(&env.conf).unwrap();
    let conf = conf
        .replace(
            &format!("SECURE_LOG = {}", env.log.display()),
            &format!("SECURE_LOG = {}", server.log.display()),
        )
        .replace(
            &format!("HOSTS_DENY = {}", env.deny.display()),
            "HOSTS_DENY = /etc/hosts.deny",
        );
    std::fs::write(&env.conf, conf).unwrap();

    for _ in 0..3 {
        let e = server.attempt(&[], "127.0.0.2", "nosuchuser");
        assert!(e.contains("Permission denied"), "{e}");
    }
    assert!(wait_for(10, || server
        .log_text()
        .matches("Failed password for invalid user nosuchuser from 127.0.0.2")
        .count()
        == 3));
    let o = env.guard(&["--once"]);
    assert_eq!(
        stdout(&o),
        "blocked 127.0.0.2 (invalid 6 > 5)\n",
        "{}\n{}",
        stderr(&o),
        server.log_text()
    );
    let text = std::fs::read_to_string(&deny).unwrap();
    assert!(text.ends_with("sshd: 127.0.0.2\n"), "{text}");
    if let Some(orig) = &original {
        assert!(
            text.starts_with(&*String::from_utf8_lossy(orig)),
            "admin lines kept"
        );
    }

    let refused = server.attempt(&[], "127.0.0.2", "nosuchuser");
    assert!(
        !refused.contains("Permission denied"),
        "127.0.0.2 still reached authentication: {refused}"
    );
    assert!(
        refused.contains("Connection reset")
            || refused.contains("Connection closed")
            || refused.contains("kex_exchange_identification"),
        "{refused}"
    );
    // (libwrap logs its "refused connect" through syslog(3), not sshd's -E file;
    // libwrap's reverse lookup of 127.0.0.2 may take a DNS timeout, hence 30 s.)
    let ok = server.attempt(&[], "127.0.0.1", "nosuchuser");
    assert!(
        ok.contains("Permission denied"),
        "127.0.0.1 must still reach authentication: {ok}"
    );

    let o = env.guard(&["unblock", "127.0.0.2"]);
    assert_eq!(stdout(&o), "unblocked 127.0.0.2\n", "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&deny).ok(),
        original,
        "hosts.deny back as it was"
    );
    let again = server.attempt(&[], "127.0.0.2", "nosuchuser");
    assert!(
        again.contains("Permission denied"),
        "after unblock: {again}"
    );
}
