//! SMTP connection reuse (Postfix's connection cache): several messages to
//! one nexthop share one session, with RSET between them; the reuse count
//! limit opens a new one; a session the server closed while idle is
//! replaced without a failure. The peer (smtp_peer.py in the lab host mx1)
//! logs each TCP connection, which the tests count. Needs root (netlab).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use yubin_outbound::agent::{Job, Status};
use yubin_outbound::{ConnCache, Dns, Nexthop, Outbound, Settings};
use yubin_smtp::client::Rcpt;

/// Delivers `ids.len()` messages one after the other through one
/// Outbound (one cache), from the lab's client; between two messages
/// `between(i)` runs. Returns each first recipient's status and conn_use.
fn send_several(
    lab: &Lab,
    set: impl FnOnce(&mut Settings) + Send + 'static,
    ids: &[&str],
    between: impl Fn(usize) + Send + 'static,
) -> Vec<(Status, u32, String)> {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    in_ns(lab.ns("client"), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut settings = settings();
            // Long enough that no session idles out between two messages
            // of the test, however slow the machine.
            settings.cache.idle = Duration::from_secs(60);
            set(&mut settings);
            let dns_addr: SocketAddr = format!("{NET}.53:53").parse().unwrap();
            let ob = Outbound {
                settings,
                dns: Dns::new(Some(&[dns_addr])),
                cache: ConnCache::default(),
            };
            let nexthop = Nexthop::parse("example.test").unwrap();
            let mut out = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    between(i);
                }
                let msg = message(id);
                let job = Job {
                    queue_id: "REUSE",
                    sender: "s@client.lab.test",
                    recipients: vec![Rcpt::new(format!("{id}@example.test"))],
                    message: msg.as_bytes(),
                    ret: None,
                    envid: None,
                    smtputf8: false,
                };
                let d = tokio::time::timeout(Duration::from_secs(90), ob.deliver(&nexthop, &job))
                    .await
                    .expect("bounded");
                let r = &d.results[0];
                out.push((r.status, r.conn_use, r.text.clone()));
            }
            out
        })
    })
}

fn connects(log: &std::path::Path) -> usize {
    events(log, "connect").len()
}

#[test]
fn messages_to_one_destination_share_a_session() {
    let lab = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let log = lab.peer("mx1", &format!("{NET}.10"), &[]);
    let before = settled_connects(&log);
    let r = send_several(&lab, |_| {}, &["a", "b", "c"], |_| {});
    assert!(r.iter().all(|(s, _, _)| *s == Status::Sent), "{r:?}");
    assert_eq!(
        r.iter().map(|(_, u, _)| *u).collect::<Vec<_>>(),
        [1, 2, 3],
        "{r:?}"
    );
    assert_eq!(
        count_events(&log, "connect", before + 1) - before,
        1,
        "one TCP connection for three messages"
    );
    assert_eq!(count_events(&log, "accepted", 3), 3);
}

#[test]
fn reuse_count_limit_opens_a_new_session() {
    let lab = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let log = lab.peer("mx1", &format!("{NET}.10"), &[]);
    let before = settled_connects(&log);
    let r = send_several(
        &lab,
        |s| s.cache.reuse_count = 2,
        &["a", "b", "c", "d", "e"],
        |_| {},
    );
    assert!(r.iter().all(|(s, _, _)| *s == Status::Sent), "{r:?}");
    assert_eq!(
        r.iter().map(|(_, u, _)| *u).collect::<Vec<_>>(),
        [1, 2, 1, 2, 1],
        "{r:?}"
    );
    assert_eq!(count_events(&log, "connect", before + 3) - before, 3);
    assert_eq!(count_events(&log, "accepted", 5), 5);
}

#[test]
fn without_caching_each_message_connects() {
    let lab = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let log = lab.peer("mx1", &format!("{NET}.10"), &[]);
    let before = settled_connects(&log);
    let r = send_several(&lab, |s| s.cache.on_demand = false, &["a", "b"], |_| {});
    assert!(
        r.iter().all(|(s, u, _)| *s == Status::Sent && *u == 1),
        "{r:?}"
    );
    assert_eq!(count_events(&log, "connect", before + 2) - before, 2);
    // smtp_connection_cache_destinations names it: cached again.
    let before = connects(&log);
    let r = send_several(
        &lab,
        |s| {
            s.cache.on_demand = false;
            s.cache.destinations = vec!["example.test".into()];
        },
        &["c", "d"],
        |_| {},
    );
    assert_eq!(r.iter().map(|(_, u, _)| *u).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(count_events(&log, "connect", before + 1) - before, 1);
}

#[test]
fn a_session_the_server_dropped_is_replaced_without_a_failure() {
    let lab = Lab::new(&["example.test. MX 10 mx1.lab.test."]);
    let peer = format!("{SHARED}/smtp_peer.py");
    let listen = format!("{NET}.10:25");
    let spawn = |log: &std::path::Path| {
        let pid = lab.sh(&[
            "spawn",
            "mx1",
            log.to_str().unwrap(),
            "python3",
            &peer,
            "--listen",
            &listen,
            "--hostname",
            "mx1.lab.test",
        ]);
        lab.sh(&["wait", "client", &format!("{NET}.10"), "25", "10"]);
        pid
    };
    let log1 = lab.path("mx1-first.log");
    let log2 = lab.path("mx1-second.log");
    let pid = spawn(&log1);
    let id = lab.id.clone();
    let (peer2, listen2, log2b) = (peer.clone(), listen.clone(), log2.clone());
    // Between the messages the peer is restarted: the parked session's
    // socket is closed by the server, and RSET finds it dead.
    let r = send_several(
        &lab,
        |_| {},
        &["a", "b"],
        move |_| {
            let sh = |args: &[&str]| {
                let out = std::process::Command::new("bash")
                    .arg(format!("{SHARED}/netlab.sh"))
                    .args(args)
                    .env("NETLAB_ID", &id)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
            };
            sh(&["stop", &pid]);
            sh(&[
                "spawn",
                "mx1",
                log2b.to_str().unwrap(),
                "python3",
                &peer2,
                "--listen",
                &listen2,
                "--hostname",
                "mx1.lab.test",
            ]);
            sh(&["wait", "client", &format!("{NET}.10"), "25", "10"]);
        },
    );
    assert_eq!(r[0].0, Status::Sent, "{r:?}");
    assert_eq!(r[1].0, Status::Sent, "{r:?}");
    assert_eq!(r[1].1, 1, "a new session carried the second message: {r:?}");
    assert_eq!(count_events(&log1, "accepted", 1), 1);
    assert_eq!(count_events(&log2, "accepted", 1), 1);
}
