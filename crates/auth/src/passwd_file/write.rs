//! Adding or replacing one user's password in a passwd-file, atomically:
//! the new content goes to a temporary file in the same directory, which is
//! fsynced and renamed over the original (then the directory is fsynced).
//! Every other byte of the file — other lines, comments, the user's other
//! fields — is kept as it was.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{is_skipped, DbError, MAX_FILE_SIZE};

fn invalid(path: &Path, reason: impl Into<String>) -> DbError {
    DbError::Invalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Add `user` with `new_hash` (a `{SCHEME}...` value), or replace the password
/// field of its existing line (matched case-insensitively).
/// A missing file is created (mode 0600); an existing one keeps its mode and,
/// when permitted, its owner and group.
pub fn set_password(path: &Path, user: &str, new_hash: &str) -> Result<(), DbError> {
    if user.is_empty() || user.contains([':', '\n', '\r']) || user.trim() != user {
        return Err(invalid(path, format!("invalid user name {user:?}")));
    }
    if user.starts_with('#') {
        return Err(invalid(path, "user name may not start with '#'"));
    }
    if new_hash.contains([':', '\n', '\r']) {
        return Err(invalid(
            path,
            "password hash may not contain ':' or a line break",
        ));
    }
    let io = |e| DbError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let (old, meta) = match fs::read(path) {
        Ok(d) => (d, Some(fs::metadata(path).map_err(io)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) => return Err(io(e)),
    };
    if old.len() as u64 > MAX_FILE_SIZE {
        return Err(invalid(path, "file too large"));
    }
    let new = replace(&old, user, new_hash);
    let mode = meta
        .as_ref()
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&new)?;
        if let Some(m) = &meta {
            // Only root can give a file away; failing that, keep ours.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// The file content with `user`'s password field set to `hash` (the line
/// added at the end when the user is new). Pure; used by [`set_password`].
pub fn replace(old: &[u8], user: &str, hash: &str) -> Vec<u8> {
    let want = user.to_lowercase();
    let mut start = 0;
    while start < old.len() {
        let end = old[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| start + p)
            .unwrap_or(old.len());
        let mut line = &old[start..end];
        if line.ends_with(b"\r") {
            line = &line[..line.len() - 1];
        }
        let text = String::from_utf8_lossy(line);
        if !is_skipped(&text) {
            let name_end = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            let name = String::from_utf8_lossy(&line[..name_end]);
            if name.to_lowercase() == want {
                let mut out = Vec::with_capacity(old.len() + hash.len());
                let abs_name_end = start + name_end;
                if name_end == line.len() {
                    // "user" alone: add the password field.
                    out.extend_from_slice(&old[..abs_name_end]);
                    out.push(b':');
                    out.extend_from_slice(hash.as_bytes());
                    out.extend_from_slice(&old[abs_name_end..]);
                } else {
                    let pw_start = name_end + 1;
                    let pw_end = line[pw_start..]
                        .iter()
                        .position(|&b| b == b':')
                        .map(|p| pw_start + p)
                        .unwrap_or(line.len());
                    out.extend_from_slice(&old[..start + pw_start]);
                    out.extend_from_slice(hash.as_bytes());
                    out.extend_from_slice(&old[start + pw_end..]);
                }
                return out;
            }
        }
        start = end + 1;
    }
    let mut out = old.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("{user}:{hash}::::::\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passwd_file::UserDb;

    const FILE: &str = "# comment: keep me\r\nuser@ex.org:{PLAIN}old:1000:1000::/home/u::userdb_mail=maildir:~/M\n\nbare\nlast:{PLAIN}x";

    #[test]
    fn replaces_only_the_password_field() {
        let out = replace(FILE.as_bytes(), "USER@ex.org", "{PLAIN}new");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            FILE.replace("{PLAIN}old", "{PLAIN}new")
        );
        let out = replace(FILE.as_bytes(), "bare", "{PLAIN}b");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            FILE.replace("\nbare\n", "\nbare:{PLAIN}b\n")
        );
        let out = replace(FILE.as_bytes(), "last", "{PLAIN}y");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            FILE.replace("{PLAIN}x", "{PLAIN}y")
        );
    }

    #[test]
    fn appends_new_user() {
        let out = replace(FILE.as_bytes(), "new@ex.org", "{PLAIN}n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{FILE}\nnew@ex.org:{{PLAIN}}n::::::\n")
        );
        assert_eq!(replace(b"", "a", "{PLAIN}b"), b"a:{PLAIN}b::::::\n");
        // A commented-out user is not matched.
        let out = replace(b"#a:{PLAIN}x\n", "#a", "h");
        assert!(out.ends_with(b"#a:h::::::\n"));
    }

    #[test]
    fn on_disk_keeps_mode_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        fs::write(&p, FILE).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        set_password(&p, "user@ex.org", "{PLAIN}new").unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            FILE.replace("{PLAIN}old", "{PLAIN}new")
        );
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let fresh = dir.path().join("fresh");
        UserDb::set_password(&fresh, "a@b", "{PLAIN}c").unwrap();
        assert_eq!(
            UserDb::load(&fresh).unwrap().get("A@B").unwrap().password,
            "{PLAIN}c"
        );
        assert_eq!(
            fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 2);
    }

    #[test]
    fn refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        assert!(set_password(&p, "a:b", "x").is_err());
        assert!(set_password(&p, "", "x").is_err());
        assert!(set_password(&p, "a\nb", "x").is_err());
        assert!(set_password(&p, "a", "x:y").is_err());
        assert!(set_password(&p, "#a", "x").is_err());
        assert!(!p.exists());
    }
}
