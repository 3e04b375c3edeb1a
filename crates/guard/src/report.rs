//! Report mails.
//!
//! * `REPORT_INTERVAL = 0`: DenyHosts' own report (`util.py send_email`,
//!   research note 1.7), one per batch. Built by hand, not with mail-builder,
//!   because its exact layout is the compatibility promise: only `From`, `To`
//!   (ADMIN_EMAIL verbatim), `Subject`, `Date` (SMTP_DATE_FORMAT), a blank
//!   line, then sections `Title:\n\n` + one host per line + `\n` + 70 dashes.
//! * Otherwise a digest: at most one mail per interval listing every newly
//!   blocked host with count, users tried, first and last seen, under a
//!   one-line summary — built with mail-builder (MIME headers, Message-ID).

use std::net::IpAddr;

use mail_builder::headers::address::Address;
use mail_builder::MessageBuilder;

use crate::config::Config;
use crate::state::DigestItem;
use crate::timeutil::strftime;

/// `IP (name)` / `IP (unknown)` with HOSTNAME_LOOKUP, else the address.
pub fn host_label(cfg: &Config, host: &str) -> String {
    if !cfg.hostname_lookup {
        return host.to_string();
    }
    match host.parse::<IpAddr>().ok().and_then(reverse_lookup) {
        Some(name) => format!("{host} ({name})"),
        None => format!("{host} (unknown)"),
    }
}

/// PTR lookup through the C library (getnameinfo with NI_NAMEREQD).
pub fn reverse_lookup(ip: IpAddr) -> Option<String> {
    let sa = std::net::SocketAddr::new(ip, 0);
    // SAFETY: we build a sockaddr of the right family and size and give
    // getnameinfo a buffer it may fill up to its length.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let len = match sa {
            std::net::SocketAddr::V4(v4) => {
                let p = &mut storage as *mut _ as *mut libc::sockaddr_in;
                (*p).sin_family = libc::AF_INET as libc::sa_family_t;
                (*p).sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            std::net::SocketAddr::V6(v6) => {
                let p = &mut storage as *mut _ as *mut libc::sockaddr_in6;
                (*p).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*p).sin6_addr.s6_addr = v6.ip().octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        let mut host = [0 as libc::c_char; 1025];
        let r = libc::getnameinfo(
            &storage as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        );
        if r != 0 {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(host.as_ptr())
                .to_string_lossy()
                .into_owned(),
        )
    }
}

const DASHES: &str = "----------------------------------------------------------------------";

/// DenyHosts' report, byte for byte (LF line ends; the SMTP client sends CRLF).
pub fn denyhosts_report(
    cfg: &Config,
    warned_allowed: &[String],
    added: &[String],
    suspicious: &[String],
    now: i64,
) -> String {
    let mut body = String::new();
    let mut section = |title: String, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        body.push_str(&title);
        body.push_str(":\n\n");
        for i in items {
            body.push_str(&i);
            body.push('\n');
        }
        body.push('\n');
        body.push_str(DASHES);
        body.push('\n');
    };
    section(
        format!(
            "WARNING: The following hosts appear in {} but should be\nallowed based on your {} file",
            cfg.hosts_deny.display(),
            cfg.allowed_hosts.display()
        ),
        warned_allowed.iter().map(|h| host_label(cfg, h)).collect(),
    );
    section(
        format!("Added the following hosts to {}", cfg.hosts_deny.display()),
        added.iter().map(|h| host_label(cfg, h)).collect(),
    );
    section(
        "Observed the following suspicious login activity".into(),
        suspicious.to_vec(),
    );
    format!(
        "From: {}\nTo: {}\nSubject: {}\nDate: {}\n\n{}",
        cfg.smtp_from,
        cfg.admin_email,
        cfg.smtp_subject,
        strftime(&cfg.smtp_date_format, now),
        body
    )
}

fn fmt_time(t: i64) -> String {
    strftime("%Y-%m-%d %H:%M:%S", t)
}

/// The digest text (also what `--dry-run`/no-mail runs print).
pub fn digest_body(cfg: &Config, items: &[DigestItem], suspicious: &[String]) -> String {
    let total: u32 = items.iter().map(|i| i.count).sum();
    let first = items.iter().map(|i| i.first_seen).min().unwrap_or(0);
    let last = items.iter().map(|i| i.last_seen).max().unwrap_or(0);
    let mut b = String::new();
    if items.is_empty() {
        b.push_str(&format!(
            "yubin guard: no new hosts blocked; {} suspicious login(s).\n",
            suspicious.len()
        ));
    } else {
        b.push_str(&format!(
            "yubin guard blocked {} new host{} ({} failed attempts, {} to {}).\n",
            items.len(),
            if items.len() == 1 { "" } else { "s" },
            total,
            fmt_time(first),
            fmt_time(last)
        ));
    }
    if !items.is_empty() {
        b.push_str(&format!(
            "\nAdded the following hosts to {}:\n\n",
            cfg.hosts_deny.display()
        ));
        for i in items {
            b.push_str(&format!(
                "{}\n    {} failures ({}), users: {}\n    first seen {}, last seen {}\n",
                host_label(cfg, &i.host),
                i.count,
                i.reason,
                if i.users.is_empty() {
                    "-".to_string()
                } else {
                    i.users.join(", ")
                },
                fmt_time(i.first_seen),
                fmt_time(i.last_seen)
            ));
        }
    }
    if !suspicious.is_empty() {
        b.push_str("\nObserved the following suspicious login activity:\n\n");
        for s in suspicious {
            b.push_str(s);
            b.push('\n');
        }
    }
    b
}

fn parse_mailbox(s: &str) -> (Option<String>, String) {
    let s = s.trim();
    match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => {
            let name = s[..a].trim().trim_matches('"').trim();
            (
                (!name.is_empty()).then(|| name.to_string()),
                s[a + 1..b].trim().to_string(),
            )
        }
        _ => (None, s.to_string()),
    }
}

/// The digest mail.
pub fn digest_mail(cfg: &Config, items: &[DigestItem], suspicious: &[String], now: i64) -> Vec<u8> {
    let (fname, faddr) = parse_mailbox(&cfg.smtp_from);
    let from = Address::new_address(fname, faddr);
    let to: Vec<Address> = cfg
        .recipients()
        .iter()
        .map(|r| {
            let (n, a) = parse_mailbox(r);
            Address::new_address(n, a)
        })
        .collect();
    let subject = if items.is_empty() {
        format!("{}: suspicious logins", cfg.smtp_subject)
    } else {
        format!(
            "{}: {} host{} blocked",
            cfg.smtp_subject,
            items.len(),
            if items.len() == 1 { "" } else { "s" }
        )
    };
    MessageBuilder::new()
        .from(from)
        .to(Address::new_list(to))
        .subject(subject)
        .date(now)
        .text_body(digest_body(cfg, items, suspicious))
        .write_to_vec()
        .unwrap_or_default()
}

/// Submits a message to SMTP_HOST:SMTP_PORT.
pub fn send(cfg: &Config, message: &[u8]) -> anyhow::Result<String> {
    let to = cfg
        .recipients()
        .iter()
        .map(|r| parse_mailbox(r).1)
        .collect::<Vec<_>>();
    let from = cfg.envelope_from();
    let helo = hostname();
    let sub = yubin_send::submit::Submission {
        host: &cfg.smtp_host,
        port: cfg.smtp_port,
        helo: &helo,
        from: &from,
        to: &to,
        timeout: std::time::Duration::from_secs(30),
        auth: match (&cfg.smtp_username, &cfg.smtp_password) {
            (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
            _ => None,
        },
    };
    let reply = yubin_send::submit::submit(&sub, message)?;
    Ok(format!("{} {}", reply.code, reply.text))
}

/// This machine's name for EHLO.
pub fn hostname() -> String {
    let name = yubin_sys::hostname();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn denyhosts_layout() {
        let mut cfg = Config::defaults(Path::new("x"));
        cfg.admin_email = "root@localhost".into();
        cfg.smtp_date_format = "DATE".into();
        let m = denyhosts_report(&cfg, &[], &["203.0.113.7".into()], &[], 0);
        assert_eq!(
            m,
            format!(
                "From: DenyHosts <nobody@localhost>\nTo: root@localhost\nSubject: DenyHosts Report\nDate: DATE\n\nAdded the following hosts to /etc/hosts.deny:\n\n203.0.113.7\n\n{DASHES}\n"
            )
        );
    }

    #[test]
    fn hostname_lookup_labels() {
        let mut cfg = Config::defaults(Path::new("x"));
        assert_eq!(host_label(&cfg, "127.0.0.1"), "127.0.0.1");
        cfg.hostname_lookup = true;
        let l = host_label(&cfg, "127.0.0.1");
        assert!(l.starts_with("127.0.0.1 (") && l.ends_with(')'), "{l}");
        assert_eq!(
            host_label(&cfg, "not-an-address"),
            "not-an-address (unknown)"
        );
    }

    #[test]
    fn digest_has_summary_line_first() {
        let mut cfg = Config::defaults(Path::new("x"));
        cfg.admin_email = "root@localhost".into();
        let items = vec![DigestItem {
            host: "203.0.113.7".into(),
            count: 6,
            users: vec!["admin".into(), "root".into()],
            first_seen: 1_704_132_245,
            last_seen: 1_704_132_300,
            reason: "invalid 6 > 5".into(),
        }];
        let body = digest_body(&cfg, &items, &[]);
        assert!(
            body.starts_with("yubin guard blocked 1 new host (6 failed attempts, "),
            "{body}"
        );
        assert!(body.contains("users: admin, root"));
        let mail = String::from_utf8(digest_mail(&cfg, &items, &[], 1_704_132_300)).unwrap();
        assert!(
            mail.contains("Subject: DenyHosts Report: 1 host blocked"),
            "{mail}"
        );
    }
}
