//! Blocking SMTP submission of one finished message (RFC 5321 section 3.3).
//!
//! Used where a component only needs "hand this message to that server":
//! `yubin guard` reports, for example. The interactive, transcript-printing
//! client is the `send` command; this one is deliberately small.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where and how to submit.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub host: &'a str,
    pub port: u16,
    pub helo: &'a str,
    pub from: &'a str,
    pub to: &'a [String],
    pub timeout: Duration,
    /// SMTP AUTH PLAIN (RFC 4954, RFC 4616) with this user and password
    /// before MAIL, when set.
    pub auth: Option<(&'a str, &'a str)>,
}

/// A reply line group from the server: code and the joined text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

fn read_reply<R: BufRead>(r: &mut R) -> anyhow::Result<Reply> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        // A reply line is at most 512 octets (RFC 5321 4.5.3.1.5); allow slack but bound it.
        let n = std::io::Read::take(&mut *r, 4096).read_line(&mut line)?;
        if n == 0 {
            anyhow::bail!("connection closed while waiting for a reply");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
            anyhow::bail!("malformed reply line: {line:?}");
        }
        let code: u16 = line[..3].parse()?;
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(line.get(4..).unwrap_or(""));
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply { code, text });
        }
    }
}

fn expect(r: &mut impl BufRead, what: &str, ok: impl Fn(u16) -> bool) -> anyhow::Result<Reply> {
    let reply = read_reply(r)?;
    if !ok(reply.code) {
        anyhow::bail!("{what}: server said {} {}", reply.code, reply.text);
    }
    Ok(reply)
}

/// Submits `message` (a complete RFC 5322 message, LF or CRLF line ends) and
/// returns the server's reply to the final dot, e.g. `250 2.0.0 Ok: queued as ...`.
///
/// Every recipient must be accepted; a partial accept is reported as an error
/// so that the caller can retry the whole submission.
pub fn submit(s: &Submission<'_>, message: &[u8]) -> anyhow::Result<Reply> {
    let addr = (s.host, s.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no address", s.host))?;
    let stream = TcpStream::connect_timeout(&addr, s.timeout)?;
    // Each command is one small write; without TCP_NODELAY, Nagle's
    // algorithm and the peer's delayed ACK add ~40 ms to some of them.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(s.timeout))?;
    stream.set_write_timeout(Some(s.timeout))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    expect(&mut r, "greeting", |c| c == 220)?;
    write!(w, "EHLO {}\r\n", s.helo)?;
    expect(&mut r, "EHLO", |c| c == 250)?;
    if let Some((user, password)) = s.auth {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        write!(w, "AUTH PLAIN {token}\r\n")?;
        expect(&mut r, "AUTH", |c| c == 235)?;
    }
    write!(w, "MAIL FROM:<{}>\r\n", s.from)?;
    expect(&mut r, "MAIL FROM", |c| c == 250)?;
    for rcpt in s.to {
        write!(w, "RCPT TO:<{rcpt}>\r\n")?;
        expect(&mut r, "RCPT TO", |c| c == 250 || c == 251)?;
    }
    w.write_all(b"DATA\r\n")?;
    expect(&mut r, "DATA", |c| c == 354)?;
    let mut data = dot_stuff(message);
    data.extend_from_slice(b".\r\n");
    w.write_all(&data)?;
    let done = expect(&mut r, "end of data", |c| c == 250)?;
    w.write_all(b"QUIT\r\n")?;
    let _ = read_reply(&mut r);
    Ok(done)
}

/// Converts line ends to CRLF and doubles a leading dot (RFC 5321 section 4.5.2).
/// The result always ends with CRLF so the terminating `.` stands on its own line.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 2);
    for line in message.split_inclusive(|&b| b == b'\n') {
        let body = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if body.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_crlf() {
        assert_eq!(dot_stuff(b"a\n.b\r\nc"), b"a\r\n..b\r\nc\r\n");
        assert_eq!(dot_stuff(b""), b"");
    }

    #[test]
    fn multiline_reply() {
        let mut r = &b"250-a\r\n250 b\r\n"[..];
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply {
                code: 250,
                text: "a\nb".into()
            }
        );
        let mut bad = &b"hello\r\n"[..];
        assert!(read_reply(&mut bad).is_err());
    }
}
