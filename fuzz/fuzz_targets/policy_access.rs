//! The policy delegation protocol's reply parser (SMTPD_POLICY_README) and
//! the access(5) action parser on arbitrary bytes: a clear error or a
//! value, never a panic; a parsed reply never claims more bytes than given;
//! the RFC 3463 helpers keep the status shape.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_policy::access::{dsn_fix, dsn_split, AccessAction, ReplyClass};
use yubin_policy::service::parse_reply;
use yubin_policy::Restriction;

fuzz_target!(|data: &[u8]| {
    if let Ok((action, used)) = parse_reply(data) {
        assert!(used <= data.len());
        assert!(!action.contains('\n'));
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(AccessAction::Code { code, .. }) = AccessAction::parse(&text, &Restriction::is_known) {
        assert!((400..=599).contains(&code));
    }
    let (status, rest) = dsn_split("5.7.1", &text);
    assert!(status.starts_with('5'));
    assert!(rest.len() <= text.len());
    for class in [ReplyClass::Client, ReplyClass::Helo, ReplyClass::Sender, ReplyClass::Recipient] {
        let _ = dsn_fix(&status, class);
    }
});
