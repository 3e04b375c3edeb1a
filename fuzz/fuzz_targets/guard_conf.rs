//! denyhosts.conf reader and allowed-hosts parser of `yubin guard`: no panic;
//! an error always names a line of the input.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use yubin_guard::allowed::Allowed;
use yubin_guard::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = |k: &str| (k == "HOME").then(|| "/root".to_string());
    if let Err(e) = Config::from_text(Path::new("denyhosts.conf"), &text, &env) {
        assert!(e.line >= 1 && e.line <= text.lines().count());
    }
    let a = Allowed::parse("allowed-hosts", &text, &|_| Vec::new());
    let _ = a.contains("192.0.2.1");
    let _ = a.contains("2001:db8::1");
});
