//! The session core driven with byte strings against the in-memory store.

use yubin_imap::memory::{drive, MemoryStore};
use yubin_imap::{Config, Session};

struct T {
    s: Session,
    store: MemoryStore,
}

impl T {
    fn new(cfg: Config) -> (T, String) {
        let mut s = Session::new(cfg);
        let mut store = MemoryStore::new();
        let g = drive(&mut s, &mut store);
        (T { s, store }, String::from_utf8_lossy(&g).into_owned())
    }
    fn plain() -> T {
        let cfg = Config {
            plaintext_auth: true,
            ..Config::default()
        };
        T::new(cfg).0
    }
    fn send(&mut self, input: &str) -> String {
        self.s.feed(input.as_bytes());
        String::from_utf8_lossy(&drive(&mut self.s, &mut self.store)).into_owned()
    }
    fn login() -> T {
        let mut t = T::plain();
        let r = t.send("a LOGIN bob secret\r\n");
        assert!(r.starts_with("a OK [CAPABILITY"), "{r}");
        t
    }
}

const MSG: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: Hello\r\nDate: Wed, 2 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nHi Bob\r\n";

const MULTI: &str = "From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody one\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\nAAEC\r\n--XX--\r\n";

#[test]
fn greeting_and_logindisabled_without_tls() {
    let cfg = Config {
        starttls_available: true,
        ..Config::default()
    };
    let (mut t, g) = T::new(cfg);
    assert!(g.contains("STARTTLS") && g.contains("LOGINDISABLED"), "{g}");
    assert!(!g.contains("AUTH=PLAIN"));
    let r = t.send("a LOGIN bob secret\r\n");
    assert!(r.starts_with("a NO [PRIVACYREQUIRED]"), "{r}");
    let r = t.send("b STARTTLS\r\nc INJECTED\r\n");
    assert_eq!(r, "b OK Begin TLS negotiation now.\r\n");
    let r = t.send("d CAPABILITY\r\n");
    assert!(
        r.contains("AUTH=PLAIN") && !r.contains("LOGINDISABLED") && !r.contains("STARTTLS"),
        "{r}"
    );
    let r = t.send("e LOGIN bob secret\r\n");
    assert!(r.starts_with("e OK"), "{r}");
}

#[test]
fn authenticate_plain_and_login() {
    let mut t = T::plain();
    // "\0bob\0secret"
    let r = t.send("a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n");
    assert!(r.starts_with("a OK [CAPABILITY"), "{r}");

    let mut t = T::plain();
    let r = t.send("a AUTHENTICATE PLAIN\r\n");
    assert_eq!(r, "+ \r\n");
    let r = t.send("AGJvYgB3cm9uZw==\r\n");
    assert!(r.starts_with("a NO [AUTHENTICATIONFAILED]"), "{r}");
    assert_eq!(t.s.auth_failures(), 1);

    let r = t.send("b AUTHENTICATE LOGIN\r\n");
    assert_eq!(r, "+ VXNlcm5hbWU6\r\n");
    let r = t.send("Ym9i\r\n");
    assert_eq!(r, "+ UGFzc3dvcmQ6\r\n");
    let r = t.send("c2VjcmV0\r\n");
    assert!(r.starts_with("b OK"), "{r}");
    assert_eq!(t.s.user(), Some("bob"));
}

#[test]
fn three_failures_close() {
    let mut t = T::plain();
    t.send("a LOGIN bob x\r\n");
    t.send("a LOGIN bob y\r\n");
    let r = t.send("a LOGIN bob z\r\n");
    assert!(r.contains("* BYE"), "{r}");
    assert!(t.s.is_closed());
}

#[test]
fn commands_before_login_refused() {
    let mut t = T::plain();
    for c in [
        "SELECT INBOX",
        "LIST \"\" *",
        "FETCH 1 FLAGS",
        "APPEND INBOX {1+}\r\nx",
    ] {
        let r = t.send(&format!("x {c}\r\n"));
        assert!(r.starts_with("x BAD"), "{c}: {r}");
    }
}

#[test]
fn list_with_special_use_and_children() {
    let mut t = T::login();
    assert!(t.send("a CREATE Work/Reports\r\n").starts_with("a OK"));
    let r = t.send("b LIST \"\" *\r\n");
    assert!(
        r.contains("* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"),
        "{r}"
    );
    assert!(
        r.contains("* LIST (\\Noselect \\HasChildren) \"/\" Work\r\n"),
        "{r}"
    );
    assert!(
        r.contains("* LIST (\\HasNoChildren) \"/\" Work/Reports\r\n"),
        "{r}"
    );
    let r = t.send("c LIST \"\" %\r\n");
    assert!(!r.contains("Work/Reports"), "{r}");
    let r = t.send("d LIST \"\" \"\"\r\n");
    assert!(r.starts_with("* LIST (\\Noselect) \"/\" \"\"\r\n"), "{r}");
    let r = t.send("e CREATE \"a//b\"\r\n");
    assert!(r.starts_with("e NO"), "{r}");
    let r = t.send("f CREATE \"../b\"\r\n");
    assert!(r.starts_with("f NO"), "{r}");
    let r = t.send("g CREATE \"&Jjo\"\r\n");
    assert!(r.starts_with("g NO"), "{r}");
    let r = t.send("h DELETE INBOX\r\n");
    assert!(r.starts_with("h NO"), "{r}");
}

#[test]
fn append_select_fetch_store_expunge() {
    let mut t = T::login();
    let r = t.send(&format!(
        "a APPEND INBOX (\\Flagged) {{{}+}}\r\n{MSG}\r\n",
        MSG.len()
    ));
    assert!(r.starts_with("a OK [APPENDUID 1 1]"), "{r}");
    let r = t.send(&format!("a APPEND INBOX {{{}}}\r\n", MULTI.len()));
    assert_eq!(r, "+ OK\r\n");
    let r = t.send(&format!("{MULTI}\r\n"));
    assert!(r.starts_with("a OK [APPENDUID 1 2]"), "{r}");

    let r = t.send("b SELECT inbox\r\n");
    assert!(r.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{r}");
    assert!(
        r.contains("[UIDVALIDITY 1]") && r.contains("[UIDNEXT 3]"),
        "{r}"
    );
    assert!(r.contains("b OK [READ-WRITE]"), "{r}");

    let r = t.send("c FETCH 1 (FLAGS UID RFC822.SIZE ENVELOPE)\r\n");
    assert!(r.contains("FLAGS (\\Flagged \\Recent)"), "{r}");
    assert!(r.contains(&format!("RFC822.SIZE {}", MSG.len())), "{r}");
    assert!(r.contains("ENVELOPE (\"Wed, 2 Dec 2026 10:00:00 +0000\" \"Hello\" ((\"Alice\" NIL \"alice\" \"example.org\"))"), "{r}");

    let r = t.send("d FETCH 2 (BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (Subject)])\r\n");
    assert!(r.contains("BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 8 1 NIL NIL NIL NIL)(\"application\" \"octet-stream\" NIL NIL NIL \"BASE64\" 4 NIL (\"attachment\" (\"filename\" \"a.bin\")) NIL NIL) \"mixed\" (\"boundary\" \"XX\") NIL NIL NIL)"), "{r}");
    assert!(r.contains("BODY[1] {8}\r\nbody one "), "{r}");
    assert!(
        r.contains("BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: parts\r\n\r\n"),
        "{r}"
    );
    assert!(r.contains("BODY[2.MIME] {"), "{r}");
    assert!(!r.contains("\\Seen"), "{r}");

    let r = t.send("e FETCH 1 BODY[]<0.4>\r\n");
    assert!(r.contains("BODY[]<0> {4}\r\nFrom"), "{r}");
    assert!(r.contains("FLAGS (\\Seen \\Flagged \\Recent)"), "{r}");

    let r = t.send("f UID STORE 1:* +FLAGS.SILENT (\\Deleted $Label1)\r\n");
    // A new keyword is announced in FLAGS before any FETCH may show it.
    assert_eq!(
        r,
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n\
         * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Flags permitted.\r\n\
         f OK Store completed.\r\n"
    );
    let r = t.send("g STORE 2 -FLAGS (\\Deleted)\r\n");
    assert!(r.contains("* 2 FETCH (FLAGS ($Label1 \\Recent))"), "{r}");
    let r = t.send("h SEARCH DELETED\r\n");
    assert!(r.starts_with("* SEARCH 1\r\n"), "{r}");
    let r = t.send("h UID SEARCH SUBJECT parts\r\n");
    assert!(r.starts_with("* SEARCH 2\r\n"), "{r}");
    let r = t.send("h SEARCH OR FROM alice BODY \"body one\"\r\n");
    assert!(r.starts_with("* SEARCH 1 2\r\n"), "{r}");
    let r = t.send("i EXPUNGE\r\n");
    assert_eq!(r, "* 1 EXPUNGE\r\ni OK Expunge completed.\r\n");
    let r = t.send("j FETCH 5 FLAGS\r\n");
    assert!(r.starts_with("j BAD"), "{r}");
}

#[test]
fn copy_move_and_noop_sees_new_mail() {
    let mut t = T::login();
    t.store.deliver("INBOX", MSG.as_bytes());
    t.store.deliver("INBOX", MSG.as_bytes());
    t.send("a SELECT INBOX\r\n");
    let r = t.send("b UID COPY 1 Trash\r\n");
    assert_eq!(r, "b OK [COPYUID 4 1 1] Copy completed.\r\n");
    let r = t.send("c MOVE 2 Archive\r\n");
    assert_eq!(
        r,
        "* OK [COPYUID 6 2 1] Moved UIDs.\r\n* 2 EXPUNGE\r\nc OK Move completed.\r\n"
    );
    let r = t.send("d COPY 1 Nope\r\n");
    assert!(r.starts_with("d NO [TRYCREATE]"), "{r}");
    t.store.deliver("INBOX", MSG.as_bytes());
    let r = t.send("e NOOP\r\n");
    // Message 1 stayed \\Recent for this session since its SELECT.
    assert_eq!(r, "* 2 EXISTS\r\n* 2 RECENT\r\ne OK NOOP completed.\r\n");
    let r = t.send("f STATUS Archive (MESSAGES UIDNEXT UNSEEN)\r\n");
    assert_eq!(
        r,
        "* STATUS Archive (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\nf OK Status completed.\r\n"
    );
}

#[test]
fn idle_reports_changes() {
    let mut t = T::login();
    t.send("a SELECT INBOX\r\n");
    let r = t.send("b IDLE\r\n");
    assert_eq!(r, "+ idling\r\n");
    assert!(t.s.is_idle());
    t.store.deliver("INBOX", MSG.as_bytes());
    t.s.mailbox_changed();
    let r = String::from_utf8_lossy(&drive(&mut t.s, &mut t.store)).into_owned();
    assert_eq!(r, "* 1 EXISTS\r\n* 1 RECENT\r\n");
    let r = t.send("DONE\r\n");
    assert_eq!(r, "b OK Idle completed.\r\n");
}

#[test]
fn limits_give_tagged_errors() {
    let cfg = Config {
        plaintext_auth: true,
        max_line: 200,
        append_limit: 1000,
        ..Config::default()
    };
    let (mut t, _) = T::new(cfg);
    t.send("a LOGIN bob secret\r\n");
    let r = t.send("b APPEND INBOX {5000}\r\n");
    assert_eq!(r, "b NO [TOOBIG] Message too large.\r\n");
    let r = t.send(&format!("c NOOP {}\r\n", "x".repeat(500)));
    assert!(r.starts_with("c BAD"), "{r}");
    let r = t.send(&format!(
        "d SEARCH {}ALL{}\r\n",
        "(".repeat(50),
        ")".repeat(50)
    ));
    assert!(r.starts_with("d BAD"), "{r}");
    let r = t.send("e NOOP\r\n");
    assert_eq!(r, "e OK NOOP completed.\r\n");
    let r = t.send("f APPEND INBOX {5000+}\r\n");
    assert!(r.contains("* BYE"), "{r}");
    assert!(t.s.is_closed());
}

#[test]
fn garbage_is_bad_not_panic() {
    let mut t = T::plain();
    for g in [
        "\r\n",
        "*\r\n",
        "a\r\n",
        "a FOO\r\n",
        "a FETCH\r\n",
        "\u{0}\u{1}\r\n",
        "+ x\r\n",
    ] {
        let r = t.send(g);
        assert!(r.contains("BAD"), "{g:?}: {r}");
    }
}

#[test]
fn namespace_id_enable_unselect_close() {
    let mut t = T::login();
    assert!(t
        .send("a NAMESPACE\r\n")
        .starts_with("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"));
    assert!(t.send("b ID (\"name\" \"test\")\r\n").starts_with("* ID ("));
    assert!(t
        .send("c ENABLE CONDSTORE X-UNKNOWN\r\n")
        .starts_with("* ENABLED CONDSTORE\r\nc OK"));
    t.store.deliver("INBOX", MSG.as_bytes());
    t.send("d SELECT INBOX\r\n");
    t.send("e STORE 1 +FLAGS (\\Deleted)\r\n");
    assert!(t.send("f UNSELECT\r\n").starts_with("f OK"));
    t.send("g SELECT INBOX\r\n");
    assert!(t.send("h CLOSE\r\n").starts_with("h OK"));
    let r = t.send("i STATUS INBOX (MESSAGES)\r\n");
    assert!(r.starts_with("* STATUS INBOX (MESSAGES 0)"), "{r}");
    let r = t.send("j LOGOUT\r\n");
    assert_eq!(r, "* BYE Logging out\r\nj OK Logout completed.\r\n");
}

/// RFC 7162 CONDSTORE: HIGHESTMODSEQ, MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE,
/// SEARCH MODSEQ, STATUS HIGHESTMODSEQ.
#[test]
fn condstore() {
    let mut t = T::login();
    for _ in 0..3 {
        t.store.deliver("INBOX", MSG.as_bytes());
    }
    let r = t.send("a SELECT INBOX (CONDSTORE)\r\n");
    assert!(r.contains("* OK [HIGHESTMODSEQ 4] "), "{r}");
    let r = t.send("b FETCH 1:* (FLAGS)\r\n");
    assert!(r.contains("* 1 FETCH (FLAGS (\\Recent) MODSEQ (2))"), "{r}");
    let r = t.send("c STORE 2 +FLAGS.SILENT (\\Seen)\r\n");
    assert!(r.starts_with("* 2 FETCH (UID 2 MODSEQ (5))\r\nc OK"), "{r}");
    let r = t.send("d UID FETCH 1:* (FLAGS) (CHANGEDSINCE 4)\r\n");
    assert_eq!(
        r,
        "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (5))\r\nd OK Fetch completed.\r\n"
    );
    // Message 2 changed after 4: left alone and reported as MODIFIED.
    let r = t.send("e STORE 1:3 (UNCHANGEDSINCE 4) +FLAGS (\\Flagged)\r\n");
    assert!(r.contains("e OK [MODIFIED 2] "), "{r}");
    assert!(
        r.contains("* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) MODSEQ (6))"),
        "{r}"
    );
    assert!(!r.contains("* 2 FETCH"), "{r}");
    let r = t.send("f UID STORE 2 (UNCHANGEDSINCE 1) -FLAGS (\\Seen)\r\n");
    assert!(r.contains("f OK [MODIFIED 2] "), "{r}");
    let r = t.send("g SEARCH MODSEQ 6\r\n");
    assert_eq!(r, "* SEARCH 1 3 (MODSEQ 7)\r\ng OK Search completed.\r\n");
    let r = t.send("h SEARCH MODSEQ 100\r\n");
    assert!(r.starts_with("* SEARCH\r\n"), "{r}");
    let r = t.send("i STATUS INBOX (HIGHESTMODSEQ MESSAGES)\r\n");
    assert!(
        r.contains("* STATUS INBOX (HIGHESTMODSEQ 7 MESSAGES 3)"),
        "{r}"
    );
    // Thunderbird's CHANGEDSINCE 0 (not RFC 7162's grammar): every message.
    let r = t.send("k UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)\r\n");
    assert_eq!(r.matches(" FETCH (").count(), 3, "{r}");
    let r = t.send("l UID FETCH 1:* (FLAGS) (CHANGEDSINCE 00)\r\n");
    assert!(r.starts_with("l BAD"), "{r}");
    let r = t.send("j FETCH 1 (MODSEQ)\r\n");
    assert!(r.starts_with("* 1 FETCH (MODSEQ (6))\r\n"), "{r}");
}

/// RFC 7162 QRESYNC: ENABLE, SELECT (QRESYNC ...) with VANISHED (EARLIER)
/// and changed flags, VANISHED instead of EXPUNGE, UID FETCH VANISHED,
/// [CLOSED].
#[test]
fn qresync() {
    let mut t = T::login();
    for _ in 0..5 {
        t.store.deliver("INBOX", MSG.as_bytes());
    }
    let r = t.send("a SELECT INBOX (QRESYNC (1 1))\r\n");
    assert!(r.starts_with("a BAD"), "{r}");
    let r = t.send("b ENABLE QRESYNC\r\n");
    assert!(r.starts_with("* ENABLED QRESYNC\r\n"), "{r}");
    t.send("c SELECT INBOX\r\n");
    let r = t.send("d STORE 2,4 +FLAGS (\\Deleted)\r\n");
    assert!(r.contains("MODSEQ"), "{r}");
    let r = t.send("e EXPUNGE\r\n");
    assert!(r.starts_with("* VANISHED 2,4\r\n"), "{r}");
    assert!(!r.contains("EXPUNGE\r\n"), "{r}");
    t.send("f STORE 2 +FLAGS (\\Seen)\r\n");
    // The client knew UIDVALIDITY 1 at MODSEQ 6 and UIDs 1:5.
    let r = t.send("g SELECT INBOX (QRESYNC (1 6 1:5))\r\n");
    assert!(r.starts_with("* OK [CLOSED]"), "{r}");
    assert!(r.contains("* VANISHED (EARLIER) 2,4\r\n"), "{r}");
    assert!(
        r.contains("* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ ("),
        "{r}"
    );
    assert!(!r.contains("UID 1 "), "{r}");
    let r = t.send("h UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n");
    assert!(r.starts_with("* VANISHED (EARLIER) 2,4\r\n"), "{r}");
    let r = t.send("i FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n");
    assert!(r.starts_with("i BAD"), "{r}");
    // A different UIDVALIDITY: a plain SELECT.
    let r = t.send("j SELECT INBOX (QRESYNC (99 1))\r\n");
    assert!(
        !r.contains("VANISHED") && r.contains("j OK [READ-WRITE]"),
        "{r}"
    );
}

/// RFC 4731 ESEARCH, RFC 5258/5819 LIST-EXTENDED and LIST-STATUS, RFC
/// 9208 QUOTA, driven as byte strings.
#[test]
fn esearch_listext_quota() {
    let mut t = T::login();
    for _ in 0..3 {
        t.store.deliver("INBOX", MSG.as_bytes());
    }
    t.send("a SELECT INBOX\r\n");
    let r = t.send("b UID SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n");
    assert_eq!(
        r,
        "* ESEARCH (TAG \"b\") UID MIN 1 MAX 3 ALL 1:3 COUNT 3\r\nb OK Search completed.\r\n"
    );
    let r = t.send("c SEARCH RETURN (SAVE) ALL\r\n");
    assert!(r.starts_with("c BAD"), "{r}");
    let r = t.send("d LIST (SPECIAL-USE) \"\" * RETURN (STATUS (MESSAGES))\r\n");
    assert!(
        r.contains("* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"),
        "{r}"
    );
    assert!(!r.contains("INBOX"), "{r}");
    assert!(r.contains("* STATUS Sent (MESSAGES 0)\r\n"), "{r}");
    let r = t.send("e LIST \"\" (INBOX Trash) RETURN (STATUS (MESSAGES UIDNEXT) SUBSCRIBED)\r\n");
    assert!(
        r.contains("* STATUS INBOX (MESSAGES 3 UIDNEXT 4)\r\n"),
        "{r}"
    );
    assert!(r.contains("\\Subscribed \\Trash) \"/\" Trash\r\n"), "{r}");
    let r = t.send("f LIST (RECURSIVEMATCH) \"\" *\r\n");
    assert!(r.starts_with("f BAD"), "{r}");
    // No quota: a QUOTAROOT without roots.
    let r = t.send("g GETQUOTAROOT INBOX\r\n");
    assert_eq!(r, "* QUOTAROOT INBOX\r\ng OK Getquotaroot completed.\r\n");
    t.store.quota = Some(yubin_imap::store::QuotaUsage {
        bytes: 2049,
        bytes_limit: Some(10 * 1024),
        messages: 3,
        messages_limit: None,
    });
    let r = t.send("h GETQUOTAROOT INBOX\r\n");
    assert!(
        r.starts_with("* QUOTAROOT INBOX \"\"\r\n* QUOTA \"\" (STORAGE 3 10)\r\n"),
        "{r}"
    );
    let r = t.send("i GETQUOTA \"x\"\r\n");
    assert!(r.starts_with("i NO [NONEXISTENT]"), "{r}");
}

/// RFC 4978: COMPRESS DEFLATE after login gives the driver
/// `Action::Compress` once; a second one is refused.
#[test]
fn compress_deflate() {
    let mut t = T::plain();
    t.s.feed(b"a COMPRESS DEFLATE\r\n");
    let mut out = Vec::new();
    while let Some(a) = t.s.next_action() {
        assert!(!matches!(a, yubin_imap::Action::Compress));
        if let yubin_imap::Action::Write(b) = a {
            out.extend(b);
        }
    }
    assert!(
        out.starts_with(b"a BAD"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let r = t.send("b LOGIN bob secret\r\n");
    assert!(r.contains("COMPRESS=DEFLATE"), "{r}");
    t.s.feed(b"c COMPRESS DEFLATE\r\n");
    let mut actions = Vec::new();
    while let Some(a) = t.s.next_action() {
        actions.push(a);
    }
    assert!(
        matches!(&actions[..], [yubin_imap::Action::Write(w), yubin_imap::Action::Compress] if w.starts_with(b"c OK")),
        "{actions:?}"
    );
    let r = t.send("d COMPRESS DEFLATE\r\n");
    assert!(r.starts_with("d NO [COMPRESSIONACTIVE]"), "{r}");
}
