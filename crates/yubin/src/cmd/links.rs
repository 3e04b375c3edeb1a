//! `yubin install-links DIR`: the Postfix command names as symlinks to this
//! binary, so cron, DenyHosts-like tools, PHP and admins' habits find
//! `sendmail`, `mailq`, `newaliases`, `postmap`, ... where they expect them.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::fail::fatal;

/// The names the binary answers to (see `args_with_symlink_name` in main.rs).
pub const NAMES: &[&str] = &[
    "sendmail",
    "mailq",
    "newaliases",
    "postmap",
    "postconf",
    "postalias",
    "postqueue",
    "postsuper",
];

#[derive(Args, Debug)]
pub struct LinksArgs {
    /// Where to create the links, e.g. /usr/sbin or /usr/local/sbin.
    dir: PathBuf,
    /// Replace existing files of the same names.
    #[arg(long)]
    force: bool,
}

pub fn run(a: LinksArgs) -> i32 {
    let exe = match std::env::current_exe().and_then(std::fs::canonicalize) {
        Ok(p) => p,
        Err(e) => return fatal("install-links", format!("cannot find this program: {e}")),
    };
    if !a.dir.is_dir() {
        return fatal(
            "install-links",
            format!("{}: not a directory", a.dir.display()),
        );
    }
    for name in NAMES {
        let link: PathBuf = a.dir.join(name);
        if std::fs::symlink_metadata(&link).is_ok() {
            if std::fs::read_link(&link).ok().as_deref() == Some(exe.as_path()) {
                continue;
            }
            if !a.force {
                return fatal(
                    "install-links",
                    format!(
                        "{} exists (another MTA's?); use --force to replace it",
                        link.display()
                    ),
                );
            }
            if let Err(e) = std::fs::remove_file(&link) {
                return fatal("install-links", format!("remove {}: {e}", link.display()));
            }
        }
        if let Err(e) = std::os::unix::fs::symlink(Path::new(&exe), &link) {
            return fatal("install-links", format!("{}: {e}", link.display()));
        }
        println!("{} -> {}", link.display(), exe.display());
    }
    0
}
