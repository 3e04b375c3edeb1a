//! The system calls yubin makes that the standard library does not offer,
//! behind safe functions (rustix underneath, so no `unsafe` here). Nothing
//! else in the workspace should need a raw `libc` call for these.

use std::io;
use std::path::Path;

/// Bytes available to an unprivileged user on the file system holding
/// `path` (statvfs(2) `f_bavail * f_frsize`), as Postfix's fsspace() counts
/// them for queue_minfree. `None` when the file system cannot be asked.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The real user id of this process.
pub fn getuid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The effective user id of this process.
pub fn geteuid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    geteuid() == 0
}

/// Changes the owner of `path` without following a symbolic link at the
/// end (lchown(2)): handing queue and mailbox files to their owner must
/// never be redirected through a link someone planted. `None` leaves that
/// id unchanged (chown's -1).
pub fn lchown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        uid.map(rustix::fs::Uid::from_raw),
        gid.map(rustix::fs::Gid::from_raw),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_of_a_directory() {
        let d = tempfile::tempdir().unwrap();
        assert!(free_bytes(d.path()).unwrap() > 0);
        assert!(free_bytes(&d.path().join("missing")).is_none());
    }

    #[test]
    fn lchown_to_self_keeps_link_target() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let uid = geteuid();
        lchown(&link, Some(uid), None).unwrap();
        assert!(lchown(&d.path().join("missing"), Some(uid), None).is_err());
    }
}
