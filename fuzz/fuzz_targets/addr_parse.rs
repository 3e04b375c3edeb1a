//! RFC 5321 address parsing on arbitrary text, with and without SMTPUTF8.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for utf8 in [false, true] {
        if let Ok(a) = yubin_addr::parse_address(&text, utf8) {
            let _ = a.external();
            let _ = a.split_extension("+-");
            // The external form must parse back to the same address.
            let back = yubin_addr::parse_address(&a.external(), true).expect("external form parses");
            assert_eq!(back.key(), a.key());
        }
    }
});
