//! Fuzzes DANE's certificate handling: the DER walk to a certificate's
//! SubjectPublicKeyInfo and TLSA matching, on arbitrary bytes as a server
//! could send them. Never a panic; an SPKI found lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_outbound::dane::{spki, Tlsa};

fuzz_target!(|data: &[u8]| {
    if let Some(s) = spki(data) {
        let start = s.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + s.len() <= data.len());
    }
    for (selector, matching) in [(0, 0), (0, 1), (1, 1), (1, 2), (1, 0)] {
        let t = Tlsa {
            usage: 3,
            selector,
            matching,
            data: data.iter().take(64).copied().collect(),
        };
        let _ = t.usable();
        let _ = t.matches(data);
    }
});
