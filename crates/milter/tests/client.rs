//! The client core driven with byte strings, as a milter would answer.

use std::collections::BTreeMap;
use std::net::IpAddr;

use yubin_milter::client::{body_chunks, MilterError, REJECT, TEMPFAIL};
use yubin_milter::frame::Decoder;
use yubin_milter::proto::*;
use yubin_milter::*;

fn cfg(default_action: DefaultAction) -> Config {
    let mut macros = BTreeMap::new();
    macros.insert(
        Stage::Connect,
        vec!["j".into(), "{daemon_name}".into(), "v".into()],
    );
    macros.insert(Stage::Mail, vec!["i".into(), "{mail_addr}".into()]);
    macros.insert(Stage::Eom, vec!["i".into()]);
    Config {
        name: "inet:127.0.0.1:1".into(),
        version: 6,
        default_action,
        macros,
    }
}

fn frame(cmd: u8, data: &[u8]) -> Vec<u8> {
    Frame::new(cmd, data.to_vec()).encode()
}

fn optneg(version: u32, actions: u32, flags: u32, symlist: &[(u32, &str)]) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [version, actions, flags] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    for (stage, list) in symlist {
        d.extend_from_slice(&stage.to_be_bytes());
        d.extend_from_slice(list.as_bytes());
        d.push(0);
    }
    frame(b'O', &d)
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut d = Decoder::default();
    d.push(bytes);
    let mut v = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        v.push(f);
    }
    v
}

fn macros(name: &str) -> Option<String> {
    match name {
        "j" => Some("mx.example".into()),
        "i" => Some("4ABC".into()),
        "{mail_addr}" => Some("a@b.example".into()),
        "v" => Some("yubin 0.1".into()),
        _ => None,
    }
}

fn ready(flags: u32) -> Client {
    let mut c = Client::new(cfg(DefaultAction::Tempfail));
    let hello = frames(&c.negotiate());
    assert_eq!(hello[0].cmd, b'O');
    assert_eq!(&hello[0].data[..4], &6u32.to_be_bytes());
    assert_eq!(&hello[0].data[4..8], &0x1ffu32.to_be_bytes());
    let o = c.feed(&optneg(6, 0x1ff, flags, &[])).unwrap().unwrap();
    assert!(o.is_continue());
    c
}

fn wait(step: Step) -> Vec<Frame> {
    match step {
        Step::Wait(b) => frames(&b),
        Step::Done(..) => panic!("expected a reply to be awaited: {step:?}"),
    }
}

#[test]
fn connect_sends_macros_then_the_address() {
    let mut c = ready(0);
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let f = wait(c.event(
        Event::Connect {
            hostname: "client.example",
            addr: Some((ip, 2525)),
        },
        &macros,
    ));
    assert_eq!(f[0].cmd, b'D');
    assert_eq!(f[0].data, b"Cj\0mx.example\0v\0yubin 0.1\0");
    assert_eq!(f[1].cmd, b'C');
    assert_eq!(f[1].data, b"client.example\x004\x09\xdd192.0.2.7\0");
    assert_eq!(
        c.feed(&frame(b'c', b"")).unwrap(),
        Some(Outcome::verdict(Verdict::Continue))
    );
}

#[test]
fn reject_at_connect_sticks_for_the_session() {
    let mut c = ready(0);
    wait(c.event(
        Event::Connect {
            hostname: "x",
            addr: None,
        },
        &macros,
    ));
    let o = c.feed(&frame(b'r', b"")).unwrap().unwrap();
    assert_eq!(o.verdict, Verdict::Reject(REJECT.into()));
    // Postfix answers HELO with 250 and MAIL with the persisting reply.
    let args = vec!["<a@b.example>".to_string()];
    match c.event(Event::Mail(&args), &macros) {
        Step::Done(bytes, o) => {
            assert!(bytes.is_empty());
            assert_eq!(o.verdict, Verdict::Reject(REJECT.into()));
        }
        s => panic!("{s:?}"),
    }
    assert!(c.quit().is_empty());
}

#[test]
fn rcpt_reply_code_is_checked_and_unescaped() {
    let mut c = ready(0);
    let args = vec!["<a@b.example>".to_string(), "SIZE=10".to_string()];
    let f = wait(c.event(Event::Mail(&args), &macros));
    assert_eq!(f[0].data, b"Mi\x004ABC\0{mail_addr}\0a@b.example\0");
    assert_eq!(f[1].data, b"<a@b.example>\0SIZE=10\0");
    c.feed(&frame(b'c', b"")).unwrap().unwrap();
    let rcpt = vec!["<u@x.example>".to_string()];
    wait(c.event(Event::Rcpt(&rcpt), &macros));
    let o = c
        .feed(&frame(b'y', b"550 5.1.1 100%% unknown\0"))
        .unwrap()
        .unwrap();
    assert_eq!(o.verdict, Verdict::Reject("550 5.1.1 100% unknown".into()));
    // Per recipient only: the next one is asked again.
    assert!(matches!(
        c.event(Event::Rcpt(&rcpt), &macros),
        Step::Wait(_)
    ));
    let e = c.feed(&frame(b'y', b"250 ok\0")).unwrap_err();
    assert!(matches!(e, MilterError::MalformedReply(_)));
    assert_eq!(c.fail().verdict, Verdict::Reject(TEMPFAIL.into()));
    assert!(c.is_done());
}

#[test]
fn no_reply_and_no_event_flags_are_honoured() {
    let mut c = ready(ProtoFlags::NOHELO | ProtoFlags::NR_HDR | ProtoFlags::NR_RCPT);
    match c.event(Event::Helo("h"), &macros) {
        Step::Done(b, o) => {
            assert!(b.is_empty(), "no macros for helo configured, no event");
            assert!(o.is_continue());
        }
        s => panic!("{s:?}"),
    }
    match c.event(Event::Header("Subject", " hi"), &macros) {
        Step::Done(b, o) => {
            assert_eq!(frames(&b)[0].data, b"Subject\0hi\0");
            assert!(o.is_continue());
        }
        s => panic!("{s:?}"),
    }
    let rcpt = vec!["<u@x>".to_string()];
    assert!(matches!(
        c.event(Event::Rcpt(&rcpt), &macros),
        Step::Done(..)
    ));
}

#[test]
fn end_of_message_collects_edits_and_quarantine() {
    let mut c = ready(0);
    let args = vec!["<>".to_string()];
    wait(c.event(Event::Mail(&args), &macros));
    c.feed(&frame(b'c', b"")).unwrap();
    wait(c.event(Event::Body(b"line\r\n"), &macros));
    c.feed(&frame(b'c', b"")).unwrap();
    let f = wait(c.event(Event::Eom, &macros));
    assert_eq!(f[0].data, b"Ei\x004ABC\0");
    assert_eq!(f[1].cmd, b'E');
    let mut reply = frame(b'h', b"X-Spam\0Yes\0");
    reply.extend(frame(b'm', b"\0\0\0\x01Subject\0[SPAM] hi\0"));
    reply.extend(frame(b'p', b""));
    reply.extend(frame(b'+', b"<new@x>\0"));
    reply.extend(frame(b'-', b"<old@x>\0"));
    reply.extend(frame(b'b', b"new\r\n"));
    reply.extend(frame(b'b', b"body\r\n"));
    reply.extend(frame(b'q', b"looks bad\0"));
    // Fed in two pieces: the first ends mid-frame.
    let (a, b) = reply.split_at(7);
    assert_eq!(c.feed(a).unwrap(), None);
    assert_eq!(c.feed(b).unwrap(), None);
    let o = c.feed(&frame(b'a', b"")).unwrap().unwrap();
    assert_eq!(o.verdict, Verdict::Continue);
    assert_eq!(o.hold.as_deref(), Some("looks bad"));
    assert_eq!(
        o.edits,
        vec![
            Edit::AddHeader {
                name: "X-Spam".into(),
                value: "Yes".into()
            },
            Edit::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: "[SPAM] hi".into()
            },
            Edit::AddRcpt("<new@x>".into(), String::new()),
            Edit::DelRcpt("<old@x>".into()),
            Edit::ReplaceBody(b"new\r\nbody\r\n".to_vec()),
        ]
    );
    // The next transaction starts clean, with no ABORT owed.
    let f = wait(c.event(Event::Mail(&args), &macros));
    assert!(f.iter().all(|f| f.cmd != b'A'));
}

#[test]
fn abort_is_sent_for_an_unfinished_transaction() {
    let mut c = ready(0);
    let args = vec!["<>".to_string()];
    wait(c.event(Event::Mail(&args), &macros));
    c.feed(&frame(b'r', b"")).unwrap();
    let f = wait(c.event(Event::Mail(&args), &macros));
    assert_eq!(f[0].cmd, b'A');
}

#[test]
fn edits_outside_end_of_message_or_not_negotiated_break_the_milter() {
    let mut c = ready(0);
    wait(c.event(Event::Helo("h"), &macros));
    assert!(c.feed(&frame(b'h', b"X\0y\0")).is_err());

    let mut c = Client::new(cfg(DefaultAction::Accept));
    c.negotiate();
    c.feed(&optneg(6, Actions::ADDHDRS, 0, &[])).unwrap();
    let args = vec!["<>".to_string()];
    wait(c.event(Event::Mail(&args), &macros));
    c.feed(&frame(b'c', b"")).unwrap();
    wait(c.event(Event::Eom, &macros));
    assert!(c.feed(&frame(b'-', b"<x>\0")).is_err());
    assert!(c.fail().is_continue(), "milter_default_action = accept");
}

#[test]
fn negotiation_conflicts_and_garbage() {
    let mut c = Client::new(cfg(DefaultAction::Reject));
    c.negotiate();
    assert!(matches!(
        c.feed(&optneg(7, 0, 0, &[])),
        Err(MilterError::Negotiation(_))
    ));
    let mut c = Client::new(cfg(DefaultAction::Reject));
    c.negotiate();
    assert!(c.feed(&optneg(6, 0x1000, 0, &[])).is_err());
    let mut c = Client::new(cfg(DefaultAction::Reject));
    c.negotiate();
    assert!(c.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n").is_err());
    assert_eq!(c.fail().verdict, Verdict::Reject(REJECT.into()));
    let mut c = Client::new(cfg(DefaultAction::Quarantine));
    c.negotiate();
    assert!(c.feed(&[0xff, 0xff, 0xff, 0xff]).is_err());
    let o = c.fail();
    assert!(o.is_continue() && o.hold.is_some());
}

#[test]
fn symlist_replaces_configured_macros() {
    let mut c = Client::new(cfg(DefaultAction::Tempfail));
    c.negotiate();
    c.feed(&optneg(6, 0x1ff, 0, &[(2, "{mail_addr}")])).unwrap();
    let args = vec!["<a@b.example>".to_string()];
    let f = wait(c.event(Event::Mail(&args), &macros));
    assert_eq!(f[0].data, b"M{mail_addr}\0a@b.example\0");
}

#[test]
fn accept_at_connect_ends_all_events() {
    let mut c = ready(0);
    wait(c.event(
        Event::Connect {
            hostname: "x",
            addr: None,
        },
        &macros,
    ));
    c.feed(&frame(b'a', b"")).unwrap();
    let args = vec!["<>".to_string()];
    assert!(matches!(c.event(Event::Mail(&args), &macros), Step::Done(_, o) if o.is_continue()));
    assert_eq!(frames(&c.quit())[0].cmd, b'Q');
}

#[test]
fn body_chunks_use_crlf_and_stay_bounded() {
    let body = vec![b'x'; 70_000];
    let mut b = body.clone();
    b.push(b'\n');
    let chunks = body_chunks(&b);
    assert_eq!(chunks.len(), 2);
    assert!(chunks.iter().all(|c| c.len() <= 65535));
    assert!(chunks[1].ends_with(b"x\r\n"));
    assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 70_002);
}

#[test]
fn modifications_are_bounded_in_total() {
    let mut c = ready(0);
    let args = vec!["<>".to_string()];
    wait(c.event(Event::Mail(&args), &macros));
    c.feed(&frame(b'c', b"")).unwrap();
    wait(c.event(Event::Eom, &macros));
    // 1 MiB - 1 byte frames of body replacement, one after another.
    let chunk = frame(b'b', &vec![b'x'; 1024 * 1024 - 1]);
    let mut err = None;
    for _ in 0..100 {
        match c.feed(&chunk) {
            Ok(None) => {}
            Ok(Some(o)) => panic!("{o:?}"),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(matches!(err, Some(MilterError::Negotiation(_))), "{err:?}");
    assert_eq!(c.fail().verdict, Verdict::Reject(TEMPFAIL.into()));
}
