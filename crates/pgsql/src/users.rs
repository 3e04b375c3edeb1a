//! Users in PostgreSQL, the way Dovecot's `passdb sql` / `userdb sql` read
//! them (doc.dovecot.org "SQL"), with the passwd-file's fields: user name,
//! password hash, uid, gid, home, and extra fields such as the quota rule.
//!
//! The configuration file has Dovecot's dovecot-sql.conf.ext names:
//!
//! ```text
//! connect = host=127.0.0.1 port=5432 dbname=mail user=mail password=secret
//! password_query = SELECT username AS user, password FROM users WHERE username = '%u'
//! user_query = SELECT home, uid, gid, 'maildir:~/Maildir' AS mail FROM users WHERE username = '%u'
//! ```
//!
//! (`hosts`/`user`/`password`/`dbname` as in pgsql_table(5) work too.)
//! `%u` is the whole user name, `%n` its local part, `%d` its domain. Column
//! names follow Dovecot: `user`, `password`, and for the user: `uid`, `gid`,
//! `home`, `quota_rule`, `mail`, ... (also with a `userdb_` prefix in
//! `password_query`, Dovecot's prefetch). yubin adds, for `yubin passwd`:
//!
//! ```text
//! password_update_query = UPDATE users SET password = '%w' WHERE username = '%u'
//! user_insert_query = INSERT INTO users (username, password) VALUES ('%u', '%w')
//! ```
//!
//! where `%w` is the new password hash (`{SCHEME}...`). As for tables, every
//! value reaches the server only as a bind parameter.

use std::path::Path;
use std::time::Duration;

use crate::config::{parse_host, Host};
use crate::pool::{ConnSettings, Pool};
use crate::template::{Dialect, Query};
use crate::PgError;

/// One user as the queries return it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqlUser {
    pub name: String,
    pub password: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<String>,
    /// Every other column, Dovecot-style `userdb_` name (`userdb_quota_rule`,
    /// `userdb_mail`), as the passwd-file's extra fields.
    pub extra: Vec<(String, String)>,
}

pub struct SqlUsers {
    password_query: Query,
    user_query: Option<Query>,
    update_query: Option<Query>,
    insert_query: Option<Query>,
    pool: Pool,
    file: String,
}

impl SqlUsers {
    pub fn open(file: &Path) -> Result<SqlUsers, PgError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| PgError::Config(format!("{}: {e}", file.display())))?;
        SqlUsers::parse(&text, &file.display().to_string())
            .map_err(|e| PgError::Config(format!("{}: {e}", file.display())))
    }

    pub fn parse(text: &str, name: &str) -> Result<SqlUsers, PgError> {
        let mut get = std::collections::HashMap::new();
        for (_, k, v) in crate::config::pairs(text)? {
            get.insert(k, v);
        }
        let val = |n: &str| get.get(n).map(String::as_str);
        if let Some(d) = val("driver") {
            if d != "pgsql" {
                return Err(PgError::Config(format!(
                    "driver = {d}: yubin speaks pgsql only"
                )));
            }
        }
        let hosts = match (val("connect"), val("hosts")) {
            (Some(c), _) => vec![Host::ConnString(c.to_string())],
            (None, Some(h)) => h
                .split([',', ' ', '\t'])
                .filter(|s| !s.is_empty())
                .map(parse_host)
                .collect::<Result<Vec<_>, _>>()?,
            (None, None) => {
                return Err(PgError::Config(
                    "connect: no database given (connect = host=... dbname=... user=...)".into(),
                ))
            }
        };
        let q = |n: &str| -> Result<Option<Query>, PgError> {
            val(n)
                .map(|t| {
                    Query::compile_in(Dialect::Dovecot, t)
                        .map_err(|e| PgError::Config(format!("{n}: {e}")))
                })
                .transpose()
        };
        let password_query = q("password_query")?.ok_or_else(|| {
            PgError::Config("password_query: not set (SELECT username AS user, password FROM users WHERE username = '%u')".into())
        })?;
        Ok(SqlUsers {
            password_query,
            user_query: q("user_query")?,
            update_query: q("password_update_query")?,
            insert_query: q("user_insert_query")?,
            pool: Pool::new(ConnSettings {
                hosts,
                user: val("user").map(str::to_string),
                password: val("password").map(str::to_string),
                dbname: val("dbname").unwrap_or("mail").to_string(),
                connect_timeout: Duration::from_secs(5),
                query_timeout: Duration::from_secs(10),
                retry_interval: Duration::from_secs(60),
                pool_size: 2,
            }),
            file: name.to_string(),
        })
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    fn rows(
        &self,
        q: &Query,
        name: &str,
        secret: &str,
    ) -> Result<(Vec<String>, crate::Rows), PgError> {
        let Some(values) = q.bind_with(name, secret) else {
            return Ok((Vec::new(), Vec::new()));
        };
        if values.iter().any(|v| v.contains('\0')) {
            return Ok((Vec::new(), Vec::new()));
        }
        let params: Vec<String> = values.into_iter().map(|v| v.into_owned()).collect();
        self.pool.query_named_blocking(q.sql(), &params)
    }

    /// The user called `name`: `password_query`, then `user_query` for
    /// the userdb fields. `Ok(None)`: no such user. From a blocking thread.
    pub fn user(&self, name: &str) -> Result<Option<SqlUser>, PgError> {
        let (cols, rows) = self.rows(&self.password_query, name, "")?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut u = SqlUser {
            name: name.to_string(),
            ..SqlUser::default()
        };
        let mut found_password = false;
        for (c, v) in cols.iter().zip(row) {
            let Some(v) = v else { continue };
            match c.as_str() {
                "user" | "username" => u.name = v.clone(),
                "password" => {
                    u.password = v.clone();
                    found_password = true;
                }
                other => set_field(&mut u, other.strip_prefix("userdb_").unwrap_or(other), v)?,
            }
        }
        if !found_password {
            return Err(PgError::Temporary(format!(
                "{}: password_query returns no \"password\" column",
                self.file
            )));
        }
        if let Some(q) = &self.user_query {
            let (cols, rows) = self.rows(q, &u.name.clone(), "")?;
            if let Some(row) = rows.first() {
                for (c, v) in cols.iter().zip(row) {
                    if let Some(v) = v {
                        set_field(&mut u, c.strip_prefix("userdb_").unwrap_or(c), v)?;
                    }
                }
            }
        }
        Ok(Some(u))
    }

    /// Stores a new password hash: `password_update_query`, and when it
    /// changed no row, `user_insert_query`. `Ok(true)`: the user existed.
    pub fn set_password(&self, name: &str, hash: &str) -> Result<bool, PgError> {
        let update = self.update_query.as_ref().ok_or_else(|| {
            PgError::Config(format!(
                "{}: password_update_query is not set, so yubin passwd cannot write here",
                self.file
            ))
        })?;
        let existed = self.user(name)?.is_some();
        if existed {
            self.rows(update, name, hash)?;
            return Ok(true);
        }
        let insert = self.insert_query.as_ref().ok_or_else(|| {
            PgError::Config(format!(
                "{}: user_insert_query is not set, so yubin passwd cannot add users here",
                self.file
            ))
        })?;
        self.rows(insert, name, hash)?;
        Ok(false)
    }
}

fn set_field(u: &mut SqlUser, name: &str, v: &str) -> Result<(), PgError> {
    let id = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| PgError::Temporary(format!("{name}: not a number: \"{v}\"")))
    };
    match name {
        "uid" => u.uid = Some(id(v)?),
        "gid" => u.gid = Some(id(v)?),
        "home" => u.home = Some(v.to_string()),
        "quota" => u
            .extra
            .push(("userdb_quota_rule".into(), format!("*:storage={v}"))),
        other => u.extra.push((format!("userdb_{other}"), v.to_string())),
    }
    Ok(())
}
