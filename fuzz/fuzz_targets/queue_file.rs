//! Queue file decoding on arbitrary bytes (a corrupt spool file must be
//! recognised, never crash the queue manager), and encode/decode round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_queue::QueueFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = QueueFile::decode(data) {
        let again = QueueFile::decode(&q.encode()).expect("re-encoded file decodes");
        assert_eq!(again, q);
    }
});
