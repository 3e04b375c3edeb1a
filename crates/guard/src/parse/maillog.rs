//! Mail authentication failures in a Postfix/Dovecot-format `mail.log` —
//! yubin's own SMTP and IMAP servers log exactly these lines, so the same
//! parser serves a real Postfix/Dovecot and yubin.
//!
//! * Postfix smtpd (`smtpd_sasl_auth_cmd`, `xsasl_cyrus_server.c`):
//!   `warning: NAME[ADDR]: SASL METHOD authentication failed: REASON`
//!   (also with `:PORT` after `]`, and `, sasl_username=U` at the end).
//!   As fail2ban's `postfix[mode=auth]`, a failure to reach the
//!   authentication server and an unknown mechanism are not the client's guess.
//! * Dovecot login processes: `imap-login: Disconnected (auth failed, N
//!   attempts in S secs): user=<U>, method=M, rip=ADDR, lip=…` and the
//!   `Aborted login`/`Login aborted` variants; the address is the `rip=` field,
//!   taken from the right because the user name comes first and is client-chosen.

use super::host::{after, find, is_host, rfind};
use super::sshd::{Event, Kind};
use super::syslog::parse_u32;

/// Postfix smtpd message (after `postfix/…/smtpd[pid]: `).
pub fn postfix_smtpd(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"warning: ")?;
    let open = memchr::memchr(b'[', r)?;
    if memchr::memchr(b' ', &r[..open]).is_some() {
        return None;
    }
    let close = open + memchr::memchr(b']', &r[open..])?;
    let host = &r[open + 1..close];
    let mut t = &r[close + 1..];
    if let Some(x) = t.strip_prefix(b":") {
        let n = x.iter().take_while(|c| c.is_ascii_digit()).count();
        if n > 0 {
            t = &x[n..];
        } else {
            t = r.get(close + 1..).unwrap_or(b"");
        }
    }
    let t = after(t, b": SASL ")?;
    let sp = memchr::memchr(b' ', t)?;
    let t = after(&t[sp..], b" authentication failed:")?;
    let reason = t.strip_prefix(b" ").unwrap_or(t);
    if reason.starts_with(b"Connection lost to authentication server")
        || reason.starts_with(b"Invalid authentication mechanism")
    {
        return None;
    }
    if !is_host(host) {
        return None;
    }
    let mut ev = Event::new(Kind::Fail, "postfix-sasl-auth-failed").host(host);
    if let Some(p) = rfind(reason, b", sasl_username=") {
        ev = ev.user(&reason[p + 16..]);
    }
    Some(ev)
}

/// Dovecot login message (after `dovecot: ` or `dovecot[pid]: `, or with the
/// login process as the syslog tag).
pub fn dovecot_login(m: &[u8]) -> Option<Event<'_>> {
    let mut r = m;
    // "imap-login: " / "pop3-login: " when the tag was "dovecot".
    if let Some(c) = find(&r[..r.len().min(40)], b"-login: ") {
        if !r[..c].contains(&b' ') {
            r = &r[c + 8..];
        }
    }
    let r = r.strip_prefix(b"Info: ").unwrap_or(r);
    if !(r.starts_with(b"Disconnected")
        || r.starts_with(b"Aborted login")
        || r.starts_with(b"Login aborted"))
    {
        return None;
    }
    let p = find(r, b"(auth failed, ")?;
    let n = &r[p + 14..];
    let nd = n.iter().take_while(|c| c.is_ascii_digit()).count();
    let attempts = parse_u32(&n[..nd]).unwrap_or(1).clamp(1, 1000);
    // Right-most rip= field: Dovecot writes user=<…> before it.
    let q = rfind(r, b"rip=")?;
    if q == 0 || !matches!(r[q - 1], b' ' | b',') {
        return None;
    }
    let h = &r[q + 4..];
    let e = h
        .iter()
        .position(|&c| c == b',' || c == b' ')
        .unwrap_or(h.len());
    let host = &h[..e];
    if !is_host(host) {
        return None;
    }
    let mut ev = Event::new(Kind::Fail, "dovecot-auth-failed").host(host);
    ev.attempts = attempts;
    if let Some(u) = find(&r[..q], b"user=<") {
        let us = &r[u + 6..q];
        if let Some(end) = memchr::memrchr(b'>', us) {
            ev = ev.user(&us[..end]);
        }
    }
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix() {
        let e = postfix_smtpd(
            b"warning: unknown[1.2.3.4]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        )
        .unwrap();
        assert_eq!(e.host.unwrap(), b"1.2.3.4");
        let e = postfix_smtpd(
            b"warning: unknown[192.0.2.237]:55729: SASL LOGIN authentication failed: x",
        )
        .unwrap();
        assert_eq!(e.host.unwrap(), b"192.0.2.237");
        assert!(postfix_smtpd(b"warning: unknown[1.1.1.1]: SASL LOGIN authentication failed: Connection lost to authentication server").is_none());
        let e = postfix_smtpd(b"warning: unknown[2001:db8::5]: SASL PLAIN authentication failed: , sasl_username=admin").unwrap();
        assert_eq!(
            (e.host.unwrap(), e.user.unwrap()),
            (&b"2001:db8::5"[..], &b"admin"[..])
        );
    }

    #[test]
    fn dovecot() {
        let e = dovecot_login(b"imap-login: Disconnected (auth failed, 3 attempts in 2 secs): user=<x>, method=PLAIN, rip=1.2.3.4, lip=127.0.0.1, session=<a>").unwrap();
        assert_eq!(
            (e.host.unwrap(), e.attempts, e.user.unwrap()),
            (&b"1.2.3.4"[..], 3, &b"x"[..])
        );
        // A user name carrying a fake rip= field does not move the address.
        let e = dovecot_login(b"imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a, rip=10.0.0.1, b>, method=PLAIN, rip=203.0.113.4, lip=127.0.0.1").unwrap();
        assert_eq!(e.host.unwrap(), b"203.0.113.4");
        assert!(
            dovecot_login(b"imap-login: Disconnected (no auth attempts): rip=1.2.3.4").is_none()
        );
    }
}
