//! Fuzzes yubin send's SMTP reply parser: any bytes must give a reply, "need
//! more", or a bounded error, never a panic, and consumed lengths must add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_smtp::reply::{parse_reply, queue_id, MAX_LINE, MAX_LINES};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((reply, used))) = parse_reply(rest) {
        assert!(used > 0 && used <= rest.len());
        assert!(reply.raw.len() <= MAX_LINES);
        assert!(reply.raw.iter().all(|l| l.len() <= 3 * MAX_LINE));
        let _ = (reply.text(), reply.ehlo_keywords(), queue_id(&reply));
        rest = &rest[used..];
    }
});
