//! Log-line parser and connection tracker of `yubin guard`: no panic, and
//! every reported host is a host token copied from the input (never made up).
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_guard::engine::{Mode, Tracker};
use yubin_guard::parse::{host::is_host, parse_line};

fuzz_target!(|data: &[u8]| {
    let mut tracker = Tracker::new(Mode::AGGRESSIVE);
    for line in data.split(|&b| b == b'\n') {
        if let Some(p) = parse_line(line) {
            if let Some(h) = p.event.host {
                assert!(is_host(h));
                assert!(line.windows(h.len()).any(|w| w == h));
            }
            tracker.feed(&p, &mut |hit| {
                assert!(is_host(hit.host.as_bytes()));
            });
        }
    }
});
