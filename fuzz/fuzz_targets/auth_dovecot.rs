//! Dovecot's authentication protocol as the server sends it: the line
//! splitter, the line parser and the handshake must never panic or grow
//! without bound on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_auth::dovecot::{parse_line, Handshake, LineReader};

fuzz_target!(|data: &[u8]| {
    let mut reader = LineReader::default();
    let mut hs = Handshake::default();
    for chunk in data.chunks(7) {
        let Ok(lines) = reader.push(chunk) else { return };
        for l in lines {
            if let Ok(line) = parse_line(&l) {
                let _ = hs.push(line);
            }
        }
    }
});
