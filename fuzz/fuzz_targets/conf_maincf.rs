//! main.cf parsing and $name expansion on arbitrary bytes: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = yubin_conf::Config::from_bytes(Path::new("/etc/yubin"), Path::new("/etc/yubin/main.cf"), data) {
        for name in cfg.all_names() {
            let _ = cfg.list(name);
            let _ = cfg.time(name, 's');
            let _ = cfg.bool(name);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = yubin_conf::expand::expand(text, &|n| Some(format!("${n}x")).filter(|_| n.len() < 3));
    }
});
