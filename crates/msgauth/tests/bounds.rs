//! Bad input against a static zone (no network, no root): looping and
//! deep includes, void lookups, huge answers, many signatures, the query
//! budget. Each ends in a clear permerror/temperror with a reason, and
//! within the query budget; the header is well-formed.

use std::sync::Arc;
use std::time::Duration;

use yubin_msgauth::{
    authenticate, spf, Budget, DmarcResult, Envelope, Identity, Settings, Source, SpfResult,
    StaticZone,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn check(z: StaticZone, domain: &str) -> spf::SpfCheck {
    let b = Budget::new(
        Source::Static(Arc::new(z)),
        60,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let sender = format!("a@{domain}");
    rt().block_on(spf::check(
        &b,
        Identity::MailFrom,
        "192.0.2.10".parse().unwrap(),
        "h.test",
        &sender,
        domain,
        "mx.test",
    ))
}

#[test]
fn looping_includes_stop_at_the_term_limit() {
    let mut z = StaticZone::default();
    z.txt("loop.test", "v=spf1 include:loop.test -all");
    let c = check(z, "loop.test");
    assert_eq!(c.result, SpfResult::PermError);
    assert!(c
        .reason
        .unwrap()
        .contains("more than 10 DNS-querying terms"));
    assert_eq!(c.dns_terms, 11);

    // A chain of includes through 12 distinct names.
    let mut z = StaticZone::default();
    for i in 0..12 {
        z.txt(
            &format!("c{i}.test"),
            &format!("v=spf1 include:c{}.test -all", i + 1),
        );
    }
    let c = check(z, "c0.test");
    assert_eq!(c.result, SpfResult::PermError, "{:?}", c.steps);
}

#[test]
fn void_lookups_and_mx_limits() {
    let mut z = StaticZone::default();
    z.txt(
        "v.test",
        "v=spf1 a:n1.v.test mx:n2.v.test exists:n3.v.test +all",
    );
    let c = check(z, "v.test");
    assert_eq!(c.result, SpfResult::PermError);
    assert!(c.reason.unwrap().contains("void lookups"));

    let mut z = StaticZone::default();
    z.txt("mx.test", "v=spf1 mx -all");
    for i in 0..11 {
        z.mx("mx.test", i, &format!("m{i}.mx.test"));
    }
    let c = check(z, "mx.test");
    assert_eq!(c.result, SpfResult::PermError);
    assert!(c.reason.unwrap().contains("11 MX records"));
}

#[test]
fn huge_and_multiple_records() {
    let mut z = StaticZone::default();
    let big = format!("v=spf1 {}-all", "ip4:192.0.2.1 ".repeat(4000));
    z.txt("big.test", &big);
    let c = check(z, "big.test");
    assert_eq!(c.result, SpfResult::TempError);
    assert!(c.reason.unwrap().contains("over the 32768-byte limit"));

    let mut z = StaticZone::default();
    z.txt("two.test", "v=spf1 -all")
        .txt("two.test", "v=spf1 +all");
    assert_eq!(check(z, "two.test").result, SpfResult::PermError);

    let mut z = StaticZone::default();
    z.txt("tf.test", "v=spf1 -all");
    z.tempfail.push("tf.test".into());
    let c = check(z, "tf.test");
    assert_eq!(c.result, SpfResult::TempError);
}

#[test]
fn matched_mechanism_chain() {
    let mut z = StaticZone::default();
    z.txt("a.test", "v=spf1 ip4:198.51.100.1 include:b.test -all");
    z.txt("b.test", "v=spf1 redirect=c.test");
    z.txt("c.test", "v=spf1 a:h.c.test/24 ~all");
    z.a("h.c.test", "192.0.2.200");
    let c = check(z, "a.test");
    assert_eq!(c.result, SpfResult::Pass);
    let chain: Vec<&str> = c.matched.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        chain,
        ["include:b.test", "redirect=c.test", "a:h.c.test/24"]
    );
    assert_eq!(c.matched[2].1, "c.test");
}

#[test]
fn a_thousand_signatures_and_the_query_budget() {
    let mut z = StaticZone::default();
    // Every signature names a different key, none exists.
    let mut m = String::new();
    for i in 0..1000 {
        m.push_str(&format!(
            "DKIM-Signature: v=1; a=rsa-sha256; d=x{i}.test; s=s; h=from; bh=AAAA; b=AAAA\r\n"
        ));
    }
    m.push_str("From: a@x.test\r\n\r\nbody\r\n");
    z.txt("_dmarc.x.test", "v=DMARC1; p=reject");
    let s = Settings::new("mx.test");
    let env = Envelope {
        client_ip: "192.0.2.1".parse().unwrap(),
        helo: "h.test".into(),
        mail_from: "a@x.test".into(),
    };
    let r = rt().block_on(authenticate(
        Source::Static(Arc::new(z)),
        &s,
        &env,
        m.as_bytes(),
    ));
    assert_eq!(r.dkim.signatures.len(), 10);
    assert_eq!(r.dkim.skipped, 990);
    assert!(r.dns_queries <= 60, "{}", r.dns_queries);
    assert_eq!(r.dmarc.result, DmarcResult::Fail);
    let h = r.header();
    assert!(
        h.starts_with("Authentication-Results: mx.test;\r\n\t"),
        "{h}"
    );
    assert!(
        h.ends_with("\tdmarc=fail (p=reject dis=reject) header.from=x.test\r\n"),
        "{h}"
    );
    assert!(h.contains("dkim=policy reason=\"990 more signatures not verified (limit)\""));
    // Folded lines only: every line after the first starts with a tab.
    assert!(h
        .trim_end()
        .split("\r\n")
        .skip(1)
        .all(|l| l.starts_with('\t')));

    // A budget of 3 queries: the rest is a clear temperror, not a hang.
    let mut z = StaticZone::default();
    z.txt("p.test", "v=spf1 a:a1.p.test a:a2.p.test a:a3.p.test -all");
    let b = Budget::new(
        Source::Static(Arc::new(z)),
        3,
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    let c = rt().block_on(spf::check(
        &b,
        Identity::MailFrom,
        "192.0.2.1".parse().unwrap(),
        "h.test",
        "a@p.test",
        "p.test",
        "mx.test",
    ));
    assert_eq!(c.result, SpfResult::TempError);
    assert!(c.reason.unwrap().contains("budget"));
}

#[test]
fn dmarc_organisational_domain_and_subdomain_policy() {
    let mut z = StaticZone::default();
    z.txt("_dmarc.example.co.uk", "v=DMARC1; p=none; sp=reject");
    let s = Settings::new("mx.test");
    let env = Envelope {
        client_ip: "192.0.2.1".parse().unwrap(),
        helo: "h.test".into(),
        mail_from: String::new(),
    };
    let m = b"From: \"News, the\" <n@mail.example.co.uk>\r\n\r\nx\r\n";
    let r = rt().block_on(authenticate(Source::Static(Arc::new(z)), &s, &env, m));
    assert_eq!(r.dmarc.record_domain.as_deref(), Some("example.co.uk"));
    assert_eq!(r.dmarc.policy, yubin_msgauth::Disposition::Reject);
    // Null sender: SPF's MAIL FROM identity is postmaster@HELO.
    assert_eq!(r.spf_mailfrom.sender, "postmaster@h.test");
}

#[test]
fn dmarc_with_a_temporary_spf_error_is_not_a_fail() {
    let mut z = StaticZone::default();
    z.txt("_dmarc.t.test", "v=DMARC1; p=reject");
    z.tempfail.push("t.test".into());
    let s = Settings::new("mx.test");
    let env = Envelope {
        client_ip: "192.0.2.1".parse().unwrap(),
        helo: "h.test".into(),
        mail_from: "a@t.test".into(),
    };
    let m = b"From: a@t.test\r\n\r\nx\r\n";
    let r = rt().block_on(authenticate(Source::Static(Arc::new(z)), &s, &env, m));
    assert_eq!(r.spf_mailfrom.result, SpfResult::TempError);
    assert_eq!(r.dmarc.result, DmarcResult::TempError, "{}", r.explain());
    assert_eq!(r.dmarc.disposition, yubin_msgauth::Disposition::None);
}
