//! `yubin sendmail` (sendmail(1)), the maildrop (postdrop(1)) and the
//! daemon's pickup(8), black-box: the real binary on a private
//! configuration.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, VIRTUAL_AFTER, VIRTUAL_BEFORE};

fn maildrop(s: &Server) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(s.path("queue/maildrop"))
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `sh -c "yubin -c DIR sendmail ARGS < message"`: the shell is the
/// parent process whose command line the submitter header must name.
fn sendmail_via_shell(s: &Server, args: &str, message: &str) -> std::process::Output {
    let msg = s.path("message.txt");
    std::fs::write(&msg, message).unwrap();
    let script = format!(
        "{} -c {} sendmail {args} < {}; exit $?",
        common::bin().display(),
        s.dir.path().display(),
        msg.display()
    );
    Command::new("sh").arg("-c").arg(&script).output().unwrap()
}

/// `yubin -c DIR sendmail ARGS` with `input` on stdin.
fn sendmail(s: &Server, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(common::bin())
        .arg("-c")
        .arg(s.dir.path())
        .arg("sendmail")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn wait_mail(s: &Server, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = s.hoge_mail();
        if m.len() >= n {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no mail in hoge's Maildir:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn daemon_down_then_pickup_delivers_with_submitter() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    // The queue does not exist yet: sendmail creates it.
    let out = sendmail_via_shell(
        &s,
        "-t -oi",
        "To: hoge@mydomain.com\nBcc: root@localhost\nSubject: denyhosts report\n\nline\n.\nafter the dot\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "sendmail prints nothing on success");
    let dropped = maildrop(&s);
    assert_eq!(dropped.len(), 1, "one file in the maildrop");
    s.start();
    // Bcc: root@localhost is hoge too (the `root` line): two copies, one file each.
    let mail = wait_mail(&s, 1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("X-Yubin-Submitter: uid="), "{text}");
    assert!(text.contains("via sh -c"), "parent command named: {text}");
    assert!(text.contains("sendmail -t -oi"), "{text}");
    assert!(
        text.contains("\n.\nafter the dot\n"),
        "-oi keeps the dot: {text}"
    );
    assert!(!text.contains("Bcc:"), "Bcc removed: {text}");
    assert!(text.contains("Received: by mail.mydomain.com ("), "{text}");
    assert!(text.contains("Message-Id: <"), "{text}");
    assert!(text.contains("Date: "), "{text}");
    let log = s.wait_log("status=sent");
    assert!(log.contains(": uid="), "{log}");
    assert!(log.contains("submitted by uid="), "{log}");
    assert!(log.contains("message-id=<"), "{log}");
    assert!(maildrop(&s).is_empty(), "maildrop emptied");
    // `yubin log` follows the message to its mailbox and names the program.
    let story = s.yubin(&["log", "hoge@mydomain.com"]);
    assert!(
        story.contains("submitted by uid=") && story.contains("sendmail -t -oi"),
        "{story}"
    );
    assert!(
        story.contains("status=sent (delivered to maildir)"),
        "{story}"
    );
}

#[test]
fn recipients_on_the_command_line_and_the_dot() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    s.start();
    let out = sendmail(
        &s,
        &[
            "-f",
            "root@mydomain.com",
            "-F",
            "Cron Daemon",
            "hoge@mydomain.com",
        ],
        "Subject: cron\n\nfirst\n.\nnot sent\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = wait_mail(&s, 1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("first\n"), "{text}");
    assert!(
        !text.contains("not sent"),
        "a lone dot ends the input: {text}"
    );
    assert!(
        text.contains("From: Cron Daemon <root@mydomain.com>"),
        "{text}"
    );
    assert!(text.contains("Return-Path: <root@mydomain.com>") || !text.contains("Return-Path"));
    let log = s.wait_log("status=sent");
    assert!(log.contains("from=<root@mydomain.com>"), "{log}");
}

#[test]
fn usage_errors_name_the_flag() {
    let s = Server::seed(VIRTUAL_AFTER, "");
    let out = sendmail(&s, &["-z", "hoge@mydomain.com"], "");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'z'"));
    let out = sendmail(&s, &[], "Subject: x\n\n");
    assert_eq!(out.status.code(), Some(64));
    let out = sendmail(&s, &["-t"], "Subject: x\n\nno recipients\n");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No recipient addresses"));
}

#[test]
fn seed_story_root_at_localhost_bounces_then_arrives() {
    let mut s = Server::seed(VIRTUAL_BEFORE, "");
    s.start();
    let out = sendmail(
        &s,
        &["-f", "hoge@mydomain.com", "root@localhost"],
        "Subject: DenyHosts report\n\nnew denied hosts\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Before the fix root@localhost is not hoge: yubin's resolver sends it
    // to the local mailbox /var/mail/root, which the unprivileged server
    // cannot write (deferred), or bounces it; either way hoge gets nothing.
    let log = s.wait_log("to=<root@localhost>");
    let line = log
        .lines()
        .find(|l| l.contains("to=<root@localhost>"))
        .unwrap();
    assert!(
        line.contains("status=bounced") || line.contains("status=deferred"),
        "{line}"
    );
    assert!(s.hoge_mail().is_empty(), "{log}");
    // The fix: `root` as a bare user in the virtual table.
    std::fs::write(s.path("virtual"), VIRTUAL_AFTER).unwrap();
    s.yubin(&["postmap", &s.path("virtual").display().to_string()]);
    s.yubin(&["reload"]);
    let before = s.hoge_mail().len();
    let out = sendmail(
        &s,
        &["-f", "hoge@mydomain.com", "root@localhost"],
        "Subject: DenyHosts report 2\n\nnew denied hosts\n",
    );
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = s.hoge_mail().into_iter().any(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains("Subject: DenyHosts report 2")
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fixed mail never arrived ({before} before):\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bs_smtp_dialog() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    s.start();
    let out = sendmail(
        &s,
        &["-bs"],
        "EHLO client\r\nMAIL FROM:<root@mydomain.com>\r\nRCPT TO:<nobody-here@mydomain.com>\r\nRCPT TO:<hoge@mydomain.com>\r\nDATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n",
    );
    let replies = String::from_utf8_lossy(&out.stdout);
    assert!(
        replies.starts_with("220 mail.mydomain.com ESMTP"),
        "{replies}"
    );
    assert!(replies.contains("250-mail.mydomain.com"), "{replies}");
    assert!(
        replies.contains("550 5.1.1 <nobody-here@mydomain.com>"),
        "{replies}"
    );
    assert!(replies.contains("250 2.1.5 Ok"), "{replies}");
    assert!(replies.contains("354 "), "{replies}");
    assert!(replies.contains("250 2.0.0 Ok: queued as "), "{replies}");
    assert!(replies.contains("221 2.0.0 Bye"), "{replies}");
    let mail = wait_mail(&s, 1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(text.contains("via -bs"), "{text}");
    assert!(text.contains("X-Yubin-Submitter: uid="), "{text}");
}

#[test]
fn bv_mails_a_report() {
    let mut s = Server::seed(VIRTUAL_BEFORE, "");
    s.start();
    let out = sendmail(
        &s,
        &[
            "-bv",
            "-f",
            "hoge@mydomain.com",
            "root@localhost",
            "root@mydomain.com",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("will be mailed to <hoge@mydomain.com>"));
    let mail = wait_mail(&s, 1);
    let text = std::fs::read_to_string(&mail[0]).unwrap();
    assert!(
        text.contains("Subject: Mail Delivery Status Report"),
        "{text}"
    );
    assert!(
        text.contains("<root@localhost>: undeliverable: 550 5.1.1"),
        "{text}"
    );
    assert!(
        text.contains("<hoge@mydomain.com> (expanded from <root@mydomain.com>): delivery via virtual: delivered to maildir "),
        "{text}"
    );
    // Nothing was sent to the verified addresses themselves.
    assert_eq!(s.hoge_mail().len(), 1);
}

#[test]
fn bp_lists_the_queue_and_bi_builds_aliases() {
    let s = Server::seed(VIRTUAL_AFTER, "");
    let out = sendmail(&s, &["-bp"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(s.path("aliases"), "postmaster: root\nabuse: root\n").unwrap();
    let out = sendmail(&s, &["-bi"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = s.yubin(&[
        "postalias",
        "-q",
        "abuse",
        &format!("hash:{}", s.path("aliases").display()),
    ]);
    assert_eq!(q.trim(), "root");
}

#[test]
fn symlink_in_maildrop_is_refused_not_read() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    s.start();
    // A message file the attacker wants the daemon to read with its rights.
    let secret = s.path("secret");
    let forged = "yubin-queue 1\nid AAAAAAAAAAA\narrival 0\nsender -\nclient local\nhelo -\nprotocol local\nret -\nenvid -\nsmtputf8 0\nrcpt hoge@mydomain.com - -\nsize 13\n\nSubject: x\n\n\n";
    std::fs::write(&secret, forged).unwrap();
    let link = s.path("queue/maildrop/B0B0B0B0B0B");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let log = s.wait_log("refused: symbolic link");
    assert!(log.contains("moved to corrupt/"), "{log}");
    assert!(
        link.symlink_metadata().is_err(),
        "moved out of the maildrop"
    );
    assert!(s
        .path("queue/corrupt/B0B0B0B0B0B")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        s.hoge_mail().is_empty(),
        "the linked file was not delivered"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), forged);
}

/// A symbolic link left in the world-writable maildrop while the server is
/// down must not make the starting server (root) chown its target.
#[test]
fn symlink_in_maildrop_at_start_is_not_followed() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    // Create the queue as sendmail would.
    let out = sendmail(&s, &["-bp"], "");
    assert!(out.status.success());
    let target = s.path("victim");
    std::fs::write(&target, "root's file\n").unwrap();
    let before = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&target).unwrap());
    std::os::unix::fs::symlink(&target, s.path("queue/maildrop/C0C0C0C0C0C")).unwrap();
    s.start();
    s.wait_log("refused: symbolic link");
    let after = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&target).unwrap());
    assert_eq!(before, after, "the link's target changed owner at start");
}
