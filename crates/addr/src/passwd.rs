//! The system user database (getpwnam(3)), which Postfix's default
//! `local_recipient_maps = proxy:unix:passwd.byname $alias_maps` consults.

pub use yubin_sys::User;

/// Looks a user up by name (case-sensitive, as the system does; Postfix
/// folds the local part to lower case before asking).
pub fn lookup(name: &str) -> Option<User> {
    yubin_sys::user_by_name(name)
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
