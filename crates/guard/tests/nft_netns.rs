//! The nftables blocker, end to end inside a network namespace this test
//! creates (`ip netns add`): sshd, the failing client, nft and guard all run
//! in it, so the host's own firewall is never touched.

mod common;

use std::process::Command;

use common::*;

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn nftables_set_blocks_inside_a_netns() {
    require_root("the nftables test");
    require("ip");
    require("nft");
    let name = format!("yguard{}", std::process::id());
    let st = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(st.success(), "ip netns add failed");
    let _ns = Netns(name.clone());
    let prefix: Vec<String> = ["ip", "netns", "exec", &name]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(cmd_in(&prefix, "ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap()
        .success());

    let tmp = tempfile::tempdir().unwrap();
    let server = SshServer::start(tmp.path(), &prefix);
    let env = Env::new("BLOCKERS = nftables\nNFT_TABLE = yubin_guard_test\nPURGE_DENY = 1h\n");
    let conf = std::fs::read_to_string(&env.conf).unwrap().replace(
        &format!("SECURE_LOG = {}", env.log.display()),
        &format!("SECURE_LOG = {}", server.log.display()),
    );
    std::fs::write(&env.conf, conf).unwrap();

    for _ in 0..3 {
        let e = server.attempt(&prefix, "127.0.0.2", "nosuchuser");
        assert!(e.contains("Permission denied"), "{e}");
    }
    assert!(wait_for(10, || server
        .log_text()
        .matches("Failed password for invalid user")
        .count()
        == 3));
    let guard = |args: &[&str]| {
        cmd_in(&prefix, yubin().to_str().unwrap())
            .args(["guard", "--config", env.conf.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let o = guard(&["--once"]);
    assert_eq!(
        stdout(&o),
        "blocked 127.0.0.2 (invalid 6 > 5)\n",
        "{}",
        stderr(&o)
    );
    assert!(
        !env.deny.exists(),
        "hosts.deny is not a configured blocker here"
    );
    let set = cmd_in(&prefix, "nft")
        .args(["list", "set", "inet", "yubin_guard_test", "deny4"])
        .output()
        .unwrap();
    let set = stdout(&set);
    assert!(set.contains("127.0.0.2 timeout 1h"), "{set}");

    let refused = server.attempt(&prefix, "127.0.0.2", "nosuchuser");
    assert!(
        refused.contains("Connection refused"),
        "127.0.0.2 must be refused by the reject rule: {refused}"
    );
    let ok = server.attempt(&prefix, "127.0.0.1", "nosuchuser");
    assert!(
        ok.contains("Permission denied"),
        "127.0.0.1 must still connect: {ok}"
    );

    let o = guard(&["unblock", "127.0.0.2"]);
    assert_eq!(stdout(&o), "unblocked 127.0.0.2\n", "{}", stderr(&o));
    let again = server.attempt(&prefix, "127.0.0.2", "nosuchuser");
    assert!(
        again.contains("Permission denied"),
        "after unblock: {again}"
    );
}
