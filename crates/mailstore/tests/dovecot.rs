//! Interop with a real Dovecot 2.3 (Debian's dovecot-core, .ci/packages.txt):
//! a Maildir that yubin wrote is read by Dovecot with the same UIDs,
//! UIDVALIDITY, flags, keywords, folders and subscriptions, and Dovecot's
//! changes (flags, a keyword, a saved message, a folder) are seen by yubin.
//! Runs Dovecot's master in the foreground with a private base_dir (it needs
//! the auth service for `doveadm -u`), as user nobody when run as root.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use yubin_mailstore::{deliver, DirSync, FlagOp, Flags, FolderName, Mailbox, Store, SystemFlag};

struct Dovecot {
    conf: PathBuf,
    master: Child,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        if self.master.wait_timeout_ok().is_none() {
            let _ = self.master.kill();
            let _ = self.master.wait();
        }
    }
}

trait WaitTimeout {
    fn wait_timeout_ok(&mut self) -> Option<()>;
}

impl WaitTimeout for Child {
    fn wait_timeout_ok(&mut self) -> Option<()> {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.try_wait() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    if p.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_r(&e.unwrap().path(), uid, gid);
        }
    }
}

fn start(base: &Path, home: &Path, uid: u32, gid: u32) -> Dovecot {
    let run = base.join("run");
    fs::create_dir_all(&run).unwrap();
    let conf = base.join("dovecot.conf");
    fs::write(
        &conf,
        format!(
            "base_dir = {run}\nstate_dir = {run}\nlog_path = {log}\nssl = no\n\
             protocols = imap\nlisten = 127.0.0.1\n\
             mail_location = maildir:~/Maildir\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={home}\n}}\n\
             passdb {{\n  driver = static\n  args = password=x\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {port}\n  }}\n  \
             inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
            run = run.display(),
            log = base.join("dovecot.log").display(),
            home = home.display(),
            port = free_port(),
        ),
    )
    .unwrap();
    let master = Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dovecot (Debian package dovecot-core) is installed");
    let d = Dovecot { conf, master };
    let end = Instant::now() + Duration::from_secs(20);
    while !run.join("auth-userdb").exists() {
        assert!(Instant::now() < end, "dovecot did not start: {}", log(base));
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

fn log(base: &Path) -> String {
    fs::read_to_string(base.join("dovecot.log")).unwrap_or_default()
}

fn doveadm(d: &Dovecot, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut c = Command::new("doveadm")
        .arg("-c")
        .arg(&d.conf)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = c.stdin.take().unwrap();
        if let Some(b) = stdin {
            i.write_all(b).unwrap();
        }
    }
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "doveadm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn folder(s: &str) -> FolderName {
    FolderName::parse(s, '/').unwrap()
}

#[test]
fn dovecot_and_yubin_share_a_maildir() {
    let base = tempfile::Builder::new()
        .prefix("yubin-dovecot")
        .tempdir()
        .unwrap();
    // Dovecot refuses root's mail: when we are root, the mail user is nobody.
    let probe = base.path().join("probe");
    fs::write(&probe, b"").unwrap();
    let (uid, gid) = if fs::metadata(&probe).unwrap().uid() == 0 {
        (65534, 65534)
    } else {
        let m = fs::metadata(&probe).unwrap();
        (m.uid(), m.gid())
    };
    fs::set_permissions(
        base.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let home = base.path().join("home");
    let maildir = home.join("Maildir");

    // --- yubin writes ---
    let store = Store::new(&maildir);
    store.ensure_defaults().unwrap();
    store.create(&folder("Entwürfe")).unwrap();
    let sync = DirSync::new();
    for tag in ["A", "B", "C"] {
        let body = format!("Subject: {tag}\n\nhello {tag}\n");
        let parts: &[&[u8]] = &[body.as_bytes()];
        deliver(
            &maildir,
            &yubin_mailstore::Delivery {
                tag,
                host: "mail",
                parts,
                check_existing: false,
                size_limit: 0,
                now: 1_700_000_000,
            },
            &sync,
        )
        .unwrap();
    }
    let mut inbox = Mailbox::open(&maildir).unwrap();
    assert_eq!(inbox.uids(), [1, 2, 3]);
    let fwd = inbox.keyword_index("$Forwarded", true).unwrap().unwrap();
    let seen_fwd = Flags::EMPTY.with(SystemFlag::Seen).with_keyword(fwd);
    inbox.store(&[1], FlagOp::Add, seen_fwd, None).unwrap();
    inbox
        .store(
            &[2],
            FlagOp::Add,
            Flags::EMPTY.with(SystemFlag::Flagged),
            None,
        )
        .unwrap();
    inbox.expunge(&[3]).unwrap();
    let uidvalidity = inbox.uidvalidity();
    chown_r(&home, uid, gid);

    let d = start(base.path(), &home, uid, gid);
    let fetch = doveadm(
        &d,
        &[
            "fetch",
            "-u",
            "test",
            "uid flags",
            "mailbox",
            "INBOX",
            "ALL",
        ],
        None,
    );
    assert!(
        fetch.contains("uid: 1\nflags: \\Seen $Forwarded\n"),
        "{fetch}"
    );
    assert!(fetch.contains("uid: 2\nflags: \\Flagged\n"), "{fetch}");
    assert!(!fetch.contains("uid: 3"), "{fetch}");
    let sizes = doveadm(
        &d,
        &[
            "fetch",
            "-u",
            "test",
            "size.physical size.virtual",
            "mailbox",
            "INBOX",
            "uid",
            "1",
        ],
        None,
    );
    let m1 = inbox.message(1).unwrap();
    assert_eq!(
        sizes,
        format!("size.physical: {}\nsize.virtual: {}\n", m1.size, m1.vsize)
    );
    let status = doveadm(
        &d,
        &[
            "mailbox",
            "status",
            "-u",
            "test",
            "uidvalidity uidnext messages",
            "INBOX",
        ],
        None,
    );
    assert_eq!(
        status.trim(),
        format!("INBOX messages=2 uidnext=4 uidvalidity={uidvalidity}"),
    );
    let list = doveadm(&d, &["mailbox", "list", "-u", "test"], None);
    for name in [
        "INBOX",
        "Sent",
        "Drafts",
        "Trash",
        "Junk",
        "Archive",
        "Entwürfe",
    ] {
        assert!(list.lines().any(|l| l == name), "{name} not in {list}");
    }
    let subs = doveadm(&d, &["mailbox", "list", "-s", "-u", "test"], None);
    for name in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(
            subs.lines().any(|l| l == name),
            "{name} not subscribed: {subs}"
        );
    }

    // --- Dovecot writes, yubin reads ---
    doveadm(
        &d,
        &[
            "flags",
            "add",
            "-u",
            "test",
            "\\Answered",
            "mailbox",
            "INBOX",
            "uid",
            "2",
        ],
        None,
    );
    doveadm(
        &d,
        &[
            "flags",
            "add",
            "-u",
            "test",
            "Important",
            "mailbox",
            "INBOX",
            "uid",
            "1",
        ],
        None,
    );
    doveadm(
        &d,
        &["save", "-u", "test", "-m", "INBOX"],
        Some(b"Subject: from dovecot\n\nhi\n"),
    );
    doveadm(
        &d,
        &["mailbox", "create", "-u", "test", "Work.Zürich"],
        None,
    );
    doveadm(
        &d,
        &["mailbox", "subscribe", "-u", "test", "Work.Zürich"],
        None,
    );
    let c = inbox.refresh().unwrap();
    assert_eq!(c.added, [4], "{c:?}");
    assert_eq!(c.flags, [1, 2], "{c:?}");
    assert_eq!(inbox.uidvalidity(), uidvalidity);
    let m2 = inbox.message(2).unwrap();
    assert!(m2.flags.has(SystemFlag::Answered) && m2.flags.has(SystemFlag::Flagged));
    let imp = inbox
        .keyword_index("Important", false)
        .unwrap()
        .expect("Dovecot's keyword");
    assert!(inbox.message(1).unwrap().flags.has_keyword(imp));
    let mut f = inbox.open_message(4).unwrap().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).unwrap();
    assert!(text.contains("Subject: from dovecot"), "{text}");
    let names: Vec<FolderName> = store.list().unwrap().into_iter().map(|f| f.name).collect();
    assert!(names.contains(&folder("Work/Zürich")), "{names:?}");
    assert!(store
        .subscriptions()
        .unwrap()
        .contains(&folder("Work/Zürich")));
    // A fresh yubin session agrees on every UID after Dovecot's changes.
    assert_eq!(Mailbox::open(&maildir).unwrap().uids(), [1, 2, 4]);
}
