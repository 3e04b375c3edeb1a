//! Routing as trivial-rewrite(8) and transport(5) define it: the class
//! transports, relayhost, the sender-dependent tables and transport_maps,
//! in Postfix's precedence, on real tables (texthash, hash, regexp).

use std::path::Path;

use yubin_addr::{parse_address, Agent, Nexthop, Resolver, SmtpService};
use yubin_conf::Config;
use yubin_table::indexed::{build, SourceFormat};

fn resolver(dir: &Path, extra: &str) -> Result<Resolver, String> {
    std::fs::write(
        dir.join("vmailbox"),
        "hoge@mydomain.com mydomain.com/hoge/\n",
    )
    .unwrap();
    let main = format!(
        "myhostname = mail.mydomain.com\nmydomain = mydomain.com\nmydestination = localhost\n\
         recipient_delimiter = +\ninet_interfaces = loopback-only\nalias_maps =\n\
         virtual_mailbox_domains = mydomain.com\nvirtual_mailbox_base = /home/vmail\n\
         virtual_mailbox_maps = texthash:{d}/vmailbox\nvirtual_uid_maps = static:5000\nvirtual_gid_maps = static:5000\n\
         relay_domains = relayed.test\n{extra}",
        d = dir.display()
    );
    let cfg = Config::from_bytes(dir, &dir.join("main.cf"), main.as_bytes()).unwrap();
    Resolver::new(&cfg).map_err(|e| e.to_string())
}

fn table(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    format!("texthash:{}/{name}", dir.display())
}

/// The one delivery of `rcpt` from `sender`.
fn agent(r: &Resolver, rcpt: &str, sender: Option<&str>) -> Agent {
    let (d, _) = r.expand_from(&parse_address(rcpt, false).unwrap(), sender);
    assert_eq!(d.len(), 1, "{d:?}");
    d[0].agent.clone()
}

fn smtp(service: SmtpService, nexthop: &str) -> Agent {
    Agent::Smtp {
        service,
        nexthop: Nexthop::parse(nexthop).unwrap(),
    }
}

#[test]
fn default_class_is_the_domain_by_mx_not_a_bracketed_host() {
    let d = tempfile::tempdir().unwrap();
    let r = resolver(d.path(), "").unwrap();
    // trivial-rewrite gives the bare domain: an MX lookup (was "[example.org]").
    assert_eq!(
        agent(&r, "u@Example.ORG", None),
        smtp(SmtpService::Smtp, "example.org")
    );
    // relay_domains mail goes to relay_transport.
    let a = agent(&r, "u@relayed.test", None);
    assert_eq!(a, smtp(SmtpService::Relay, "relayed.test"));
    let r = resolver(d.path(), "relayhost = [smart.test]:587\n").unwrap();
    assert_eq!(
        agent(&r, "u@example.org", None),
        smtp(SmtpService::Smtp, "[smart.test]:587")
    );
    assert_eq!(
        agent(&r, "u@relayed.test", None),
        smtp(SmtpService::Relay, "[smart.test]:587")
    );
}

#[test]
fn transport_maps_lookup_order_and_results() {
    let d = tempfile::tempdir().unwrap();
    let t = table(
        d.path(),
        "transport",
        "a+x@example.com    smtp:[full.test]\n\
         b@example.com      smtp:[stripped.test]\n\
         example.com        smtp:[domain.test]:2525\n\
         .example.com       relay:[parent.test]\n\
         gw.test            :[gateway.test]\n\
         empty.test         smtp:\n\
         keep.test          :\n\
         gone.test          error:5.1.2 gone.test moved away\n\
         later.test         retry:backend down\n\
         drop.test          discard:dropped by policy\n\
         lmtp.test          lmtp:unix:private/dovecot-lmtp\n\
         lmtp2.test         lmtp:inet:127.0.0.1:2424\n\
         mydomain.com       lmtp:inet:[10.0.0.5]\n\
         *                  smtp:[wild.test]\n",
    );
    let r = resolver(
        d.path(),
        &format!("transport_maps = {t}\nrelayhost = [smart.test]\n"),
    )
    .unwrap();
    let a = |rcpt| agent(&r, rcpt, None);
    assert_eq!(a("a+x@example.com"), smtp(SmtpService::Smtp, "[full.test]"));
    // user+ext@domain, then user@domain.
    assert_eq!(
        a("b+y@example.com"),
        smtp(SmtpService::Smtp, "[stripped.test]")
    );
    assert_eq!(
        a("c@example.com"),
        smtp(SmtpService::Smtp, "[domain.test]:2525")
    );
    // Subdomains need the .domain form (transport_maps is not in
    // parent_domain_matches_subdomains).
    assert_eq!(
        a("c@deep.sub.example.com"),
        smtp(SmtpService::Relay, "[parent.test]")
    );
    // An empty transport keeps the transport, sets the nexthop.
    assert_eq!(a("u@gw.test"), smtp(SmtpService::Smtp, "[gateway.test]"));
    // A transport with an empty nexthop resets the nexthop to the domain
    // (not the relayhost).
    assert_eq!(a("u@empty.test"), smtp(SmtpService::Smtp, "empty.test"));
    // ":" changes nothing: relayhost still applies.
    assert_eq!(a("u@keep.test"), smtp(SmtpService::Smtp, "[smart.test]"));
    assert_eq!(
        a("u@gone.test"),
        Agent::Error {
            reason: "5.1.2 gone.test moved away".into(),
            temporary: false
        }
    );
    assert_eq!(
        a("u@later.test"),
        Agent::Error {
            reason: "4.0.0 backend down".into(),
            temporary: true
        }
    );
    assert_eq!(a("u@drop.test"), Agent::Discard("dropped by policy".into()));
    assert_eq!(
        a("u@lmtp.test"),
        Agent::Lmtp {
            nexthop: "unix:private/dovecot-lmtp".into()
        }
    );
    assert_eq!(
        a("u@lmtp2.test"),
        Agent::Lmtp {
            nexthop: "inet:127.0.0.1:2424".into()
        }
    );
    // transport_maps applies to final destinations too: the virtual
    // mailbox domain goes to LMTP (the Dovecot setup).
    assert_eq!(
        a("hoge@mydomain.com"),
        Agent::Lmtp {
            nexthop: "inet:10.0.0.5:24".into()
        }
    );
    assert_eq!(
        a("u@elsewhere.test"),
        smtp(SmtpService::Smtp, "[wild.test]")
    );
    // The trace names the table line that chose the route.
    let res = r.resolve(&parse_address("c@deep.sub.example.com", false).unwrap());
    let step = res
        .steps
        .iter()
        .find(|s| s.text.contains("transport_maps"))
        .unwrap();
    assert!(
        step.text
            .contains("key \".example.com\" -> relay:[parent.test]"),
        "{step:?}"
    );
    assert!(
        step.source.as_deref().unwrap().ends_with("transport:4"),
        "{step:?}"
    );
}

#[test]
fn hash_tables_and_regexp_full_address_only() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("transport"),
        "example.com smtp:[hashed.test]\n",
    )
    .unwrap();
    build(&d.path().join("transport"), SourceFormat::Map, true).unwrap();
    std::fs::write(
        d.path().join("transport.re"),
        "/^special@/ smtp:[re.test]\n/^example\\.net$/ smtp:[never.test]\n/^bad@/ uucp:x\n",
    )
    .unwrap();
    let r = resolver(
        d.path(),
        &format!(
            "transport_maps = regexp:{d}/transport.re, hash:{d}/transport\n",
            d = d.path().display()
        ),
    )
    .unwrap();
    assert_eq!(
        agent(&r, "special@example.org", None),
        smtp(SmtpService::Smtp, "[re.test]")
    );
    assert_eq!(
        agent(&r, "u@example.com", None),
        smtp(SmtpService::Smtp, "[hashed.test]")
    );
    // A regexp table never sees the bare domain.
    assert_eq!(
        agent(&r, "u@example.net", None),
        smtp(SmtpService::Smtp, "example.net")
    );
    // A bad value in a regexp table is found at lookup: the mail defers
    // with the table, key and line.
    match agent(&r, "bad@example.org", None) {
        Agent::Error { reason, temporary } => {
            assert!(temporary);
            assert!(
                reason.contains("transport_maps regexp:")
                    && reason.contains("key \"bad@example.org\"")
                    && reason.contains("transport.re:3")
                    && reason.contains("unknown transport \"uucp\""),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_values_are_errors_at_start_naming_table_key_and_line() {
    let d = tempfile::tempdir().unwrap();
    let t = table(
        d.path(),
        "transport",
        "ok.test smtp:\nbad.test smtp:[oops\n",
    );
    let e = resolver(d.path(), &format!("transport_maps = {t}\n"))
        .err()
        .unwrap();
    assert!(
        e.contains("transport_maps") && e.contains("key \"bad.test\"") && e.contains("line 2"),
        "{e}"
    );
    let t = table(d.path(), "t2", "x.test slow:\n");
    let e = resolver(d.path(), &format!("transport_maps = {t}\n"))
        .err()
        .unwrap();
    assert!(e.contains("unknown transport \"slow\""), "{e}");
    let e = resolver(d.path(), "default_transport = smpt\n")
        .err()
        .unwrap();
    assert!(
        e.contains("default_transport") && e.contains("\"smpt\""),
        "{e}"
    );
    let e = resolver(d.path(), "relayhost = [a b]\n").err().unwrap();
    assert!(e.contains("relayhost"), "{e}");
    let t = table(d.path(), "sdr", "@x.test [ok.test]\n@y.test smtp:[no\n");
    let e = resolver(
        d.path(),
        &format!("sender_dependent_relayhost_maps = {t}\n"),
    )
    .err()
    .unwrap();
    assert!(
        e.contains("sender_dependent_relayhost_maps") && e.contains("@y.test"),
        "{e}"
    );
}

#[test]
fn sender_dependent_tables_in_postfix_precedence() {
    let d = tempfile::tempdir().unwrap();
    let sdr = table(
        d.path(),
        "sdr",
        "@branch.test [branch-relay.test]:587\nboss@branch.test DUNNO\n<> [bounces.test]\n",
    );
    let sdt = table(
        d.path(),
        "sdt",
        "@lmtp-sender.test lmtp:inet:[10.0.0.9]\n@nexthop-sender.test smtp:[own.test]\n",
    );
    let tm = table(d.path(), "transport", "pinned.test smtp:[pinned-mx.test]\n");
    let r = resolver(
        d.path(),
        &format!(
            "relayhost = [global.test]\nsender_dependent_relayhost_maps = {sdr}\n\
             sender_dependent_default_transport_maps = {sdt}\ntransport_maps = {tm}\n"
        ),
    )
    .unwrap();
    let a = |rcpt, sender| agent(&r, rcpt, sender);
    // The per-sender relayhost overrides relayhost, by @domain.
    assert_eq!(
        a("u@example.org", Some("ann+x@branch.test")),
        smtp(SmtpService::Smtp, "[branch-relay.test]:587")
    );
    // DUNNO: the global relayhost.
    assert_eq!(
        a("u@example.org", Some("boss@branch.test")),
        smtp(SmtpService::Smtp, "[global.test]")
    );
    // The null sender is looked up as <>.
    assert_eq!(
        a("u@example.org", Some("")),
        smtp(SmtpService::Smtp, "[bounces.test]")
    );
    // No sender known (trace without --from): the tables are skipped.
    assert_eq!(
        a("u@example.org", None),
        smtp(SmtpService::Smtp, "[global.test]")
    );
    // transport_maps overrides the per-sender relayhost.
    assert_eq!(
        a("u@pinned.test", Some("ann@branch.test")),
        smtp(SmtpService::Smtp, "[pinned-mx.test]")
    );
    // sender_dependent_default_transport_maps replaces default_transport...
    assert_eq!(
        a("u@example.org", Some("x@lmtp-sender.test")),
        Agent::Lmtp {
            nexthop: "inet:10.0.0.9:24".into()
        }
    );
    assert_eq!(
        a("u@example.org", Some("x@nexthop-sender.test")),
        smtp(SmtpService::Smtp, "[own.test]")
    );
    // ...only for the default class: relay_domains keep relay_transport.
    assert_eq!(
        a("u@relayed.test", Some("x@nexthop-sender.test")),
        smtp(SmtpService::Relay, "[global.test]")
    );
}

#[test]
fn class_transport_parameters() {
    let d = tempfile::tempdir().unwrap();
    let r = resolver(
        d.path(),
        "virtual_transport = lmtp:unix:private/dovecot-lmtp\n\
         default_transport = error:outbound mail is disabled here\n\
         relay_transport = smtp:[inside.test]:2525\n",
    )
    .unwrap();
    assert_eq!(
        agent(&r, "hoge@mydomain.com", None),
        Agent::Lmtp {
            nexthop: "unix:private/dovecot-lmtp".into()
        }
    );
    assert_eq!(
        agent(&r, "u@example.org", None),
        Agent::Error {
            reason: "5.0.0 outbound mail is disabled here".into(),
            temporary: false
        }
    );
    assert_eq!(
        agent(&r, "u@relayed.test", None),
        smtp(SmtpService::Smtp, "[inside.test]:2525")
    );
    // Untouched defaults keep the mailbox deliveries and their quiet trace.
    let r = resolver(d.path(), "").unwrap();
    let res = r.resolve(&parse_address("hoge@mydomain.com", false).unwrap());
    assert!(matches!(res.deliveries[0].agent, Agent::Maildir(_)));
    assert!(
        !res.steps.iter().any(|s| s.text.starts_with("route:")),
        "{:?}",
        res.steps
    );
}
