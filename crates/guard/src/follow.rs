//! Reading new lines of a log file across restarts and rotation.
//!
//! The resume point (device, inode, byte offset, first line) lives in the
//! state, so a restart neither re-counts nor misses lines. Rules (compare
//! DenyHosts `filetracker.py`, research note 1.4, whose gaps this closes):
//!
//! * only complete lines are consumed; a partial last line waits for its
//!   newline (DenyHosts parsed the tail later as a separate line);
//! * rename rotation: the follower keeps the old file open and drains it
//!   before switching to the new one; after a restart it finds the rotated
//!   file by its inode among the siblings (`auth.log.1`, …) and reads its rest;
//! * copytruncate: a file shorter than the offset, or whose first line
//!   changed, is read from 0;
//! * first run (no resume point): rotated siblings are read oldest first,
//!   `.gz` ones decompressed, then the live file.
//!
//! Lines longer than [`MAX_LINE`] are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::parse::MAX_LINE;
use crate::state::Offset;

const CHUNK: usize = 1 << 20;

/// Splits `data` into lines and feeds complete ones; returns how many bytes
/// were consumed (up to and including the last newline). `skipping` carries
/// "inside an over-long line" across calls.
pub fn feed_lines(data: &[u8], skipping: &mut bool, each: &mut dyn FnMut(&[u8])) -> usize {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', data) {
        let line = &data[start..nl];
        if *skipping {
            *skipping = false;
        } else if line.len() <= MAX_LINE {
            each(line.strip_suffix(b"\r").unwrap_or(line));
        }
        start = nl + 1;
    }
    start
}

/// Reads `r` to its end, feeding complete lines; returns bytes consumed.
pub fn read_stream(r: &mut dyn Read, each: &mut dyn FnMut(&[u8])) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut have = 0usize;
    let mut consumed = 0u64;
    let mut skipping = false;
    loop {
        if have == buf.len() {
            // A line longer than the buffer: drop what we have and skip to its end.
            consumed += have as u64;
            have = 0;
            skipping = true;
        }
        let n = r.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(consumed);
        }
        have += n;
        let used = feed_lines(&buf[..have], &mut skipping, each);
        buf.copy_within(used..have, 0);
        have -= used;
        consumed += used as u64;
    }
}

fn first_line(path: &Path) -> String {
    let Ok(f) = File::open(path) else {
        return String::new();
    };
    let mut l = String::new();
    let _ = BufReader::new(f).take(4096).read_line(&mut l);
    if l.ends_with('\n') {
        l.trim_end_matches(['\r', '\n']).to_string()
    } else {
        String::new()
    }
}

/// Rotated siblings of `path` (`auth.log.1`, `auth.log.2.gz`, `auth.log-20240102`),
/// oldest first.
pub fn rotated_siblings(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.to_string_lossy().into_owned();
    let mut v: Vec<(u64, String, PathBuf)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = f.strip_prefix(&name) else {
                continue;
            };
            let rest = rest.strip_suffix(".gz").unwrap_or(rest);
            if let Some(n) = rest.strip_prefix('.').and_then(|x| x.parse::<u64>().ok()) {
                v.push((u64::MAX - n, String::new(), e.path()));
            } else if let Some(d) = rest
                .strip_prefix('-')
                .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
            {
                v.push((0, d.to_string(), e.path()));
            }
        }
    }
    // Numbered: higher number = older, so sort by descending number; dated: ascending date.
    v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    v.into_iter().map(|x| x.2).collect()
}

/// Reads a whole file (decompressing `.gz`), feeding complete lines.
pub fn read_whole(path: &Path, each: &mut dyn FnMut(&[u8])) -> std::io::Result<u64> {
    let f = File::open(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        read_stream(
            &mut flate2::read::MultiGzDecoder::new(BufReader::new(f)),
            each,
        )
    } else {
        read_stream(&mut BufReader::with_capacity(CHUNK, f), each)
    }
}

/// A followed log file (kept open between polls by the daemon).
pub struct Follower {
    pub path: PathBuf,
    open: Option<(File, u64, u64)>,
}

impl Follower {
    pub fn new(path: PathBuf) -> Follower {
        Follower { path, open: None }
    }

    fn read_from(f: &mut File, offset: u64, each: &mut dyn FnMut(&[u8])) -> std::io::Result<u64> {
        f.seek(SeekFrom::Start(offset))?;
        Ok(offset + read_stream(f, each)?)
    }

    /// Reads everything new since `saved`, updating it. `first_run` (no saved
    /// point) also reads rotated siblings first.
    pub fn poll(
        &mut self,
        saved: &mut Option<Offset>,
        each: &mut dyn FnMut(&[u8]),
    ) -> std::io::Result<()> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Rotated away and not yet re-created: drain what we hold.
                if let Some((f, _, _)) = self.open.as_mut() {
                    let off = saved.as_ref().map_or(0, |s| s.offset);
                    let new = Self::read_from(f, off, each)?;
                    if let Some(s) = saved.as_mut() {
                        s.offset = new;
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let (dev, ino) = (meta.dev(), meta.ino());
        // Rotation seen while running: finish the old file first.
        if let Some((f, odev, oino)) = self.open.as_mut() {
            if (*odev, *oino) != (dev, ino) {
                let off = saved.as_ref().map_or(0, |s| s.offset);
                Self::read_from(f, off, each)?;
                self.open = None;
                *saved = Some(Offset {
                    dev,
                    ino,
                    offset: 0,
                    first_line: String::new(),
                });
            }
        }
        let mut start = 0u64;
        match saved.as_ref() {
            None => {
                for sib in rotated_siblings(&self.path) {
                    read_whole(&sib, each)?;
                }
            }
            Some(s) if (s.dev, s.ino) == (dev, ino) => {
                let fl = first_line(&self.path);
                if meta.len() >= s.offset
                    && (s.first_line.is_empty() || s.first_line == fl || s.offset == 0)
                {
                    start = s.offset;
                }
            }
            Some(s) => {
                // Rotated while we were not running: the old inode's rest first.
                for sib in rotated_siblings(&self.path).into_iter().rev() {
                    if let Ok(m) = std::fs::metadata(&sib) {
                        if (m.dev(), m.ino()) == (s.dev, s.ino) && m.len() >= s.offset {
                            let mut f = File::open(&sib)?;
                            Self::read_from(&mut f, s.offset, each)?;
                            break;
                        }
                    }
                }
            }
        }
        if self.open.is_none() {
            self.open = Some((File::open(&self.path)?, dev, ino));
        }
        let (f, _, _) = self.open.as_mut().expect("opened above");
        let end = Self::read_from(f, start, each)?;
        *saved = Some(Offset {
            dev,
            ino,
            offset: end,
            first_line: first_line(&self.path),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(f: &mut Follower, saved: &mut Option<Offset>) -> Vec<String> {
        let mut v = Vec::new();
        f.poll(saved, &mut |l| {
            v.push(String::from_utf8_lossy(l).into_owned())
        })
        .unwrap();
        v
    }

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    #[test]
    fn partial_lines_wait_and_restart_resumes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        append(&p, "a\nb\nc-part");
        let mut saved = None;
        assert_eq!(
            collect(&mut Follower::new(p.clone()), &mut saved),
            ["a", "b"]
        );
        append(&p, "ial\nd\n");
        // A new follower (restart) resumes from the saved point.
        assert_eq!(
            collect(&mut Follower::new(p.clone()), &mut saved),
            ["c-partial", "d"]
        );
        assert_eq!(
            collect(&mut Follower::new(p.clone()), &mut saved),
            Vec::<String>::new()
        );
    }

    #[test]
    fn rename_rotation_while_running_and_while_stopped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        append(&p, "1\n");
        let mut saved = None;
        let mut f = Follower::new(p.clone());
        assert_eq!(collect(&mut f, &mut saved), ["1"]);
        append(&p, "2\n");
        std::fs::rename(&p, d.path().join("auth.log.1")).unwrap();
        append(&d.path().join("auth.log.1"), "3\n"); // written before syslog reopened
        append(&p, "4\n");
        assert_eq!(collect(&mut f, &mut saved), ["2", "3", "4"]);
        // Stopped: rotation happens, then a fresh follower picks up both parts.
        append(&p, "5\n");
        std::fs::rename(d.path().join("auth.log.1"), d.path().join("auth.log.2")).unwrap();
        std::fs::rename(&p, d.path().join("auth.log.1")).unwrap();
        append(&p, "6\n");
        assert_eq!(
            collect(&mut Follower::new(p.clone()), &mut saved),
            ["5", "6"]
        );
    }

    #[test]
    fn copytruncate() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        append(&p, "old line one\nold line two\n");
        let mut saved = None;
        let mut f = Follower::new(p.clone());
        assert_eq!(collect(&mut f, &mut saved).len(), 2);
        std::fs::copy(&p, d.path().join("auth.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        append(&p, "new\n");
        assert_eq!(collect(&mut f, &mut saved), ["new"]);
    }

    #[test]
    fn first_run_reads_gzip_rotations_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        for (name, text) in [("auth.log.3.gz", "three\n"), ("auth.log.2.gz", "two\n")] {
            let mut e = flate2::write::GzEncoder::new(
                File::create(d.path().join(name)).unwrap(),
                flate2::Compression::fast(),
            );
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap();
        }
        append(&d.path().join("auth.log.1"), "one\n");
        append(&p, "zero\n");
        let mut saved = None;
        assert_eq!(
            collect(&mut Follower::new(p), &mut saved),
            ["three", "two", "one", "zero"]
        );
    }

    #[test]
    fn overlong_lines_are_skipped() {
        let mut v = Vec::new();
        let long = "x".repeat(MAX_LINE + 10);
        let data = format!("a\n{long}\nb\n");
        read_stream(&mut data.as_bytes(), &mut |l| v.push(l.len())).unwrap();
        assert_eq!(v, [1, 1]);
    }
}
