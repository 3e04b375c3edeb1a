//! The seed's configuration, checked against what Postfix 3.7.11 answered for
//! the same main.cf and tables (recorded in tests/dialogs/*.expected).

use std::path::Path;

use yubin_addr::{parse_address, Class, Resolver, Verdict};
use yubin_conf::Config;
use yubin_table::indexed::{build, SourceFormat};

fn seed(dir: &Path, virtual_table: &str, extra: &str) -> Resolver {
    std::fs::write(dir.join("virtual"), virtual_table).unwrap();
    std::fs::write(
        dir.join("virtual_maps"),
        "hoge@mydomain.com mydomain.com/hoge/\n",
    )
    .unwrap();
    std::fs::write(dir.join("virtual_domains"), "mydomain.com\n").unwrap();
    std::fs::write(dir.join("aliases"), "postmaster: root\n").unwrap();
    build(&dir.join("virtual"), SourceFormat::Map, true).unwrap();
    build(&dir.join("virtual_maps"), SourceFormat::Map, true).unwrap();
    build(&dir.join("aliases"), SourceFormat::Aliases, true).unwrap();
    let main = format!(
        "compatibility_level = 3.6\nmyhostname = mail.mydomain.com\nmydomain = mydomain.com\nmyorigin = $mydomain\nmydestination = localhost, $myhostname\n\
         recipient_delimiter = +\ninet_interfaces = loopback-only\nalias_maps = hash:{d}/aliases\n\
         virtual_alias_maps = hash:{d}/virtual\nvirtual_mailbox_base = /home/vmail\nvirtual_mailbox_domains = {d}/virtual_domains\n\
         virtual_mailbox_maps = hash:{d}/virtual_maps\nvirtual_uid_maps = static:5000\nvirtual_gid_maps = static:5000\n{extra}",
        d = dir.display()
    );
    let cfg = Config::from_bytes(dir, &dir.join("main.cf"), main.as_bytes()).unwrap();
    Resolver::new(&cfg).unwrap()
}

fn reply(r: &Resolver, addr: &str) -> Option<String> {
    r.resolve(&parse_address(addr, false).unwrap())
        .verdict
        .reply()
}

const BEFORE: &str =
    "root@mydomain.com       hoge@mydomain.com\npostadmin@mydomain.com   hoge@mydomain.com\n";
const AFTER: &str = "root    hoge@mydomain.com\npostadmin@mydomain.com   hoge@mydomain.com\n";

#[test]
fn seed_rejects_root_at_localhost_with_local_recipient_maps_from_virtual() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed(
        dir.path(),
        BEFORE,
        "local_recipient_maps = $virtual_mailbox_maps\n",
    );
    assert_eq!(
        reply(&r, "root@localhost").as_deref(),
        Some("550 5.1.1 <root@localhost>: Recipient address rejected: User unknown in local recipient table")
    );
    assert_eq!(
        reply(&r, "unknown@mydomain.com").as_deref(),
        Some("550 5.1.1 <unknown@mydomain.com>: Recipient address rejected: User unknown in virtual mailbox table")
    );
    assert_eq!(
        reply(&r, "\"quoted local\"@mydomain.com").as_deref(),
        Some("550 5.1.1 <quoted local@mydomain.com>: Recipient address rejected: User unknown in virtual mailbox table")
    );
    assert_eq!(
        reply(&r, "postmaster@mydomain.com").as_deref(),
        Some("550 5.1.1 <postmaster@mydomain.com>: Recipient address rejected: User unknown in virtual mailbox table")
    );
    assert_eq!(
        reply(&r, "root@[127.0.0.1]").as_deref(),
        Some("550 5.1.1 <root@[127.0.0.1]>: Recipient address rejected: User unknown in local recipient table")
    );
    for ok in [
        "root@mydomain.com",
        "postadmin@MyDomain.COM",
        "hoge@mydomain.com",
        "hoge+ext@mydomain.com",
        "someone@example.org",
        "root",
        "postmaster",
        "postmaster@localhost",
    ] {
        assert_eq!(reply(&r, ok), None, "{ok}");
    }
    let res = r.resolve(&parse_address("root@localhost", false).unwrap());
    assert_eq!(res.class, Class::Local);
    let Verdict::Reject { hint, .. } = &res.verdict else {
        panic!()
    };
    assert!(hint.contains("virtual_alias_maps"), "{hint}");
}

#[test]
fn seed_default_local_recipient_maps_accepts_root_through_passwd() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed(dir.path(), BEFORE, "");
    assert_eq!(reply(&r, "root@localhost"), None);
    assert!(reply(&r, "no-such-user-xyz@localhost")
        .unwrap()
        .ends_with("User unknown in local recipient table"));
}

#[test]
fn seed_fix_user_form_alias_delivers_to_hoge() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed(
        dir.path(),
        AFTER,
        "local_recipient_maps = $virtual_mailbox_maps\n",
    );
    for addr in [
        "root@localhost",
        "root@mydomain.com",
        "root@mail.mydomain.com",
        "root",
    ] {
        let res = r.resolve(&parse_address(addr, false).unwrap());
        assert_eq!(res.verdict, Verdict::Accept, "{addr}: {}", res.render());
        assert_eq!(res.deliveries.len(), 1, "{addr}");
        let d = &res.deliveries[0];
        assert_eq!(d.recipient, "hoge@mydomain.com");
        assert_eq!(
            d.mailbox().map(|m| m.path.as_str()),
            Some("/home/vmail/mydomain.com/hoge/")
        );
        assert_eq!((d.uid(), d.gid()), (Some(5000), Some(5000)));
    }
    let text = r
        .resolve(&parse_address("root@localhost", false).unwrap())
        .render();
    assert!(text.contains("virtual:1]"), "{text}");
    // The user form does not apply to other domains.
    assert!(reply(&r, "root@example.org").is_none());
    let res = r.resolve(&parse_address("root@example.org", false).unwrap());
    assert_eq!(res.deliveries[0].transport(), "smtp");
}

#[test]
fn extension_propagates_and_loops_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let r = seed(dir.path(), "a@mydomain.com b@mydomain.com\nb@mydomain.com a@mydomain.com\nself@mydomain.com self@mydomain.com, hoge@mydomain.com\nlist@mydomain.com hoge, self@mydomain.com\n", "");
    let res = r.resolve(&parse_address("self@mydomain.com", false).unwrap());
    let to: Vec<_> = res
        .deliveries
        .iter()
        .map(|d| d.recipient.as_str())
        .collect();
    assert_eq!(to, ["self@mydomain.com", "hoge@mydomain.com"]);
    assert_eq!(res.deliveries[0].transport(), "error");
    let res = r.resolve(&parse_address("a@mydomain.com", false).unwrap());
    let last = res.deliveries.last().unwrap();
    assert!(
        last.temporary() && last.error().unwrap().contains("unreasonable"),
        "{last:?}"
    );
    let res = r.resolve(&parse_address("list@mydomain.com", false).unwrap());
    assert_eq!(
        res.deliveries
            .iter()
            .filter(|d| d.recipient == "hoge@mydomain.com")
            .count(),
        1
    );
}

/// virtual_transport and mailbox_transport = lmtp:NEXTHOP (a Dovecot
/// keeps the mailboxes): the virtual domain's recipients and, after alias
/// expansion, local users go to lmtp(8) with that next hop; a transport
/// yubin does not have is a configuration error naming the parameter.
#[test]
fn lmtp_transports() {
    use yubin_addr::Agent;
    let dir = tempfile::tempdir().unwrap();
    let r = seed(
        dir.path(),
        BEFORE,
        "virtual_transport = lmtp:unix:private/dovecot-lmtp\nmailbox_transport = lmtp:inet:127.0.0.1:24\n",
    );
    let agents = |a: &str| -> Vec<(String, Agent)> {
        r.expand(&parse_address(a, false).unwrap())
            .0
            .into_iter()
            .map(|d| (d.recipient, d.agent))
            .collect()
    };
    let lmtp = |n: &str| Agent::Lmtp { nexthop: n.into() };
    assert_eq!(
        agents("hoge@mydomain.com"),
        [(
            "hoge@mydomain.com".into(),
            lmtp("unix:private/dovecot-lmtp")
        )]
    );
    // root@mydomain.com -> hoge@mydomain.com by virtual_alias_maps.
    assert_eq!(
        agents("root@mydomain.com"),
        [(
            "hoge@mydomain.com".into(),
            lmtp("unix:private/dovecot-lmtp")
        )]
    );
    // A local user without an alias: mailbox_transport, with no passwd
    // lookup (local/mailbox.c); postmaster -> root -> root@$myorigin, which
    // virtual_alias_maps sends to hoge.
    assert_eq!(
        agents("dovecot-only-user@localhost"),
        [(
            "dovecot-only-user@localhost".into(),
            lmtp("inet:127.0.0.1:24")
        )]
    );
    assert_eq!(
        agents("postmaster@localhost"),
        [(
            "hoge@mydomain.com".into(),
            lmtp("unix:private/dovecot-lmtp")
        )]
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("virtual_maps"), "").unwrap();
    let main = "alias_maps =\nlocal_recipient_maps =\nvirtual_transport = maildrop\n";
    let cfg = Config::from_bytes(dir.path(), &dir.path().join("main.cf"), main.as_bytes()).unwrap();
    let e = Resolver::new(&cfg)
        .err()
        .expect("maildrop is refused")
        .to_string();
    assert!(
        e.contains("virtual_transport") && e.contains("maildrop"),
        "{e}"
    );
}
