//! The `yubin` binary: one executable for the MTA, its admin tools, the
//! guard and the test client. Also answers to Postfix's command names when
//! invoked through a symlink (`sendmail`, `mailq`, `newaliases`, ...).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "yubin", version, about = "A Postfix-compatible mail system in one binary")]
struct Cli {
    /// Configuration directory (main.cf, master.cf, tables). Default: /etc/yubin,
    /// or ./yubin-data when /etc/yubin does not exist.
    #[arg(short = 'c', long = "config-dir", global = true, env = "YUBIN_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// DenyHosts-compatible SSH/SMTP/IMAP brute-force blocker (`yubin guard --help`).
    #[command(disable_help_flag = true)]
    Guard {
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

fn main() {
    let cli = Cli::parse();
    let config_dir = cli.config_dir.unwrap_or_else(default_config_dir);
    let code = match cli.command {
        Command::Guard { args } => yubin_guard::main(&config_dir, args),
        Command::Send { args } => yubin_send::cli::main(&config_dir, args),
    };
    std::process::exit(code);
}
