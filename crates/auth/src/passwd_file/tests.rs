use super::*;
use crate::sasl::PasswordLookup;

const SAMPLE: &str = "\
# users for example.org
user@example.org:{PLAIN}pass:1000:1000::/home/user::userdb_mail=maildir:~/Maildir allow_nets=10.0.0.0/8 nopassword

Tim@Example.ORG:{SHA512-CRYPT}$6$x$y
bare:
   # indented comment
other:{CRAM-MD5}abc:::gecos:/var/mail/other:/bin/false
";

#[test]
fn parses_dovecot_lines() {
    let db = UserDb::parse(SAMPLE.as_bytes(), "users").unwrap();
    assert_eq!(db.len(), 4);
    let u = db.get("USER@example.org").unwrap();
    assert_eq!(u.name, "user@example.org");
    assert_eq!(u.password, "{PLAIN}pass");
    assert_eq!((u.uid, u.gid), (Some(1000), Some(1000)));
    assert_eq!(u.home.as_deref(), Some("/home/user"));
    assert_eq!(
        u.extra,
        vec![
            ("userdb_mail".into(), "maildir:~/Maildir".into()),
            ("allow_nets".into(), "10.0.0.0/8".into()),
            ("nopassword".into(), String::new()),
        ]
    );
    let t = db.get("tim@example.org").unwrap();
    assert_eq!(t.name, "Tim@Example.ORG");
    assert_eq!((t.uid, t.home.as_ref()), (None, None));
    assert_eq!(t.scheme_name(), "SHA512-CRYPT");
    assert_eq!(db.get("bare").unwrap().password, "");
    assert_eq!(db.get("bare").unwrap().scheme_name(), "-");
    let o = db.get("other").unwrap();
    assert_eq!(o.home.as_deref(), Some("/var/mail/other"));
    assert!(o.extra.is_empty());
    assert!(db.get("nobody").is_none());
    assert_eq!(
        db.password("TIM@example.org").unwrap(),
        "{SHA512-CRYPT}$6$x$y"
    );
    let names: Vec<_> = db.list().iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["user@example.org", "Tim@Example.ORG", "bare", "other"]
    );
}

#[test]
fn errors_name_file_and_line() {
    let cases = [
        ("a:b\n:x\n", "users:2: empty user name"),
        ("a:b:x\n", "users:1: uid is not a number"),
        ("a:b:1:-1\n", "users:1: gid is not a number"),
        ("a:b\n\nA:c\n", "users:3: user A listed twice"),
    ];
    for (input, want) in cases {
        let e = UserDb::parse(input.as_bytes(), "users");
        let e = match e {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{input:?} parsed"),
        };
        assert_eq!(e, want);
    }
    let e = UserDb::parse(b"a:\xff\n", "users").unwrap_err().to_string();
    assert_eq!(e, "users:1: not valid UTF-8");
}

#[test]
fn crlf_and_no_trailing_newline() {
    let db = UserDb::parse(b"a:{PLAIN}x\r\nb:{PLAIN}y", "u").unwrap();
    assert_eq!(db.get("a").unwrap().password, "{PLAIN}x");
    assert_eq!(db.get("b").unwrap().password, "{PLAIN}y");
}

#[test]
fn load_from_disk_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("users");
    std::fs::write(&p, SAMPLE).unwrap();
    assert_eq!(UserDb::load(&p).unwrap().len(), 4);
    let e = UserDb::load(&dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn users_path_rules() {
    let d = Path::new("/etc/yubin");
    assert_eq!(users_path(d, ""), d.join("users"));
    assert_eq!(users_path(d, "smtpd"), d.join("users"));
    assert_eq!(users_path(d, "/srv/users"), PathBuf::from("/srv/users"));
    assert_eq!(users_path(d, "private/users"), d.join("private/users"));
}
