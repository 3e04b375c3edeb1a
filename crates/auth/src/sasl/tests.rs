//! Mechanism tests with the RFC examples.

use super::*;
use std::collections::HashMap;

struct Db(HashMap<String, String>);

impl PasswordLookup for Db {
    fn password(&self, user: &str) -> Option<String> {
        self.0.get(&user.to_lowercase()).cloned()
    }
}

fn db() -> Db {
    let mut m = HashMap::new();
    for (u, p) in [
        ("tim", "{PLAIN}tanstaaftanstaaf"),
        ("tim2", "{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"),
        ("user", "{PLAIN}pencil"),
        ("hashed", "{SHA512-CRYPT}$6$UNJQih1960PXoH3X$tZS61Ho5qIQpwMS55Sw.UeoxBHy3kIACye.9yQT01eSCAizOLmEIle9Em.zOOOPCBAQ/43rAQ6OEJkMpCQHFN0"),
        ("scram", "{SCRAM-SHA-256}4096,V8FxiyK3iGUrasOwp9VbZQ==,tzmPq5lkCewkAFkT6aav4IvNoO2ajk3ZR0gHFyG9O+k=,RPqTVCfNK4ayKEiwOY6+DebnFw/yRRNGgwqvmTSy59g="),
        ("broken", "{NOPE}x"),
    ] {
        m.insert(u.to_string(), p.to_string());
    }
    Db(m)
}

fn success(u: &str) -> Step {
    Step::Success { authcid: u.into() }
}

#[test]
fn names() {
    for m in Mechanism::ALL {
        assert_eq!(Mechanism::from_name(&m.name().to_lowercase()), Some(m));
    }
    assert_eq!("cram-md5".parse(), Ok(Mechanism::CramMd5));
    assert_eq!(Mechanism::from_name("GSSAPI"), None);
    assert!(Mechanism::CramMd5.usable_with(Scheme::Plain));
    assert!(Mechanism::CramMd5.usable_with(Scheme::CramMd5));
    assert!(!Mechanism::CramMd5.usable_with(Scheme::Sha512Crypt));
    assert!(Mechanism::ScramSha256.usable_with(Scheme::ScramSha256));
    assert!(!Mechanism::ScramSha256.usable_with(Scheme::CramMd5));
    assert!(Mechanism::Plain.usable_with(Scheme::Argon2id));
}

#[test]
fn plain_rfc4616_examples() {
    let db = db();
    // RFC 4616 section 4 form: authzid empty, then with authzid = authcid.
    let (_, s) = SaslServer::start(Mechanism::Plain, Some(b"\0tim\0tanstaaftanstaaf"), "h", &db);
    assert_eq!(s, success("tim"));
    let (_, s) = SaslServer::start(
        Mechanism::Plain,
        Some(b"Tim\0TIM\0tanstaaftanstaaf"),
        "h",
        &db,
    );
    assert_eq!(s, success("tim"));
    // RFC 4616 example: "Ursel" acting as "Kurt" is proxy authorization: refused.
    let (_, s) = SaslServer::start(Mechanism::Plain, Some(b"Ursel\0Kurt\0xipj3plmq"), "h", &db);
    assert_eq!(s, Step::Failure(FailureReason::AuthzidMismatch));
    // Without initial response: empty challenge first.
    let (mut srv, s) = SaslServer::start(Mechanism::Plain, None, "h", &db);
    assert_eq!(s, Step::Challenge(vec![]));
    assert_eq!(srv.step(b"\0hashed\0pencil", &db), success("hashed"));
    assert_eq!(
        srv.step(b"\0hashed\0pencil", &db),
        Step::Failure(FailureReason::AlreadyFinished)
    );
}

#[test]
fn plain_failures() {
    let db = db();
    type Check = fn(&FailureReason) -> bool;
    let cases: &[(&[u8], Check)] = &[
        (
            b"\0tim\0wrong",
            |r| matches!(r, FailureReason::WrongPassword(u) if u == "tim"),
        ),
        (b"\0nobody\0x", |r| {
            matches!(r, FailureReason::UnknownUser(_))
        }),
        (b"\0broken\0x", |r| {
            matches!(r, FailureReason::StoredPassword(_))
        }),
        (b"tim", |r| matches!(r, FailureReason::Malformed(_))),
        (b"\0tim", |r| matches!(r, FailureReason::Malformed(_))),
        (b"\0\0pw", |r| matches!(r, FailureReason::Malformed(_))),
        (b"\0tim\0", |r| matches!(r, FailureReason::Malformed(_))),
        (b"\0tim\0a\0b", |r| matches!(r, FailureReason::Malformed(_))),
        (b"\0\xff\0pw", |r| matches!(r, FailureReason::Malformed(_))),
    ];
    for (input, ok) in cases {
        let (_, s) = SaslServer::start(Mechanism::Plain, Some(input), "h", &db);
        match s {
            Step::Failure(r) => assert!(ok(&r), "{input:?}: {r:?}"),
            other => panic!("{input:?}: {other:?}"),
        }
    }
}

#[test]
fn base64_wire_forms() {
    let db = db();
    // "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
    let ir = encode_challenge(b"\0tim\0tanstaaftanstaaf");
    let (_, s) = SaslServer::start_base64(Mechanism::Plain, Some(ir.as_bytes()), "h", &db);
    assert_eq!(s, success("tim"));
    let (_, s) = SaslServer::start_base64(Mechanism::Plain, Some(b"*"), "h", &db);
    assert_eq!(s, Step::Failure(FailureReason::Cancelled));
    assert_eq!(
        FailureReason::Cancelled.smtp_reply(),
        "501 5.7.0 Authentication aborted"
    );
    let (mut srv, s) = SaslServer::start_base64(Mechanism::Plain, None, "h", &db);
    assert_eq!(s, Step::Challenge(vec![]));
    let r = srv.step_base64(b"!!notbase64", &db);
    assert_eq!(r, Step::Failure(FailureReason::BadBase64));
    assert_eq!(
        FailureReason::BadBase64.smtp_reply(),
        "535 5.7.8 Error: authentication failed: authentication failure"
    );
    assert_eq!(
        srv.step_base64(b"AA==", &db),
        Step::Failure(FailureReason::AlreadyFinished)
    );
    let long = vec![b'A'; 30_000];
    assert_eq!(decode_response(&long), Err(FailureReason::TooLong));
    assert_eq!(decode_response(b"="), Ok(vec![]));
    assert_eq!(decode_response(b" dGlt\r\n"), Ok(b"tim".to_vec()));
    let (mut srv, _) = SaslServer::start(Mechanism::Plain, None, "h", &db);
    assert_eq!(
        srv.step(&vec![0u8; MAX_RESPONSE + 1], &db),
        Step::Failure(FailureReason::TooLong)
    );
}

#[test]
fn login_both_ways() {
    let db = db();
    let (mut srv, s) = SaslServer::start(Mechanism::Login, None, "h", &db);
    assert_eq!(s, Step::Challenge(b"Username:".to_vec()));
    assert_eq!(encode_challenge(b"Username:"), "VXNlcm5hbWU6");
    assert_eq!(
        srv.step(b"Tim", &db),
        Step::Challenge(b"Password:".to_vec())
    );
    assert_eq!(encode_challenge(b"Password:"), "UGFzc3dvcmQ6");
    assert_eq!(srv.step(b"tanstaaftanstaaf", &db), success("tim"));

    let (mut srv, s) = SaslServer::start(Mechanism::Login, Some(b"hashed"), "h", &db);
    assert_eq!(s, Step::Challenge(b"Password:".to_vec()));
    assert!(matches!(
        srv.step(b"nope", &db),
        Step::Failure(FailureReason::WrongPassword(_))
    ));

    let (mut srv, _) = SaslServer::start(Mechanism::Login, None, "h", &db);
    assert!(matches!(
        srv.step(b"", &db),
        Step::Failure(FailureReason::Malformed(_))
    ));
    let (mut srv, _) = SaslServer::start(Mechanism::Login, None, "h", &db);
    assert_eq!(
        srv.step_base64(b"*", &db),
        Step::Failure(FailureReason::Cancelled)
    );
}

#[test]
fn cram_md5_rfc2195_example() {
    let db = db();
    let challenge = "<1896.697170952@postoffice.reston.mci.net>";
    for user in ["tim", "tim2"] {
        let mut srv = SaslServer::start_cram_with(challenge);
        let resp = format!("{user} b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(srv.step(resp.as_bytes(), &db), success(user), "{user}");
        let mut srv = SaslServer::start_cram_with(challenge);
        let resp = format!("{user} b913a602c7eda7a495b4e6e7334d3891");
        assert!(matches!(
            srv.step(resp.as_bytes(), &db),
            Step::Failure(FailureReason::WrongPassword(_))
        ));
    }
    let mut srv = SaslServer::start_cram_with(challenge);
    let s = srv.step(b"hashed b913a602c7eda7a495b4e6e7334d3890", &db);
    assert!(matches!(
        s,
        Step::Failure(FailureReason::MechanismUnavailable(_))
    ));
    for bad in [
        &b"tim"[..],
        b"tim xyz",
        b" b913a602c7eda7a495b4e6e7334d3890",
        b"\xff \xff",
    ] {
        let mut srv = SaslServer::start_cram_with(challenge);
        assert!(
            matches!(
                srv.step(bad, &db),
                Step::Failure(FailureReason::Malformed(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn cram_md5_challenge_shape() {
    let db = db();
    let (_, s) = SaslServer::start(Mechanism::CramMd5, None, "mail.example.org", &db);
    let Step::Challenge(c) = s else { panic!() };
    let c = String::from_utf8(c).unwrap();
    assert!(
        c.starts_with('<') && c.ends_with("@mail.example.org>"),
        "{c}"
    );
    assert_eq!(c.matches('.').count(), 3, "{c}");
    let (_, s) = SaslServer::start(Mechanism::CramMd5, Some(b"x"), "h", &db);
    assert_eq!(s, Step::Failure(FailureReason::InitialResponseNotAllowed));
}

/// A minimal SCRAM-SHA-256 client for the tests.
fn client_final(
    server_first: &str,
    password: &[u8],
    client_first_bare: &str,
    gs2: &str,
) -> (String, String) {
    let mut nonce = "";
    let mut salt = vec![];
    let mut iter = 0;
    for a in server_first.split(',') {
        match a.split_at(2) {
            ("r=", v) => nonce = v,
            ("s=", v) => salt = encoding::unb64(v).unwrap(),
            ("i=", v) => iter = v.parse().unwrap(),
            _ => {}
        }
    }
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &salt, iter, &mut salted);
    let ck = crate::hash::scram::hmac(&salted, b"Client Key");
    let sk: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(ck).into();
    let without = format!("c={},r={nonce}", encoding::b64(gs2.as_bytes()));
    let am = format!("{client_first_bare},{server_first},{without}");
    let sig = crate::hash::scram::hmac(&sk, am.as_bytes());
    let proof: Vec<u8> = ck.iter().zip(sig).map(|(a, b)| a ^ b).collect();
    let server_key = crate::hash::scram::hmac(&salted, b"Server Key");
    let v = format!(
        "v={}",
        encoding::b64(&crate::hash::scram::hmac(&server_key, am.as_bytes()))
    );
    (format!("{without},p={}", encoding::b64(&proof)), v)
}

#[test]
fn scram_sha256_rfc7677_example() {
    let db = db();
    let salt = encoding::unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let mut srv = SaslServer::start_scram_with("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &salt);
    let s = srv.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &db);
    assert_eq!(
        s,
        Step::Challenge(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
        )
    );
    let s = srv.step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", &db);
    assert_eq!(
        s,
        Step::Challenge(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec())
    );
    assert_eq!(srv.step(b"", &db), success("user"));
}

#[test]
fn scram_sha256_stored_keys_and_random_nonce() {
    let db = db();
    for (user, gs2) in [("scram", "n,,"), ("user", "y,,"), ("scram", "n,a=scram,")] {
        let (mut srv, s) = SaslServer::start(Mechanism::ScramSha256, None, "h", &db);
        assert_eq!(s, Step::Challenge(vec![]));
        let bare = format!("n={user},r=abcdefghijkl");
        let Step::Challenge(sf) = srv.step(format!("{gs2}{bare}").as_bytes(), &db) else {
            panic!()
        };
        let sf = String::from_utf8(sf).unwrap();
        assert!(sf.starts_with("r=abcdefghijkl"), "{sf}");
        let (cf, v) = client_final(&sf, b"pencil", &bare, gs2);
        assert_eq!(
            srv.step(cf.as_bytes(), &db),
            Step::Challenge(v.into_bytes())
        );
        assert_eq!(srv.step(b"", &db), success(user));
    }
}

#[test]
fn scram_sha256_failures() {
    let db = db();
    let run = |user: &str, pw: &[u8]| {
        let (mut srv, _) = SaslServer::start(Mechanism::ScramSha256, None, "h", &db);
        let bare = format!("n={user},r=nonce");
        let Step::Challenge(sf) = srv.step(format!("n,,{bare}").as_bytes(), &db) else {
            panic!()
        };
        let (cf, _) = client_final(&String::from_utf8(sf).unwrap(), pw, &bare, "n,,");
        srv.step(cf.as_bytes(), &db)
    };
    assert!(matches!(
        run("user", b"wrong"),
        Step::Failure(FailureReason::WrongPassword(_))
    ));
    assert!(matches!(
        run("ghost", b"pencil"),
        Step::Failure(FailureReason::UnknownUser(_))
    ));
    for (first, want) in [
        (
            &b"p=tls-unique,,n=user,r=x"[..],
            FailureReason::ChannelBindingUnsupported,
        ),
        (b"n,a=other,n=user,r=x", FailureReason::AuthzidMismatch),
        (
            b"n,,n=hashed,r=x",
            FailureReason::MechanismUnavailable("hashed".into()),
        ),
    ] {
        let (mut srv, _) = SaslServer::start(Mechanism::ScramSha256, None, "h", &db);
        assert_eq!(srv.step(first, &db), Step::Failure(want));
    }
    for bad in [
        &b"n,,n=user"[..],
        b"x,,n=user,r=a",
        b"n,,m=ext,n=user,r=a",
        b"n,,n=u=zz,r=a",
        b"n,,n=,r=a",
        b"n",
        b"n,,r=a,n=user",
    ] {
        let (mut srv, _) = SaslServer::start(Mechanism::ScramSha256, None, "h", &db);
        assert!(
            matches!(
                srv.step(bad, &db),
                Step::Failure(FailureReason::Malformed(_))
            ),
            "{bad:?}"
        );
    }
    // Final message with a wrong channel binding or nonce.
    for fin in [
        &b"c=eSws,r=abcX,p=AAAA"[..],
        b"c=biws,r=other,p=AAAA",
        b"c=biws,r=abc",
        b"garbage",
    ] {
        let (mut srv, _) = SaslServer::start(Mechanism::ScramSha256, None, "h", &db);
        let _ = srv.step(b"n,,n=user,r=abc", &db);
        assert!(matches!(srv.step(fin, &db), Step::Failure(_)), "{fin:?}");
    }
    assert_eq!(scram::unescape("a=2Cb=3D"), Ok("a,b=".to_string()));
    assert!(scram::unescape("a=2").is_err());
}
