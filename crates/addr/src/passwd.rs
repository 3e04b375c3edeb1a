//! The system user database (getpwnam(3)), which Postfix's default
//! `local_recipient_maps = proxy:unix:passwd.byname $alias_maps` consults.

use std::ffi::{CStr, CString};

/// A local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Looks a user up by name (case-sensitive, as the system does; Postfix
/// folds the local part to lower case before asking).
pub fn lookup(name: &str) -> Option<User> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16384];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf outlives the use of pwd's strings.
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
    // SAFETY: on success the string fields point into buf and are NUL-terminated.
    let home = unsafe { CStr::from_ptr(pwd.pw_dir) }
        .to_string_lossy()
        .into_owned();
    Some(User {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_exists_and_junk_does_not() {
        assert_eq!(super::lookup("root").unwrap().uid, 0);
        assert!(super::lookup("no-such-user-yubin").is_none());
        assert!(super::lookup("nul\0byte").is_none());
    }
}
