//! pgsql: tables against a real PostgreSQL 15 (Debian's package), started
//! privately by the test: lookups, result_format, expansion_limit, failover,
//! an outage (temporary errors, then service again without reopening), and
//! keys that try SQL injection.

use std::path::Path;

use yubin_pgsql::testserver::TestServer;
use yubin_pgsql::{PgError, PgsqlConfig, PgsqlTable};

fn table(dir: &Path, name: &str, text: &str) -> PgsqlTable {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    PgsqlTable::open(&file).unwrap()
}

fn value(t: &PgsqlTable, key: &str) -> Option<String> {
    t.lookup(key).unwrap().value
}

#[test]
fn lookups_outage_failover_and_injection() {
    let mut pg = TestServer::start().expect("private PostgreSQL");
    pg.psql(
        "yubin",
        "CREATE TABLE alias (address text PRIMARY KEY, goto text, active int);
         INSERT INTO alias VALUES ('root@example.com', 'hoge@example.com', 1),
           ('list@example.com', 'a@example.com', 1), ('multi@example.com', 'b@example.com,c@example.com', 1),
           ('off@example.com', 'x@example.com', 0),
           ('o''brien@example.com', 'quote@example.com', 1),
           ('back\\slash@example.com', 'backslash@example.com', 1),
           ('pct%@example.com', 'percent@example.com', 1),
           ('nul@example.com', 'nul-prefix-must-not-match@example.com', 1);
         CREATE TABLE members (list text, member text);
         INSERT INTO members VALUES ('l', 'm1@x'), ('l', 'm2@x'), ('l', NULL), ('l', '');
         CREATE TABLE uids (address text, uid int);
         INSERT INTO uids VALUES ('root@example.com', 5000);",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let head = pg.conf_head();
    let alias = table(
        dir.path(),
        "alias.cf",
        &format!("{head}query = SELECT goto FROM alias WHERE address='%s' AND active = '1'\n"),
    );
    assert_eq!(
        value(&alias, "root@example.com").as_deref(),
        Some("hoge@example.com")
    );
    assert_eq!(value(&alias, "off@example.com"), None);
    assert_eq!(value(&alias, "nobody@example.com"), None);
    let hit = alias.lookup("root@example.com").unwrap();
    assert_eq!(
        hit.query.as_deref(),
        Some(
            "SELECT goto FROM alias WHERE address=$1 AND active = '1'  [$1=%s='root@example.com']"
        )
    );

    // Every column of every row, NULL and empty skipped, joined by commas;
    // result_format and expansion_limit as pgsql_table(5) defines them.
    let members = table(
        dir.path(),
        "members.cf",
        &format!(
            "{head}query = SELECT member FROM members WHERE list='%u'\nresult_format = <%s>\n"
        ),
    );
    assert_eq!(value(&members, "l").as_deref(), Some("<m1@x>,<m2@x>"));
    let limited = table(
        dir.path(),
        "limited.cf",
        &format!("{head}query = SELECT member FROM members WHERE list='%s'\nexpansion_limit = 1\n"),
    );
    assert!(
        matches!(limited.lookup("l"), Err(PgError::Temporary(m)) if m.contains("expansion limit exceeded"))
    );
    // An integer column, and a parameter compared with one.
    let uid = table(
        dir.path(),
        "uid.cf",
        &format!("{head}query = SELECT uid FROM uids WHERE address='%s'\n"),
    );
    assert_eq!(value(&uid, "root@example.com").as_deref(), Some("5000"));
    let by_uid = table(
        dir.path(),
        "byuid.cf",
        &format!("{head}query = SELECT address FROM uids WHERE uid = %s\n"),
    );
    assert_eq!(value(&by_uid, "5000").as_deref(), Some("root@example.com"));
    // Not a number for an integer column: the server refuses it; temporary.
    assert!(
        matches!(by_uid.lookup("5000 OR 1=1"), Err(PgError::Temporary(m)) if m.contains("22P02"))
    );
    // %d on a key without a domain: no query at all (pgsql_table(5)).
    let by_domain = table(
        dir.path(),
        "dom.cf",
        &format!("{head}query = SELECT '%d'\n"),
    );
    let l = by_domain.lookup("root").unwrap();
    assert_eq!((l.value, l.query), (None, None));
    // domain restricts lookups to user@listed-domain.
    let restricted = table(
        dir.path(),
        "restricted.cf",
        &format!("{head}domain = example.org\nquery = SELECT goto FROM alias WHERE address='%s'\n"),
    );
    assert_eq!(value(&restricted, "root@example.com"), None);

    // Injection: quotes, backslashes, % and NUL reach the server only as
    // parameters, so each matches exactly its own row and nothing else.
    assert_eq!(
        value(&alias, "o'brien@example.com").as_deref(),
        Some("quote@example.com")
    );
    assert_eq!(
        value(&alias, "back\\slash@example.com").as_deref(),
        Some("backslash@example.com")
    );
    assert_eq!(
        value(&alias, "pct%@example.com").as_deref(),
        Some("percent@example.com")
    );
    for evil in [
        "x' OR '1'='1",
        "x' OR active = '1' --",
        "x'; DROP TABLE alias; --",
        "x\\' OR 1=1 --",
        "%@example.com",
        "pct_@example.com",
        "nul@example.com\0' OR '1'='1",
    ] {
        assert_eq!(value(&alias, evil), None, "{evil:?}");
    }
    // A NUL never reaches the server (PostgreSQL text cannot hold it).
    assert!(alias
        .lookup("nul@example.com\0x")
        .unwrap()
        .skipped
        .is_some());
    // The table is still there, and the server saw parameters, not SQL text.
    assert_eq!(
        pg.psql("yubin", "SELECT count(*) FROM alias")
            .unwrap()
            .trim(),
        "8"
    );
    let log = pg.log();
    assert!(
        log.contains("parameters: $1 = 'x''; DROP TABLE alias; --'"),
        "{log}"
    );
    assert!(
        !log.contains("address='x'"),
        "a key was pasted into SQL text"
    );

    // Outage: the lookup fails temporarily (never "not found"), and the same
    // table answers again once the server is back, without being reopened.
    pg.stop().unwrap();
    match alias.lookup("root@example.com") {
        Err(PgError::Temporary(m)) => assert!(m.contains("alias.cf"), "{m}"),
        other => panic!("expected a temporary error, got {other:?}"),
    }
    assert!(matches!(
        alias.lookup("nobody@example.com"),
        Err(PgError::Temporary(_))
    ));
    pg.start_again().unwrap();
    assert_eq!(
        value(&alias, "root@example.com").as_deref(),
        Some("hoge@example.com")
    );

    // Failover: a host that refuses connections is skipped.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let failover = table(
        dir.path(),
        "failover.cf",
        &format!(
            "hosts = inet:127.0.0.1:{dead_port} unix:{}:{}\nuser = postgres\ndbname = yubin\nquery = SELECT goto FROM alias WHERE address='%s'\n",
            pg.socket_dir().display(),
            pg.port
        ),
    );
    for _ in 0..6 {
        assert_eq!(
            value(&failover, "root@example.com").as_deref(),
            Some("hoge@example.com")
        );
    }
    drop(pg);
}

#[test]
fn config_errors_are_clear() {
    let e = PgsqlConfig::parse("hosts = h\ndbname = d\nquery = SELECT \"%s\"\n", &|_| {
        Err(String::new())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("inside a quoted identifier"), "{e}");
}
