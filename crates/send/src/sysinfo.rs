//! Facts about the local system that swaks' defaults use: host name, user
//! name, and the RFC 5322 section 3.3 date string in local time.

/// The fully qualified host name, as swaks finds it: `hostname()` then the
/// canonical name the resolver gives for it (Perl's `gethostbyname($h)[0]`).
pub fn hostname() -> String {
    let short = yubin_sys::hostname();
    yubin_sys::canonical_name(&short).unwrap_or(short)
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
    yubin_sys::user_by_uid(yubin_sys::getuid())
        .map(|u| u.name)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "nobody".into()))
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

/// Converts unix seconds to local time (`localtime_r`, through yubin-sys).
pub fn local_time(unix: i64) -> LocalTime {
    let Some(tm) = yubin_sys::local_time(unix) else {
        return LocalTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            weekday: 4,
            offset: 0,
        };
    };
    LocalTime {
        year: tm.year,
        month: tm.month as u32 + 1,
        day: tm.day as u32,
        hour: tm.hour as u32,
        minute: tm.min as u32,
        second: tm.sec as u32,
        weekday: tm.weekday as u32,
        offset: tm.gmtoff,
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
