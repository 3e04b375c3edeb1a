//! passwd-file parsing, stored-password splitting and in-place password
//! replacement on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_auth::hash;
use yubin_auth::passwd_file::{replace, UserDb};

fuzz_target!(|data: &[u8]| {
    let Ok(db) = UserDb::parse(data, "users") else {
        return;
    };
    for u in db.list().iter().take(64) {
        assert!(db.get(&u.name).is_some());
        let _ = u.scheme_name();
        let _ = hash::split(&u.password);
        let _ = hash::plaintext(&u.password);
        let _ = hash::cram_md5_context(&u.password);
        if let Ok((_, _, d)) = hash::split(&u.password) {
            let _ = hash::ScramKeys::parse(d);
        }
    }
    // Replacing (or adding) a password keeps the file parseable and sets it.
    let mut names: Vec<String> = db.list().iter().take(2).map(|u| u.name.clone()).collect();
    names.push("new@example.org".into());
    for name in names {
        let out = replace(data, &name, "{PLAIN}x");
        let again = UserDb::parse(&out, "users").expect("replaced file parses");
        assert_eq!(again.get(&name).expect("user present").password, "{PLAIN}x");
        assert_eq!(again.len(), db.len() + usize::from(db.get(&name).is_none()));
    }
});
