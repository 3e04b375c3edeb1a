//! Users in PostgreSQL (smtpd_sasl_path = pgsql:FILE, Dovecot's passdb/userdb
//! sql): `yubin passwd` adds a user and changes a password there, SMTP AUTH
//! (swaks) and IMAP (curl) log in with them, without a restart.

mod common;

use std::process::{Command, Stdio};

use common::{free_port, Server, VIRTUAL_AFTER};
use yubin_pgsql::testserver::TestServer;

fn passwd(s: &Server, user: &str, pw: &str) -> String {
    let mut child = Command::new(common::bin())
        .arg("-c")
        .arg(s.dir.path())
        .args(["passwd", user])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{pw}\n{pw}\n").as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

fn smtp_auth(port: u16, user: &str, pw: &str) -> String {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--local-interface",
            "127.0.0.2",
            "--tls",
        ])
        .args([
            "--auth",
            "LOGIN",
            "--auth-user",
            user,
            "--auth-password",
            pw,
            "--quit-after",
            "AUTH",
        ])
        .output()
        .expect("swaks");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn imap_login(port: u16, user: &str, pw: &str) -> bool {
    Command::new("curl")
        .args([
            "-sS",
            "-k",
            "-u",
            &format!("{user}:{pw}"),
            &format!("imaps://127.0.0.1:{port}/"),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn users_in_postgresql_for_smtp_auth_imap_and_passwd() {
    let pg = TestServer::start().expect("private PostgreSQL");
    pg.psql(
        "yubin",
        "CREATE TABLE users (username text PRIMARY KEY, password text NOT NULL,
           uid int, gid int, home text, quota bigint);
         INSERT INTO users (username, password) VALUES ('hoge@mydomain.com', '{PLAIN}old');",
    )
    .unwrap();
    let s0 = Server::seed(VIRTUAL_AFTER, "");
    let d = s0.dir.path().to_path_buf();
    common::make_cert(&d);
    std::fs::write(
        d.join("users-sql.cf"),
        format!(
            "driver = pgsql\nconnect = host=127.0.0.1 port={} dbname=yubin user=postgres\n\
             password_query = SELECT username AS user, password FROM users WHERE username = '%u'\n\
             user_query = SELECT uid, gid, home, quota FROM users WHERE username = '%u'\n\
             password_update_query = UPDATE users SET password = '%w' WHERE username = '%u'\n\
             user_insert_query = INSERT INTO users (username, password) VALUES ('%u', '%w')\n",
            pg.port
        ),
    )
    .unwrap();
    let mut main = std::fs::read_to_string(d.join("main.cf")).unwrap();
    main.push_str(&format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {d}/cert.pem\nsmtpd_tls_key_file = {d}/key.pem\n\
         smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = passwd-file\nsmtpd_sasl_path = pgsql:{d}/users-sql.cf\n\
         smtpd_sasl_mechanisms = PLAIN LOGIN\nimapd_auth_failure_delay = 1s\n",
        d = d.display()
    ));
    std::fs::write(d.join("main.cf"), main).unwrap();
    let imaps = free_port();
    let mut master = std::fs::read_to_string(d.join("master.cf")).unwrap();
    master.push_str(&format!(
        "127.0.0.1:{imaps} inet n - n - - imap\n  -o imapd_tls_wrappermode=yes\n"
    ));
    std::fs::write(d.join("master.cf"), master).unwrap();
    let mut s = s0;
    s.start();

    // The stored {PLAIN} password works for both protocols.
    assert!(smtp_auth(s.port, "hoge@mydomain.com", "old")
        .contains("<~  235 2.7.0 Authentication successful"));
    assert!(imap_login(imaps, "hoge@mydomain.com", "old"));

    // yubin passwd writes to the database: a new user, a changed password.
    assert!(passwd(&s, "new@mydomain.com", "n3w-pass").contains("added new@mydomain.com in pgsql:"));
    assert!(passwd(&s, "hoge@mydomain.com", "s3cret").contains("changed hoge@mydomain.com"));
    let stored = pg
        .psql(
            "yubin",
            "SELECT username || ' ' || left(password, 14) FROM users ORDER BY 1",
        )
        .unwrap();
    assert_eq!(
        stored,
        "hoge@mydomain.com {SHA512-CRYPT}\nnew@mydomain.com {SHA512-CRYPT}\n"
    );

    // Both take effect at once in the running server.
    assert!(smtp_auth(s.port, "new@mydomain.com", "n3w-pass")
        .contains("<~  235 2.7.0 Authentication successful"));
    assert!(smtp_auth(s.port, "hoge@mydomain.com", "old").contains("535 5.7.8"));
    assert!(imap_login(imaps, "hoge@mydomain.com", "s3cret"));
    assert!(!imap_login(imaps, "hoge@mydomain.com", "old"));
    // A quote in the user name is a parameter, not SQL.
    assert!(smtp_auth(s.port, "x' OR '1'='1", "old").contains("535 5.7.8"));
    drop(s);
}
