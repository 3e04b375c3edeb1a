//! `--expect-delivery` against fabricated yubin server state: a mail log in
//! Postfix's format, a Maildir, and a stand-in `yubin` executable that
//! answers `postconf -x -h maillog_file` and `trace --json ADDRESS` as the
//! contracts in docs/send.md say the real one will (the server is being
//! written concurrently; these tests pin the contract).

mod common;
use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SENT: &str = "Nov 29 02:41:02 host postfix/virtual[123]: 4F2A1B3C9D: to=<hoge@mydomain.com>, orig_to=<root@localhost>, relay=virtual, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to maildir)\n";
const BOUNCED: &str = "Nov 29 02:41:02 host postfix/virtual[124]: B0UNCE1: to=<nobody@mydomain.com>, relay=virtual, delay=0.01, delays=0/0/0/0, dsn=5.1.1, status=bounced (unknown user: \"nobody@mydomain.com\")\n";

/// Writes the stand-in yubin: `-c DIR postconf -x -h maillog_file` prints the
/// log path, `-c DIR trace --json ADDR` a delivery into `vmail/DOMAIN/USER/`.
fn fake_yubin(dir: &Path, log: &Path, vmail: &Path) -> String {
    let script = dir.join("yubin");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = -c ] || exit 9\n\
             case \"$3\" in\n\
             postconf) [ \"$4 $5 $6\" = '-x -h maillog_file' ] && echo '{log}' ;;\n\
             trace) addr=$5; user=${{addr%@*}}; dom=${{addr#*@}};\n\
               echo \"{{\\\"deliveries\\\": [{{\\\"recipient\\\": \\\"$addr\\\", \\\"transport\\\": \\\"virtual\\\", \\\"mailbox\\\": \\\"{vmail}/$dom/$user/\\\"}}]}}\" ;;\n\
             *) exit 9 ;;\n\
             esac\n",
            log = log.display(),
            vmail = vmail.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.to_str().unwrap().to_string()
}

fn yubin_send(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-c", config.to_str().unwrap(), "send"];
    all.extend_from_slice(args);
    run(&yubin(), &all, "")
}

#[test]
fn reports_the_maildir_file_of_a_delivered_message() {
    let dir = tempfile::tempdir().unwrap();
    let (log, vmail) = (dir.path().join("mail.log"), dir.path().join("vmail"));
    let new = vmail.join("mydomain.com/hoge/new");
    std::fs::create_dir_all(&new).unwrap();
    let file = new.join("1764384062.4F2A1B3C9D_0.host");
    std::fs::write(&file, "Subject: x\n\nhello\n").unwrap();
    std::fs::write(&log, "Nov 29 02:41:01 host postfix/qmgr[9]: 4F2A1B3C9D: from=<a@b>, size=3, nrcpt=1 (queue active)\n").unwrap();
    let yubin_cmd = fake_yubin(dir.path(), &log, &vmail);
    // The delivery is logged a moment after the session ends.
    let log2 = log.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let mut f = std::fs::OpenOptions::new().append(true).open(log2).unwrap();
        f.write_all(SENT.as_bytes()).unwrap();
    });
    let peer = replay(&["--queue-id", "4F2A1B3C9D"]);
    let server = format!("127.0.0.1:{}", peer.port);
    let out = yubin_send(
        dir.path(),
        &[
            "-s",
            &server,
            "-t",
            "root@localhost",
            "--expect-delivery",
            "10",
            "--yubin-command",
            &yubin_cmd,
        ],
    );
    writer.join().unwrap();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let want = format!(
        "=== 4F2A1B3C9D: delivered to hoge@mydomain.com (for root@localhost), Maildir {}\n",
        file.display()
    );
    assert!(out.stdout.ends_with(&want), "{}", out.stdout);
    assert!(out.stdout.contains(&format!(
        "=== Waiting up to 10s for 4F2A1B3C9D in {}",
        log.display()
    )));
}

#[test]
fn reports_the_bounce_reason() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, BOUNCED).unwrap();
    let peer = replay(&["--queue-id", "B0UNCE1"]);
    let server = format!("127.0.0.1:{}", peer.port);
    // --maillog names the log directly: no postconf needed.
    let out = yubin_send(
        dir.path(),
        &[
            "-s",
            &server,
            "-t",
            "nobody@mydomain.com",
            "--expect-delivery",
            "5",
            "--maillog",
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 40, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stderr,
        "*** B0UNCE1: bounced for nobody@mydomain.com: unknown user: \"nobody@mydomain.com\"\n"
    );
}

#[test]
fn gives_up_when_nothing_is_logged_and_needs_a_queue_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(&log, SENT).unwrap();
    let peer = replay(&["--queue-id", "NOTLOGGED1"]);
    let server = format!("127.0.0.1:{}", peer.port);
    let out = yubin_send(
        dir.path(),
        &[
            "-s",
            &server,
            "-t",
            "a@mydomain.com",
            "--expect-delivery",
            "1",
            "--maillog",
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 41, "{}", out.stderr);
    assert!(
        out.stderr.contains("NOTLOGGED1: no delivery logged"),
        "{}",
        out.stderr
    );

    // smtp-sink's "250 2.0.0 Ok" names no queue id.
    let sink = smtp_sink(&[]);
    let server = format!("127.0.0.1:{}", sink.port);
    let out = yubin_send(
        dir.path(),
        &[
            "-s",
            &server,
            "-t",
            "a@mydomain.com",
            "--expect-delivery",
            "1",
            "--maillog",
            log.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 42, "{}", out.stderr);
    assert!(out.stderr.contains("no queue id"), "{}", out.stderr);

    // No log path at all: the error says how to give one.
    let peer = replay(&[]);
    let server = format!("127.0.0.1:{}", peer.port);
    let out = yubin_send(
        dir.path(),
        &[
            "-s",
            &server,
            "-t",
            "a@mydomain.com",
            "--expect-delivery",
            "1",
            "--yubin-command",
            "/bin/false",
        ],
    );
    assert_eq!(out.code, 43, "{}", out.stderr);
    assert!(out.stderr.contains("give --maillog FILE"), "{}", out.stderr);
}
