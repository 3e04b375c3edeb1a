//! `dovecot-uidlist` parsing on arbitrary bytes (the file is shared with
//! Dovecot and may be damaged): a clear error or a list that survives a
//! write/read round trip, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_mailstore::UidList;

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = UidList::parse(data) {
        let again = UidList::parse(&l.to_bytes()).expect("written uidlist parses");
        assert_eq!(again, l);
    }
});
