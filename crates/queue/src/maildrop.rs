//! The maildrop: where `yubin sendmail` leaves a message for the daemon's
//! pickup, so that local submission works while the server is down
//! (Postfix's `maildrop/` queue, written by postdrop(1) and read by
//! pickup(8)).
//!
//! A maildrop file is a queue file ([`QueueFile`]) named by a fresh queue
//! id. It is written under a hidden temporary name, fsynced and renamed, so
//! a reader never sees a partial file. The directory is world-writable and
//! sticky but not listable (mode 01733: Postfix's layout without the setgid
//! postdrop program), so the reader must distrust everything in it: [`take`]
//! refuses symbolic links, hard links, FIFOs, devices and oversized files,
//! and decodes strictly.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use crate::file::{Corrupt, QueueFile};
use crate::spool::Spool;

/// Name of the maildrop directory under `queue_directory`.
pub const DIR: &str = "maildrop";

/// Room for the envelope records on top of `message_size_limit`.
const ENVELOPE_ALLOWANCE: u64 = 64 * 1024;

/// The maildrop directory of a spool.
pub fn dir(spool: &Spool) -> PathBuf {
    spool.root().join(DIR)
}

/// Gives `maildrop/` mode 01733: every local user may drop a file (write,
/// search), nobody but its owner may remove or rename it (sticky), and
/// nobody but the owner may list it. Called at server start.
pub fn prepare_dir(spool: &Spool) -> io::Result<()> {
    let d = dir(spool);
    std::fs::create_dir_all(&d)?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1733))
}

/// Writes `q` to `maildrop/ID` with a new queue id (set into `q.id`), the
/// way postdrop(1) does: temporary name, write, fsync, rename, mode 0644 so
/// that the daemon's unprivileged user can read it. Returns the id.
pub fn submit(spool: &Spool, q: &mut QueueFile) -> io::Result<String> {
    let d = dir(spool);
    // A few tries: a leftover file of an earlier run could have our name.
    let mut last = io::Error::other("no queue id");
    for _ in 0..8 {
        let id = crate::id::short();
        q.id = id.clone();
        let tmp = d.join(format!(".{id}.{}", std::process::id()));
        let fin = d.join(&id);
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                last = e;
                continue;
            }
            Err(e) => return Err(e),
        };
        let written = f
            .write_all(&q.encode())
            .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(0o644)))
            .and_then(|()| f.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        drop(f);
        if fin.symlink_metadata().is_ok() {
            let _ = std::fs::remove_file(&tmp);
            last = io::Error::new(io::ErrorKind::AlreadyExists, "queue id in use");
            continue;
        }
        if let Err(e) = std::fs::rename(&tmp, &fin) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // The directory fsync needs read access to it, which an
        // unprivileged submitter lacks in a 01733 directory: best effort.
        if let Ok(df) = File::open(&d) {
            let _ = df.sync_all();
        }
        return Ok(id);
    }
    Err(last)
}

/// A message taken from the maildrop.
#[derive(Debug)]
pub struct Dropped {
    pub file: QueueFile,
    /// Owner of the maildrop file: the user who submitted it.
    pub uid: u32,
    /// Size of the maildrop file in bytes.
    pub size: u64,
}

/// Why a maildrop file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PickupError {
    /// The file disappeared (taken by another reader, or removed).
    #[error("file is gone")]
    Gone,
    /// The file must not be read: it is moved aside (corrupt/) with this
    /// reason in the log.
    #[error("{0}")]
    Refused(String),
    /// A temporary problem reading it: try again later.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens and decodes `maildrop/NAME` without trusting it: no symbolic links
/// (O_NOFOLLOW), no FIFOs or devices (O_NONBLOCK, then a regular-file
/// check on the open descriptor), no hard links (nlink must be 1: a local
/// user must not make the daemon read a file they linked in), at most
/// `max_size` + 64 KiB, strict [`QueueFile::decode`]. Removes nothing: the
/// caller removes the file once the message is committed to the queue.
pub fn take(spool: &Spool, name: &str, max_size: u64) -> Result<Dropped, PickupError> {
    if !crate::id::is_valid(name) {
        return Err(PickupError::Refused(format!("bad file name {name:?}")));
    }
    let path = dir(spool).join(name);
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(PickupError::Gone),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(PickupError::Refused("symbolic link".into()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(PickupError::Refused("not a regular file".into()))
        }
        Err(e) => return Err(PickupError::Io(e)),
    };
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Err(PickupError::Refused("not a regular file".into()));
    }
    if meta.nlink() != 1 {
        return Err(PickupError::Refused(format!(
            "{} hard links (must be 1)",
            meta.nlink()
        )));
    }
    let limit = max_size.saturating_add(ENVELOPE_ALLOWANCE);
    if meta.len() > limit {
        return Err(PickupError::Refused(format!(
            "size {} exceeds message_size_limit {max_size} plus envelope",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(PickupError::Refused(
            "file grew beyond the size limit".into(),
        ));
    }
    let file = QueueFile::decode(&bytes).map_err(|Corrupt(why)| PickupError::Refused(why))?;
    Ok(Dropped {
        file,
        uid: meta.uid(),
        size: bytes.len() as u64,
    })
}

/// Names in the maildrop that look like submissions (hidden temporary
/// names are skipped).
pub fn list(spool: &Spool) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir(spool))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Just enough RFC 5322 header handling for sendmail and pickup: find a
/// field, unfold it, drop one. Bytes, not text: a message may hold 8-bit
/// header values.
pub mod header {
    /// Splits a message into its header section (with the line end of the last
    /// header) and the rest (the empty line and the body). A message without
    /// an empty line is all header.
    pub fn split_message(m: &[u8]) -> (&[u8], &[u8]) {
        if m.first() == Some(&b'\n') {
            return (&[], m);
        }
        match m.windows(2).position(|w| w == b"\n\n") {
            Some(p) => m.split_at(p + 1),
            None => (m, &[]),
        }
    }

    /// Header fields as (name, whole field including continuation lines).
    fn fields(head: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut out: Vec<(&[u8], &[u8])> = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < head.len() {
            let end = head[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(head.len(), |p| i + p + 1);
            let line = &head[i..end];
            let continuation = matches!(line.first(), Some(b' ' | b'\t'));
            if !continuation && i > start {
                out.push(field(&head[start..i]));
                start = i;
            }
            i = end;
        }
        if start < head.len() {
            out.push(field(&head[start..]));
        }
        out
    }

    fn field(f: &[u8]) -> (&[u8], &[u8]) {
        let name = f
            .iter()
            .position(|&b| b == b':')
            .map_or(&f[..0], |p| f[..p].trim_ascii());
        (name, f)
    }

    /// A header's value, unfolded and trimmed (the first occurrence).
    pub fn header_value(head: &[u8], name: &str) -> Option<String> {
        fields(head)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(n, f)| {
                let v = String::from_utf8_lossy(&f[n.len() + 1..]);
                v.split(['\r', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
    }

    /// The header section without any `name:` field.
    pub fn without_header(head: &[u8], name: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(head.len());
        for (n, f) in fields(head) {
            if !n.eq_ignore_ascii_case(name.as_bytes()) {
                out.extend_from_slice(f);
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn headers_are_found_unfolded_and_removed() {
            let m = b"X-Yubin-Submitter: uid=0 (root)\n via cron\nSubject: a\n\tb\n\nX-Yubin-Submitter: body\n";
            let (head, body) = split_message(m);
            assert_eq!(body, b"\nX-Yubin-Submitter: body\n");
            assert_eq!(
                header_value(head, "x-yubin-submitter").as_deref(),
                Some("uid=0 (root) via cron")
            );
            assert_eq!(header_value(head, "Subject").as_deref(), Some("a b"));
            assert_eq!(header_value(head, "Date"), None);
            assert_eq!(
                without_header(head, "X-Yubin-Submitter"),
                b"Subject: a\n\tb\n"
            );
            let (h, b) = split_message(b"\nbody only\n");
            assert!(h.is_empty() && b == b"\nbody only\n");
        }
    }
}

/// The header `yubin sendmail` prepends to say who submitted a message:
/// `X-Yubin-Submitter: uid=0 (root) via /usr/bin/python3 /usr/sbin/denyhosts`.
pub const SUBMITTER_HEADER: &str = "X-Yubin-Submitter";

/// The login name of `uid` (getpwuid_r(3)), if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    yubin_sys::user_by_uid(uid).map(|u| u.name)
}

/// Text made safe for one header line or log line: control characters
/// dropped, at most `max` characters.
pub fn sanitize(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::QueuedRecipient;

    fn msg() -> QueueFile {
        QueueFile {
            sender: "root".into(),
            client: "local".into(),
            protocol: "local".into(),
            recipients: vec![QueuedRecipient {
                address: "root@localhost".into(),
                notify: None,
                orcpt: None,
            }],
            message: b"Subject: x\n\nbody\n".to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn submit_then_take() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        prepare_dir(&s).unwrap();
        let mode = std::fs::metadata(dir(&s)).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1733);
        let mut q = msg();
        let id = submit(&s, &mut q).unwrap();
        assert_eq!(q.id, id);
        assert_eq!(list(&s).unwrap(), std::slice::from_ref(&id));
        let meta = std::fs::metadata(dir(&s).join(&id)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        let got = take(&s, &id, 10_240_000).unwrap();
        assert_eq!(got.file, q);
        assert_eq!(got.uid, yubin_sys::geteuid());
        assert!(dir(&s).join(&id).exists(), "take removes nothing");
    }

    #[test]
    fn refuses_links_fifos_big_and_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path()).unwrap();
        let md = dir(&s);
        let secret = d.path().join("secret");
        std::fs::write(&secret, msg().encode()).unwrap();
        std::os::unix::fs::symlink(&secret, md.join("SYM")).unwrap();
        std::fs::hard_link(&secret, md.join("HARD")).unwrap();
        let fifo = std::ffi::CString::new(md.join("FIFO").to_str().unwrap()).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        std::fs::write(md.join("BIG"), vec![b'x'; 200_000]).unwrap();
        std::fs::write(md.join("BAD"), b"not a queue file\n\n").unwrap();
        let refused = |n: &str| match take(&s, n, 1000) {
            Err(PickupError::Refused(why)) => why,
            other => panic!("{n}: {other:?}"),
        };
        assert!(refused("SYM").contains("symbolic"));
        assert!(refused("HARD").contains("hard link"));
        assert!(refused("FIFO").contains("regular"));
        assert!(refused("BIG").contains("size"));
        assert!(refused("BAD").contains("magic"));
        assert!(refused("..").contains("name"));
        assert!(matches!(take(&s, "NONE", 1000), Err(PickupError::Gone)));
    }
}
