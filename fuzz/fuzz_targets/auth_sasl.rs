//! The SASL server state machine (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256) on
//! arbitrary client lines, base64 and raw.
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_auth::sasl::{Mechanism, PasswordLookup, SaslServer, Step};

struct Db;

impl PasswordLookup for Db {
    fn password(&self, user: &str) -> Option<String> {
        match user.to_lowercase().as_str() {
            "tim" => Some("{PLAIN}tanstaaftanstaaf".into()),
            "cram" => Some(
                "{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b".into(),
            ),
            "scram" => Some("{SCRAM-SHA-256}1,AAAA,tzmPq5lkCewkAFkT6aav4IvNoO2ajk3ZR0gHFyG9O+k=,RPqTVCfNK4ayKEiwOY6+DebnFw/yRRNGgwqvmTSy59g=".into()),
            "pbkdf2" => Some("{PBKDF2}$1$salt$1$95f762d61f3829ca21bb347eafa75a0cb10a47d8".into()),
            "bad" => Some("{NOPE}x".into()),
            _ => None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mech = Mechanism::ALL[(sel & 3) as usize];
    let base64 = sel & 4 != 0;
    let with_ir = sel & 8 != 0;
    let mut lines = rest.split(|&b| b == b'\n');
    let ir = if with_ir { lines.next() } else { None };
    let (mut server, mut step) = if base64 {
        SaslServer::start_base64(mech, ir, "fuzz.example", &Db)
    } else {
        SaslServer::start(mech, ir, "fuzz.example", &Db)
    };
    for line in lines.take(8) {
        if !matches!(step, Step::Challenge(_)) {
            break;
        }
        step = if base64 {
            server.step_base64(line, &Db)
        } else {
            server.step(line, &Db)
        };
    }
    if let Step::Failure(r) = &step {
        let _ = r.to_string();
        let _ = r.smtp_reply();
    }
});
