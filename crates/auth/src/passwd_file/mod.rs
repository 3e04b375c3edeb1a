//! Dovecot's passwd-file user database (doc.dovecot.org "Passwd-file"):
//!
//! ```text
//! user:password:uid:gid:(gecos):home:(shell):extra_fields
//! ```
//!
//! `#` starts a comment line; blank lines are skipped; every field but the
//! user may be empty or missing. Everything after the seventh colon is the
//! extra fields, space-separated `key=value` (so values may contain `:`, as in
//! `userdb_mail=maildir:~/Maildir`). User names are matched
//! case-insensitively. A password without `{SCHEME}` is CRYPT, as in Dovecot.

mod shared;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use shared::{SharedUserDb, UserSource};
pub use write::{replace, set_password};

/// Files larger than this are refused (bounded memory).
pub const MAX_FILE_SIZE: u64 = 64 << 20;

/// One user line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The name as written in the file.
    pub name: String,
    /// The stored password with its `{SCHEME}` prefix (may be empty).
    pub password: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<String>,
    /// Extra fields in order; a bare `key` has an empty value.
    pub extra: Vec<(String, String)>,
}

impl User {
    /// The scheme name shown by `yubin users` (`CRYPT` when none is written,
    /// `-` when the password is empty, the written name when unknown).
    pub fn scheme_name(&self) -> String {
        if self.password.is_empty() {
            return "-".into();
        }
        match crate::hash::Scheme::of(&self.password) {
            Ok(s) => s.name().to_string(),
            Err(_) => self
                .password
                .strip_prefix('{')
                .and_then(|r| r.split_once('}'))
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| "?".into()),
        }
    }
}

/// Why the database could not be read or written; names `file:line`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// A parsed passwd-file: users in file order, indexed by lower-cased name.
#[derive(Clone, Debug, Default)]
pub struct UserDb {
    users: Vec<User>,
    index: HashMap<String, usize>,
}

impl UserDb {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<UserDb, DbError> {
        let shown = path.display().to_string();
        let data = read_bounded(path)?;
        UserDb::parse(&data, &shown)
    }

    /// Parse passwd-file bytes; `name` is used in error messages.
    pub fn parse(data: &[u8], name: &str) -> Result<UserDb, DbError> {
        let mut db = UserDb::default();
        for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
            let lineno = i + 1;
            let err = |reason: &str| DbError::Parse {
                path: name.to_string(),
                line: lineno,
                reason: reason.to_string(),
            };
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let Ok(line) = std::str::from_utf8(raw) else {
                return Err(err("not valid UTF-8"));
            };
            if is_skipped(line) {
                continue;
            }
            let user = parse_line(line).map_err(err)?;
            let key = user.name.to_lowercase();
            if db.index.contains_key(&key) {
                return Err(err(&format!("user {} listed twice", user.name)));
            }
            db.index.insert(key, db.users.len());
            db.users.push(user);
        }
        Ok(db)
    }

    /// The user called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&User> {
        self.index
            .get(&name.to_lowercase())
            .map(|&i| &self.users[i])
    }

    /// Every user, in file order.
    pub fn list(&self) -> &[User] {
        &self.users
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Add or replace `user`'s password in the file at `path` (see [`set_password`]).
    pub fn set_password(path: &Path, user: &str, new_hash: &str) -> Result<(), DbError> {
        write::set_password(path, user, new_hash)
    }
}

impl crate::sasl::PasswordLookup for UserDb {
    fn password(&self, user: &str) -> Option<String> {
        self.get(user).map(|u| u.password.clone())
    }
}

/// Comment and blank lines (also Dovecot's "starts with ':'": no user).
pub(crate) fn is_skipped(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

fn parse_line(line: &str) -> Result<User, &'static str> {
    let mut f = line.splitn(8, ':');
    let name = f.next().unwrap_or("");
    if name.is_empty() {
        return Err("empty user name");
    }
    if name.trim() != name {
        return Err("user name has surrounding white space");
    }
    let password = f.next().unwrap_or("").to_string();
    let id = |s: Option<&str>, what| -> Result<Option<u32>, &'static str> {
        match s.unwrap_or("") {
            "" => Ok(None),
            v => v.parse().map(Some).map_err(|_| what),
        }
    };
    let uid = id(f.next(), "uid is not a number")?;
    let gid = id(f.next(), "gid is not a number")?;
    let _gecos = f.next();
    let home = f.next().filter(|h| !h.is_empty()).map(str::to_string);
    let _shell = f.next();
    let extra = f
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect();
    Ok(User {
        name: name.to_string(),
        password,
        uid,
        gid,
        home,
        extra,
    })
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, DbError> {
    use std::io::Read;
    let io = |e| DbError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut data = Vec::new();
    f.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > MAX_FILE_SIZE {
        return Err(DbError::Invalid {
            path: path.display().to_string(),
            reason: format!("larger than {MAX_FILE_SIZE} bytes"),
        });
    }
    Ok(data)
}

/// Where the user database lives: `smtpd_sasl_path` when it names a file
/// (contains `/`; relative to `config_dir`), else `CONFIG_DIR/users`.
/// Postfix's default `smtpd_sasl_path = smtpd` is a socket name, not a file.
pub fn users_path(config_dir: &Path, smtpd_sasl_path: &str) -> PathBuf {
    let v = smtpd_sasl_path.trim();
    if v.contains('/') {
        config_dir.join(v)
    } else {
        config_dir.join("users")
    }
}

#[cfg(test)]
mod tests;
