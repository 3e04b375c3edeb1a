//! yubin-msgauth's parsers: the header section walk that removes forged
//! Authentication-Results (RFC 8601 section 5), From-domain extraction for
//! DMARC, the strict SPF record grammar (with mail-auth's parser behind
//! it), and the LF-to-CRLF normaliser. None may panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (out, n) = yubin_msgauth::results::strip_ours(data, "mx.example.test");
    assert!(out.len() <= data.len());
    assert!(n == 0 || out.len() < data.len());
    let _ = yubin_msgauth::dmarc::from_domain(data);
    for v in yubin_msgauth::results::header_values(data, "from") {
        let _ = yubin_msgauth::results::address_domains(&v);
        let _ = yubin_msgauth::results::authserv_id(&v);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = yubin_msgauth::spf::parse_record(text);
        let _ = yubin_msgauth::results::pvalue(text);
    }
    let c = yubin_msgauth::to_crlf(data);
    assert!(c.len() >= data.len());
});
