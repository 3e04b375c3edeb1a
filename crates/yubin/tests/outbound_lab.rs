//! yubin relays to a second yubin found by MX: `yubin serve` runs in the
//! lab host mx2 (its own network namespace) as the final destination for
//! mydomain.com; the SMTP client in host `client` finds it through the lab
//! DNS's MX record. Needs root (see crates/outbound/tests/lab.rs).

mod common;
#[path = "../../outbound/tests/support/mod.rs"]
mod support;

use common::{Server, VIRTUAL_AFTER};
use support::*;
use yubin_outbound::agent::Status;

#[test]
fn relay_to_a_second_yubin_found_by_mx() {
    let lab = Lab::new(&["mydomain.com. MX 10 mx2.lab.test."]);
    // The receiving yubin: the seed's configuration, listening on mx2's
    // address in the lab.
    let s = Server::seed(VIRTUAL_AFTER, "");
    let mx2 = format!("{NET}.11");
    std::fs::write(
        s.path("master.cf"),
        format!("{mx2}:25 inet n - n - - smtpd\n"),
    )
    .unwrap();
    let mut main = std::fs::read_to_string(s.path("main.cf")).unwrap();
    main = main.replace("inet_interfaces = loopback-only", "inet_interfaces = all");
    std::fs::write(s.path("main.cf"), main).unwrap();
    let log = lab.path("yubin-mx2.log");
    lab.sh(&[
        "spawn",
        "mx2",
        log.to_str().unwrap(),
        common::bin().to_str().unwrap(),
        "-c",
        s.dir.path().to_str().unwrap(),
        "serve",
    ]);
    lab.sh(&["wait", "client", &mx2, "25", "20"]);

    let d = send(
        &lab,
        |_| {},
        "mydomain.com",
        &["hoge@mydomain.com"],
        message("second-yubin"),
    );
    let r = &d.results[0];
    assert_eq!(r.status, Status::Sent, "{r:?}");
    assert_eq!(r.relay, format!("mx2.lab.test[{mx2}]:25"));
    assert!(r.text.starts_with("250 2.0.0 Ok: queued as "), "{}", r.text);
    let files = s.wait_mail(1);
    let body = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        body.contains("Message-Id: <second-yubin@client.lab.test>"),
        "{body}"
    );
    // The receiving yubin logged the client by its lab address.
    let maillog = s.log();
    assert!(
        maillog.contains(&format!("connect from unknown[{NET}.2]"))
            || maillog.contains(&format!("[{NET}.2]")),
        "{maillog}"
    );
}
