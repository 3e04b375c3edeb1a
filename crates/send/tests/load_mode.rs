//! Load mode against Postfix's smtp-sink: every message is accepted and the
//! report has the rate and the percentiles (no timing asserts: see bench/).

mod common;
use common::*;

#[test]
fn load_mode_against_smtp_sink() {
    let sink = smtp_sink(&["-c"]);
    let server = format!("127.0.0.1:{}", sink.port);
    let out = send(
        &[
            "-s",
            &server,
            "-t",
            "a@example.com",
            "-f",
            "b@example.com",
            "--count",
            "40",
            "--concurrency",
            "4",
            "--size",
            "2000",
        ],
        "",
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "=== load: 40 messages of 2000 bytes to 127.0.0.1:{}, 4 at once",
            sink.port
        )
    );
    assert!(
        lines[1].starts_with("=== sent 40 failed 0 in "),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with(" msgs/s"));
    assert!(
        lines[2].starts_with("=== latency p50 ")
            && lines[2].contains(" p90 ")
            && lines[2].contains(" p99 ")
    );
}

#[test]
fn load_mode_reports_failures() {
    let reject = "550 5.1.1 rejected";
    let sink = smtp_sink(&["-f", "rcpt", "-B", reject]);
    let server = format!("127.0.0.1:{}", sink.port);
    let out = send(&["-s", &server, "-t", "a@example.com", "--count", "3"], "");
    assert_eq!(out.code, 26);
    assert!(
        out.stdout.contains("=== sent 0 failed 3 in "),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("RCPT TO: server said 550"),
        "{}",
        out.stderr
    );
    let out = send(
        &["--socket", "/nonexistent", "-t", "a@b", "--count", "3"],
        "",
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("TCP only"));
}
