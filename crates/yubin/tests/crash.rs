//! Crash safety: clients send numbered messages while the server is killed
//! with SIGKILL at random moments; after a final restart every message that
//! got `250 ... queued as` must be in the Maildir, complete, and (aim) once.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, VIRTUAL_AFTER};

/// Sends one message; `Some(true)` when the server acknowledged it.
fn send_one(port: u16, n: usize) -> Option<bool> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut w = s.try_clone().ok()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut reply = |r: &mut BufReader<TcpStream>| -> Option<String> {
        loop {
            line.clear();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(line.clone());
            }
        }
    };
    reply(&mut r)?;
    let body = format!(
        "Subject: crash-test {n}\r\n\r\n{}\r\nend-of-message-{n}\r\n.\r\n",
        "x".repeat(2000)
    );
    w.write_all(b"EHLO c\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<hoge@mydomain.com>\r\nDATA\r\n")
        .ok()?;
    for _ in 0..4 {
        reply(&mut r)?;
    }
    w.write_all(body.as_bytes()).ok()?;
    let last = reply(&mut r)?;
    let _ = w.write_all(b"QUIT\r\n");
    Some(last.starts_with("250 2.0.0 Ok: queued as"))
}

#[test]
fn kill_9_loses_no_acknowledged_message() {
    let mut s = Server::seed(VIRTUAL_AFTER, "");
    s.start();
    let port = s.port;
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (acked, next, stop) = (acked.clone(), next.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if send_one(port, n) == Some(true) {
                        acked.lock().unwrap().push(n);
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    let kills = 8;
    let mut rng = 0x2545F4914F6CDD1Du64;
    for _ in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(150 + rng % 400));
        s.kill9();
        s.start();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "too few messages got through: {}",
        acked.len()
    );
    // Wait for the queue to drain.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let q = s.yubin(&["mailq"]);
        if q.starts_with("Mail queue is empty") {
            break;
        }
        if Instant::now() > deadline {
            let id = q
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("?")
                .trim_end_matches(['*', '!'])
                .to_string();
            let related: Vec<&str> = s
                .log()
                .lines()
                .filter(|l| l.contains(&id) || l.contains("master"))
                .map(|_| "")
                .collect();
            let log = s.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&id) || l.contains("master"))
                .collect();
            let _ = related;
            panic!(
                "queue did not drain:\n{q}\nlog for {id}:\n{}",
                lines.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for f in s.hoge_mail() {
        let text = std::fs::read_to_string(&f).unwrap();
        let n: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: crash-test "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no subject in {}", f.display()));
        assert!(
            text.contains(&format!("end-of-message-{n}")),
            "truncated message {n} in {}",
            f.display()
        );
        *seen.entry(n).or_default() += 1;
    }
    let missing: Vec<_> = acked.iter().filter(|n| !seen.contains_key(n)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    eprintln!(
        "crash test: {} acknowledged, {} delivered, {duplicates} duplicates, {kills} kills",
        acked.len(),
        seen.len()
    );
    assert!(
        duplicates <= kills,
        "{duplicates} duplicates for {kills} kills"
    );
}
