//! bounce(5) template files (here-documents, headers, `$name` expansion) on
//! arbitrary text: a template or an error naming file and line, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = yubin_conf::Config::from_bytes(
        Path::new("/etc/yubin"),
        Path::new("/etc/yubin/main.cf"),
        b"myhostname = mail.example.com\ndelay_warning_time = 4h\n",
    )
    .expect("fixed configuration");
    let _ = yubin_notify::Templates::parse(&cfg, Path::new("bounce.cf"), text);
});
