//! `yubin dkim keygen DOMAIN SELECTOR`: makes a DKIM key (RFC 6376; Ed25519
//! per RFC 8463), writes the private key (mode 0600, never over an existing
//! file), and prints the DNS TXT record to publish and the line for the
//! signing table (`yubin_dkim_signing_maps`, docs/dkim.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use yubin_outbound::dkim::{keygen, Algorithm};

use crate::fail::fatal;

#[derive(Args, Debug)]
pub struct DkimArgs {
    #[command(subcommand)]
    command: DkimCommand,
}

#[derive(Subcommand, Debug)]
enum DkimCommand {
    /// Make a signing key for DOMAIN and SELECTOR and print its DNS record.
    Keygen(KeygenArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Alg {
    Rsa,
    Ed25519,
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// The signing domain (d=), usually the domain of the From: address.
    domain: String,
    /// The selector (s=): the key is published at SELECTOR._domainkey.DOMAIN.
    selector: String,
    /// Key type: rsa (every verifier knows it) or ed25519 (RFC 8463).
    #[arg(long, value_enum, default_value = "rsa")]
    algorithm: Alg,
    /// RSA key size in bits.
    #[arg(long, default_value_t = 2048)]
    bits: usize,
    /// Where to write the private key (default CONFIG_DIR/dkim/DOMAIN.SELECTOR.key).
    #[arg(long)]
    key_file: Option<PathBuf>,
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The TXT value as zone-file strings of at most 255 octets (RFC 1035
/// section 3.3.14: one character-string is limited to 255).
fn txt_strings(txt: &str) -> String {
    txt.as_bytes()
        .chunks(250)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_key(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(pem.as_bytes())?;
    f.sync_all()
}

pub fn run(config_dir: &Path, a: DkimArgs) -> i32 {
    let DkimCommand::Keygen(k) = a.command;
    let domain = k.domain.trim_end_matches('.').to_ascii_lowercase();
    if !valid_label(&domain) || !domain.contains('.') {
        return fatal("dkim", format!("bad domain name: {}", k.domain));
    }
    if !valid_label(&k.selector) {
        return fatal("dkim", format!("bad selector: {}", k.selector));
    }
    let alg = match k.algorithm {
        Alg::Rsa => Algorithm::Rsa { bits: k.bits },
        Alg::Ed25519 => Algorithm::Ed25519,
    };
    let path = k.key_file.unwrap_or_else(|| {
        config_dir
            .join("dkim")
            .join(format!("{domain}.{}.key", k.selector))
    });
    if path.exists() {
        // Checked first too (create_new below is the real guard): a new
        // key would orphan the published record.
        return fatal(
            "dkim",
            format!(
                "{}: File exists; remove it first to replace the key",
                path.display()
            ),
        );
    }
    let key = match keygen(alg) {
        Ok(key) => key,
        Err(e) => return fatal("dkim", e),
    };
    if let Err(e) = write_key(&path, &key.private_pem) {
        return fatal("dkim", format!("{}: {e}", path.display()));
    }
    let kind = match alg {
        Algorithm::Rsa { bits } => format!("rsa, {bits} bits"),
        Algorithm::Ed25519 => "ed25519".into(),
    };
    println!("# private key ({kind}): {}", path.display());
    println!("# 1. publish this DNS record:");
    println!(
        "{}._domainkey.{domain}. IN TXT ( {} )",
        k.selector,
        txt_strings(&key.txt)
    );
    println!(
        "# 2. add this line to the table named by yubin_dkim_signing_maps, then yubin reload:"
    );
    println!("{domain}    {}:{}", k.selector, path.display());
    0
}
