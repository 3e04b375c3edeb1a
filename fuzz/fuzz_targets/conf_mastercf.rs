//! master.cf parsing on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = yubin_conf::mastercf::parse(std::path::Path::new("master.cf"), data) {
        for s in &m.services {
            let _ = s.listen();
        }
    }
});
