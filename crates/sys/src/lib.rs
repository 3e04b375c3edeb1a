//! The system calls yubin makes that the standard library does not offer,
//! behind safe functions: rustix where it has the call, libc where it does
//! not (the password database, local time, interface and service names).
//! Every `unsafe` system call of the MTA's crates lives here, each with the
//! reason it is sound; callers never touch libc. (The guard's log-time
//! arithmetic, mktime/strftime, and its reverse lookups keep their own
//! blocks in crates/guard, each with its SAFETY note.)

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::net::IpAddr;
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

/// The parent's process id (the program that ran sendmail).
pub fn getppid() -> u32 {
    rustix::process::getppid()
        .map(|p| p.as_raw_nonzero().get() as u32)
        .unwrap_or(0)
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

/// An exclusive flock(2) on an open file, released when the file is
/// closed: mbox delivery waits for it (`wait`), the queue's instance lock
/// does not (a second `yubin serve` must fail at once).
pub fn lock_exclusive(f: &File, wait: bool) -> io::Result<()> {
    let op = if wait {
        rustix::fs::FlockOperation::LockExclusive
    } else {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    };
    rustix::fs::flock(f, op).map_err(io::Error::from)
}

/// The host name (uname(2) nodename), lower-cased.
pub fn hostname() -> String {
    let u = rustix::system::uname();
    u.nodename().to_string_lossy().to_ascii_lowercase()
}

/// A local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Copies a passwd entry that getpw*_r filled into `buf`.
///
/// # Safety
/// `pwd` must have been filled by a successful getpwnam_r/getpwuid_r call
/// whose buffer is still alive, so that its string fields are valid
/// NUL-terminated strings (or null).
unsafe fn user_from(pwd: &libc::passwd) -> User {
    let text = |p: *const libc::c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: per this function's contract, p is NUL-terminated.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    User {
        name: text(pwd.pw_name),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: text(pwd.pw_dir),
    }
}

/// Looks an account up by name (getpwnam_r(3); case-sensitive, as the
/// system does).
pub fn user_by_name(name: &str) -> Option<User> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: an all-zero passwd is a valid out-parameter (plain data).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is the
    // one passed; result is checked before pwd is read.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: the call succeeded and buf is alive.
    Some(unsafe { user_from(&pwd) })
}

/// Looks an account up by uid (getpwuid_r(3)).
pub fn user_by_uid(uid: u32) -> Option<User> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: an all-zero passwd is a valid out-parameter (plain data).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as in user_by_name.
    let rc = unsafe {
        libc::getpwuid_r(
            uid as libc::uid_t,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: the call succeeded and buf is alive.
    Some(unsafe { user_from(&pwd) })
}

/// The canonical name the resolver gives for `host` (getaddrinfo(3) with
/// AI_CANONNAME), as Perl's `gethostbyname($h)[0]` that swaks uses.
pub fn canonical_name(host: &str) -> Option<String> {
    let c_host = CString::new(host).ok()?;
    // SAFETY: hints is zeroed (valid plain data) then filled; getaddrinfo's
    // result is freed exactly once below, after ai_canonname was copied.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) != 0 {
            return None;
        }
        let name = if !res.is_null() && !(*res).ai_canonname.is_null() {
            Some(
                CStr::from_ptr((*res).ai_canonname)
                    .to_string_lossy()
                    .into_owned(),
            )
        } else {
            None
        };
        libc::freeaddrinfo(res);
        name.filter(|n| !n.is_empty())
    }
}

/// Every address of every interface (getifaddrs(3)): Postfix's
/// `inet_interfaces = all` and `$myhostname`-style "is this me" checks.
pub fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list that is walked read-only, each
    // sockaddr read as the type its family names, and freed once.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut p = ifap;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match (*a).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(u32::from_be(sin.sin_addr.s_addr).into()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(sin6.sin6_addr.s6_addr.into()));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

/// The TCP port of a service name in /etc/services (getservbyname(3)).
pub fn service_port(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    // SAFETY: getservbyname returns static storage or null; s_port is read
    // at once, before any other call could overwrite it.
    unsafe {
        let ent = libc::getservbyname(c.as_ptr(), c"tcp".as_ptr());
        if ent.is_null() {
            None
        } else {
            Some(u16::from_be((*ent).s_port as u16))
        }
    }
}

/// Broken-down local time (localtime_r(3): TZ and /etc/localtime, the
/// source Postfix and syslog use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 0 = January.
    pub month: usize,
    pub day: i32,
    pub hour: i32,
    pub min: i32,
    pub sec: i32,
    /// 0 = Sunday.
    pub weekday: usize,
    /// Seconds east of UTC.
    pub gmtoff: i64,
    /// The zone's abbreviation (`JST`, `UTC`).
    pub zone: String,
}

/// `secs` (Unix time) in local time; `None` if the C library cannot
/// represent it.
pub fn local_time(secs: i64) -> Option<LocalTime> {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: tm is plain data, so all-zero is valid; localtime_r fills it
    // and returns null on failure, checked before use.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    let zone = if tm.tm_zone.is_null() {
        "UTC".to_string()
    } else {
        // SAFETY: tm_zone points to a static NUL-terminated string.
        unsafe { CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Some(LocalTime {
        year: tm.tm_year + 1900,
        month: tm.tm_mon.clamp(0, 11) as usize,
        day: tm.tm_mday,
        hour: tm.tm_hour,
        min: tm.tm_min,
        sec: tm.tm_sec,
        weekday: tm.tm_wday.clamp(0, 6) as usize,
        gmtoff: tm.tm_gmtoff,
        zone,
    })
}

/// Whether standard input is a terminal.
pub fn stdin_is_tty() -> bool {
    rustix::termios::isatty(rustix::stdio::stdin())
}

/// Turns terminal echo off on standard input while alive (for password
/// prompts), restoring it on drop; does nothing when stdin is no terminal.
pub struct NoEcho {
    saved: Option<rustix::termios::Termios>,
}

impl NoEcho {
    pub fn new() -> NoEcho {
        let fd = rustix::stdio::stdin();
        if !rustix::termios::isatty(fd) {
            return NoEcho { saved: None };
        }
        let Ok(saved) = rustix::termios::tcgetattr(fd) else {
            return NoEcho { saved: None };
        };
        let mut t = saved.clone();
        t.local_modes &= !rustix::termios::LocalModes::ECHO;
        t.local_modes |= rustix::termios::LocalModes::ECHONL;
        if rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &t).is_err() {
            return NoEcho { saved: None };
        }
        NoEcho { saved: Some(saved) }
    }
}

impl Default for NoEcho {
    fn default() -> Self {
        NoEcho::new()
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

/// Restores SIGPIPE's default action (Rust ignores it), so that a command
/// piped into `head` ends quietly as Postfix's commands do.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL at start-up, before
    // any thread exists, has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The effective group id of this process.
pub fn getegid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// Whether this process may search (execute) `path` (access(2) X_OK):
/// how a directory that blocks the unprivileged user is found by name.
pub fn can_search(path: &Path) -> io::Result<()> {
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK).map_err(io::Error::from)
}

/// Becomes `user` for good: its supplementary groups (initgroups(3)), then
/// its group, then its user id, in that order (after setuid nothing else
/// could be changed). Postfix's master drops to mail_owner the same way.
pub fn become_user(name: &str, uid: u32, gid: u32) -> io::Result<()> {
    let cname = CString::new(name).map_err(|_| io::Error::other("NUL in user name"))?;
    // SAFETY: initgroups reads a valid NUL-terminated name; setgid and
    // setuid take plain integers. Errors are checked after each call.
    unsafe {
        if libc::initgroups(cname.as_ptr(), gid as libc::gid_t) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setgid(gid as libc::gid_t) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setuid(uid as libc::uid_t) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Becomes `uid`/`gid` with exactly one group (no initgroups: the
/// privilege-separated helper child runs it and must not read the group
/// database after fork).
pub fn become_ids(uid: u32, gid: u32) -> io::Result<()> {
    let g = gid as libc::gid_t;
    // SAFETY: setgroups reads one gid from a valid pointer; setgid and
    // setuid take plain integers; each result is checked.
    unsafe {
        if libc::setgroups(1, &g) != 0
            || libc::setgid(g) != 0
            || libc::setuid(uid as libc::uid_t) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What [`fork`] returned to this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(i32),
}

/// fork(2).
///
/// # Safety
/// The caller must be single-threaded at the time of the call, or the
/// child must only call async-signal-safe functions before it execs or
/// exits: other threads' locks are copied held into the child.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the contract above.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Ends this process at once with `code`, without running destructors or
/// atexit handlers (_exit(2)): how a forked child leaves, so that the
/// parent's buffers and files are not flushed or closed twice.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Waits for the child `pid` to end (waitpid(2)); its exit status, if any.
pub fn wait_child(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: status is a valid out-parameter; pid is our own child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    (rc == pid && libc::WIFEXITED(status)).then(|| libc::WEXITSTATUS(status))
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

    #[test]
    fn users() {
        let root = user_by_name("root").unwrap();
        assert_eq!((root.uid, root.name.as_str()), (0, "root"));
        assert_eq!(user_by_uid(0).unwrap().name, "root");
        assert!(user_by_name("no-such-user-yubin").is_none());
        assert!(user_by_name("nul\0byte").is_none());
    }

    #[test]
    fn clock_hosts_and_services() {
        let t = local_time(0).unwrap();
        assert!(t.year == 1970 || t.year == 1969);
        assert!(!hostname().is_empty());
        assert!(interface_addresses().iter().any(|a| a.is_loopback()));
        assert_eq!(service_port("smtp"), Some(25));
        assert_eq!(service_port("no-such-service-yubin"), None);
    }

    #[test]
    fn a_forked_child_exits_with_its_code() {
        // SAFETY: the child calls only _exit.
        match unsafe { fork() }.unwrap() {
            Forked::Child => exit_now(7),
            Forked::Parent(pid) => assert_eq!(wait_child(pid), Some(7)),
        }
        assert!(can_search(Path::new("/")).is_ok());
    }

    #[test]
    fn locks_exclude_each_other() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lock");
        let a = File::create(&p).unwrap();
        lock_exclusive(&a, false).unwrap();
        let b = File::open(&p).unwrap();
        assert!(lock_exclusive(&b, false).is_err());
        drop(a);
        lock_exclusive(&b, false).unwrap();
    }
}
