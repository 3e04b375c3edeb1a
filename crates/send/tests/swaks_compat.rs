//! yubin send against real peers, side by side with the real swaks: the
//! transcripts must match line for line (dates, message ids, X-Mailer and
//! queue ids blanked) and so must the exit codes.

mod common;
use common::*;

/// The seed document's two transcripts (shared/seeds/), as printed by swaks
/// against the seed's Postfix.
const SEED_ACCEPT: &str = "=== Trying 127.0.0.1:PORT...
=== Connected to 127.0.0.1.
<-  220 mail.mydomain.com ESMTP
 -> EHLO myhost.mydomain.com
<-  250-mail.mydomain.com
<-  250-PIPELINING
<-  250-SIZE 10485760
<-  250-VRFY
<-  250-ETRN
<-  250-AUTH CRAM-MD5 PLAIN LOGIN
<-  250-ENHANCEDSTATUSCODES
<-  250-8BITMIME
<-  250-DSN
<-  250 SMTPUTF8
 -> MAIL FROM:<hogehoge@onotherdomain.com>
<-  250 2.1.0 Ok
 -> RCPT TO:<root@localhost>
<-  250 2.1.5 Ok
 -> DATA
<-  354 End data with <CR><LF>.<CR><LF>
 -> Date: DATE
 -> To: root@localhost
 -> From: hogehoge@onotherdomain.com
 -> Subject: test DATE
 -> Message-Id: ID
 -> X-Mailer: MAILER
 -> subject: Test Message
 ->
 -> hello world
 ->
 ->
 -> .
<-  250 2.0.0 Ok: queued as QID
 -> QUIT
<-  221 2.0.0 Bye
=== Connection closed with remote host.";

const SEED_REJECT: &str = "=== Trying 127.0.0.1:PORT...
=== Connected to 127.0.0.1.
<-  220 mail.mydomain.com ESMTP
 -> EHLO myhost.mydomain.com
<-  250-mail.mydomain.com
<-  250-PIPELINING
<-  250-SIZE 10485760
<-  250-VRFY
<-  250-ETRN
<-  250-AUTH CRAM-MD5 PLAIN LOGIN
<-  250-ENHANCEDSTATUSCODES
<-  250-8BITMIME
<-  250-DSN
<-  250 SMTPUTF8
 -> MAIL FROM:<hogehoge@onotherdomain.com>
<-  250 2.1.0 Ok
 -> RCPT TO:<root@localhost>
<** 550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in virtual mailbox table
 -> QUIT
<-  221 2.0.0 Bye
=== Connection closed with remote host.";

/// The seed's command line (loose swaks syntax: `-to`, `-h-subject`), plus
/// the seed's EHLO name.
fn seed_args(port: u16) -> Vec<String> {
    [
        "-4",
        "--server",
        &format!("127.0.0.1:{port}"),
        "--from",
        "hogehoge@onotherdomain.com",
        "-to",
        "root@localhost",
        "-h-subject",
        "Test Message",
        "--body",
        "-",
        "--helo",
        "myhost.mydomain.com",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The blog post lost the trailing space of ` -> ` on empty lines.
fn trim_lines(s: &str) -> String {
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn seed_accept_reads_like_the_seed_and_like_swaks() {
    let peer = replay(&["--auth", "u:p"]);
    let args = seed_args(peer.port);
    let ours = send(&strs(&args), "hello world\n");
    let theirs = swaks(&strs(&args), "hello world\n");
    assert_eq!(
        (ours.code, theirs.code),
        (0, 0),
        "{}\n{}",
        ours.stderr,
        theirs.stderr
    );
    assert_same("seed accept", &ours.stdout, &theirs.stdout);
    let expected = SEED_ACCEPT.replace("PORT", &peer.port.to_string());
    assert_eq!(trim_lines(&normalize(&ours.stdout)), expected);
}

#[test]
fn seed_reject_reads_like_the_seed_and_like_swaks() {
    let peer = replay(&["--auth", "u:p", "--reject-rcpt"]);
    let args = seed_args(peer.port);
    let ours = send(&strs(&args), "hello world\n");
    let theirs = swaks(&strs(&args), "hello world\n");
    assert_eq!((ours.code, theirs.code), (24, 24));
    assert_same("seed reject", &ours.stdout, &theirs.stdout);
    assert_eq!(
        normalize(&ours.stdout),
        SEED_REJECT.replace("PORT", &peer.port.to_string())
    );
}

#[test]
fn smtp_sink_accept_and_hard_reject() {
    let sink = smtp_sink(&[]);
    let server = format!("127.0.0.1:{}", sink.port);
    let args = [
        "-s",
        &server,
        "-t",
        "root@localhost",
        "-f",
        "a@example.com",
        "--h-Subject",
        "hi",
    ];
    let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
    assert_eq!((ours.code, theirs.code), (0, 0));
    assert_same("smtp-sink accept", &ours.stdout, &theirs.stdout);

    let reject = "550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in virtual mailbox table";
    let sink = smtp_sink(&["-f", "rcpt", "-B", reject]);
    let server = format!("127.0.0.1:{}", sink.port);
    let args = ["-s", &server, "-t", "root@localhost", "-f", "a@example.com"];
    let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
    assert_eq!((ours.code, theirs.code), (24, 24));
    assert!(
        ours.stdout.contains(&format!("<** {reject}\n")),
        "{}",
        ours.stdout
    );
    assert_same("smtp-sink reject", &ours.stdout, &theirs.stdout);
}

#[test]
fn refused_connection_exits_2() {
    let port = free_port().to_string();
    let server = format!("127.0.0.1:{port}");
    let args = ["-s", &server, "-t", "a@example.com"];
    let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
    assert_eq!((ours.code, theirs.code), (2, 2));
    assert_same("refused", &ours.stdout, &theirs.stdout);
    // swaks names its Perl module in the error; the rest is the same.
    assert_eq!(
        ours.stderr,
        theirs
            .stderr
            .replace("IO::Socket::INET6: ", "")
            .replace("IO::Socket::INET: ", "")
    );
    assert!(
        ours.stderr.contains("*** Error connecting to 127.0.0.1:"),
        "{}",
        ours.stderr
    );
}

#[test]
fn silent_server_times_out_with_21() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let server = format!("127.0.0.1:{port}");
    let args = ["-s", &server, "-t", "a@example.com", "--timeout", "1"];
    let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
    assert_eq!((ours.code, theirs.code), (21, 21));
    assert!(ours
        .stdout
        .contains("<** Timeout (1 secs) waiting for server response"));
    assert_same("timeout", &ours.stdout, &theirs.stdout);
}

#[test]
fn options_pipelining_quit_after_and_suppress_data() {
    let sink = smtp_sink(&[]);
    let server = format!("127.0.0.1:{}", sink.port);
    for extra in [
        vec!["--pipeline"],
        vec!["--quit-after", "rcpt"],
        vec!["-q", "MAIL"],
        vec!["--quit", "first-helo"],
        vec!["--protocol", "SMTP"],
        vec!["-n"],
        vec!["--hide-send", "--hide-informational"],
        vec!["-S", "2"],
        vec![
            "--add-header",
            "X-A: 1\\nX-B: 2",
            "--header",
            "Subject: replaced",
        ],
        vec!["--data", "Subject: %TO_ADDRESS%\\n\\nline\\n.dot\\n"],
    ] {
        let mut args = vec![
            "-s",
            server.as_str(),
            "-t",
            "a@example.com,b@example.com",
            "-f",
            "f@example.com",
        ];
        args.extend(extra.iter().copied());
        let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
        assert_eq!(ours.code, theirs.code, "{extra:?}");
        assert_same(&format!("{extra:?}"), &ours.stdout, &theirs.stdout);
    }
}

#[test]
fn dump_mail_matches_swaks() {
    let args = [
        "--dump-mail",
        "-t",
        "a@example.com",
        "-f",
        "f@example.com",
        "--body",
        "one\n..two\n\nthree",
        "--h-From",
        "Me <f@example.com>",
    ];
    let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
    assert_eq!((ours.code, theirs.code), (0, 0));
    assert_eq!(
        normalize(&ours.stdout.replace('\n', "\n -> ")),
        normalize(&theirs.stdout.replace('\n', "\n -> "))
    );
}

#[test]
fn bad_options_exit_1_with_a_clear_error() {
    let out = send(&["--no-such-option"], "");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Unknown option: no-such-option"),
        "{}",
        out.stderr
    );
    let out = send(&["-t", "a@b", "--quit-after", "lunch"], "");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("lunch"));
    let out = send(&["--help"], "");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("--quit-after"));
}

#[test]
fn pipe_transport_talks_to_a_child_process() {
    let cmd = format!("python3 {}/replay_smtpd.py --stdio", peers_dir().display());
    let args = [
        "--pipe",
        &cmd,
        "-t",
        "root@localhost",
        "-f",
        "a@example.com",
    ];
    let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
    assert_eq!((ours.code, theirs.code), (0, 0), "{}", ours.stderr);
    assert!(ours
        .stdout
        .contains("=== Connection closed with child process."));
    assert_same("pipe", &ours.stdout, &theirs.stdout);
}

#[test]
fn unix_socket_transport() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("smtp.sock");
    let _peer = replay(&["--unix", sock.to_str().unwrap()]);
    let args = [
        "--socket",
        sock.to_str().unwrap(),
        "-t",
        "root@localhost",
        "-f",
        "a@example.com",
    ];
    let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
    assert_eq!((ours.code, theirs.code), (0, 0), "{}", ours.stderr);
    assert_same("unix socket", &ours.stdout, &theirs.stdout);
}

#[test]
fn lmtp_reads_one_reply_per_recipient_like_swaks() {
    let sink = smtp_sink(&["-L"]);
    let server = format!("127.0.0.1:{}", sink.port);
    let args = [
        "-s",
        &server,
        "--protocol",
        "LMTP",
        "-t",
        "a@example.com,b@example.com",
        "-f",
        "f@example.com",
    ];
    let (ours, theirs) = (send(&args, ""), swaks(&args, ""));
    assert_eq!((ours.code, theirs.code), (0, 0), "{}", ours.stdout);
    assert!(ours.stdout.contains(" -> LHLO "));
    assert_same("lmtp", &ours.stdout, &theirs.stdout);
}

#[test]
fn hostile_replies_are_bounded() {
    use std::io::Write;
    for flood in [b"250-x\r\n".repeat(2000), vec![b'2'; 100_000]] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = listener.accept() {
                let _ = c.write_all(&flood);
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
        });
        let server = format!("127.0.0.1:{port}");
        let out = send(
            &["-s", &server, "-t", "a@example.com", "--timeout", "3"],
            "",
        );
        assert_eq!(out.code, 6, "{}", out.stderr);
        assert!(
            out.stderr.contains("*** Error reading from server: reply"),
            "{}",
            out.stderr
        );
    }
}
