//! The seed's virtual_alias_maps and virtual_mailbox_maps served from a real
//! PostgreSQL (Debian's postgresql 15, a private instance started here):
//! the same RCPT replies and deliveries as the hash: files; the database
//! stopped mid-run gives "451 4.3.0 Temporary lookup failure" and defers
//! queued mail (nothing lost), and service resumes when it returns, without
//! a restart; `postmap -q -v` and `trace` show the statement that ran.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{bin, Client, Server, VIRTUAL_AFTER};
use yubin_pgsql::testserver::TestServer;

const DIALOG: &[&str] = &[
    "root@localhost",
    "ROOT@localhost",
    "postadmin@mydomain.com",
    "hoge@mydomain.com",
    "hoge+tag@mydomain.com",
    "nobody@mydomain.com",
    "denyhosts@localhost",
    "postmaster@localhost",
    "root@mydomain.com",
    "o'brien@mydomain.com",
    "back\\slash@mydomain.com",
    "pct%@mydomain.com",
];

fn replies(port: u16) -> Vec<String> {
    let mut c = Client::connect(port);
    assert!(c.cmd("EHLO client.example").starts_with("250"));
    assert!(c
        .cmd("MAIL FROM:<hogehoge@onotherdomain.com>")
        .starts_with("250"));
    let out = DIALOG
        .iter()
        .map(|r| format!("{r}: {}", c.cmd(&format!("RCPT TO:<{r}>"))))
        .collect();
    c.cmd("QUIT");
    out
}

fn sendmail(s: &Server, to: &str) {
    let mut child = Command::new(bin())
        .arg("-c")
        .arg(s.dir.path())
        .args(["sendmail", "-f", "hogehoge@onotherdomain.com", to])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Subject: queued while the database is down\n\nhello\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn seed_tables_from_postgresql() {
    let mut pg = TestServer::start().expect("private PostgreSQL (Debian package postgresql)");
    // The seed's two tables, row for row (VIRTUAL_AFTER and virtual_maps).
    pg.psql(
        "yubin",
        "CREATE TABLE virtual (key text PRIMARY KEY, value text NOT NULL);
         INSERT INTO virtual VALUES ('root', 'hoge@mydomain.com'), ('postadmin@mydomain.com', 'hoge@mydomain.com');
         CREATE TABLE mailbox (key text PRIMARY KEY, value text NOT NULL);
         INSERT INTO mailbox VALUES ('hoge@mydomain.com', 'mydomain.com/hoge/');",
    )
    .unwrap();

    let mut files = Server::seed(VIRTUAL_AFTER, "");
    files.start();
    let expected = replies(files.port);
    drop(files);

    let mut s = Server::seed(VIRTUAL_AFTER, "");
    for (name, table) in [("virtual.cf", "virtual"), ("mailbox.cf", "mailbox")] {
        std::fs::write(
            s.path(name),
            format!(
                "{}query = SELECT value FROM {table} WHERE key = '%s'\n",
                pg.conf_head()
            ),
        )
        .unwrap();
    }
    let extra = format!(
        "virtual_alias_maps = pgsql:{}\nvirtual_mailbox_maps = pgsql:{}\n",
        s.path("virtual.cf").display(),
        s.path("mailbox.cf").display()
    );
    let main = std::fs::read_to_string(s.path("main.cf")).unwrap() + &extra;
    std::fs::write(s.path("main.cf"), main).unwrap();
    s.start();
    assert_eq!(
        replies(s.port),
        expected,
        "pgsql: and hash: tables answer differently"
    );
    assert!(expected[0].contains(": 250 "), "{expected:?}");
    assert!(expected[5].contains("550 5.1.1"), "{expected:?}");

    // The same deliveries: root@localhost and postadmin@ reach hoge's Maildir.
    let mut c = Client::connect(s.port);
    c.cmd("EHLO client.example");
    let r = c.mail(
        "hogehoge@onotherdomain.com",
        &["root@localhost"],
        "Subject: one\r\n\r\nhello\r\n.\r\n",
    );
    assert!(r.starts_with("250 2.0.0 Ok: queued"), "{r}");
    let r = c.mail(
        "hogehoge@onotherdomain.com",
        &["postadmin@mydomain.com"],
        "Subject: two\r\n\r\nhello\r\n.\r\n",
    );
    assert!(r.starts_with("250 2.0.0 Ok: queued"), "{r}");
    s.wait_mail(2);

    // postmap -q and trace show the statement that ran.
    let vcf = format!("pgsql:{}", s.path("virtual.cf").display());
    let out = s.yubin_output(&["postmap", "-v", "-q", "root", &vcf]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hoge@mydomain.com\n");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("SELECT value FROM virtual WHERE key = $1  [$1=%s='root']"),
        "{out:?}"
    );
    assert_eq!(
        s.yubin_output(&["postmap", "-q", "nobody", &vcf])
            .status
            .code(),
        Some(1)
    );
    let trace = s.yubin(&["trace", "postadmin@mydomain.com"]);
    assert!(
        trace.contains(
            "(query: SELECT value FROM virtual WHERE key = $1  [$1=%s='postadmin@mydomain.com'])"
        ),
        "{trace}"
    );

    // The database goes away mid-run: RCPT is deferred, never "unknown";
    // mail already queued is deferred, not bounced.
    pg.stop().unwrap();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO client.example");
    assert!(c
        .cmd("MAIL FROM:<hogehoge@onotherdomain.com>")
        .starts_with("250"));
    assert_eq!(
        c.cmd("RCPT TO:<hoge@mydomain.com>"),
        "451 4.3.0 <hoge@mydomain.com>: Temporary lookup failure"
    );
    assert_eq!(
        c.cmd("RCPT TO:<nobody@mydomain.com>"),
        "451 4.3.0 <nobody@mydomain.com>: Temporary lookup failure"
    );
    c.cmd("QUIT");
    let out = s.yubin_output(&["postmap", "-q", "root", &vcf]);
    assert_ne!(out.status.code(), Some(0));
    assert_ne!(
        out.status.code(),
        Some(1),
        "an outage must not read as not found"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("temporary lookup failure"),
        "{out:?}"
    );
    sendmail(&s, "root@localhost");
    let log = s.wait_log("status=deferred");
    assert!(!log.contains("status=bounced"), "{log}");
    assert_eq!(s.hoge_mail().len(), 2);

    // It comes back: the same running server answers again and the
    // deferred message is delivered on the next queue run.
    pg.start_again().unwrap();
    let mut c = Client::connect(s.port);
    c.cmd("EHLO client.example");
    assert!(c
        .cmd("MAIL FROM:<hogehoge@onotherdomain.com>")
        .starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<hoge@mydomain.com>")
        .starts_with("250 2.1.5"));
    c.cmd("QUIT");
    s.yubin(&["postqueue", "-f"]);
    s.wait_mail(3);
    drop(s);
    drop(pg);
}
