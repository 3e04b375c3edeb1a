//! README's first command on a fresh server (issue 16 item 1): a `git clone`
//! in a private (0700) directory, then `cargo run --release -- serve`, as
//! root and as an ordinary user, with no `../shared` beside the clone; one
//! message sent to the embedded default's mailbox must arrive.
//!
//! Why the test does not run `cargo run --release` itself: building the
//! release binary again inside a test takes minutes. `cargo run --release --
//! serve` is "build target/release/yubin, then exec it with the argument
//! `serve` in the current directory"; the test does the second half with
//! the binary cargo already built for this test run, copied to
//! `CLONE/target/release/yubin`, with the clone as working directory. What
//! the first run depends on (the working directory, the user, the modes of
//! the directories above it, no /etc/yubin, no `../shared`) is the same.
//!
//! The server is started in its own network namespace (unshare -n, as root)
//! so that the embedded default's fixed ports (127.0.0.1:2525 and :2587)
//! cannot collide with anything else on the machine.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The ordinary user of the second case (created when missing).
const USER: &str = "yubin-firstrun";

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn ensure_user() {
    if Command::new("id")
        .arg(USER)
        .output()
        .unwrap()
        .status
        .success()
    {
        return;
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            USER,
        ])
        .output()
        .expect("useradd (Debian package passwd)");
    assert!(
        out.status.success(),
        "useradd {USER}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the scenario; `user` None means as the test's own user (root in CI).
fn first_run(user: Option<&str>) {
    assert!(
        !Path::new("/etc/yubin").exists(),
        "/etc/yubin exists: serve would not use the embedded default"
    );
    let top = tempfile::tempdir().unwrap();
    // The private directory: mode 0700, like /root or a home directory.
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let clone = top.path().join("yubin");
    let as_user = |cmd: &mut Command| -> Command {
        match user {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={u}"),
                    "--init-groups",
                    "--reset-env",
                ]);
                c.arg(cmd.get_program()).args(cmd.get_args());
                c
            }
            None => {
                let mut c = Command::new(cmd.get_program());
                c.args(cmd.get_args());
                c
            }
        }
    };
    std::fs::write(top.path().join(".gitconfig"), "[safe]\n\tdirectory = *\n").unwrap();
    if let Some(u) = user {
        let out = Command::new("chown")
            .arg(u)
            .arg(top.path())
            .arg(top.path().join(".gitconfig"))
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    // The clone, made by the user who runs the server.
    let out = as_user(
        // The source repository belongs to another user (root): git wants
        // it named in safe.directory, from a global config (`-c` does not
        // reach the source side). HOME is the private directory, beside the
        // clone, so the clone itself stays as fresh as any other.
        Command::new("env")
            .arg(format!("HOME={}", top.path().display()))
            .args(["git", "clone", "--quiet"])
            .arg(common::repo().canonicalize().unwrap())
            .arg(&clone),
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "git clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !top.path().join("shared").exists(),
        "no ../shared beside the clone"
    );
    // What `cargo run --release` would have built (see the header comment).
    let bin = clone.join("target/release/yubin");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(common::bin(), &bin).unwrap();
    if let Some(u) = user {
        let out = Command::new("chown")
            .args(["-R", u])
            .arg(clone.join("target"))
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    // Start the server, wait for its "try:" line, send one message with
    // `yubin send`, wait for the Maildir file, stop the server.
    let script = r#"
        set -u
        ip link set lo up
        cd "$CLONE"
        # A plain command (no shell function) in the background, so that $!
        # is the server itself (setpriv execs it) and SIGTERM reaches it.
        as=()
        if [ -n "$AS" ]; then as=(setpriv --reuid="$AS" --regid="$AS" --init-groups); fi
        run() { "${as[@]}" "$@"; }
        "${as[@]}" ./target/release/yubin serve >"$OUT/serve.out" 2>"$OUT/serve.err" </dev/null &
        pid=$!
        for i in $(seq 300); do grep -q '^try:' "$OUT/serve.err" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
        echo "first run" | run ./target/release/yubin send --server 127.0.0.1:2525 \
            --from newcomer@client.example --to admin@example.test --h-Subject first-run --body - >"$OUT/send.out" 2>&1
        echo "send exit $?" >>"$OUT/send.out"
        for i in $(seq 300); do ls yubin-data/mail/example.test/admin/new/* >/dev/null 2>&1 && break; sleep 0.1; done
        kill -TERM $pid 2>/dev/null
        for i in $(seq 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
        kill -KILL $pid 2>/dev/null
        wait $pid
        echo "serve exit $?" >>"$OUT/serve.err"
        cat yubin-data/mail/example.test/admin/new/* 2>/dev/null >"$OUT/mail" || true
    "#;
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = if is_root() {
        let mut c = Command::new("unshare");
        c.args(["-n", "bash", "-c", script]);
        c
    } else {
        // Not root (a developer's run): no network namespace without root;
        // the embedded default's ports must be free on this machine.
        let mut c = Command::new("bash");
        c.args(["-c", &script.replace("ip link set lo up", "true")]);
        c
    };
    let out = cmd
        .env("CLONE", &clone)
        .env("AS", user.unwrap_or(""))
        .env("OUT", out_dir.path())
        .output()
        .unwrap();
    let read = |n: &str| std::fs::read_to_string(out_dir.path().join(n)).unwrap_or_default();
    let (serve, send, mail) = (read("serve.err"), read("send.out"), read("mail"));
    let who = user.unwrap_or("the test's user");
    let ctx = format!(
        "as {who}:\n--- serve stderr\n{serve}\n--- send\n{send}\n--- script\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        serve.contains("created the embedded default configuration in ./yubin-data"),
        "{ctx}"
    );
    assert!(!serve.contains("fatal"), "{ctx}");
    assert!(send.contains("250 2.0.0 Ok: queued as"), "{ctx}");
    assert!(send.contains("send exit 0"), "{ctx}");
    assert!(serve.contains("serve exit 0"), "{ctx}");
    assert!(
        mail.contains("Subject: first-run"),
        "no mail delivered: {ctx}"
    );
    assert!(mail.contains("first run"), "{ctx}");
}

#[test]
fn readme_first_command_as_root_in_a_private_directory() {
    if !is_root() {
        // Only root can be root: the ordinary-user test below still runs.
        eprintln!("not root: the root case runs in CI (.ci/run runs as root)");
        return;
    }
    first_run(None);
}

#[test]
fn readme_first_command_as_an_ordinary_user_in_a_private_directory() {
    if is_root() {
        ensure_user();
        first_run(Some(USER));
    } else {
        first_run(None);
    }
}
