//! mbsync (isync, Debian's package) against yubin's IMAP service: 1,000
//! messages delivered on the server are pulled into a local Maildir, 1,000
//! written locally (and flags set on pulled ones) are pushed back, and a
//! third run finds nothing to do.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::{free_port, Server, VIRTUAL_AFTER};

const N: usize = 1000;

fn message(i: usize, side: &str) -> String {
    format!(
        "From: sender{i}@example.org\r\nTo: hoge@mydomain.com\r\nSubject: {side} message {i}\r\n\
         Message-ID: <{side}-{i}@example.org>\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\n\r\n\
         Body of {side} message {i}.\r\n"
    )
}

/// Files in a Maildir's new/ and cur/.
fn files(maildir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(maildir.join(sub)) {
            for e in rd.flatten() {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

fn mbsync(cfg: &Path) -> (bool, String) {
    let out = Command::new("mbsync")
        .args(["-c"])
        .arg(cfg)
        .arg("-a")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn mbsync_pulls_and_pushes_a_thousand_messages() {
    if Command::new("mbsync").arg("--version").output().is_err() {
        eprintln!("SKIPPED: mbsync not installed (Debian package isync; see .ci/packages.txt)");
        return;
    }
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    let d = s.dir.path().to_path_buf();
    let hash = common::sha512_crypt("secret");
    std::fs::write(
        d.join("users"),
        format!("hoge@mydomain.com:{{SHA512-CRYPT}}{hash}::::::\n"),
    )
    .unwrap();
    let mut main = std::fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_sasl_type = passwd-file\nsmtpd_sasl_path = {}/users\nimapd_disable_plaintext_auth = no\n",
        d.display()
    ));
    std::fs::write(d.join("main.cf"), main).unwrap();
    let imap = free_port();
    let mut master = std::fs::read_to_string(d.join("master.cf")).unwrap();
    master.push_str(&format!("127.0.0.1:{imap} inet n - n - - imap\n"));
    std::fs::write(d.join("master.cf"), master).unwrap();

    // 1,000 messages in hoge's Maildir, as the MTA leaves them in new/.
    let server = d.join("vmail/mydomain.com/hoge");
    let (_, uid, gid) = common::owner();
    for sub in ["", "new", "cur", "tmp"] {
        std::fs::create_dir_all(server.join(sub)).unwrap();
        let _ = std::os::unix::fs::chown(server.join(sub), Some(uid), Some(gid));
    }
    let _ = std::os::unix::fs::chown(d.join("vmail/mydomain.com"), Some(uid), Some(gid));
    for i in 0..N {
        let m = message(i, "server");
        let p = server.join(format!("new/1764000000.M{i}P1.mail,S={}", m.len()));
        std::fs::write(&p, m).unwrap();
        let _ = std::os::unix::fs::chown(&p, Some(uid), Some(gid));
    }
    s.start();

    let local = tempfile::tempdir().unwrap();
    let l = local.path();
    let cfg = l.join("mbsyncrc");
    std::fs::write(
        &cfg,
        format!(
            "IMAPAccount yubin\nHost 127.0.0.1\nPort {imap}\nUser hoge@mydomain.com\nPass secret\n\
             SSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount yubin\n\n\
             MaildirStore local\nPath {l}/mail/\nInbox {l}/mail/INBOX\nSubFolders Verbatim\n\n\
             Channel c\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nExpunge Both\n\
             SyncState *\nSync All\n",
            l = l.display()
        ),
    )
    .unwrap();
    let inbox = l.join("mail/INBOX");
    std::fs::create_dir_all(l.join("mail")).unwrap();

    // Pull.
    let t = Instant::now();
    let (ok, out) = mbsync(&cfg);
    let pull = t.elapsed();
    assert!(ok, "mbsync pull failed:\n{out}\n{}", s.log());
    assert_eq!(files(&inbox).len(), N, "{out}");

    // Push: 1,000 new local messages, and \Seen on 100 pulled ones.
    for i in 0..N {
        let m = message(i, "local");
        std::fs::write(inbox.join(format!("new/1764100000.L{i}.local")), m).unwrap();
    }
    let mut flagged = 0;
    for name in files(&inbox) {
        if flagged == 100 || !name.contains(",U=") {
            continue;
        }
        for sub in ["cur", "new"] {
            let from = inbox.join(sub).join(&name);
            if from.exists() {
                let base = name.split(":2,").next().unwrap();
                std::fs::rename(&from, inbox.join("cur").join(format!("{base}:2,S"))).unwrap();
                flagged += 1;
            }
        }
    }
    assert_eq!(flagged, 100);
    let t = Instant::now();
    let (ok, out) = mbsync(&cfg);
    let push = t.elapsed();
    assert!(ok, "mbsync push failed:\n{out}\n{}", s.log());
    let on_server = files(&server);
    assert_eq!(on_server.len(), 2 * N, "{out}");
    let seen = on_server
        .iter()
        .filter(|n| n.rsplit_once(":2,").is_some_and(|(_, f)| f.contains('S')))
        .count();
    assert_eq!(
        seen, 100,
        "the \\Seen flags set locally did not reach the server"
    );
    let local_msgs = (0..N)
        .filter(|i| {
            on_server.iter().any(|n| {
                std::fs::read_to_string(
                    server
                        .join(if n.contains(":2,") { "cur" } else { "new" })
                        .join(n),
                )
                .is_ok_and(|t| t.contains(&format!("Subject: local message {i}\r\n")))
            })
        })
        .count();
    assert_eq!(local_msgs, N, "not every local message reached the server");

    // Nothing left to do: a third run changes nothing on either side.
    let (ok, out) = mbsync(&cfg);
    assert!(ok, "mbsync third run failed:\n{out}");
    assert_eq!(files(&server).len(), 2 * N);
    assert_eq!(files(&inbox).len(), 2 * N);
    eprintln!(
        "mbsync: pulled {N} in {:.1} s, pushed {N} (+100 flags) in {:.1} s",
        pull.as_secs_f64(),
        push.as_secs_f64()
    );
    s.stop();
}
