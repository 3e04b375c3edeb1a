//! Time: wall clock, local-time formatting through the C library (so
//! `SMTP_DATE_FORMAT` means exactly what Python's `time.strftime` meant to
//! DenyHosts), `time.asctime()` stamps for hosts.deny comments, and the time
//! stamp of a log line.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::parse::{syslog::month_number, Stamp};

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn local_tm(t: i64) -> libc::tm {
    // SAFETY: localtime_r writes into the zeroed tm we own.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let tt: libc::time_t = t as libc::time_t;
        libc::localtime_r(&tt, &mut tm);
        tm
    }
}

/// `strftime(fmt, localtime(t))`.
pub fn strftime(fmt: &str, t: i64) -> String {
    let tm = local_tm(t);
    let Ok(cfmt) = std::ffi::CString::new(fmt) else {
        return String::new();
    };
    let mut buf = vec![0u8; 512];
    // SAFETY: buf is writable for its length; fmt is NUL-terminated.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm) };
    buf.truncate(n);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Python's `time.asctime()`: `Tue Jan  2 03:04:05 2024`.
pub fn asctime(t: i64) -> String {
    strftime("%a %b %e %H:%M:%S %Y", t)
}

/// Parses `asctime` back (as written in `# DenyHosts:` comments).
pub fn parse_asctime(s: &str) -> Option<i64> {
    let w: Vec<&str> = s.split_whitespace().collect();
    if w.len() != 5 {
        return None;
    }
    let mon = month_number(w[1].as_bytes())?;
    let day: i32 = w[2].parse().ok()?;
    let year: i32 = w[4].parse().ok()?;
    let hms: Vec<i32> = w[3].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    Some(mktime_local(year, mon as i32, day, hms[0], hms[1], hms[2]))
}

/// `mktime_local` for log stamps, from a one-entry cache of the hour's
/// start: mktime(3) calls tzset(3), which stats /etc/localtime on every call
/// (glibc), and a 200,000-line log has tens of thousands of distinct stamps
/// (issue 16 item 5: 37,495 stat calls were the largest single cost of a
/// pass). Logs run in time order, so the hour changes rarely. Minutes and
/// seconds are added to the hour's start, which equals mktime's own answer
/// except inside a DST change that is not on a whole hour (never in the
/// tz database's current zones but Lord Howe's 30-minute one).
/// (year, month, day, hour) of the cached hour, and its start in Unix time.
type CachedHour = Option<((i32, i32, i32, i32), i64)>;

fn mktime_local_cached(year: i32, mon: i32, day: i32, h: i32, m: i32, s: i32) -> i64 {
    use std::cell::Cell;
    thread_local! {
        static HOUR: Cell<CachedHour> = const { Cell::new(None) };
    }
    if !(0..60).contains(&m) || !(0..=60).contains(&s) {
        return mktime_local(year, mon, day, h, m, s);
    }
    let key = (year, mon, day, h);
    let base = HOUR.with(|c| match c.get() {
        Some((k, b)) if k == key => b,
        _ => {
            let b = mktime_local(year, mon, day, h, 0, 0);
            c.set(Some((key, b)));
            b
        }
    });
    base + i64::from(m * 60 + s)
}

fn mktime_local(year: i32, mon: i32, day: i32, h: i32, m: i32, s: i32) -> i64 {
    // SAFETY: mktime reads and normalises the tm we own.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = s;
        tm.tm_isdst = -1;
        libc::mktime(&mut tm) as i64
    }
}

fn num(b: &[u8]) -> Option<i32> {
    if b.is_empty() || b.len() > 4 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i32, |a, &c| a * 10 + i32::from(c - b'0')))
}

/// The time of a log line: the stamp (a BSD stamp has no year: the most recent
/// such date not in the future, as fail2ban guesses), clamped to `now`; `now`
/// when the line has no usable stamp. DenyHosts used the wall clock for
/// everything (so a replayed old log counted as fresh); yubin uses the log's
/// own time so `AGE_RESET_*` and the digest's first/last seen mean something.
pub fn line_time(stamp: Stamp<'_>, now: i64) -> i64 {
    let t = match stamp {
        Stamp::None => None,
        Stamp::Bsd(s) => bsd(s, now),
        Stamp::Iso(s) => iso(s),
    };
    t.map_or(now, |t| t.min(now))
}

fn bsd(s: &[u8], now: i64) -> Option<i64> {
    let mon = month_number(s.get(..3)?)? as i32;
    let rest: Vec<&[u8]> = s[3..]
        .split(|&c| c == b' ')
        .filter(|x| !x.is_empty())
        .collect();
    let day = num(rest.first()?)?;
    let t = rest.get(1)?;
    let h = num(t.get(0..2)?)?;
    let m = num(t.get(3..5)?)?;
    let sec = num(t.get(6..8)?)?;
    let year = current_year(now);
    let t = mktime_local_cached(year, mon, day, h, m, sec);
    Some(if t > now + 86_400 {
        mktime_local_cached(year - 1, mon, day, h, m, sec)
    } else {
        t
    })
}

/// The local year at `now`, cached per `now` (one pass uses one `now`).
fn current_year(now: i64) -> i32 {
    use std::cell::Cell;
    thread_local! {
        static YEAR: Cell<Option<(i64, i32)>> = const { Cell::new(None) };
    }
    YEAR.with(|c| match c.get() {
        Some((n, y)) if n == now => y,
        _ => {
            let y = local_tm(now).tm_year + 1900;
            c.set(Some((now, y)));
            y
        }
    })
}

fn iso(s: &[u8]) -> Option<i64> {
    let y = num(s.get(0..4)?)?;
    let mo = num(s.get(5..7)?)?;
    let d = num(s.get(8..10)?)?;
    let h = num(s.get(11..13)?)?;
    let mi = num(s.get(14..16)?)?;
    let se = num(s.get(17..19)?)?;
    let mut i = 19;
    while i < s.len() && (s[i] == b'.' || s[i].is_ascii_digit()) {
        i += 1;
    }
    let zone = &s[i..];
    if zone.is_empty() {
        return Some(mktime_local_cached(y, mo, d, h, mi, se));
    }
    let off = if zone == b"Z" {
        0
    } else {
        let sign = match zone[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let zh = num(zone.get(1..3)?)?;
        let zm = num(zone.get(zone.len() - 2..)?)?;
        sign * (zh * 3600 + zm * 60)
    };
    Some(days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + se) - i64::from(off))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i32, m: i32, d: i32) -> i64 {
    let y = i64::from(if m <= 2 { y - 1 } else { y });
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_stamps() {
        assert_eq!(
            iso(b"2024-01-02T03:04:05.123456+09:00"),
            Some(1_704_132_245)
        );
        assert_eq!(iso(b"2024-01-01T18:04:05Z"), Some(1_704_132_245));
    }

    #[test]
    fn asctime_round_trip() {
        let t = 1_704_132_245;
        assert_eq!(parse_asctime(&asctime(t)), Some(t));
    }

    #[test]
    fn cached_hour_equals_mktime() {
        for (y, mo, d, h, mi, se) in [
            (2024, 1, 2, 3, 4, 5),
            (2024, 1, 2, 3, 59, 59),
            (2024, 3, 31, 1, 30, 0),
            (2024, 10, 27, 2, 15, 7),
            (2023, 12, 31, 23, 59, 60),
        ] {
            assert_eq!(
                mktime_local_cached(y, mo, d, h, mi, se),
                mktime_local(y, mo, d, h, mi, se),
                "{y}-{mo}-{d} {h}:{mi}:{se}"
            );
        }
    }

    #[test]
    fn bsd_never_in_future() {
        let now = 1_704_132_245; // 2024-01-02
        let t = line_time(Stamp::Bsd(b"Dec 31 23:00:00"), now);
        assert!(t < now && now - t < 3 * 86_400);
    }
}
