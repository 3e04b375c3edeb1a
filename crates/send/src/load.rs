//! Load mode: `yubin send --count N --concurrency C --size BYTES` sends N
//! messages of BYTES bytes, one SMTP session each (as `smtp-source` does
//! without `-d`), over C connections at once, and reports messages per
//! second and latency percentiles, so benchmarks need no foreign tool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{Config, Load, Transport};
use crate::submit::{submit, Submission};

/// A message of exactly `size` bytes (at least its headers): headers, then
/// 72-character lines of `x` (`n` makes each Message-Id unique).
pub fn message(size: usize, from: &str, to: &str, n: usize) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: yubin send load test {n}\r\nMessage-Id: <load.{n}.{}@yubin.send>\r\n\r\n",
        std::process::id()
    )
    .into_bytes();
    while m.len() < size {
        let room = size - m.len();
        if room <= 2 {
            m.resize(m.len() + room, b'x');
            break;
        }
        let n = (room - 2).min(72);
        m.resize(m.len() + n, b'x');
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// The value at quantile `q` (0..=1) of sorted `v` (nearest rank).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Runs load mode; exit 0 when every message was accepted, else 26.
pub fn run(cfg: &Config, load: Load) -> i32 {
    let Transport::Tcp { host, port } = &cfg.transport else {
        eprintln!("*** load mode (--count) talks TCP only: use --server HOST[:PORT]");
        return crate::session::code::OPTIONS;
    };
    if cfg.to.is_empty() {
        eprintln!("*** load mode needs a recipient: --to ADDRESS");
        return crate::session::code::OPTIONS;
    }
    let timeout = cfg.timeout.unwrap_or(Duration::from_secs(3600));
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(load.count));
    let errors = Mutex::new(Vec::new());
    println!(
        "=== load: {} messages of {} bytes to {host}:{port}, {} at once",
        load.count, load.size, load.concurrency
    );
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..load.concurrency.min(load.count) {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= load.count {
                    break;
                }
                let body = message(load.size, &cfg.from, &cfg.to[0], n);
                let sub = Submission {
                    host,
                    port: *port,
                    helo: &cfg.helo,
                    from: &cfg.from,
                    to: &cfg.to,
                    timeout,
                    auth: None,
                };
                let t0 = Instant::now();
                match submit(&sub, &body) {
                    Ok(_) => latencies
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(t0.elapsed()),
                    Err(e) => errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(e.to_string()),
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let mut lat = latencies.into_inner().unwrap_or_else(|e| e.into_inner());
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    lat.sort();
    let rate = lat.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "=== sent {} failed {} in {:.3} s: {:.1} msgs/s",
        lat.len(),
        errors.len(),
        elapsed.as_secs_f64(),
        rate
    );
    println!(
        "=== latency p50 {} p90 {} p99 {} max {}",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.90)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    for e in errors.iter().take(5) {
        eprintln!("*** {e}");
    }
    if errors.is_empty() {
        crate::session::code::OK
    } else {
        crate::session::code::DOT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_the_asked_size() {
        for size in [0, 10, 200, 1024, 5000] {
            let m = message(size, "a@b", "c@d", 1);
            assert!(
                m.len() == size || (size < 120 && m.len() > size),
                "{size}: {}",
                m.len()
            );
        }
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
