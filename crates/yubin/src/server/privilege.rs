//! Dropping root after the listeners are bound (master(8) runs smtpd and
//! the delivery agents as mail_owner): the queue and the log are handed to
//! mail_owner first so the server can still write them.

use std::ffi::CString;
use std::path::Path;

use anyhow::{anyhow, bail};
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

/// When running as root, becomes `mail_owner`. `owned` paths (the queue)
/// are given to mail_owner first. A mail_owner of root is refused unless
/// it is the embedded default's own user.
pub fn drop_to(cfg: &Config, owned: &[&Path]) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
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
    let cname = CString::new(name).map_err(|_| anyhow!("bad mail_owner"))?;
    // SAFETY: plain system calls with valid arguments; order: groups, gid, uid.
    unsafe {
        if libc::initgroups(cname.as_ptr(), user.gid as libc::gid_t) != 0 {
            bail!("initgroups({name}): {}", std::io::Error::last_os_error());
        }
        if libc::setgid(user.gid) != 0 {
            bail!("setgid({}): {}", user.gid, std::io::Error::last_os_error());
        }
        if libc::setuid(user.uid) != 0 {
            bail!("setuid({}): {}", user.uid, std::io::Error::last_os_error());
        }
    }
    Ok(())
}
