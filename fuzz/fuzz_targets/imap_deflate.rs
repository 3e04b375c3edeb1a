//! RFC 4978 COMPRESS=DEFLATE input as the IMAP driver inflates it
//! (`yubin_imap::compress::Deflate::inflate_piece`), on arbitrary bytes
//! arriving in chunks: never a panic or a hang, never a piece over 64 KiB,
//! and a round trip of the data through `compress` gives it back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_imap::compress::Deflate;

fuzz_target!(|data: &[u8]| {
    // Arbitrary (mostly corrupt) streams.
    let mut d = Deflate::new();
    let mut pending: Vec<u8> = Vec::new();
    'outer: for chunk in data.chunks(13) {
        pending.extend_from_slice(chunk);
        loop {
            match d.inflate_piece(&pending) {
                Ok((used, out, more)) => {
                    assert!(out.len() <= 64 * 1024);
                    pending.drain(..used);
                    if !more && (used == 0 || pending.is_empty()) {
                        break;
                    }
                }
                Err(_) => break 'outer,
            }
        }
    }
    // Valid streams: what the server writes, read back.
    let mut w = Deflate::new();
    let z = w.compress(data);
    let mut r = Deflate::new();
    let (mut back, mut input) = (Vec::new(), &z[..]);
    loop {
        let (used, out, more) = r.inflate_piece(input).expect("own stream");
        back.extend(out);
        input = &input[used..];
        if !more && input.is_empty() {
            break;
        }
    }
    assert_eq!(back, data);
});
