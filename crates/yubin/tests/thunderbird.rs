//! Thunderbird (Debian's package, under Xvfb) against yubin's IMAP service
//! and smtpd: it downloads the inbox, then sends a message (compose window,
//! Ctrl+Return by xdotool) that arrives in the inbox and whose copy it
//! APPENDs to Sent.
//!
//! The profile is written by `tests/imap/thunderbird.py` (prefs.js with one
//! IMAP account, the password in Thunderbird's own password manager), so no
//! account wizard or prompt runs. The evidence is server-side: the Dovecot
//! format login line and the rawlog (`imapd_rawlog_dir`) of every
//! connection, which must show Thunderbird's SELECT of INBOX and the test
//! message's headers and body going out. A screenshot of the screen is kept
//! in target/thunderbird/ as an artifact.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server, VIRTUAL_AFTER};

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Everything in the rawlog files with this extension, concatenated.
fn rawlog(dir: &Path, ext: &str) -> String {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a file under `dir` contains `needle`.
fn holds(dir: &Path, needle: &str) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            holds(&p, needle)
        } else {
            std::fs::read(&p)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        }
    })
}

#[test]
fn thunderbird_logs_in_selects_inbox_and_downloads_the_message() {
    let missing: Vec<_> = ["thunderbird", "xvfb-run", "import"]
        .into_iter()
        .filter(|c| !have(c))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: {} not installed (Debian packages thunderbird, xvfb, imagemagick; see .ci/packages.txt)",
            missing.join(", ")
        );
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
    let raw = d.join("rawlog");
    std::fs::create_dir_all(&raw).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    // A plaintext listener with plaintext logins allowed: Thunderbird on
    // 127.0.0.1 needs no certificate exception then.
    let mut main = std::fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_sasl_type = passwd-file\nsmtpd_sasl_path = {d}/users\n\
         imapd_disable_plaintext_auth = no\nimapd_rawlog_dir = {d}/rawlog\n",
        d = d.display()
    ));
    std::fs::write(d.join("main.cf"), main).unwrap();
    let imap = free_port();
    let mut master = std::fs::read_to_string(d.join("master.cf")).unwrap();
    master.push_str(&format!("127.0.0.1:{imap} inet n - n - - imap\n"));
    std::fs::write(d.join("master.cf"), master).unwrap();
    s.start();

    let token = format!("tb-body-{}", std::process::id());
    let mut c = common::Client::connect(s.port);
    c.reply();
    let r = c.mail(
        "someone@example.org",
        &["hoge@mydomain.com"],
        &format!(
            "From: Someone <someone@example.org>\r\nTo: hoge@mydomain.com\r\n\
             Subject: Hello from yubin\r\nMessage-ID: <{token}@example.org>\r\n\
             Date: Wed, 02 Dec 2026 12:00:00 +0000\r\n\r\nThe body: {token}\r\n"
        ),
    );
    assert!(r.starts_with("250"), "{r}");
    s.wait_mail(1);

    let out_dir = common::repo().join("target/thunderbird");
    std::fs::create_dir_all(&out_dir).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let script = common::repo().join("tests/imap/thunderbird.py");
    let st = Command::new("python3")
        .arg(&script)
        .arg("profile")
        .arg(profile.path())
        .args([
            &imap.to_string(),
            "hoge@mydomain.com",
            "secret",
            &s.port.to_string(),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "writing the Thunderbird profile failed");

    let stop = profile.path().join("STOP");
    let shot = out_dir.join("thunderbird-imap.png");
    let _ = std::fs::remove_file(&shot);
    let mut tb = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg("python3")
        .arg(&script)
        .arg("run")
        .arg(profile.path())
        .arg(&stop)
        .arg(&shot)
        .arg("75")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();

    // Poll the server's evidence; the deadline is generous (a first start of
    // Thunderbird builds its caches) and is not what the test measures.
    let deadline = Instant::now() + Duration::from_secs(80);
    let (mut login, mut select, mut headers, mut body) = (false, false, false, false);
    let mut cached = false;
    let cache = profile.path().join("ImapMail");
    while Instant::now() < deadline {
        login = s.log().contains("Login: user=<hoge@mydomain.com>, method=");
        let input = rawlog(&raw, "in").to_ascii_uppercase();
        let output = rawlog(&raw, "out");
        select = input.contains("SELECT \"INBOX\"") || input.contains("SELECT INBOX");
        headers = output.contains("Subject: Hello from yubin");
        body = output.contains(&format!("The body: {token}"));
        // Thunderbird's offline store of the account holds the message.
        cached = holds(&cache, &token);
        if login && select && headers && body && cached {
            break;
        }
        if tb.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(&stop, "").unwrap();
    let status = tb.wait().unwrap();
    let tb_log =
        std::fs::read_to_string(profile.path().join("thunderbird.log")).unwrap_or_default();
    // Keep the client side's trace next to the screenshot.
    let _ = std::fs::write(out_dir.join("thunderbird-imap.in"), rawlog(&raw, "in"));
    let _ = std::fs::write(out_dir.join("thunderbird-imap.out"), rawlog(&raw, "out"));
    let ctx = || {
        format!(
            "xvfb-run: {status}\nserver log:\n{}\nclient commands:\n{}\nthunderbird:\n{tb_log}",
            s.log(),
            rawlog(&raw, "in")
        )
    };
    assert!(login, "Thunderbird never logged in\n{}", ctx());
    assert!(select, "Thunderbird never selected INBOX\n{}", ctx());
    assert!(
        headers,
        "the message's headers were never fetched\n{}",
        ctx()
    );
    assert!(body, "the message's body was never fetched\n{}", ctx());
    assert!(
        cached,
        "the message never reached Thunderbird's offline store\n{}",
        ctx()
    );
    assert!(
        shot.exists(),
        "no screenshot at {}\n{}",
        shot.display(),
        ctx()
    );
    // No command Thunderbird sent was refused as unknown or malformed.
    let output = rawlog(&raw, "out");
    let bad: Vec<&str> = output.lines().filter(|l| l.contains(" BAD ")).collect();
    assert!(bad.is_empty(), "BAD replies: {bad:?}\n{}", ctx());

    // Second run: Thunderbird's compose window, sent with Ctrl+Return
    // through yubin's smtpd to hoge's own Maildir.
    let sent_token = format!("tb-sent-{}", std::process::id());
    let stop2 = profile.path().join("STOP2");
    let shot2 = out_dir.join("thunderbird-send.png");
    let mut tb = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg("python3")
        .arg(&script)
        .arg("send")
        .arg(profile.path())
        .arg(&stop2)
        .arg(&shot2)
        .arg("60")
        .args([
            "hoge@mydomain.com",
            "Sent by Thunderbird",
            &format!("The body: {sent_token}"),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let maildir = s.path("vmail/mydomain.com/hoge");
    let deadline = Instant::now() + Duration::from_secs(65);
    let (mut delivered, mut fcc) = (false, false);
    while Instant::now() < deadline {
        delivered =
            holds(&maildir.join("new"), &sent_token) || holds(&maildir.join("cur"), &sent_token);
        // Thunderbird keeps its copy in Sent by IMAP APPEND.
        fcc = holds(&maildir.join(".Sent"), &sent_token);
        if (delivered && fcc) || tb.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(&stop2, "").unwrap();
    let status = tb.wait().unwrap();
    let tb_log =
        std::fs::read_to_string(profile.path().join("thunderbird.log")).unwrap_or_default();
    assert!(
        delivered,
        "the message Thunderbird sent never arrived\nxvfb-run: {status}\nserver log:\n{}\nthunderbird:\n{tb_log}",
        s.log()
    );
    let _ = std::fs::write(out_dir.join("thunderbird-imap.in"), rawlog(&raw, "in"));
    let _ = std::fs::write(out_dir.join("thunderbird-imap.out"), rawlog(&raw, "out"));
    // With use_condstore on, Thunderbird resynchronises flags with RFC
    // 7162 CHANGEDSINCE; no command of either run was refused.
    let output = rawlog(&raw, "out");
    let bad: Vec<&str> = output.lines().filter(|l| l.contains(" BAD ")).collect();
    assert!(bad.is_empty(), "BAD replies: {bad:?}");
    assert!(
        rawlog(&raw, "in")
            .to_ascii_uppercase()
            .contains("(CHANGEDSINCE "),
        "Thunderbird never used CHANGEDSINCE\n{}",
        rawlog(&raw, "in")
    );
    // Thunderbird turns on RFC 4978 compression where offered: everything
    // above went through yubin's DEFLATE.
    assert!(
        rawlog(&raw, "in")
            .to_ascii_uppercase()
            .contains(" COMPRESS DEFLATE"),
        "Thunderbird never used COMPRESS\n{}",
        rawlog(&raw, "in")
    );
    assert!(
        fcc && rawlog(&raw, "in")
            .to_ascii_uppercase()
            .contains("APPEND \"SENT\""),
        "Thunderbird's copy never reached Sent\n{}",
        rawlog(&raw, "in")
    );
    assert!(
        s.log().contains("from=<hoge@mydomain.com>"),
        "no smtpd/qmgr line for Thunderbird's message\n{}",
        s.log()
    );
    s.stop();
}
