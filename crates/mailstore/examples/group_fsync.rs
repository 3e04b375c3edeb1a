//! Shows what sharing the `new/` fsync buys: THREADS threads each deliver
//! PER_THREAD 2 kB messages into one Maildir, once with one `DirSync` for
//! all (group commit, as the MTA does) and once with a `DirSync` per
//! delivery (one directory fsync each, the old behaviour). Prints
//! messages per second for both; no asserts. Use a disk-backed directory.
//!
//!     cargo run --release -p yubin-mailstore --example group_fsync [THREADS] [PER_THREAD] [DIR]

use std::sync::Arc;
use std::time::Instant;

use yubin_mailstore::{deliver, Delivery, DirSync};

fn run(dir: &std::path::Path, threads: usize, per: usize, shared: bool) -> f64 {
    let _ = std::fs::remove_dir_all(dir);
    // Let the removal's journal work finish so that it does not slow
    // whichever variant runs next.
    let _ = std::process::Command::new("sync").status();
    let sync = Arc::new(DirSync::new());
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|i| {
            let (dir, sync) = (dir.to_path_buf(), sync.clone());
            std::thread::spawn(move || {
                let body = vec![b'x'; 2048];
                for j in 0..per {
                    let tag = format!("T{i}_{j}");
                    let parts: &[&[u8]] = &[&body];
                    let own = DirSync::new();
                    let s: &DirSync = if shared { &sync } else { &own };
                    let d = Delivery {
                        tag: &tag,
                        host: "bench",
                        parts,
                        check_existing: false,
                        size_limit: 0,
                        now: 1,
                    };
                    deliver(&dir, &d, s).expect("deliver");
                }
            })
        })
        .collect();
    for h in hs {
        h.join().expect("thread");
    }
    (threads * per) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let mut a = std::env::args().skip(1);
    let threads: usize = a.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let per: usize = a.next().and_then(|v| v.parse().ok()).unwrap_or(50);
    let base = a
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "target/group_fsync".into());
    let dir = base.join("Maildir");
    for round in 0..4 {
        // Alternate the order: the second run of a pair pays for the
        // first one's leftovers.
        let (apart, shared) = if round % 2 == 0 {
            let a = run(&dir, threads, per, false);
            (a, run(&dir, threads, per, true))
        } else {
            let s = run(&dir, threads, per, true);
            (run(&dir, threads, per, false), s)
        };
        println!(
            "round {round}: {threads} threads x {per}: one fsync each {apart:.0} msg/s, shared fsync {shared:.0} msg/s ({:.2}x)",
            shared / apart
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}
