//! `yubin passwd USER` and `yubin users`: manage the SASL user database
//! (Dovecot's passwd-file format, see `yubin_auth::passwd_file`).
//!
//! Wiring (for the lead): in `cmd/mod.rs` add `pub mod passwd;`, and in
//! `main.rs`'s `Command` enum
//! ```text
//!     /// Set a user's SASL password (adds the user if new).
//!     Passwd(cmd::passwd::PasswdArgs),
//!     /// List the SASL users.
//!     Users(cmd::passwd::UsersArgs),
//! ```
//! with program names `"passwd"` / `"users"` and dispatch
//! `Command::Passwd(a) => cmd::passwd::run(&config_dir, a)`,
//! `Command::Users(a) => cmd::passwd::users(&config_dir, a)`.
//!
//! The file is `--file`, else main.cf's `smtpd_sasl_path` when that names a
//! file (contains `/`), else `CONFIG_DIR/users`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use yubin_auth::hash::{self, Scheme};
use yubin_auth::passwd_file::{self, UserDb};

use crate::fail::fatal;

#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// The user, usually user@domain (matched case-insensitively).
    user: String,
    /// Password scheme (default SHA512-CRYPT): SHA512-CRYPT, SHA256-CRYPT,
    /// BLF-CRYPT, ARGON2ID, ARGON2I, PBKDF2, SCRAM-SHA-256, CRAM-MD5, SSHA512, PLAIN, ...
    #[arg(long)]
    scheme: Option<String>,
    /// The passwd-file to change (default: smtpd_sasl_path or CONFIG_DIR/users).
    #[arg(long)]
    file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UsersArgs {
    /// The passwd-file to list (default: smtpd_sasl_path or CONFIG_DIR/users).
    #[arg(long)]
    file: Option<PathBuf>,
}

/// The user database path: `--file`, main.cf's `smtpd_sasl_path`, or `users`.
fn users_file(config_dir: &Path, file: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(f) = file {
        return Ok(f);
    }
    if !config_dir.join("main.cf").exists() {
        return Ok(config_dir.join("users"));
    }
    let conf = yubin_conf::Config::load(config_dir).map_err(|e| e.to_string())?;
    if conf.get("smtpd_sasl_type") == "dovecot" {
        // smtpd_sasl_path is Dovecot's socket: its users are Dovecot's.
        return Err(
            "smtpd_sasl_type = dovecot: the users are Dovecot's (doveadm pw, its passdb); give --file for a passwd-file".into(),
        );
    }
    Ok(passwd_file::users_path(
        config_dir,
        conf.get("smtpd_sasl_path"),
    ))
}

/// Read one line from stdin without its line ending; `None` at end of input.
fn read_line(input: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    if input.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if line.ends_with(b"\n") {
        line.pop();
    }
    if line.ends_with(b"\r") {
        line.pop();
    }
    Ok(Some(line))
}

/// Ask twice (prompts on stderr with echo off on a terminal; plain lines otherwise).
fn read_new_password() -> Result<Vec<u8>, String> {
    let tty = yubin_sys::stdin_is_tty();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let _guard = yubin_sys::NoEcho::new();
    let mut ask = |prompt: &str| -> Result<Vec<u8>, String> {
        if tty {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
        read_line(&mut input)
            .map_err(|e| format!("cannot read password: {e}"))?
            .ok_or_else(|| "no password given".to_string())
    };
    let first = ask("New password: ")?;
    let second = ask("Retype new password: ")?;
    if first != second {
        return Err("passwords do not match".into());
    }
    if first.is_empty() {
        return Err("empty password".into());
    }
    Ok(first)
}

pub fn run(config_dir: &Path, a: PasswdArgs) -> i32 {
    let program = "passwd";
    let scheme = match a.scheme.as_deref().map(str::parse::<Scheme>) {
        None => Scheme::DEFAULT,
        Some(Ok(s)) => s,
        Some(Err(e)) => return fatal(program, e),
    };
    let path = match users_file(config_dir, a.file) {
        Ok(p) => p,
        Err(e) => return fatal(program, e),
    };
    let password = match read_new_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{program}: {e}");
            return 1;
        }
    };
    let stored = hash::hash(scheme, &password);
    if let Some(sql) = sql_users(config_dir, &path) {
        // smtpd_sasl_path = pgsql:FILE: the user lives in PostgreSQL
        // (password_update_query / user_insert_query), shared by every host.
        let users = match yubin_pgsql::users::SqlUsers::open(&sql) {
            Ok(u) => u,
            Err(e) => return fatal(program, e),
        };
        return match users.set_password(&a.user, &stored) {
            Ok(existed) => {
                let what = if existed { "changed" } else { "added" };
                eprintln!(
                    "{program}: {what} {} in pgsql:{} ({scheme})",
                    a.user,
                    sql.display()
                );
                0
            }
            Err(e) => fatal(program, e),
        };
    }
    let existed = UserDb::load(&path)
        .map(|db| db.get(&a.user).is_some())
        .unwrap_or(false);
    if let Err(e) = UserDb::set_password(&path, &a.user, &stored) {
        return fatal(program, e);
    }
    let what = if existed { "changed" } else { "added" };
    eprintln!(
        "{program}: {what} {} in {} ({scheme})",
        a.user,
        path.display()
    );
    0
}

/// The SQL user database file when main.cf's `smtpd_sasl_path` is
/// `pgsql:FILE` (and `--file` was not given).
fn sql_users(config_dir: &Path, chosen: &Path) -> Option<PathBuf> {
    let conf = yubin_conf::Config::load(config_dir).ok()?;
    let sql = crate::userdb::sql_file(config_dir, conf.get("smtpd_sasl_path"))?;
    // users_path() turned "pgsql:/x" into CONFIG_DIR/pgsql:/x; only that
    // default choice means SQL, an explicit --file stays a passwd-file.
    (chosen == passwd_file::users_path(config_dir, conf.get("smtpd_sasl_path"))).then_some(sql)
}

/// `user  scheme  uid  gid  home`, one line per user, `-` for empty fields.
fn format_user(u: &yubin_auth::User) -> String {
    let id = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    format!(
        "{}  {}  {}  {}  {}",
        u.name,
        u.scheme_name(),
        id(u.uid),
        id(u.gid),
        u.home.as_deref().unwrap_or("-")
    )
}

pub fn users(config_dir: &Path, a: UsersArgs) -> i32 {
    let program = "users";
    let path = match users_file(config_dir, a.file) {
        Ok(p) => p,
        Err(e) => return fatal(program, e),
    };
    if let Some(sql) = sql_users(config_dir, &path) {
        return fatal(
            program,
            format!(
                "the users are in PostgreSQL (smtpd_sasl_path = pgsql:{}); list them with SQL",
                sql.display()
            ),
        );
    }
    let db = match UserDb::load(&path) {
        Ok(db) => db,
        Err(e) => return fatal(program, e),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for u in db.list() {
        if writeln!(out, "{}", format_user(u)).is_err() {
            return 1;
        }
    }
    0
}
