//! Measures opening a 100,000-message folder: with a valid `yubin-index`
//! (no directory listing) against a full scan (listing new/ and cur/ and
//! matching every file to dovecot-uidlist). No asserts: it prints figures.
//!
//!     cargo run --release -p yubin-mailstore --example open_100k [COUNT] [DIR]

use std::fs::{self, File};
use std::time::{Duration, Instant, SystemTime};

use yubin_mailstore::{ensure_maildir, Mailbox};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let keep = args.next();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = keep
        .map(Into::into)
        .unwrap_or_else(|| tmp.path().join("Maildir"));
    ensure_maildir(&dir).expect("maildir");
    let have = fs::read_dir(dir.join("cur"))
        .map(|r| r.count())
        .unwrap_or(0);
    if have < n {
        let t = Instant::now();
        for i in have..n {
            let name = format!("{}.M{i}P1.bench,S=1000,W=1020:2,S", 1_600_000_000 + i);
            fs::write(dir.join("cur").join(name), b"").expect("write");
        }
        println!("created {} files in {:?}", n - have, t.elapsed());
    }
    // Age the directories so that the index can be trusted (an mtime
    // within 2 s of a scan forces a rescan).
    let old = SystemTime::now() - Duration::from_secs(60);
    for sub in ["new", "cur"] {
        File::open(dir.join(sub))
            .and_then(|f| f.set_modified(old))
            .expect("mtime");
    }
    let t = Instant::now();
    let mb = Mailbox::open(&dir).expect("first open");
    println!(
        "first open (assigns {} UIDs, writes dovecot-uidlist + yubin-index): {:?}",
        mb.len(),
        t.elapsed()
    );
    drop(mb);
    for round in 0..3 {
        let t = Instant::now();
        let mb = Mailbox::open(&dir).expect("open");
        let idx = t.elapsed();
        let mut mb2 = mb;
        let t = Instant::now();
        mb2.rescan().expect("rescan");
        let scan = t.elapsed();
        println!(
            "round {round}: open with index {idx:?}, full scan {scan:?} ({} messages)",
            mb2.len()
        );
        for sub in ["new", "cur"] {
            File::open(dir.join(sub))
                .and_then(|f| f.set_modified(old))
                .expect("mtime");
        }
    }
}
