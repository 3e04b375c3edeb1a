//! `dovecot-uidlist`, Dovecot's map from Maildir file names to IMAP UIDs
//! (src/lib-storage/index/maildir/maildir-uidlist.c), version 3:
//!
//! ```text
//! 3 V<uidvalidity> N<nextuid> G<mailbox guid, 32 hex digits>
//! <uid> [<ext key><value> ...] :<file name base>
//! ```
//!
//! UIDs are strictly increasing; the file name is the base before the
//! `:2,` flags (Dovecot matches on it, so flag renames keep the UID). Record
//! extension keys are uppercase letters (`S` size, `W` vsize, `G` guid,
//! `P`/`O` POP3). Version 1 (`1 <uidvalidity> <nextuid>`, `<uid> <name>`),
//! which Courier also writes, is read too. Writers hold
//! `dovecot-uidlist.lock` and replace the file by renaming
//! `dovecot-uidlist.tmp` over it.

use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const FILE: &str = "dovecot-uidlist";
const TMP: &str = "dovecot-uidlist.tmp";
/// Longest line accepted (a file name is at most 255 bytes; extension
/// fields are short).
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub uid: u32,
    /// Extension fields as written, e.g. `W1234`.
    pub ext: Vec<String>,
    /// File name base (no `:2,` part).
    pub base: String,
}

impl Record {
    /// The value of extension `key` (e.g. `b'W'`).
    pub fn ext_value(&self, key: u8) -> Option<&str> {
        self.ext
            .iter()
            .find(|e| e.as_bytes().first() == Some(&key))
            .map(|e| &e[1..])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidList {
    pub uidvalidity: u32,
    pub next_uid: u32,
    /// Mailbox GUID, 32 lowercase hex digits.
    pub guid: String,
    /// Other header fields, kept as they were.
    pub hdr_ext: Vec<String>,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broken dovecot-uidlist line {line}: {why}")]
pub struct ParseError {
    pub line: usize,
    pub why: &'static str,
}

fn err(line: usize, why: &'static str) -> ParseError {
    ParseError { line, why }
}

/// A new random mailbox GUID (Dovecot: guid_128_generate), from the
/// standard library's randomly keyed hasher, the time and the pid.
pub fn new_guid() -> String {
    let mut out = String::with_capacity(32);
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

fn valid_guid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl UidList {
    /// A fresh list for an empty mailbox.
    pub fn new(uidvalidity: u32) -> UidList {
        UidList {
            uidvalidity: uidvalidity.max(1),
            next_uid: 1,
            guid: new_guid(),
            hdr_ext: Vec::new(),
            records: Vec::new(),
        }
    }

    pub fn parse(data: &[u8]) -> Result<UidList, ParseError> {
        let text = std::str::from_utf8(data).map_err(|_| err(0, "not UTF-8"))?;
        let mut lines = text.split('\n');
        let header = lines.next().ok_or(err(1, "empty"))?;
        if header.len() > MAX_LINE {
            return Err(err(1, "line too long"));
        }
        let mut fields = header.split(' ').filter(|f| !f.is_empty());
        let version = fields.next().ok_or(err(1, "no version"))?;
        let mut list = UidList {
            uidvalidity: 0,
            next_uid: 1,
            guid: String::new(),
            hdr_ext: Vec::new(),
            records: Vec::new(),
        };
        let v3 = match version {
            "3" => {
                for f in fields {
                    let (k, v) = if f.is_char_boundary(1) {
                        f.split_at(1)
                    } else {
                        ("", f)
                    };
                    match k {
                        "V" => list.uidvalidity = v.parse().map_err(|_| err(1, "bad V"))?,
                        "N" => list.next_uid = v.parse().map_err(|_| err(1, "bad N"))?,
                        "G" if valid_guid(v) => list.guid = v.to_ascii_lowercase(),
                        "G" => return Err(err(1, "bad G")),
                        _ => list.hdr_ext.push(f.to_string()),
                    }
                }
                true
            }
            "1" => {
                list.uidvalidity = fields
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or(err(1, "bad uidvalidity"))?;
                list.next_uid = fields
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or(err(1, "bad next uid"))?;
                false
            }
            _ => return Err(err(1, "unsupported version")),
        };
        if list.uidvalidity == 0 {
            return Err(err(1, "no uidvalidity"));
        }
        let mut prev = 0u32;
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            if line.is_empty() {
                continue;
            }
            if line.len() > MAX_LINE {
                return Err(err(n, "line too long"));
            }
            let digits = line.bytes().take_while(u8::is_ascii_digit).count();
            let uid: u32 = line[..digits].parse().map_err(|_| err(n, "bad uid"))?;
            if uid == 0 || uid == u32::MAX {
                return Err(err(n, "bad uid"));
            }
            if uid <= prev {
                return Err(err(n, "UIDs not ordered"));
            }
            prev = uid;
            let rest = line[digits..]
                .strip_prefix(' ')
                .ok_or(err(n, "no file name"))?;
            let rest = rest.trim_start_matches(' ');
            let (ext, base) = if v3 {
                let colon = rest
                    .find(':')
                    .ok_or(err(n, "no ':' before the file name"))?;
                let ext: Vec<String> = rest[..colon]
                    .split(' ')
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect();
                if ext.iter().any(|e| !e.as_bytes()[0].is_ascii_uppercase()) {
                    return Err(err(n, "bad extension field"));
                }
                (ext, &rest[colon + 1..])
            } else {
                (Vec::new(), rest)
            };
            let base = crate::name::base_of(base);
            if base.is_empty() || base.contains('/') || base.contains('\0') || base.contains('\r') {
                return Err(err(n, "bad file name"));
            }
            list.records.push(Record {
                uid,
                ext,
                base: base.to_string(),
            });
        }
        if list.next_uid <= prev {
            list.next_uid = prev + 1;
        }
        if list.guid.is_empty() {
            list.guid = new_guid();
        }
        Ok(list)
    }

    /// The file as Dovecot 2.3 writes it (maildir_uidlist_write_fd).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("3 V{} N{} G{}", self.uidvalidity, self.next_uid, self.guid);
        for e in &self.hdr_ext {
            out.push(' ');
            out.push_str(e);
        }
        out.push('\n');
        for r in &self.records {
            out.push_str(&r.uid.to_string());
            for e in &r.ext {
                out.push(' ');
                out.push_str(e);
            }
            out.push_str(" :");
            out.push_str(&r.base);
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Reads `dir/dovecot-uidlist`; `Ok(None)` if there is none. A broken
    /// file is an error the caller may answer by rebuilding (Dovecot then
    /// logs it and recreates the file, keeping no UIDs).
    pub fn read(dir: &Path) -> io::Result<Option<UidList>> {
        match fs::read(dir.join(FILE)) {
            Ok(b) => UidList::parse(&b)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `dir/dovecot-uidlist` through `dovecot-uidlist.tmp` and a
    /// rename, as Dovecot's maildir_uidlist_recreate; hold
    /// `dovecot-uidlist.lock` (a `DotLock`) while calling this.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(TMP);
        let r = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&self.to_bytes())?;
            f.sync_data()?;
            fs::rename(&tmp, dir.join(FILE))
        })();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    /// Record for file name base `base`.
    pub fn find(&self, base: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.base == base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOVECOT: &str = "3 V1700000000 N5 G0123456789abcdef0123456789abcdef\n\
1 W1260 S1234 :1700000001.M1P2.host,S=1234,W=1260\n\
3 :1700000002.M3P4.host\n";

    #[test]
    fn round_trips_dovecot_v3() {
        let l = UidList::parse(DOVECOT.as_bytes()).unwrap();
        assert_eq!((l.uidvalidity, l.next_uid), (1700000000, 5));
        assert_eq!(l.records.len(), 2);
        assert_eq!(l.records[0].ext_value(b'W'), Some("1260"));
        assert_eq!(l.records[1].base, "1700000002.M3P4.host");
        assert_eq!(String::from_utf8(l.to_bytes()).unwrap(), DOVECOT);
    }

    #[test]
    fn reads_v1_and_fixes_next_uid() {
        let l = UidList::parse(b"1 42 2\n1 a.b.c:2,S\n7 d.e.f\n").unwrap();
        assert_eq!((l.uidvalidity, l.next_uid), (42, 8));
        assert_eq!(l.records[0].base, "a.b.c");
        assert_eq!(l.guid.len(), 32);
    }

    #[test]
    fn refuses_broken_files() {
        for bad in [
            &b""[..],
            b"2 V1 N1\n",
            b"3 N1\n",
            b"3 V0 N1\n",
            b"3 V1 N1 Gxyz\n",
            b"3 V1 N9\n2 :a\n1 :b\n",
            b"3 V1 N9\n0 :a\n",
            b"3 V1 N9\n1 a\n",
            b"3 V1 N9\n1 :x/y\n",
            b"3 V1 N9\n1 w1 :x\n",
            b"3 V1 N9\n4294967295 :x\n",
            b"3 V1 N9\nx :x\n",
            b"3 V1 N9\n1 :\n",
            b"3 V\xff\n",
            "3 V1 N1 \u{e9}x\n1 \u{e9} :a\n".as_bytes(),
        ] {
            assert!(
                UidList::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn writes_through_tmp_and_rename() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(UidList::read(d.path()).unwrap(), None);
        let mut l = UidList::new(99);
        l.records.push(Record {
            uid: 1,
            ext: vec![],
            base: "x.y.z".into(),
        });
        l.next_uid = 2;
        l.write(d.path()).unwrap();
        assert!(!d.path().join(TMP).exists());
        assert_eq!(UidList::read(d.path()).unwrap(), Some(l));
        assert_ne!(new_guid(), new_guid());
    }
}
