//! Table sources (postmap and postalias syntax) and the cdb reader on
//! arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use yubin_table::{cdb, source};

fuzz_target!(|data: &[u8]| {
    let f = Path::new("virtual");
    if let Ok(text) = source::as_utf8(f, data) {
        if let Ok(lines) = source::logical_lines(f, text) {
            let _ = source::parse_entries(f, &lines);
            let _ = source::parse_aliases(f, &lines);
        }
    }
    if let Some(r) = cdb::Reader::new(data) {
        let _ = r.get(b"root");
        let _ = r.iter().take(1000).count();
    }
    let _ = yubin_table::inline::InlineTable::parse(&String::from_utf8_lossy(data));
    let _ = yubin_table::cidr::parse_network(&String::from_utf8_lossy(data));
});
