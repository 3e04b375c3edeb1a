//! Fuzzes MTA-STS input from the network: the policy file (RFC 8461
//! section 3.2), the HTTP/1.1 response around it (status, Content-Length,
//! chunked bodies) and the TXT record's id. Never a panic; a body is never
//! larger than the policy limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_outbound::mta_sts::{parse_http, txt_id, Policy, MAX_POLICY};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = parse_http(data, "mta-sts.fuzz.test") {
        assert!(body.len() <= MAX_POLICY);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = Policy::parse(text) {
            let _ = p.allows("mx.fuzz.test");
        }
        let _ = txt_id(&text.lines().map(str::to_string).collect::<Vec<_>>());
    }
});
