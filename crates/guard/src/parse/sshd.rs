//! OpenSSH (sshd, sshd-session, sshd-auth) messages, 7.x to 10.x.
//!
//! Dispatch is on the first literal word(s) of the message — one `match` on a
//! prefix, no regex chain — and each shape is taken apart by a hand-written
//! extractor that reads the address from a fixed position and checks the fixed
//! text after it (see `host.rs`). Message texts are those of openssh-portable
//! (`auth.c` `auth_log`, `auth2.c`, `sshd.c`, `kex.c`, `packet.c`,
//! `auth-pam.c`) and of fail2ban's `filter.d/sshd.conf` rule families, which
//! the fail2ban test corpus pins down line by line.

use super::host::{
    after, find, first_valid_host, host_len, is_auth_info, is_host, rfind, skip_addr_tail,
    skip_port, trim_suffix,
};

/// What one message means for brute-force counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A failure in every mode (fail2ban's `cmnfailre`).
    Fail,
    /// A failure only in `ddos`/`aggressive` mode: scanners and floods.
    Ddos,
    /// A failure only in `extra`/`aggressive` mode: negotiation failures.
    Extra,
    /// Not a failure; teaches the connection's address (and user). Several
    /// helper lines naming different users in one connection are a failure
    /// (fail2ban's "users" rule: pam_unix lines before a success).
    Helper,
    /// End of a connection (`Connection closed/reset`, `Disconnected`). A
    /// failure in `ddos` mode when `[preauth]`; `extra_fail` marks
    /// `Disconnected from (invalid|authenticating) user … [preauth]`, a failure
    /// in `extra` mode.
    Close { extra_fail: bool },
    /// `Accepted <method> for <user> from <addr>`.
    Success,
}

/// One classified sshd message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: Kind,
    /// The client address (or name), when the message carries one.
    pub host: Option<&'a [u8]>,
    /// The user name tried, when the message carries one.
    pub user: Option<&'a [u8]>,
    /// DenyHosts' notion: only "Failed … for <user>" and the max-tries line for
    /// an existing user are "valid"; every other rule counts as invalid
    /// (DenyHosts 3.1.2 `regex.py`: rules without an `invalid` group).
    pub valid_user: bool,
    /// The line ends the connection's pending state (fail2ban `F-MLFFORGET`).
    pub forget: bool,
    /// The line was logged by the pre-auth child (`[preauth]`).
    pub preauth: bool,
    /// Short rule name, shown by `yubin guard test`.
    pub rule: &'static str,
    /// Failed guesses this line stands for (Dovecot's `N attempts`), ≥ 1.
    pub attempts: u32,
    /// The address was recovered from text that repeats a client-chosen
    /// name; the connection's address, when known from an earlier line,
    /// takes precedence (`Change of username` lines).
    pub weak_host: bool,
}

impl<'a> Event<'a> {
    pub(crate) fn new(kind: Kind, rule: &'static str) -> Self {
        Event {
            kind,
            host: None,
            user: None,
            valid_user: false,
            forget: false,
            preauth: false,
            rule,
            attempts: 1,
            weak_host: false,
        }
    }
    pub(crate) fn host(mut self, h: &'a [u8]) -> Self {
        self.host = Some(h);
        self
    }
    pub(crate) fn user(mut self, u: &'a [u8]) -> Self {
        self.user = Some(u);
        self
    }
    fn forget(mut self) -> Self {
        self.forget = true;
        self
    }
    fn preauth(mut self, p: bool) -> Self {
        self.preauth = p;
        self
    }
}

/// Strips prefixes that precede the real message: Solaris `[ID n fac.lvl] `,
/// kernel-ring junk some journald relays add (`kernel:[ 970.69]: `), then
/// `error: `, `fatal: `, `error: PAM: `.
fn strip_prefixes(mut m: &[u8]) -> &[u8] {
    if m.starts_with(b"[ID ") {
        if let Some(p) = memchr::memchr(b']', m) {
            m = m.get(p + 2..).unwrap_or(b"");
        }
    }
    if let Some(r) = m.strip_prefix(b"kernel:") {
        let r = r.strip_prefix(b" ").unwrap_or(r);
        if r.starts_with(b"[") {
            if let Some(p) = memchr::memchr(b']', r) {
                let r = &r[p + 1..];
                let r = r.strip_prefix(b":").unwrap_or(r);
                m = r.strip_prefix(b" ").unwrap_or(r);
            }
        }
    }
    if let Some(r) = m
        .strip_prefix(b"error: ")
        .or_else(|| m.strip_prefix(b"fatal: "))
    {
        m = r;
    }
    m.strip_prefix(b"PAM: ").unwrap_or(m)
}

/// Classifies one sshd message (the part after `sshd[pid]: `).
pub fn classify(message: &[u8]) -> Option<Event<'_>> {
    let m = strip_prefixes(message);
    let first = *m.first()?;
    match first {
        b'F' => failed(m),
        b'I' | b'i' => invalid_user(m),
        b'C' => connection(m),
        b'D' => disconnect(m),
        b'R' => received_or_root(m).or_else(|| read_socket_failed(m)),
        b'U' => user_or_unable(m),
        b'A' | b'a' => accepted_or_pam(m),
        b'p' => pam_unix(m),
        b'm' => max_tries(m),
        b'k' => kex(m),
        b'b' => banner(m),
        b'B' => bad_version(m),
        b's' => dispatch_fatal(m),
        b'S' => ssh_server_info(m),
        b'T' => timeout(m),
        b'r' => refused_connect(m),
        b'n' => no_matching(m),
        _ => None,
    }
}

/// `Failed <method> for [invalid user |illegal user ]<user> from <addr>
/// [port N][ on A[ port N]][ ssh2][: <auth info>]` (auth.c `auth_log`).
///
/// The user is client-chosen and may contain ` from 1.2.3.4 port 22 ssh2`, so
/// the address is the first one after ` from ` whose tail is exactly OpenSSH's
/// grammar: end of line, or `: ` plus sshd-computed auth info.
fn failed(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"Failed ")?;
    let sp = memchr::memchr(b' ', r)?;
    let method = &r[..sp];
    let r = after(&r[sp..], b" for ")?;
    let (invalid, r) = match after(r, b"invalid user ").or_else(|| after(r, b"illegal user ")) {
        Some(x) => (true, x),
        None => (false, r),
    };
    let (body, pre) = trim_suffix(r);
    let (at, host) = user_then_host(body, |t| {
        let t = skip_addr_tail(t);
        t.is_empty() || t.strip_prefix(b": ").is_some_and(is_auth_info)
    })?;
    let user = &body[..at];
    let nofail = method == b"publickey" && !invalid;
    let kind = if nofail { Kind::Helper } else { Kind::Fail };
    let mut ev = Event::new(
        kind,
        if nofail {
            "failed-publickey-valid-user (helper)"
        } else {
            "failed-auth"
        },
    )
    .host(host)
    .user(user)
    .preauth(pre);
    ev.valid_user = !invalid && user != b"<invalid username>";
    Some(ev)
}

/// `USER from ADDR<tail>` where USER is client-chosen and may be empty:
/// returns (length of USER, ADDR) of the first split whose tail is valid.
fn user_then_host(body: &[u8], tail_ok: impl Fn(&[u8]) -> bool + Copy) -> Option<(usize, &[u8])> {
    if let Some(r) = body.strip_prefix(b"from ") {
        let e = host_len(r);
        if is_host(&r[..e]) && tail_ok(&r[e..]) {
            return Some((0, &r[..e]));
        }
    }
    first_valid_host(body, b" from ", tail_ok)
}

/// `Invalid user <user> from <addr>[ port N]` (auth2.c), also `Illegal user`
/// (OpenSSH < 3.8). Not `input_userauth_request: invalid user …` (which does
/// not start the message: CVE-2013-6890).
fn invalid_user(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"Invalid user ")
        .or_else(|| after(m, b"invalid user "))
        .or_else(|| after(m, b"Illegal user "))
        .or_else(|| after(m, b"illegal user "))?;
    let (body, pre) = trim_suffix(r);
    let (at, host) = user_then_host(body, |t| skip_addr_tail(t).is_empty())?;
    let user = &body[..at];
    Some(
        Event::new(Kind::Fail, "invalid-user")
            .host(host)
            .user(user)
            .preauth(pre),
    )
}

/// Parses the right-anchored end `… <addr>[ port N]` of a close/disconnect
/// message; returns (text before the address, address).
fn rsplit_addr_port(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut b = body;
    // strip " port N" at the end
    let nd = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    if (1..=5).contains(&nd) && b[..b.len() - nd].ends_with(b" port ") {
        b = &b[..b.len() - nd - 6];
    }
    let sp = memchr::memrchr(b' ', b).map_or(0, |p| p + 1);
    let host = &b[sp..];
    if !is_host(host) {
        return None;
    }
    Some((&b[..sp], host))
}

/// `Connection closed|reset by [invalid |authenticating ]user U ADDR port N
/// [preauth]`, `Connection from ADDR port N on …` (LogLevel VERBOSE).
fn connection(m: &[u8]) -> Option<Event<'_>> {
    if let Some(r) = after(m, b"Connection from ") {
        let e = host_len(r);
        let host = &r[..e];
        if !is_host(host) {
            return None;
        }
        return Some(Event::new(Kind::Helper, "connection-from (helper)").host(host));
    }
    let r = after(m, b"Connection closed by ").or_else(|| after(m, b"Connection reset by "))?;
    close_tail(r, false)
}

/// The shared part of close/disconnect messages after `by `/`from `.
fn close_tail(r: &[u8], disconnected: bool) -> Option<Event<'_>> {
    let (body, pre) = trim_suffix(r);
    let (user_part, host) = rsplit_addr_port(body)?;
    let (user, typed) = if let Some(u) =
        after(user_part, b"invalid user ").or_else(|| after(user_part, b"authenticating user "))
    {
        (Some(u.strip_suffix(b" ").unwrap_or(u)), true)
    } else if let Some(u) = after(user_part, b"user ") {
        (Some(u.strip_suffix(b" ").unwrap_or(u)), false)
    } else if user_part.is_empty() {
        (None, false)
    } else {
        return None;
    };
    let mut ev = Event::new(
        Kind::Close {
            extra_fail: disconnected && typed,
        },
        "connection-closed",
    )
    .host(host)
    .preauth(pre)
    .forget();
    ev.user = user;
    Some(ev)
}

/// `Did not receive identification string from ADDR[ port N]`,
/// `Disconnected from [invalid |authenticating ]user U ADDR port N [preauth]`,
/// `Disconnecting (invalid|authenticating) user U ADDR port N: <reason>`,
/// `Disconnecting: Too many authentication failures[ for U]`.
fn disconnect(m: &[u8]) -> Option<Event<'_>> {
    if let Some(r) = after(m, b"Did not receive identification string from ") {
        let (r, pre) = trim_suffix(r);
        let e = host_len(r);
        let host = &r[..e];
        let ok = is_host(host) && skip_port(&r[e..]).unwrap_or(&r[e..]).is_empty();
        return ok.then(|| {
            Event::new(Kind::Ddos, "no-identification-string")
                .host(host)
                .preauth(pre)
        });
    }
    if let Some(r) = after(m, b"Disconnected from ") {
        return close_tail(r, true).map(|mut e| {
            e.rule = "disconnected";
            e
        });
    }
    if let Some(r) = after(m, b"Disconnecting: Too many authentication failures") {
        let (body, pre) = trim_suffix(r);
        let mut ev = Event::new(Kind::Fail, "too-many-auth-failures")
            .preauth(pre)
            .forget();
        if let Some(u) = after(body, b" for ") {
            // "for invalid user x" on some builds; otherwise sshd knew the user.
            match after(u, b"invalid user ") {
                Some(x) => ev.user = Some(x),
                None => {
                    ev.user = Some(u);
                    ev.valid_user = true;
                }
            }
        }
        return Some(ev);
    }
    let r = after(m, b"Disconnecting invalid user ")
        .or_else(|| after(m, b"Disconnecting authenticating user "))?;
    let (body, pre) = trim_suffix(r);
    // "… ADDR port N: Too many authentication failures" — fixed tail: helper.
    if let Some(b) = body.strip_suffix(b": Too many authentication failures") {
        let (user, host) = rsplit_addr_port(b)?;
        return Some(
            Event::new(Kind::Helper, "disconnecting-too-many (helper)")
                .host(host)
                .user(user.strip_suffix(b" ").unwrap_or(user))
                .preauth(pre)
                .forget(),
        );
    }
    // "U ADDR port N: Change of username or service not allowed: (U,svc) -> (V,svc)":
    // U appears twice; accept only the split where both copies agree.
    const CHANGE: &[u8] = b": Change of username or service not allowed: (";
    let finder = memchr::memmem::Finder::new(CHANGE);
    for p in finder.find_iter(body) {
        let head = &body[..p];
        let tail = &body[p + CHANGE.len()..];
        if let Some((user_sp, host)) = rsplit_addr_port(head) {
            let user = user_sp.strip_suffix(b" ").unwrap_or(user_sp);
            if tail.starts_with(user) && tail.get(user.len()) == Some(&b',') {
                let mut ev = Event::new(Kind::Fail, "change-of-username")
                    .host(host)
                    .user(user)
                    .preauth(pre)
                    .forget();
                ev.weak_host = true;
                return Some(ev);
            }
        }
    }
    None
}

/// `Received disconnect from ADDR[ port N]:CODE: text` and `ROOT LOGIN REFUSED
/// FROM ADDR`.
fn received_or_root(m: &[u8]) -> Option<Event<'_>> {
    if let Some(r) = after(m, b"ROOT LOGIN REFUSED FROM ") {
        let (body, pre) = trim_suffix(r);
        let e = host_len(body);
        let host = &body[..e];
        if !is_host(host) || !(skip_port(&body[e..]).unwrap_or(&body[e..])).is_empty() {
            return None;
        }
        let mut ev = Event::new(Kind::Fail, "root-login-refused")
            .host(host)
            .user(b"root")
            .preauth(pre);
        ev.valid_user = true;
        return Some(ev);
    }
    let r = after(m, b"Received disconnect from ")?;
    // The address sits at a fixed position; it ends at " port" or at ":<space|digit>".
    let (host, rest) = if let Some(sp) = memchr::memchr(b' ', r) {
        let tok = &r[..sp];
        if let Some(after_port) = skip_port(&r[sp..]) {
            (tok, after_port)
        } else {
            let h = tok.strip_suffix(b":")?;
            (h, &r[sp - 1..])
        }
    } else {
        return None;
    };
    if !is_host(host) {
        return None;
    }
    let rest = rest.strip_prefix(b":")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let nd = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let code = &rest[..nd];
    let (text, pre) = trim_suffix(&rest[nd..]);
    let ev = match code {
        b"3" if text.ends_with(b": Auth fail") => {
            Event::new(Kind::Fail, "received-disconnect-auth-fail")
        }
        b"14" if find(text, b"authentication methods available").is_some() => {
            Event::new(Kind::Extra, "received-disconnect-no-auth-methods")
        }
        _ => Event::new(Kind::Helper, "received-disconnect (helper)"),
    };
    Some(ev.host(host).preauth(pre).forget())
}

/// Fixed reasons of `User U from ADDR not allowed because <reason>` (auth.c
/// `allowed_user`).
const NOT_ALLOWED: [&[u8]; 5] = [
    b"not listed in AllowUsers",
    b"listed in DenyUsers",
    b"not in any group",
    b"a group is listed in DenyGroups",
    b"none of user's groups are listed in AllowGroups",
];

/// `User U from ADDR not allowed because …`, `User U not allowed because
/// account is locked`, `Unable to negotiate …`.
fn user_or_unable(m: &[u8]) -> Option<Event<'_>> {
    if let Some(r) = after(m, b"Unable to negotiate ") {
        if let Some(r) = after(r, b"with ") {
            let e = host_len(r);
            let host = &r[..e];
            let t = skip_port(&r[e..])?;
            if !is_host(host) || !t.starts_with(b": no matching ") {
                return None;
            }
            return Some(Event::new(Kind::Extra, "unable-to-negotiate").host(host));
        }
        if r.starts_with(b"a ") {
            return Some(Event::new(Kind::Extra, "unable-to-negotiate"));
        }
        return None;
    }
    if let Some(r) = after(
        m,
        b"User not known to the underlying authentication module for ",
    ) {
        return pam_for(r, "pam-user-unknown");
    }
    let r = after(m, b"User ")?;
    let (body, pre) = trim_suffix(r);
    let key = b" not allowed because ";
    let p = rfind(body, key)?;
    let reason = &body[p + key.len()..];
    let head = &body[..p];
    if NOT_ALLOWED.contains(&reason) {
        let sp = memchr::memrchr(b' ', head)?;
        let host = &head[sp + 1..];
        let user = head[..sp].strip_suffix(b" from")?;
        if !is_host(host) {
            return None;
        }
        return Some(
            Event::new(Kind::Fail, "user-not-allowed")
                .host(host)
                .user(user)
                .preauth(pre),
        );
    }
    if reason == b"account is locked" || reason.starts_with(b"shell ") {
        return Some(
            Event::new(Kind::Fail, "user-not-allowed")
                .user(head)
                .preauth(pre),
        );
    }
    None
}

/// `[aA]uthentication (failure|error|failed) for U from ADDR[ via X]` (PAM via
/// `error: PAM: `, BSD/macOS), right-anchored: the address is the last word
/// (before an optional ` via X`), so a user name carrying `from 1.2.3.4` cannot
/// move it (the residual DenyHosts 3.1.2 hole).
fn pam_for<'a>(r: &'a [u8], rule: &'static str) -> Option<Event<'a>> {
    let (mut body, pre) = trim_suffix(r);
    if let Some(p) = rfind(body, b" via ") {
        if is_host(&body[p + 5..]) {
            body = &body[..p];
        }
    }
    let sp = memchr::memrchr(b' ', body)?;
    let host = &body[sp + 1..];
    let head = body[..sp].strip_suffix(b" from")?;
    if !is_host(host) {
        return None;
    }
    let user = head
        .strip_prefix(b"illegal user ")
        .or_else(|| head.strip_prefix(b"invalid user "))
        .unwrap_or(head);
    Some(
        Event::new(Kind::Fail, rule)
            .host(host)
            .user(user)
            .preauth(pre),
    )
}

/// `Accepted <method> for U from ADDR port N ssh2[: info]`, and PAM's
/// `Authentication failure for …`.
fn accepted_or_pam(m: &[u8]) -> Option<Event<'_>> {
    if let Some(r) = after(m, b"Accepted ") {
        let sp = memchr::memchr(b' ', r)?;
        let r = after(&r[sp..], b" for ")?;
        let (at, host) = first_valid_host(r, b" from ", |t| {
            let t = skip_addr_tail(t);
            t.is_empty() || t.strip_prefix(b": ").is_some_and(is_auth_info)
        })?;
        let mut ev = Event::new(Kind::Success, "accepted")
            .host(host)
            .user(&r[..at])
            .forget();
        ev.valid_user = true;
        return Some(ev);
    }
    for p in [
        &b"uthentication failure for "[..],
        b"uthentication error for ",
        b"uthentication failed for ",
    ] {
        if let Some(r) = after(&m[1..], p) {
            return pam_for(r, "pam-authentication-failure");
        }
    }
    None
}

/// `pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0
/// tty=ssh ruser=R rhost=ADDR[  user=U]` — a helper: PAM logs it for each
/// password prompt, also for a password that another module then accepts.
///
/// `ruser` and `user` are both the client-chosen name, so a name containing
/// ` rhost=1.2.3.4` could fake a second field; the real one is the occurrence
/// whose own tail is the end or ` user=<same name as ruser>`.
fn pam_unix(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"pam_unix(sshd:auth): authentication failure;")?;
    let p = find(r, b"ruser=")?;
    let r = &r[p + 6..];
    let (r, pre) = trim_suffix(r);
    fn tail_user(t: &[u8]) -> Option<Option<&[u8]>> {
        let t = t.trim_ascii_start();
        if t.is_empty() {
            return Some(None);
        }
        t.strip_prefix(b"user=").map(Some)
    }
    let mut best: Option<(&[u8], &[u8])> = None;
    let mut end_candidate: Option<(&[u8], &[u8])> = None;
    let mut search = 0;
    while let Some(q) = find(&r[search..], b"rhost=") {
        let at = search + q;
        search = at + 1;
        if at > 0 && r[at - 1] != b' ' {
            continue;
        }
        let ruser = r[..at].strip_suffix(b" ").unwrap_or(&r[..at]);
        let h = &r[at + 6..];
        let e = host_len(h);
        let host = &h[..e];
        if !is_host(host) {
            continue;
        }
        match tail_user(&h[e..]) {
            Some(None) => end_candidate = Some((host, ruser)),
            Some(Some(u)) if ruser.is_empty() || u == ruser => {
                best = Some((host, if u.is_empty() { ruser } else { u }));
                break;
            }
            _ => {}
        }
    }
    let (host, user) = best.or(end_candidate)?;
    let mut ev = Event::new(Kind::Helper, "pam_unix-auth-failure (helper)")
        .host(host)
        .preauth(pre);
    if !user.is_empty() {
        ev.user = Some(user);
    }
    Some(ev)
}

/// `maximum authentication attempts exceeded for [invalid user ]U from ADDR
/// port N ssh2 [preauth]` (OpenSSH 6.8+).
fn max_tries(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"maximum authentication attempts exceeded for ")?;
    let (invalid, r) = match after(r, b"invalid user ") {
        Some(x) => (true, x),
        None => (false, r),
    };
    let (body, pre) = trim_suffix(r);
    let (at, host) = first_valid_host(body, b" from ", |t| skip_addr_tail(t).is_empty())?;
    let mut ev = Event::new(Kind::Fail, "max-auth-tries")
        .host(host)
        .user(&body[..at])
        .preauth(pre)
        .forget();
    ev.valid_user = !invalid;
    Some(ev)
}

/// `kex_exchange_identification: …` (OpenSSH 8.0+): no address; the
/// connection's `Connection from`/`Connection closed by` supplies it.
fn kex(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"kex_exchange_identification: ")?;
    let r = r.strip_prefix(b"read: ").unwrap_or(r);
    let (r, pre) = trim_suffix(r);
    let hit = r.starts_with(b"client sent invalid protocol identifier")
        || r.starts_with(b"Client sent invalid protocol identifier")
        || r == b"Connection closed by remote host"
        || r == b"connection closed by remote host"
        || r == b"Connection reset by peer"
        || r == b"connection reset by peer";
    hit.then(|| Event::new(Kind::Ddos, "kex-exchange-identification").preauth(pre))
}

/// `banner exchange: Connection from ADDR port N: invalid format` (8.3+).
fn banner(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"banner exchange: Connection from ")?;
    let e = host_len(r);
    let host = &r[..e];
    let t = skip_port(&r[e..]).unwrap_or(&r[e..]);
    (is_host(host) && t.starts_with(b": "))
        .then(|| Event::new(Kind::Ddos, "banner-exchange").host(host))
}

/// `Bad protocol version identification '<client text>' from ADDR[ port N]`:
/// the client text may hold `' from 1.2.3.4`, so the address is taken from
/// the end (CVE-2007-4321/4323).
fn bad_version(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"Bad protocol version identification ")?;
    let (body, pre) = trim_suffix(r);
    let b = match rfind(body, b" port ") {
        Some(p) if body[p + 6..].iter().all(u8::is_ascii_digit) && p + 6 < body.len() => &body[..p],
        _ => body,
    };
    let sp = memchr::memrchr(b' ', b)?;
    let host = &b[sp + 1..];
    b[..sp].strip_suffix(b"' from")?;
    is_host(host).then(|| {
        Event::new(Kind::Ddos, "bad-protocol-version")
            .host(host)
            .preauth(pre)
    })
}

/// `ssh_dispatch_run_fatal: Connection from ADDR port N: message
/// authentication code incorrect|Connection corrupted [preauth]`.
fn dispatch_fatal(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"ssh_dispatch_run_fatal: Connection from ")?;
    let e = host_len(r);
    let host = &r[..e];
    let t = skip_port(&r[e..]).unwrap_or(&r[e..]);
    let (t, pre) = trim_suffix(t);
    let ok = t == b": message authentication code incorrect"
        || t == b": Connection corrupted"
        || t == b": connection corrupted";
    (ok && is_host(host)).then(|| {
        Event::new(Kind::Ddos, "dispatch-fatal")
            .host(host)
            .preauth(pre)
    })
}

/// `SSH: Server;Ltype: Version|Kex|Authname;Remote: ADDR-PORT;…` (SUSE
/// audit-style lines): a helper naming the connection's address;
/// `Read from socket failed: Connection reset by peer`.
fn ssh_server_info(m: &[u8]) -> Option<Event<'_>> {
    if let Some(r) = after(m, b"SSH: Server;Ltype: ") {
        let p = find(r, b";Remote: ")?;
        let kind = &r[..p];
        if !matches!(kind, b"Version" | b"Kex" | b"Authname") {
            return None;
        }
        let h = &r[p + 9..];
        let semi = memchr::memchr(b';', h)?;
        let hp = &h[..semi];
        let dash = memchr::memrchr(b'-', hp)?;
        let host = &hp[..dash];
        return is_host(host)
            .then(|| Event::new(Kind::Helper, "ssh-server-info (helper)").host(host));
    }
    None
}

/// `Timeout before authentication for ADDR port N` (≤ 9.7, child) and
/// `Timeout before authentication for connection from ADDR to A, pid = N`
/// (≥ 9.8, listener).
fn timeout(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"Timeout before authentication for ")?;
    let r = r.strip_prefix(b"connection from ").unwrap_or(r);
    let e = host_len(r);
    let host = &r[..e];
    let t = &r[e..];
    let ok = t.is_empty()
        || skip_port(t).is_some_and(|x| trim_suffix(x).0.is_empty())
        || t.starts_with(b" to ");
    (ok && is_host(host)).then(|| Event::new(Kind::Ddos, "timeout-before-auth").host(host))
}

/// `refused connect from NAME (ADDR)` (tcp_wrappers, libwrap).
fn refused_connect(m: &[u8]) -> Option<Event<'_>> {
    if let Some(r) = after(m, b"refused connect from ") {
        let (body, _) = trim_suffix(r);
        let body = body.strip_suffix(b")")?;
        let p = memchr::memrchr(b'(', body)?;
        let host = &body[p + 1..];
        if !body[..p].ends_with(b" ") || !is_host(host) {
            return None;
        }
        return Some(Event::new(Kind::Fail, "tcpwrappers-refused").host(host));
    }
    None
}

/// `no matching <alg> found: client … server …` (pre-7.x kex failure),
/// `Read from socket failed` handled here too since both start lower-case.
fn no_matching(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"no matching ")?;
    let sp = find(r, b" found")?;
    (sp < 40).then(|| Event::new(Kind::Extra, "no-matching-algorithm"))
}

/// `Read from socket failed: Connection reset by peer [preauth]`.
fn read_socket_failed(m: &[u8]) -> Option<Event<'_>> {
    let r = after(m, b"Read from socket failed: ")?;
    let (r, pre) = trim_suffix(r);
    (r == b"Connection reset by peer").then(|| {
        Event::new(Kind::Ddos, "read-socket-failed")
            .preauth(pre)
            .forget()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(m: &str) -> Option<(Kind, String, String)> {
        let e = classify(m.as_bytes())?;
        Some((
            e.kind,
            String::from_utf8_lossy(e.host.unwrap_or(b"-")).into_owned(),
            String::from_utf8_lossy(e.user.unwrap_or(b"-")).into_owned(),
        ))
    }

    fn host(m: &str) -> String {
        c(m).map(|x| x.1).unwrap_or_else(|| "NONE".into())
    }

    #[test]
    fn failed_forms() {
        assert_eq!(
            host("Failed password for invalid user ROOT from 194.117.26.69 port 50273 ssh2"),
            "194.117.26.69"
        );
        assert_eq!(
            host("Failed password for root from 192.0.2.1 port 56502 ssh2"),
            "192.0.2.1"
        );
        assert_eq!(
            host("Failed password for invalid user ROOT from aaaa:bbbb:cccc:1234::1:1"),
            "aaaa:bbbb:cccc:1234::1:1"
        );
        assert_eq!(
            c("Failed publickey for git from 192.0.2.1 port 57904 ssh2: ECDSA 0e:ff:xx")
                .unwrap()
                .0,
            Kind::Helper
        );
        assert_eq!(
            host("Failed password for user from 127.0.0.1 port 20000 ssh1: ruser from 1.2.3.4"),
            "127.0.0.1"
        );
    }

    #[test]
    fn injection_in_user_names() {
        // CVE-2006-6301 shape and fail2ban corpus cases.
        assert_eq!(
            host("Failed password for invalid user from 10.10.1.1 from 127.0.0.1 port 58946 ssh2"),
            "127.0.0.1"
        );
        assert_eq!(
            host("Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.1 port 58946 ssh2"),
            "127.0.0.1"
        );
        assert_eq!(host("Failed password for invalid user x from 10.0.0.1 port 22 from 203.0.113.5 port 4444 ssh2"), "203.0.113.5");
        assert_eq!(
            host("Failed password for invalid user x from 10.0.0.1 port 22 ssh2: RSA SHA256:zz from 203.0.113.5 port 1 ssh2"),
            "203.0.113.5"
        );
        assert_eq!(
            host("Invalid user x from 10.0.0.1 port 22 from 203.0.113.5 port 4444"),
            "203.0.113.5"
        );
        assert_eq!(
            host("Invalid user x from 10.0.0.1 from 203.0.113.5"),
            "203.0.113.5"
        );
        // DenyHosts 3.1.2 residual hole (research note 1.8).
        assert_eq!(
            host("PAM: Authentication failure for x from 198.51.100.66 from 2001:db8::1"),
            "2001:db8::1"
        );
        // CVE-2013-6890: the echo of the user name is not a rule.
        assert_eq!(
            host("input_userauth_request: invalid user Invalid user root from 10.0.0.9 [preauth]"),
            "NONE"
        );
        // CVE-2007-4323: identification string carrying a rule's text.
        assert_eq!(
            host("Bad protocol version identification 'User x from 10.0.0.7 not allowed because not listed in AllowUsers' from 203.0.113.9 port 1"),
            "203.0.113.9"
        );
        assert_eq!(
            host("User x from 10.0.0.1 not allowed because not listed in AllowUsers from 203.0.113.5 not allowed because not listed in AllowUsers"),
            "203.0.113.5"
        );
        assert_eq!(
            host("Connection closed by authenticating user test 127.0.0.1 port 12345 192.0.2.11 port 46039 [preauth]"),
            "192.0.2.11"
        );
        assert_eq!(
            host("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=a rhost=10.0.0.1 rhost=203.0.113.5"),
            "203.0.113.5"
        );
        assert_eq!(
            host("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=a rhost=10.0.0.1 user=b rhost=203.0.113.5  user=a rhost=10.0.0.1 user=b"),
            "203.0.113.5"
        );
        assert_eq!(
            host("maximum authentication attempts exceeded for x from 10.0.0.1 port 1 ssh2 from 203.0.113.5 port 2 ssh2 [preauth]"),
            "203.0.113.5"
        );
    }

    #[test]
    fn modern_forms() {
        assert_eq!(
            c("Connection closed by invalid user oracle 2001:db8::7 port 40022 [preauth]")
                .unwrap()
                .1,
            "2001:db8::7"
        );
        assert_eq!(
            host("banner exchange: Connection from 192.0.2.12 port 44105: invalid format"),
            "192.0.2.12"
        );
        assert_eq!(
            c("error: kex_exchange_identification: Connection closed by remote host")
                .unwrap()
                .0,
            Kind::Ddos
        );
        assert_eq!(
            c("error: kex_exchange_identification: banner line too long"),
            None
        );
        assert_eq!(host("Timeout before authentication for connection from 192.0.2.17 to 127.0.0.1, pid = 29098"), "192.0.2.17");
        assert_eq!(
            host("Received disconnect from 198.51.100.76 port 58846:11: Bye Bye [preauth]"),
            "198.51.100.76"
        );
        assert_eq!(c("Received disconnect from 10.0.0.1 port 7736:3: com.jcraft.jsch.JSchException: Auth fail [preauth]").unwrap().0, Kind::Fail);
        assert_eq!(
            host("ROOT LOGIN REFUSED FROM ::ffff:1.2.3.4"),
            "::ffff:1.2.3.4"
        );
        assert_eq!(c("Address 1.2.3.4 maps to x, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!"), None);
    }
}
