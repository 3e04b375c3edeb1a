//! Dropping root after the listeners are bound (master(8) runs smtpd and
//! the delivery agents as mail_owner): the queue and the log are handed to
//! mail_owner first so the server can still write them, and every path the
//! server needs is checked as mail_owner, so that a refusal names the path,
//! the user and the fix instead of a bare "Permission denied".

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use yubin_conf::Config;

/// Hands the queue to mail_owner. Never follows a symbolic link (lchown,
/// symlink_metadata): a local user who plants `maildrop/x -> /etc/shadow`
/// must not get root to give that file away. `maildrop/` itself keeps its
/// owner-less mode (01733) and its files keep their submitters' ownership,
/// which pickup reports as the submitting uid.
fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return;
    };
    let _ = std::os::unix::fs::lchown(p, Some(uid), Some(gid));
    if !meta.is_dir() {
        return;
    }
    let Ok(rd) = std::fs::read_dir(p) else { return };
    for e in rd.flatten() {
        let path = e.path();
        if path.file_name().is_some_and(|n| n == "maildrop") {
            let _ = std::os::unix::fs::lchown(&path, Some(uid), Some(gid));
            continue;
        }
        chown_tree(&path, uid, gid);
    }
}

/// The first directory on the way to `p` (itself included) that the
/// current user cannot search (access(2) X_OK, which counts supplementary
/// groups and ACLs as the kernel does). A relative `p` is checked from the
/// working directory, which needs no search permission on its ancestors.
fn unreachable(p: &Path) -> Option<PathBuf> {
    let mut walked = PathBuf::new();
    for c in p.components() {
        walked.push(c);
        if let Err(e) = yubin_sys::can_search(&walked) {
            // A missing last component is created later (by the server, as
            // mail_owner, under a directory it can search): not a refusal.
            let missing = e.kind() == std::io::ErrorKind::NotFound;
            return (!missing).then_some(walked);
        }
    }
    None
}

/// The refusal a Postfix admin can act on: which path, for which user, why
/// (mode and owner of the directory that blocks), and three ways out.
fn reach_error(what: &str, path: &Path, blocker: &Path, user: &str, cfg: &Config) -> anyhow::Error {
    let why = match std::fs::metadata(blocker) {
        Ok(m) => format!(
            "{} has mode {:04o}, owner uid {}, group gid {}",
            blocker.display(),
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        ),
        Err(e) => format!("{}: {e}", blocker.display()),
    };
    anyhow!(
        "{what} {} is not reachable by mail_owner {user}, the user the server runs as after binding its ports: {why}. \
         Fix one of: let {user} through (chmod o+x {}, or a group {user} is in), \
         move the directory where {user} can reach it, \
         or set mail_owner in {} to a user that can reach it (`yubin -c DIR postconf -e mail_owner=USER`)",
        path.display(),
        blocker.display(),
        cfg.main_cf().display()
    )
}

/// When running as root, becomes `mail_owner`. `owned` paths (the queue)
/// are given to mail_owner first. A mail_owner of root is refused unless
/// it is the embedded default's own user.
pub fn drop_to(cfg: &Config, owned: &[&Path]) -> anyhow::Result<()> {
    if !yubin_sys::is_root() {
        return Ok(());
    }
    let name = cfg.get("mail_owner");
    let user = yubin_addr::passwd::lookup(name).ok_or_else(|| {
        anyhow!("{}: mail_owner = {name}: no such user (create it, or set mail_owner to the user that owns virtual_mailbox_base)", cfg.origin_text("mail_owner"))
    })?;
    if user.uid == 0 {
        eprintln!("yubin: warning: mail_owner is root: privileges are not dropped");
        return Ok(());
    }
    for p in owned {
        chown_tree(p, user.uid, user.gid);
    }
    let log = cfg.get("maillog_file");
    if !log.is_empty() && log != "/dev/stderr" {
        let lp = Path::new(log);
        if !lp.exists() {
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(lp);
        }
        let _ = std::os::unix::fs::chown(lp, Some(user.uid), Some(user.gid));
    }
    yubin_sys::become_user(name, user.uid, user.gid).map_err(|e| {
        anyhow!(
            "switching to mail_owner {name} (uid {}, gid {}): {e}",
            user.uid,
            user.gid
        )
    })?;
    // Checked as mail_owner, after the drop: exactly the access the server
    // will have. The configuration directory is read again on reload.
    let mut needed: Vec<(&str, PathBuf)> =
        vec![("configuration directory", cfg.dir().to_path_buf())];
    needed.extend(owned.iter().map(|p| ("queue_directory", p.to_path_buf())));
    if !log.is_empty() && log != "/dev/stderr" {
        if let Some(parent) = Path::new(log).parent() {
            needed.push(("maillog_file's directory", parent.to_path_buf()));
        }
    }
    let base = cfg.get("virtual_mailbox_base");
    if !base.is_empty() {
        needed.push(("virtual_mailbox_base", PathBuf::from(base)));
    }
    for (what, path) in needed {
        if let Some(blocker) = unreachable(&path) {
            return Err(reach_error(what, &path, &blocker, name, cfg));
        }
    }
    Ok(())
}
