//! Fuzzes the milter client core with what a milter might send: any bytes
//! must give frames within the bound, replies or clear errors, never a
//! panic or an allocation beyond the frame limit.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use yubin_milter::frame::{Decoder, MAX_FRAME};
use yubin_milter::{Client, Config, DefaultAction, Event, Message, Reply, Step};

fuzz_target!(|data: &[u8]| {
    // The frame decoder alone, fed in two pieces.
    let mut d = Decoder::default();
    let (a, b) = data.split_at(data.len() / 2);
    d.push(a);
    d.push(b);
    while let Ok(Some(f)) = d.next_frame() {
        assert!(f.data.len() < MAX_FRAME);
        let _ = Reply::parse(&f);
    }
    // The client through a whole message, the milter answering with `data`.
    let mut c = Client::new(Config {
        name: "fuzz".into(),
        version: 6,
        default_action: DefaultAction::Tempfail,
        macros: BTreeMap::new(),
    });
    let _ = c.negotiate();
    let none = |_: &str| None;
    let mut rest = data;
    let feed = |c: &mut Client, rest: &mut &[u8]| -> bool {
        let n = rest.len().min(64);
        let (now, later) = rest.split_at(n);
        *rest = later;
        match c.feed(now) {
            Ok(Some(_)) => true,
            Ok(None) => !rest.is_empty(),
            Err(_) => {
                let _ = c.fail();
                false
            }
        }
    };
    if !feed(&mut c, &mut rest) {
        return;
    }
    let args = vec!["<a@b>".to_string()];
    let events = [
        Event::Helo("h"),
        Event::Mail(&args),
        Event::Rcpt(&args),
        Event::Data,
        Event::Header("Subject", " x"),
        Event::Eoh,
        Event::Body(b"x\r\n"),
        Event::Eom,
    ];
    for ev in events {
        if let Step::Wait(_) = c.event(ev, &none) {
            while !rest.is_empty() {
                if feed(&mut c, &mut rest) {
                    break;
                }
            }
        }
    }
    let mut m = Message::parse(data);
    let _ = m.to_bytes();
    m.apply(
        &yubin_milter::Edit::ChangeHeader {
            index: 2,
            name: "a".into(),
            value: String::new(),
        },
        false,
    );
});
