//! Facts about the local system that swaks' defaults use: host name, user
//! name, and the RFC 5322 section 3.3 date string in local time.

use std::ffi::{CStr, CString};

/// The fully qualified host name, as swaks finds it: `hostname()` then the
/// canonical name the resolver gives for it (Perl's `gethostbyname($h)[0]`).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // on success when the name fits, and we terminate it ourselves otherwise.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return String::new();
    }
    let short = CStr::from_bytes_until_nul(&buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    canonical_name(&short).unwrap_or(short)
}

fn canonical_name(host: &str) -> Option<String> {
    let c_host = CString::new(host).ok()?;
    // SAFETY: hints is zeroed then filled; getaddrinfo's result is freed
    // exactly once below, and ai_canonname is read before that.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) != 0 {
            return None;
        }
        let name = if !res.is_null() && !(*res).ai_canonname.is_null() {
            Some(
                CStr::from_ptr((*res).ai_canonname)
                    .to_string_lossy()
                    .into_owned(),
            )
        } else {
            None
        };
        libc::freeaddrinfo(res);
        name.filter(|n| !n.is_empty())
    }
}

/// The default sender's local part: `$LOGNAME`, else the password database
/// entry of the real uid (swaks' `get_username`, with `--force-getpwuid`).
pub fn username(force_getpwuid: bool) -> String {
    if !force_getpwuid {
        if let Ok(name) = std::env::var("LOGNAME") {
            if !name.is_empty() {
                return name;
            }
        }
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out immediately and this program does not call it concurrently.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return std::env::var("USER").unwrap_or_else(|_| "nobody".into());
        }
        CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned()
    }
}

/// Broken-down local time, with its offset from UTC in seconds.
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub weekday: u32,
    pub offset: i64,
}

/// Converts unix seconds to local time with `localtime_r`.
pub fn local_time(unix: i64) -> LocalTime {
    let t: libc::time_t = unix as libc::time_t;
    // SAFETY: tm is plain data; localtime_r writes it and reads only `t`.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
        weekday: tm.tm_wday as u32,
        offset: tm.tm_gmtoff,
    }
}

/// `Fri, 29 Jan 2021 19:24:35 +0900`: RFC 5322 section 3.3 with English
/// names whatever the locale, as swaks' `get_date_string` builds it.
pub fn date_string(t: &LocalTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let sign = if t.offset < 0 { '-' } else { '+' };
    let off = t.offset.abs();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        DAYS[t.weekday as usize % 7],
        t.day,
        MONTHS[(t.month as usize + 11) % 12],
        t.year,
        t.hour,
        t.minute,
        t.second,
        off / 3600,
        (off % 3600) / 60
    )
}

/// swaks' `%MESSAGEID%`: `YYYYmmddHHMMSS.PID@HOST` (PID zero-padded to 6).
pub fn message_id(t: &LocalTime, host: &str) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}.{:06}@{host}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        std::process::id()
    )
}

/// Seconds since the epoch now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_and_message_id_formats() {
        let t = LocalTime {
            year: 2021,
            month: 1,
            day: 29,
            hour: 19,
            minute: 24,
            second: 35,
            weekday: 5,
            offset: 9 * 3600,
        };
        assert_eq!(date_string(&t), "Fri, 29 Jan 2021 19:24:35 +0900");
        let id = message_id(&t, "myhost.mydomain.com");
        assert!(id.starts_with("20210129192435."), "{id}");
        assert!(id.ends_with("@myhost.mydomain.com"));
        let west = LocalTime {
            offset: -(3 * 3600 + 1800),
            ..t
        };
        assert!(date_string(&west).ends_with("-0330"));
    }

    #[test]
    fn host_and_user_are_not_empty() {
        assert!(!hostname().is_empty());
        assert!(!username(true).is_empty());
    }
}
