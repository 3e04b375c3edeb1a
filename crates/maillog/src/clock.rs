//! Local-time formatting for log stamps and RFC 5322 dates, from the C library's
//! `localtime_r` (through yubin-sys) (the same source Postfix and syslog use, so the time zone
//! follows TZ and /etc/localtime).

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Broken-down local time (the sys crate's, from localtime_r).
pub type Local = yubin_sys::LocalTime;

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn local(secs: i64) -> Local {
    yubin_sys::local_time(secs).unwrap_or(Local {
        year: 1970,
        month: 0,
        day: 1,
        hour: 0,
        min: 0,
        sec: 0,
        weekday: 4,
        gmtoff: 0,
        zone: "UTC".into(),
    })
}

/// `Nov 29 03:00:28`: the traditional syslog stamp Postfix's maillog_file uses.
pub fn syslog_stamp(secs: i64) -> String {
    let l = local(secs);
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[l.month], l.day, l.hour, l.min, l.sec
    )
}

/// `Sun, 29 Nov 2026 03:00:28 +0000 (UTC)`: RFC 5322 section 3.3, with the
/// zone comment Postfix adds.
pub fn rfc5322(secs: i64) -> String {
    let l = local(secs);
    let sign = if l.gmtoff < 0 { '-' } else { '+' };
    let off = l.gmtoff.abs();
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02} ({})",
        DAYS[l.weekday],
        l.day,
        MONTHS[l.month],
        l.year,
        l.hour,
        l.min,
        l.sec,
        off / 3600,
        (off % 3600) / 60,
        l.zone
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let s = syslog_stamp(0);
        assert_eq!(s.len(), 15, "{s}");
        let d = rfc5322(1_000_000_000);
        assert!(d.contains("2001"), "{d}");
        assert!(d.contains(':'));
    }
}
