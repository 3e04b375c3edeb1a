//! The headers a delivery agent prepends (virtual(8), local(8)):
//! `Return-Path:`, `X-Original-To:` and `Delivered-To:`, and the mail loop
//! checks that go with them (a `Delivered-To:` for the same recipient
//! already in the message, or too many `Received:` headers).

use crate::{Failure, Message};

/// Postfix's hopcount_limit.
pub const HOPCOUNT_LIMIT: usize = 50;

/// The header section of the message (up to the first empty line).
fn header_lines(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    content
        .split(|&b| b == b'\n')
        .take_while(|l| !l.is_empty() && *l != b"\r")
}

fn header_is(line: &[u8], name: &str) -> bool {
    line.len() > name.len()
        && line[name.len()] == b':'
        && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
}

/// Refuses a message that loops (RFC 5321 section 6.3).
pub fn check_loops(m: &Message<'_>) -> Result<(), Failure> {
    let mut received = 0;
    for line in header_lines(m.content) {
        if header_is(line, "Received") {
            received += 1;
        } else if header_is(line, "Delivered-To") {
            let v = String::from_utf8_lossy(&line[13..]);
            if v.trim().eq_ignore_ascii_case(m.recipient) {
                return Err(Failure::perm(
                    "5.4.6",
                    format!("mail forwarding loop for {}", m.recipient),
                ));
            }
        }
    }
    if received > HOPCOUNT_LIMIT {
        return Err(Failure::perm("5.4.6", "too many hops"));
    }
    Ok(())
}

/// The prepended header block.
pub fn prepend(m: &Message<'_>) -> String {
    format!(
        "Return-Path: <{}>\nX-Original-To: {}\nDelivered-To: {}\n",
        m.sender, m.original_recipient, m.recipient
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(content: &[u8]) -> Message<'_> {
        Message {
            queue_id: "Q",
            sender: "a@b",
            original_recipient: "root@localhost",
            recipient: "hoge@x",
            content,
            hostname: "h",
        }
    }

    #[test]
    fn loops() {
        assert!(check_loops(&msg(b"Subject: x\n\nDelivered-To: hoge@x\n")).is_ok());
        let e = check_loops(&msg(b"Delivered-To: HOGE@x\nSubject: x\n\n")).unwrap_err();
        assert_eq!(e.text, "mail forwarding loop for hoge@x");
        let many = "Received: x\n".repeat(51) + "\n";
        assert_eq!(
            check_loops(&msg(many.as_bytes())).unwrap_err().text,
            "too many hops"
        );
        assert_eq!(
            prepend(&msg(b"")),
            "Return-Path: <a@b>\nX-Original-To: root@localhost\nDelivered-To: hoge@x\n"
        );
    }
}
