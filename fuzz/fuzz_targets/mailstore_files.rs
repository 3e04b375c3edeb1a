//! The other Maildir files yubin reads from disk, on arbitrary text:
//! `maildirsize`, `dovecot-keywords`, `subscriptions`, `yubin-index`, file
//! names, folder directory names and modified UTF-7. Never a panic; what
//! is written back reads the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_mailstore::{folder, index::Index, mutf7, quota, FileName, FolderName, Keywords};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = quota::parse(text);
    let k = Keywords::parse(text);
    assert_eq!(Keywords::parse(&k.to_text()), k);
    for n in folder::parse_subscriptions(text) {
        let line = folder::subscription_line(&n);
        let back = folder::parse_subscriptions(&format!("V\t2\n\n{line}\n"));
        assert_eq!(back, vec![n]);
    }
    if let Some(i) = Index::parse(text) {
        assert_eq!(Index::parse(&i.snapshot()).map(|j| j.entries), Some(i.entries));
    }
    let f = FileName::parse(text);
    assert!(text.starts_with(f.base));
    if let Ok(f) = FolderName::from_dir_name(text) {
        assert_eq!(f.dir_name(), text);
    }
    match mutf7::decode(text) {
        Ok(s) => assert_eq!(mutf7::encode(&s), text),
        Err(_) => {}
    }
    assert_eq!(mutf7::decode(&mutf7::encode(text)).as_deref(), Ok(text));
});
