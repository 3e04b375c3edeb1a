//! Address tokens and the fixed tails that may follow them in OpenSSH messages.
//!
//! The rule every injection CVE of this product class teaches (DenyHosts
//! CVE-2006-6301, CVE-2013-6890; fail2ban CVE-2013-7176/7177): take the address
//! only from a fixed position and require a hard end after it. The helpers here
//! check such tails exactly; they never search for "an address somewhere".

/// A byte that can appear in an IPv4/IPv6 literal (with zone) or a DNS name.
#[inline]
fn is_host_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b':' | b'-' | b'_' | b'%')
}

/// True if `t` is a plausible host token: an address or a host name (sshd logs
/// names with `UseDNS yes`, fail2ban's corpus has `example.com`), at most 100
/// bytes (OpenSSH cuts addresses at 100 in most messages).
pub fn is_host(t: &[u8]) -> bool {
    !t.is_empty()
        && t.len() <= 100
        && t.iter().all(|&c| is_host_byte(c))
        && t.iter().any(|c| c.is_ascii_alphanumeric())
}

/// Length of the host token at the start of `s` (up to a space or end).
pub fn host_len(s: &[u8]) -> usize {
    s.iter().position(|&c| c == b' ').unwrap_or(s.len())
}

/// First occurrence of a short `needle` (memchr on its first byte, then a
/// compare): cheaper than building a memmem finder per call on short lines.
pub fn find(h: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    memchr::memchr_iter(first, h).find(|&p| h[p + 1..].starts_with(rest))
}

/// Last occurrence of a short `needle`.
pub fn rfind(h: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    memchr::memrchr_iter(first, h).find(|&p| h[p + 1..].starts_with(rest))
}

/// Strips `prefix` from `s`.
#[inline]
pub fn after<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    s.strip_prefix(prefix)
}

/// Strips ` port N` at the start of `s`.
pub fn skip_port(s: &[u8]) -> Option<&[u8]> {
    let r = s.strip_prefix(b" port ")?;
    let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 5 {
        return None;
    }
    Some(&r[n..])
}

/// Removes an optional trailing ` [preauth]` / ` [postauth]` and spaces.
pub fn trim_suffix(s: &[u8]) -> (&[u8], bool) {
    let mut s = s;
    while let Some(x) = s.strip_suffix(b" ") {
        s = x;
    }
    if let Some(x) = s.strip_suffix(b" [preauth]") {
        return (x, true);
    }
    if let Some(x) = s.strip_suffix(b" [postauth]") {
        return (x, false);
    }
    (s, false)
}

/// OpenSSH's tail after the address in password/publickey/max-tries/invalid
/// messages: `[ port N][ on ADDR[ port N]][ ssh2|ssh1|ssh]` then what follows.
/// Returns the rest after that grammar.
pub fn skip_addr_tail(s: &[u8]) -> &[u8] {
    let mut s = skip_port(s).unwrap_or(s);
    if let Some(r) = s.strip_prefix(b" on ") {
        let e = host_len(r);
        if is_host(&r[..e]) {
            s = skip_port(&r[e..]).unwrap_or(&r[e..]);
        }
    }
    if let Some(r) = s.strip_prefix(b" ssh") {
        let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
        if r.len() == n || r[n] == b' ' || r[n] == b':' {
            s = &r[n..];
        }
    }
    s
}

/// Authentication information OpenSSH appends after `ssh2: ` (auth2.c,
/// `auth_log`): a key type and fingerprint computed by sshd
/// (`RSA SHA256:…`, `ED25519 …`, optionally a certificate
/// `ID … (serial N) CA TYPE FP`, and for host-based auth
/// `, client user "…", client host "…"`), or the old SSH-1 `ruser …`.
/// The first two words are never chosen by the client; that is what makes the
/// address before them trustworthy.
pub fn is_auth_info(s: &[u8]) -> bool {
    if s.starts_with(b"ruser ") {
        return true;
    }
    let e = host_len(s);
    let ktype = &s[..e];
    if ktype.is_empty()
        || ktype.len() > 40
        || !ktype.iter().all(|&c| {
            c.is_ascii_uppercase()
                || c.is_ascii_digit()
                || c == b'-'
                || c == b'@'
                || c == b'.'
                || c.is_ascii_lowercase()
        })
        || !ktype[0].is_ascii_uppercase()
    {
        return false;
    }
    let rest = &s[e..];
    let Some(rest) = rest.strip_prefix(b" ") else {
        return false;
    };
    let fe = rest
        .iter()
        .position(|&c| c == b' ' || c == b',')
        .unwrap_or(rest.len());
    let fp = &rest[..fe];
    if fp.is_empty()
        || !fp.iter().all(|&c| {
            c.is_ascii_alphanumeric() || matches!(c, b':' | b'+' | b'/' | b'=' | b'$' | b'x')
        })
    {
        return false;
    }
    let tail = &rest[fe..];
    tail.is_empty()
        || tail.starts_with(b", client user \"") && tail.ends_with(b"\"")
        || tail.starts_with(b" ID ") && (tail.ends_with(b"\"") || !tail.contains(&b'"'))
}

/// Finds `marker` occurrences in `s`, left to right, and returns the first host
/// token after one of them whose remaining text satisfies `tail_ok`. Used for
/// messages where the client-chosen user name comes before `from ADDR`: a user
/// named `x from 10.0.0.1 port 22` produces an occurrence whose tail is not
/// valid, so the real address (whose tail is) wins.
pub fn first_valid_host<'a>(
    s: &'a [u8],
    marker: &[u8],
    tail_ok: impl Fn(&[u8]) -> bool,
) -> Option<(usize, &'a [u8])> {
    static FROM: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b" from "));
    let own;
    let finder: &memchr::memmem::Finder<'_> = if marker == b" from " {
        &FROM
    } else {
        own = memchr::memmem::Finder::new(marker);
        &own
    };
    let mut from = 0;
    while let Some(p) = finder.find(&s[from..]) {
        let at = from + p;
        let h0 = at + marker.len();
        let e = h0 + host_len(&s[h0..]);
        let host = &s[h0..e];
        if is_host(host) && tail_ok(&s[e..]) {
            return Some((at, host));
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(skip_addr_tail(b" port 22 ssh2"), b"");
        assert_eq!(skip_addr_tail(b" port 22 ssh2: RSA x"), b": RSA x");
        assert_eq!(skip_addr_tail(b" port 22 on 1.2.3.4 port 22 ssh2"), b"");
        assert_eq!(skip_addr_tail(b""), b"");
        assert!(is_auth_info(
            b"RSA SHA256:v3dpapGleDaUKf$4V1vKyR9ZyUgjaJAmoCTcb2PLljI"
        ));
        assert!(is_auth_info(b"ECDSA 0e:ff:xx:xx"));
        assert!(is_auth_info(
            b"RSA 8c:e3:aa, client user \"dan\", client host \"localhost\""
        ));
        assert!(!is_auth_info(b"from 10.10.1.2 port 55555 ssh2"));
        assert!(!is_auth_info(b"RSA SHA256:zz from 1.2.3.4 port 5 ssh2"));
        assert!(is_host(b"2001:db8::1"));
        assert!(!is_host(b"[preauth]"));
    }
}
