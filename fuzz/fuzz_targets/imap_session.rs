//! The IMAP session core on arbitrary client bytes, fed in chunks, logged
//! in (plaintext allowed) with a mailbox holding a MIME message, so that
//! command parsing, literals, FETCH sections and SEARCH all run. It must
//! never panic, and its output stays bounded by its input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_imap::memory::{drive, MemoryStore};
use yubin_imap::{Config, Session};

const MSG: &[u8] = b"From: a@example.org\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nhi\r\n--B--\r\n";

fuzz_target!(|data: &[u8]| {
    let cfg = Config {
        plaintext_auth: true,
        max_line: 512,
        max_literal: 256,
        append_limit: 4096,
        ..Config::default()
    };
    let mut s = Session::new(cfg);
    let mut store = MemoryStore::new();
    store.deliver("INBOX", MSG);
    drive(&mut s, &mut store);
    s.feed(b"0 LOGIN u secret\r\n1 SELECT INBOX\r\n");
    drive(&mut s, &mut store);
    for chunk in data.chunks(7) {
        s.feed(chunk);
        let out = drive(&mut s, &mut store);
        assert!(out.len() < 1 << 20);
        if s.is_idle() {
            s.mailbox_changed();
            drive(&mut s, &mut store);
        }
    }
});
