//! Queue ids in Postfix's two styles (postconf(5) enable_long_queue_ids):
//! short upper-case hex (`A438C186C09`) and long base-52 time plus `z` and a
//! counter (`4Q8b3L1xYzA1b`). Uniqueness within the spool is checked by the
//! committer's O_EXCL create; the counter makes collisions within one
//! process impossible.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn now() -> (u64, u64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_micros() as u64)
}

/// A short queue id, 11 hex digits like Postfix's: 5 of microseconds, then
/// 6 of a counter that starts at a per-process random point (seeded from
/// the process id and start time), so two ids of one process never repeat
/// within 16 million messages, and ids of different runs rarely meet (the
/// committer's O_EXCL create turns a meeting into a temporary error, never
/// into an overwrite).
pub fn short() -> String {
    let (_, usec) = now();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_add(seed());
    format!("{:05X}{:06X}", usec & 0xFFFFF, n & 0xFF_FFFF)
}

fn seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let (s, us) = now();
        (std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ s.rotate_left(20) ^ us
    })
}

const B52: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy";

fn base52(mut v: u64, width: usize) -> String {
    let base = B52.len() as u64;
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = B52[(v % base) as usize];
        v /= base;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A long queue id: time (seconds, microseconds) in base 52, `z`, counter.
pub fn long() -> String {
    let (secs, usec) = now();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) ^ ((std::process::id() as u64) << 20);
    format!("{}{}z{}", base52(secs, 6), base52(usec, 4), base52(n, 5))
}

/// Whether `s` could be a queue id (for commands that take one): safe as a
/// file name, no path separators.
pub fn is_valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_safe() {
        let a = short();
        let b = short();
        assert_ne!(a, b);
        assert!(a.len() == 11 && is_valid(&a), "{a}");
        let l = long();
        assert!(l.contains('z') && is_valid(&l), "{l}");
        assert!(!is_valid("../etc"));
    }
}
