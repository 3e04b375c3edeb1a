//! `yubin-index`, yubin's cache of a folder (Dovecot ignores files it does
//! not know): the UID, MODSEQ, sizes and file name of every message, so
//! that opening a large folder reads one file instead of listing and
//! statting every message. It is a text file: a snapshot written by
//! tmp + rename after a directory scan, then change lines appended by flag
//! changes and expunges (the last line for a UID wins), rewritten when the
//! appended part grows.
//!
//! ```text
//! yubin-index 1
//! H V<uidvalidity> N<nextuid> M<highestmodseq> G<guid> n<new/ mtime ns> c<cur/ mtime ns> u<uidlist mtime ns>:<size>:<inode> t<scan start ns>
//! R <uid> <modseq> <size> <vsize> <n|c> <file name>
//! X <uid> <modseq>
//! ```

use std::collections::BTreeMap;

pub const FILE: &str = "yubin-index";
pub const LOCK: &str = "yubin-index.lock";
const MAGIC: &str = "yubin-index 1";

/// What the directories looked like when the index was last in step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub new_mtime: i128,
    pub cur_mtime: i128,
    pub uidlist_mtime: i128,
    pub uidlist_size: u64,
    /// `dovecot-uidlist` is replaced by rename, so a new inode means a new
    /// version even within one mtime tick.
    pub uidlist_ino: u64,
    /// When the directory scan that these mtimes describe started.
    pub scanned_at: i128,
}

/// A directory mtime this close to the scan could hide a change made in
/// the same clock tick (file systems keep coarse timestamps), so such an
/// index is checked by a scan instead of trusted.
pub const TRUST_MARGIN_NS: i128 = 2_000_000_000;

impl Stamp {
    /// Does this stamp prove that nothing changed, given the current one?
    pub fn proves_unchanged(&self, now: &Stamp) -> bool {
        self.new_mtime == now.new_mtime
            && self.cur_mtime == now.cur_mtime
            && self.uidlist_mtime == now.uidlist_mtime
            && self.uidlist_size == now.uidlist_size
            && self.uidlist_ino == now.uidlist_ino
            && self.new_mtime.max(self.cur_mtime) + TRUST_MARGIN_NS < self.scanned_at
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    pub modseq: u64,
    pub size: u64,
    pub vsize: u64,
    pub in_new: bool,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub uidvalidity: u32,
    pub next_uid: u32,
    pub highest_modseq: u64,
    pub guid: String,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub header: Header,
    pub entries: BTreeMap<u32, Entry>,
    /// Lines applied (snapshot and log): when they far outnumber the
    /// entries, the file is rewritten.
    pub lines: usize,
}

pub fn header_line(h: &Header) -> String {
    let s = &h.stamp;
    format!(
        "H V{} N{} M{} G{} n{} c{} u{}:{}:{} t{}\n",
        h.uidvalidity,
        h.next_uid,
        h.highest_modseq,
        h.guid,
        s.new_mtime,
        s.cur_mtime,
        s.uidlist_mtime,
        s.uidlist_size,
        s.uidlist_ino,
        s.scanned_at
    )
}

pub fn entry_line(e: &Entry) -> String {
    format!(
        "R {} {} {} {} {} {}\n",
        e.uid,
        e.modseq,
        e.size,
        e.vsize,
        if e.in_new { 'n' } else { 'c' },
        e.name
    )
}

pub fn expunge_line(uid: u32, modseq: u64) -> String {
    format!("X {uid} {modseq}\n")
}

fn parse_header(rest: &str) -> Option<Header> {
    let mut h = Header::default();
    for f in rest.split(' ') {
        let (k, v) = if f.is_char_boundary(1) {
            f.split_at(1)
        } else {
            ("", f)
        };
        match k {
            "V" => h.uidvalidity = v.parse().ok()?,
            "N" => h.next_uid = v.parse().ok()?,
            "M" => h.highest_modseq = v.parse().ok()?,
            "G" => h.guid = v.to_string(),
            "n" => h.stamp.new_mtime = v.parse().ok()?,
            "c" => h.stamp.cur_mtime = v.parse().ok()?,
            "u" => {
                let mut it = v.split(':');
                h.stamp.uidlist_mtime = it.next()?.parse().ok()?;
                h.stamp.uidlist_size = it.next()?.parse().ok()?;
                h.stamp.uidlist_ino = it.next()?.parse().ok()?;
            }
            "t" => h.stamp.scanned_at = v.parse().ok()?,
            _ => return None,
        }
    }
    (h.uidvalidity != 0 && h.next_uid != 0).then_some(h)
}

impl Index {
    pub fn snapshot(&self) -> String {
        let mut out = String::with_capacity(64 + self.entries.len() * 80);
        out.push_str(MAGIC);
        out.push('\n');
        out.push_str(&header_line(&self.header));
        for e in self.entries.values() {
            out.push_str(&entry_line(e));
        }
        out
    }

    /// Parses a whole file. `None` if it is not a yubin index or is broken
    /// anywhere but in an unfinished last line (a crash during an append).
    pub fn parse(text: &str) -> Option<Index> {
        let rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
        let mut idx = Index::default();
        let mut have_header = false;
        idx.apply(rest, &mut have_header)?;
        have_header.then_some(idx)
    }

    /// Applies complete lines of `text` (a snapshot body or appended log);
    /// returns how many bytes were consumed (an unfinished last line is
    /// left for later). `None` on a malformed line.
    pub fn apply(&mut self, text: &str, have_header: &mut bool) -> Option<usize> {
        let mut used = 0;
        for line in text.split_inclusive('\n') {
            let Some(line_body) = line.strip_suffix('\n') else {
                break;
            };
            used += line.len();
            self.lines += 1;
            let (kind, rest) = line_body.split_once(' ')?;
            match kind {
                "H" => {
                    self.header = parse_header(rest)?;
                    *have_header = true;
                }
                "R" => {
                    let mut it = rest.splitn(6, ' ');
                    let mut num = || it.next();
                    let uid: u32 = num()?.parse().ok()?;
                    let modseq: u64 = num()?.parse().ok()?;
                    let size: u64 = num()?.parse().ok()?;
                    let vsize: u64 = num()?.parse().ok()?;
                    let in_new = match num()? {
                        "n" => true,
                        "c" => false,
                        _ => return None,
                    };
                    let name = num()?;
                    if uid == 0 || name.is_empty() || name.contains('/') {
                        return None;
                    }
                    self.entries.insert(
                        uid,
                        Entry {
                            uid,
                            modseq,
                            size,
                            vsize,
                            in_new,
                            name: name.to_string(),
                        },
                    );
                }
                "X" => {
                    let (uid, modseq) = rest.split_once(' ')?;
                    let uid: u32 = uid.parse().ok()?;
                    let modseq: u64 = modseq.parse().ok()?;
                    self.entries.remove(&uid);
                    self.header.highest_modseq = self.header.highest_modseq.max(modseq);
                }
                _ => return None,
            }
        }
        Some(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_log_round_trip() {
        let header = Header {
            uidvalidity: 7,
            next_uid: 3,
            highest_modseq: 10,
            guid: "00".repeat(16),
            stamp: Stamp {
                new_mtime: 1,
                cur_mtime: 2,
                uidlist_mtime: 3,
                uidlist_size: 4,
                uidlist_ino: 6,
                scanned_at: 5,
            },
        };
        let mut i = Index {
            header,
            ..Index::default()
        };
        for uid in [1, 2] {
            i.entries.insert(
                uid,
                Entry {
                    uid,
                    modseq: 9,
                    size: 100,
                    vsize: 104,
                    in_new: uid == 2,
                    name: format!("{uid}.x.h,S=100:2,S"),
                },
            );
        }
        let mut text = i.snapshot();
        assert_eq!(Index::parse(&text).unwrap().entries, i.entries);
        text.push_str(&expunge_line(1, 11));
        text.push_str("R 2 12 100 104 c 2.x.h,S=100:2,FS\n");
        text.push_str("R 3 1"); // unfinished append: ignored
        let j = Index::parse(&text).unwrap();
        assert_eq!(j.entries.len(), 1);
        assert_eq!(j.entries[&2].modseq, 12);
        assert_eq!(j.header.highest_modseq, 11);
        assert_eq!(j.lines, 5);
        for bad in [
            "",
            "yubin-index 2\n",
            "yubin-index 1\nR 1 1 1 1 c x\n",
            "yubin-index 1\nH V1 N1\nQ\n",
            "yubin-index 1\nH \u{e9}1\n",
        ] {
            assert!(Index::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn stamps_need_a_margin() {
        let s = Stamp {
            new_mtime: 10,
            cur_mtime: 20,
            scanned_at: 20 + TRUST_MARGIN_NS + 1,
            ..Stamp::default()
        };
        assert!(s.proves_unchanged(&Stamp { scanned_at: 0, ..s }));
        assert!(!s.proves_unchanged(&Stamp { cur_mtime: 21, ..s }));
        let fresh = Stamp {
            scanned_at: 21,
            ..s
        };
        assert!(!fresh.proves_unchanged(&fresh));
    }
}
