//! The restriction lists evaluated on the seed's configuration with a real
//! resolver and real tables: the replies are Postfix 3.7's (the same texts
//! the recorded dialogs in tests/dialogs/ hold).

use std::path::Path;
use std::sync::Arc;

use yubin_addr::{parse_address, Resolver};
use yubin_conf::Config;
use yubin_policy::{Policy, Restriction, Restrictions};
use yubin_smtp::{ClientInfo, RecipientQuery};
use yubin_table::Maps;

fn resolver(dir: &Path) -> Arc<Resolver> {
    std::fs::write(dir.join("virtual_domains"), "mydomain.com\n").unwrap();
    std::fs::write(dir.join("vmaps"), "hoge@mydomain.com mydomain.com/hoge/\n").unwrap();
    std::fs::write(
        dir.join("logins"),
        "hoge@mydomain.com hoge\n@other.com boss\n",
    )
    .unwrap();
    let main = format!(
        "compatibility_level = 3.6\nmyhostname = mail.mydomain.com\nmydomain = mydomain.com\nmydestination = localhost\n\
         alias_maps =\nlocal_recipient_maps =\nvirtual_mailbox_domains = {d}/virtual_domains\n\
         virtual_mailbox_maps = texthash:{d}/vmaps\nvirtual_mailbox_base = /home/vmail\n",
        d = dir.display()
    );
    let cfg = Config::from_bytes(dir, &dir.join("main.cf"), main.as_bytes()).unwrap();
    Arc::new(Resolver::new(&cfg).unwrap())
}

fn policy(dir: &Path, relay: &[&str], recipient: &[&str]) -> Policy {
    let list = |l: &[&str]| {
        Restriction::parse_list(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    };
    let resolver = resolver(dir);
    let maps = Maps::open(&[format!("texthash:{}/logins", dir.display())], "hash", dir).unwrap();
    Policy {
        resolver,
        sender_login_maps: Arc::new(maps),
        dns: None,
        restrictions: Restrictions::new(vec![], list(relay), list(recipient)).unwrap(),
        settings: Default::default(),
    }
}

fn client(in_mynetworks: bool) -> ClientInfo {
    ClientInfo {
        name: "unknown".into(),
        addr: "192.0.2.9".parse().unwrap(),
        in_mynetworks,
    }
}

fn query(rcpt: &str, sender: Option<&str>, user: Option<&str>) -> RecipientQuery {
    RecipientQuery {
        recipient: parse_address(rcpt, false).unwrap(),
        sender: sender.map(|s| parse_address(s, false).unwrap()),
        sasl_user: user.map(str::to_string),
        helo: Some("client.example".into()),
        sender_given: sender.unwrap_or("").to_string(),
        holding: false,
        discarding: false,
        protocol: "ESMTP".into(),
        queue_id: None,
        recipient_count: 0,
        size: None,
    }
}

fn verdict(p: &Policy, c: &ClientInfo, q: &RecipientQuery) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(p.recipient(c, q)).map(|r| r.raw())
}

#[test]
fn relay_control_and_unlisted_recipients() {
    let d = tempfile::tempdir().unwrap();
    let p = policy(
        d.path(),
        &[
            "permit_mynetworks",
            "permit_sasl_authenticated",
            "reject_unauth_destination",
        ],
        &[],
    );
    let outside = client(false);
    assert_eq!(
        verdict(
            &p,
            &outside,
            &query("x@example.org", Some("a@b.example"), None)
        )
        .as_deref(),
        Some("554 5.7.1 <x@example.org>: Relay access denied")
    );
    assert_eq!(
        verdict(&p, &client(true), &query("x@example.org", None, None)),
        None
    );
    assert_eq!(
        verdict(&p, &outside, &query("x@example.org", None, Some("hoge"))),
        None
    );
    assert_eq!(
        verdict(&p, &outside, &query("hoge@mydomain.com", None, None)),
        None
    );
    // A permit ends the relay list, not the implicit unlisted check.
    assert_eq!(
        verdict(&p, &client(true), &query("nobody@mydomain.com", None, None)).as_deref(),
        Some("550 5.1.1 <nobody@mydomain.com>: Recipient address rejected: User unknown in virtual mailbox table")
    );
}

#[test]
fn sender_login_mismatch_and_fqdn_checks() {
    let d = tempfile::tempdir().unwrap();
    let p = policy(
        d.path(),
        &[
            "reject_sender_login_mismatch",
            "reject_non_fqdn_sender",
            "reject_non_fqdn_recipient",
            "permit_sasl_authenticated",
            "reject_unauth_destination",
        ],
        &[],
    );
    let c = client(false);
    assert_eq!(
        verdict(
            &p,
            &c,
            &query("x@example.org", Some("hoge@mydomain.com"), Some("hoge"))
        ),
        None
    );
    assert_eq!(
        verdict(
            &p,
            &c,
            &query("x@example.org", Some("hoge@mydomain.com"), Some("mallory"))
        )
        .as_deref(),
        Some("553 5.7.1 <hoge@mydomain.com>: Sender address rejected: not owned by user mallory")
    );
    assert_eq!(
        verdict(&p, &c, &query("x@example.org", Some("ceo@other.com"), None)).as_deref(),
        Some("553 5.7.1 <ceo@other.com>: Sender address rejected: not logged in")
    );
    assert_eq!(
        verdict(&p, &c, &query("x@example.org", Some("me@host"), None)).as_deref(),
        Some("504 5.5.2 <me@host>: Sender address rejected: need fully-qualified address")
    );
    assert_eq!(
        verdict(&p, &c, &query("x@host", None, None)).as_deref(),
        Some("504 5.5.2 <x@host>: Recipient address rejected: need fully-qualified address")
    );
}

#[test]
fn an_open_relay_is_refused_at_load() {
    let e = Restrictions::new(vec![], vec![Restriction::Permit], vec![]).unwrap_err();
    assert!(e.0.contains("reject_unauth_destination"), "{}", e.0);
}

/// A policy built from main.cf text (as the server builds it) in `dir`.
fn from_main_cf(dir: &Path, extra: &str) -> Policy {
    let main = format!(
        "myhostname = mail.mydomain.com\nmydomain = mydomain.com\nmydestination = localhost\n\
         alias_maps =\nlocal_recipient_maps =\nvirtual_mailbox_domains = mydomain.com\n\
         virtual_mailbox_maps = texthash:{d}/vmaps\nvirtual_mailbox_base = /home/vmail\nrecipient_delimiter = +\ncompatibility_level = 3.6\n{extra}",
        d = dir.display()
    );
    std::fs::write(dir.join("vmaps"), "hoge@mydomain.com mydomain.com/hoge/\n").unwrap();
    let cfg = Config::from_bytes(dir, &dir.join("main.cf"), main.as_bytes()).unwrap();
    let clients = yubin_policy::config::PolicyClients::default();
    Policy {
        resolver: Arc::new(Resolver::new(&cfg).unwrap()),
        sender_login_maps: Arc::new(Maps::default()),
        dns: None,
        restrictions: yubin_policy::config::restrictions(&cfg, &clients).unwrap(),
        settings: Arc::new(yubin_policy::config::settings(&cfg).unwrap()),
    }
}

#[test]
fn pattern_tables_and_explicit_subdomain_patterns() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("clients.cidr"),
        "192.0.2.0/24 REJECT Test net\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("senders.re"),
        "/^spam[0-9]+@/ 550 5.7.1 Numbered spammer\n/@example\\.com$/ DUNNO\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("domains"),
        ".sub.example REJECT Subdomain only\nuser@ REJECT Local part\n",
    )
    .unwrap();
    let p = from_main_cf(
        d.path(),
        "smtpd_client_restrictions = check_client_access cidr:$config_directory/clients.cidr\n\
         smtpd_sender_restrictions = check_sender_access regexp:$config_directory/senders.re, check_sender_access texthash:$config_directory/domains\n\
         parent_domain_matches_subdomains =\n",
    );
    let c = client(false);
    assert_eq!(
        verdict(
            &p,
            &c,
            &query("hoge@mydomain.com", Some("a@b.example"), None)
        )
        .as_deref(),
        Some("554 5.7.1 <unknown[192.0.2.9]>: Client host rejected: Test net")
    );
    let outside = ClientInfo {
        name: "unknown".into(),
        addr: "198.51.100.1".parse().unwrap(),
        in_mynetworks: false,
    };
    let v = |s: &str| verdict(&p, &outside, &query("hoge@mydomain.com", Some(s), None));
    assert_eq!(
        v("spam42@x.example").as_deref(),
        Some("550 5.7.1 <spam42@x.example>: Sender address rejected: Numbered spammer")
    );
    // DUNNO in the regexp table: on to the next restriction.
    assert_eq!(
        v("user@example.com").as_deref(),
        Some("554 5.7.1 <user@example.com>: Sender address rejected: Local part")
    );
    // Without smtpd_access_maps in parent_domain_matches_subdomains only
    // ".sub.example" matches, and only below sub.example.
    assert_eq!(
        v("a@x.sub.example").as_deref(),
        Some("554 5.7.1 <a@x.sub.example>: Sender address rejected: Subdomain only")
    );
    assert_eq!(v("a@sub.example"), None);
}
