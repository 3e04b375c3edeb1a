//! Misbehaving peers on loopback (no lab needed): a broken STARTTLS, replies
//! of 100 kB, endless multi-line replies, a peer that speaks before the
//! greeting, one that dribbles a byte at a time, one that dies after 354.
//! Each must end in a clear, bounded result; nothing is reported as sent
//! that was not acknowledged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use yubin_outbound::agent::{deliver, Delivery, Job, Status};
use yubin_outbound::{Dns, Nexthop, Settings, TlsLevel};
use yubin_smtp::client::Rcpt;

type Seen = Arc<Mutex<Vec<String>>>;

/// Starts a peer that runs `script` for each connection (with its number).
async fn peer<F, Fut>(script: F) -> (SocketAddr, Seen)
where
    F: Fn(TcpStream, usize, Seen) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Seen = Default::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((c, _)) = l.accept().await {
            n += 1;
            tokio::spawn(script(c, n, s2.clone()));
        }
    });
    (addr, seen)
}

/// A plain SMTP server that accepts everything (answers in order, so
/// pipelined groups work), recording commands in `seen`.
async fn accept_all(c: TcpStream, seen: Seen, offer_starttls: bool) {
    let (r, mut w) = c.into_split();
    let mut r = BufReader::new(r);
    let _ = w.write_all(b"220 peer ESMTP\r\n").await;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_string();
        seen.lock().unwrap().push(cmd.clone());
        let verb = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if offer_starttls => b"250-peer\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            "EHLO" => b"250-peer\r\n250 PIPELINING\r\n",
            "STARTTLS" => {
                // Broken: 220, then bytes that are no TLS record, then gone.
                let _ = w.write_all(b"220 2.0.0 Ready\r\n").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = w.write_all(b"this is not TLS\r\n").await;
                return;
            }
            "DATA" => {
                let _ = w.write_all(b"354 go\r\n").await;
                let mut body = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    body.push_str(&line);
                }
                seen.lock()
                    .unwrap()
                    .push(format!("BODY {} bytes", body.len()));
                b"250 2.0.0 Ok: queued as PEER1\r\n"
            }
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"250 ok\r\n",
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn settings(level: TlsLevel) -> Settings {
    let mut s = Settings::new("client.test");
    s.tls_level = level;
    let t = Duration::from_secs(2);
    s.timeouts.connect = t;
    s.timeouts.helo = t;
    s.timeouts.starttls = t;
    s.timeouts.mail = t;
    s.timeouts.rcpt = t;
    s.timeouts.data_init = t;
    s.timeouts.data_xfer = t;
    s.timeouts.data_done = t;
    s.timeouts.quit = t;
    s
}

async fn send(s: &Settings, addr: SocketAddr) -> Delivery {
    let nh = Nexthop::parse(&format!("[127.0.0.1]:{}", addr.port())).unwrap();
    // Literal address: no DNS query is made.
    let dns = Dns::new(Some(&["127.0.0.1:9".parse().unwrap()]));
    let msg = b"Subject: t\n\nhi\n".to_vec();
    let job = Job {
        queue_id: "HOSTILE",
        sender: "s@client.test",
        recipients: vec![Rcpt::new("r@peer.test")],
        message: &msg,
        ret: None,
        envid: None,
        smtputf8: false,
    };
    tokio::time::timeout(Duration::from_secs(30), deliver(s, &dns, &nh, &job))
        .await
        .expect("bounded by the stage timeouts")
}

#[tokio::test]
async fn broken_starttls_falls_back_to_plaintext_under_may() {
    let (addr, seen) = peer(|c, n, seen| accept_all(c, seen, n == 1)).await;
    let d = send(&settings(TlsLevel::May), addr).await;
    let r = &d.results[0];
    assert_eq!(r.status, Status::Sent, "{r:?}");
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("(trying again without TLS)")),
        "{:?}",
        d.notes
    );
    let seen = seen.lock().unwrap().clone();
    // The second session sent the mail in plaintext, once.
    assert_eq!(seen.iter().filter(|c| c.starts_with("BODY")).count(), 1);
    assert_eq!(seen.iter().filter(|c| *c == "STARTTLS").count(), 1);
}

#[tokio::test]
async fn broken_starttls_defers_under_encrypt() {
    let (addr, seen) = peer(|c, _, seen| accept_all(c, seen, true)).await;
    let d = send(&settings(TlsLevel::Encrypt), addr).await;
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred, "{r:?}");
    assert_eq!(r.dsn.to_string(), "4.7.5");
    assert!(
        r.text
            .starts_with("Cannot start TLS: handshake failure with 127.0.0.1[127.0.0.1]"),
        "{}",
        r.text
    );
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|c| c.starts_with("MAIL")), "{seen:?}");
    // And encrypt with a peer that offers no STARTTLS.
    let (addr, seen) = peer(|c, _, seen| accept_all(c, seen, false)).await;
    let d = send(&settings(TlsLevel::Encrypt), addr).await;
    assert_eq!(d.results[0].status, Status::Deferred);
    assert_eq!(
        d.results[0].text,
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    );
    assert!(!seen.lock().unwrap().iter().any(|c| c.starts_with("MAIL")));
}

#[tokio::test]
async fn hundred_kilobyte_reply_is_refused_with_bounded_memory() {
    let (addr, _) = peer(|mut c, _, _| async move {
        let mut big = vec![b'x'; 100_000];
        big.splice(0..4, b"220 ".iter().copied());
        big.extend_from_slice(b"\r\n");
        let _ = c.write_all(&big).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let d = send(&settings(TlsLevel::None), addr).await;
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred);
    assert!(
        r.text.contains("protocol error") && r.text.contains("reply line longer than"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn endless_multiline_reply_ends() {
    let (addr, _) = peer(|mut c, _, _| async move {
        // Until the client hangs up.
        while c.write_all(b"220-and more\r\n").await.is_ok() {}
    })
    .await;
    let d = send(&settings(TlsLevel::None), addr).await;
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred);
    assert!(r.text.contains("reply of more than"), "{}", r.text);
}

#[tokio::test]
async fn peer_talking_before_the_greeting_is_not_trusted() {
    let (addr, seen) = peer(|mut c, _, seen| async move {
        let _ = c.write_all(b"220 hi\r\n250 pregreet\r\n").await;
        let mut b = [0u8; 512];
        use tokio::io::AsyncReadExt;
        while let Ok(n) = c.read(&mut b).await {
            if n == 0 {
                break;
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&b[..n]).into());
        }
    })
    .await;
    let d = send(&settings(TlsLevel::None), addr).await;
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred);
    assert!(
        r.text.contains("server sent data before EHLO"),
        "{}",
        r.text
    );
    assert!(!seen.lock().unwrap().iter().any(|c| c.contains("MAIL")));
}

#[tokio::test]
async fn byte_at_a_time_stall_hits_the_stage_deadline() {
    let (addr, _) = peer(|mut c, _, _| async move {
        for b in b"220 a very slow greeting that never quite ends\r\n" {
            if c.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    let d = send(&settings(TlsLevel::None), addr).await;
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred);
    assert_eq!(
        r.text,
        "conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial server greeting"
    );
}

#[tokio::test]
async fn peer_dying_after_354_defers_the_message() {
    let (addr, _) = peer(|c, _, _| async move {
        let (r, mut w) = c.into_split();
        let mut r = BufReader::new(r);
        let _ = w.write_all(b"220 peer\r\n").await;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let reply: &[u8] = if line.starts_with("EHLO") {
                b"250 peer\r\n"
            } else if line.starts_with("DATA") {
                let _ = w.write_all(b"354 go\r\n").await;
                // Read the body, then die before the final reply.
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 || line == ".\r\n" {
                        return;
                    }
                }
            } else {
                b"250 ok\r\n"
            };
            let _ = w.write_all(reply).await;
        }
    })
    .await;
    let d = send(&settings(TlsLevel::None), addr).await;
    let r = &d.results[0];
    assert_eq!(r.status, Status::Deferred, "{r:?}");
    assert_eq!(
        r.text,
        "lost connection with 127.0.0.1[127.0.0.1] while sending end of data -- message may be sent more than once"
    );
}

#[tokio::test]
async fn a_peer_greeting_with_my_hostname_is_a_loop() {
    let (addr, seen) = peer(|mut c, _, seen| async move {
        let _ = c.write_all(b"220 client.test ESMTP\r\n").await;
        let mut b = [0u8; 512];
        use tokio::io::AsyncReadExt;
        while let Ok(n) = c.read(&mut b).await {
            if n == 0 {
                break;
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&b[..n]).into());
        }
    })
    .await;
    let d = send(&settings(TlsLevel::None), addr).await;
    let r = &d.results[0];
    assert_eq!(r.status, Status::Bounced, "{r:?}");
    assert_eq!(r.dsn.to_string(), "5.4.6");
    assert_eq!(r.text, "mail for 127.0.0.1 loops back to myself");
    assert!(
        d.notes.iter().any(|n| n
            == "warning: host 127.0.0.1[127.0.0.1] greeted me with my own hostname client.test"),
        "{:?}",
        d.notes
    );
    assert!(!seen.lock().unwrap().iter().any(|c| c.contains("MAIL")));
}
