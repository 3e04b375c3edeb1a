//! Which user database SMTP AUTH, IMAP and `yubin passwd` use:
//! `smtpd_sasl_path = pgsql:/etc/yubin/users-sql.cf` selects users in
//! PostgreSQL (Dovecot's passdb/userdb sql, `yubin_pgsql::users`),
//! anything else the passwd-file (`yubin_auth::passwd_file::users_path`).

use std::path::Path;

use anyhow::Context;
use yubin_auth::passwd_file::{users_path, SharedUserDb, UserSource};
use yubin_auth::User;
use yubin_pgsql::users::SqlUsers;

/// The SQL configuration file when `smtpd_sasl_path` is `pgsql:FILE`
/// (relative to the configuration directory).
pub fn sql_file(config_dir: &Path, smtpd_sasl_path: &str) -> Option<std::path::PathBuf> {
    let f = smtpd_sasl_path.trim().strip_prefix("pgsql:")?;
    Some(config_dir.join(f))
}

struct PgUsers(SqlUsers);

impl UserSource for PgUsers {
    fn user(&self, name: &str) -> Result<Option<User>, String> {
        let u = self.0.user(name).map_err(|e| e.to_string())?;
        Ok(u.map(|u| User {
            name: u.name,
            password: u.password,
            uid: u.uid,
            gid: u.gid,
            home: u.home,
            extra: u.extra,
        }))
    }
}

/// Opens the user database `smtpd_sasl_path` names.
pub fn open(config_dir: &Path, smtpd_sasl_path: &str) -> anyhow::Result<SharedUserDb> {
    if let Some(file) = sql_file(config_dir, smtpd_sasl_path) {
        let users = SqlUsers::open(&file)
            .with_context(|| format!("smtpd_sasl_path: SQL user database {}", file.display()))?;
        return Ok(SharedUserDb::remote(&file, Box::new(PgUsers(users))));
    }
    let path = users_path(config_dir, smtpd_sasl_path);
    SharedUserDb::open(&path)
        .with_context(|| format!("smtpd_sasl_path: user database {}", path.display()))
}
