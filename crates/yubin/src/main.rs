//! The `yubin` binary: one executable for the MTA, its admin tools, the
//! guard and the test client. Also answers to Postfix's command names when
//! invoked through a symlink (`postmap`, `postconf`, `newaliases`, ...).

mod cmd;
mod fail;
mod maincf_edit;
mod server;
mod stderr_log;
mod userdb;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use yubin_table::indexed::SourceFormat;

#[derive(Parser)]
#[command(
    name = "yubin",
    version,
    about = "A Postfix-compatible mail system in one binary"
)]
struct Cli {
    /// Configuration directory (main.cf, master.cf, tables). Default: /etc/yubin,
    /// or ./yubin-data when /etc/yubin does not exist.
    #[arg(
        short = 'c',
        long = "config-dir",
        global = true,
        env = "YUBIN_CONFIG_DIR"
    )]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server (SMTP, queue, delivery) in the foreground.
    Serve(server::ServeArgs),
    /// Make a running server re-read its configuration and tables.
    Reload,
    /// Stop a running server (graceful: sessions finish, the queue is kept).
    Stop,
    /// List the mail queue (mailq(1)).
    Mailq,
    /// List (-p, -j) or flush (-f) the queue (postqueue(1)).
    Postqueue(cmd::queue::PostqueueArgs),
    /// Delete, hold, release or requeue messages (postsuper(1)).
    Postsuper(cmd::queue::PostsuperArgs),
    /// Create symlinks named sendmail, mailq, newaliases, postmap, ... to this binary in DIR.
    InstallLinks(cmd::links::LinksArgs),
    /// Follow messages through mail.log by queue id, address or client.
    Log(cmd::log::LogArgs),
    /// Set a user's SASL password in the passwd-file (adds the user if new).
    Passwd(cmd::passwd::PasswdArgs),
    /// List the SASL users of the passwd-file.
    Users(cmd::passwd::UsersArgs),
    /// Show or edit main.cf and master.cf parameters (postconf(1)).
    Postconf(cmd::postconf::PostconfArgs),
    /// Build, query or list lookup tables (postmap(1)).
    Postmap(cmd::postmap::PostmapArgs),
    /// Build, query or list aliases(5) tables (postalias(1)).
    Postalias(cmd::postmap::PostmapArgs),
    /// Rebuild every table in alias_database (newaliases(1)).
    Newaliases,
    /// Explain where an address goes, or why it is rejected; with --message,
    /// the SPF, DKIM and DMARC verdicts smtpd would give a received message.
    Trace(cmd::trace::TraceArgs),
    /// DKIM keys for signing outgoing mail (`dkim keygen DOMAIN SELECTOR`).
    Dkim(cmd::dkim::DkimArgs),
    /// DenyHosts-compatible SSH/SMTP/IMAP brute-force blocker (`yubin guard --help`).
    #[command(disable_help_flag = true)]
    Guard {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Submit mail from standard input (sendmail(1)); also -bs, -bv, -bp, -bi, -q.
    #[command(disable_help_flag = true)]
    Sendmail {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// swaks-compatible SMTP test client (`yubin send --help`).
    #[command(disable_help_flag = true)]
    Send {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn default_config_dir() -> PathBuf {
    let etc = PathBuf::from("/etc/yubin");
    if etc.is_dir() {
        etc
    } else {
        PathBuf::from("yubin-data")
    }
}

/// When called as `postmap`, `postconf`, ... through a symlink, behave as
/// `yubin postmap ...`.
fn args_with_symlink_name() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let called = args
        .first()
        .and_then(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if [
        "postmap",
        "postconf",
        "postalias",
        "newaliases",
        "mailq",
        "postqueue",
        "postsuper",
        "sendmail",
    ]
    .contains(&called.as_str())
    {
        args[0] = "yubin".into();
        args.insert(1, called.into());
    }
    args
}

fn main() {
    let cli = Cli::parse_from(args_with_symlink_name());
    // Admin commands print library warnings (a stale table, a reload) on
    // stderr as Postfix's tools do: "postmap: warning: ...".
    let explicit_dir = cli.config_dir.is_some();
    if !matches!(cli.command, Command::Serve(_)) {
        // The admin commands end quietly when their reader goes away
        // (`yubin postmap -s ... | head`), as Postfix's do. The server keeps
        // SIGPIPE ignored and sees EPIPE as an error on that one socket.
        yubin_sys::default_sigpipe();
    }
    stderr_log::init(match &cli.command {
        Command::Serve(_) => "yubin",
        Command::Reload => "reload",
        Command::Stop => "stop",
        Command::Mailq => "mailq",
        Command::Postqueue(_) => "postqueue",
        Command::Postsuper(_) => "postsuper",
        Command::Log(_) => "log",
        Command::InstallLinks(_) => "install-links",
        Command::Passwd(_) => "passwd",
        Command::Users(_) => "users",
        Command::Postconf(_) => "postconf",
        Command::Postmap(_) => "postmap",
        Command::Postalias(_) => "postalias",
        Command::Newaliases => "newaliases",
        Command::Trace(_) => "trace",
        Command::Dkim(_) => "dkim",
        Command::Guard { .. } => "guard",
        Command::Send { .. } => "send",
        Command::Sendmail { .. } => "sendmail",
    });
    let config_dir = cli.config_dir.unwrap_or_else(default_config_dir);
    // Absolute, so that "$config_directory/file" and relative table names
    // mean the same file whatever the command's working directory.
    let config_dir = std::fs::canonicalize(&config_dir).unwrap_or(config_dir);
    let code = match cli.command {
        Command::Serve(a) => serve(config_dir, explicit_dir, a),
        Command::Reload => cmd::queue::control_request(&config_dir, "reload"),
        Command::Stop => cmd::queue::control_request(&config_dir, "stop"),
        Command::Mailq => cmd::queue::mailq(&config_dir),
        Command::Postqueue(a) => cmd::queue::postqueue(&config_dir, a),
        Command::Postsuper(a) => cmd::queue::postsuper(&config_dir, a),
        Command::Log(a) => cmd::log::run(&config_dir, a),
        Command::InstallLinks(a) => cmd::links::run(a),
        Command::Passwd(a) => cmd::passwd::run(&config_dir, a),
        Command::Users(a) => cmd::passwd::users(&config_dir, a),
        Command::Postconf(a) => cmd::postconf::run(&config_dir, a),
        Command::Postmap(a) => cmd::postmap::run(&config_dir, a, SourceFormat::Map),
        Command::Postalias(a) => cmd::postmap::run(&config_dir, a, SourceFormat::Aliases),
        Command::Newaliases => cmd::postmap::newaliases(&config_dir),
        Command::Trace(a) => cmd::trace::run(&config_dir, a),
        Command::Dkim(a) => cmd::dkim::run(&config_dir, a),
        Command::Guard { args } => yubin_guard::main(&config_dir, args),
        Command::Send { args } => yubin_send::cli::main(&config_dir, args),
        Command::Sendmail { args } => cmd::sendmail::run(&config_dir, args),
    };
    std::process::exit(code);
}

/// `yubin serve`: an explicit or /etc/yubin configuration, or the embedded
/// default in ./yubin-data (created on first start).
fn serve(dir: PathBuf, explicit: bool, args: server::ServeArgs) -> i32 {
    let embedded = !explicit && !std::path::Path::new("/etc/yubin").is_dir();
    if embedded {
        match server::embedded::ensure(&dir) {
            Ok(true) => {
                eprintln!("yubin: created the embedded default configuration in ./yubin-data")
            }
            Ok(false) => {}
            Err(e) => return fail::fatal("yubin", format!("{e:#}")),
        }
    }
    match server::run(&dir, args, embedded) {
        Ok(code) => code,
        Err(e) => fail::fatal("yubin", format!("{e:#}")),
    }
}
