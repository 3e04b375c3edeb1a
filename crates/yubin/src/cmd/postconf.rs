//! `yubin postconf`: Postfix's postconf(1) for yubin's main.cf and master.cf.

use std::path::Path;

use clap::Args;
use yubin_conf::{params, Config, MasterCf};

use crate::fail::{fatal, warn};
use crate::maincf_edit;

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct PostconfArgs {
    /// Print help (-h means "values only", as in Postfix).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Show only parameters set in main.cf.
    #[arg(short = 'n')]
    non_default: bool,
    /// Show default values instead of the configured ones.
    #[arg(short = 'd')]
    defaults: bool,
    /// Expand $name references in values.
    #[arg(short = 'x')]
    expand: bool,
    /// Show values only, without "name = ".
    #[arg(short = 'h')]
    values_only: bool,
    /// Edit main.cf: set each name=value given as an argument.
    #[arg(short = 'e')]
    edit: bool,
    /// Remove the named parameters from main.cf.
    #[arg(short = 'X')]
    remove: bool,
    /// Show master.cf services (optionally only the named ones).
    #[arg(short = 'M')]
    master: bool,
    /// Parameter names (or name=value with -e).
    names: Vec<String>,
}

pub fn run(dir: &Path, a: PostconfArgs) -> i32 {
    if a.edit || a.remove {
        let path = dir.join("main.cf");
        for item in &a.names {
            let result = if a.edit {
                let Some((name, value)) = item.split_once('=') else {
                    return fatal(
                        "postconf",
                        format!("-e requires name=value, got \"{item}\""),
                    );
                };
                maincf_edit::set(&path, name.trim(), value.trim())
            } else {
                maincf_edit::remove(&path, item)
            };
            if let Err(e) = result {
                return fatal("postconf", format!("{}: {e}", path.display()));
            }
        }
        return 0;
    }
    if a.master {
        return show_master(dir, &a.names);
    }
    let cfg = match Config::load(dir) {
        Ok(c) => c,
        Err(e) => return fatal("postconf", e),
    };
    let print = |name: &str, value: &str| {
        if a.values_only {
            println!("{value}");
        } else if value.is_empty() {
            println!("{name} =");
        } else {
            println!("{name} = {value}");
        }
    };
    let value_of = |name: &str| -> String {
        if a.defaults {
            params::find(name)
                .map(|p| p.default.to_string())
                .unwrap_or_default()
        } else if a.expand {
            cfg.get(name).to_string()
        } else {
            cfg.get_raw(name).unwrap_or_default()
        }
    };
    if !a.names.is_empty() {
        let mut code = 0;
        for name in &a.names {
            if params::find(name).is_none() && cfg.get_raw(name).is_none() {
                warn("postconf", format!("{name}: unknown parameter"));
                code = 1;
                continue;
            }
            print(name, &value_of(name));
        }
        return code;
    }
    let mut names: Vec<&str> = if a.non_default {
        cfg.set_names().collect()
    } else {
        cfg.all_names()
    };
    names.sort_unstable();
    for name in names {
        print(name, &value_of(name));
    }
    for w in cfg.warnings() {
        warn("postconf", w);
    }
    0
}

fn show_master(dir: &Path, only: &[String]) -> i32 {
    let m = match MasterCf::load(dir) {
        Ok(m) => m,
        Err(e) => return fatal("postconf", e),
    };
    for s in &m.services {
        let id = format!("{}/{}", s.name, s.kind);
        if !only.is_empty() && !only.iter().any(|o| o == &s.name || o == &id) {
            continue;
        }
        let mut line = format!(
            "{:<10} {:<5} -       -       -       -       -       {}",
            s.name, s.kind, s.command
        );
        for arg in &s.args {
            line.push(' ');
            line.push_str(arg);
        }
        for (k, v) in &s.overrides {
            line.push_str(&format!(" -o {k}={v}"));
        }
        println!("{line}");
    }
    0
}
