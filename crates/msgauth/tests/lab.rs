//! SPF and DKIM verdicts of yubin-msgauth against independent
//! implementations on the same lab DNS (../shared/tools/netlab.md): pyspf
//! (python3-spf) for SPF, dkimpy (python3-dkim) for DKIM, which also signs
//! the corpus. DMARC, with no independent implementation installed, is
//! checked against RFC 7489's expected outcomes on the same zone.
//!
//! Needs root (network namespaces), unbound, openssl, python3-spf and
//! python3-dkim (.ci/packages.txt). Each test builds its own lab and tears
//! it down; every check runs under the crate's per-message budget.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use yubin_msgauth::{
    authenticate, dkim, spf, Budget, Disposition, DkimResult, DmarcResult, Envelope, Identity,
    Settings, Source, SpfResult,
};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/tools");
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus.py");
const PY: &str = "/usr/bin/python3";
const NET: &str = "10.64.0";
static SEQ: AtomicU32 = AtomicU32::new(0);

struct Lab {
    id: String,
    tmp: tempfile::TempDir,
}

impl Lab {
    fn new(zone: &str) -> Lab {
        // SAFETY: geteuid has no preconditions and cannot fail.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the msgauth lab tests need root (network namespaces via netlab.sh)"
        );
        let lab = Lab {
            id: format!(
                "ma{}_{}",
                SEQ.fetch_add(1, Ordering::SeqCst),
                std::process::id() % 1_000_000
            ),
            tmp: tempfile::tempdir().unwrap(),
        };
        lab.sh(&["up", "client", &format!("{NET}.2")]);
        let zf = lab.tmp.path().join("zone.rr");
        std::fs::write(&zf, zone).unwrap();
        lab.sh(&["dns", "--ip", &format!("{NET}.53"), zf.to_str().unwrap()]);
        lab
    }

    fn sh(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(format!("{SHARED}/netlab.sh"))
            .args(args)
            .env("NETLAB_ID", &self.id)
            .output()
            .expect("run netlab.sh");
        assert!(
            out.status.success(),
            "netlab.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a thread in the lab host `client`, with a runtime and the
    /// daemon's resolver (yubin-dns) asking the lab DNS.
    fn run<T: Send + 'static, F>(&self, f: impl FnOnce(Source) -> F + Send + 'static) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let ns = format!("{}-client", self.id);
        std::thread::spawn(move || {
            let fd = File::open(format!("/run/netns/{ns}")).expect("namespace exists");
            // SAFETY: setns(2) with a namespace fd we hold open; CLONE_NEWNET
            // changes only this thread's network namespace.
            let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // The daemon's resolver as `dns_servers = NET.53` makes it.
                let dns: SocketAddr = format!("{NET}.53:53").parse().unwrap();
                let d = yubin_dns::Dns::new(vec![dns]);
                f(Source::Hickory(d.resolver().clone())).await
            })
        })
        .join()
        .expect("lab thread")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{SHARED}/netlab.sh"))
            .arg("down")
            .env("NETLAB_ID", &self.id)
            .output();
    }
}

/// A TXT record's rdata: the value in quoted strings of at most 250 bytes.
fn txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(250)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn openssl_key(dir: &Path, name: &str, bits: &str) -> String {
    let pem = dir.join(name);
    let ok = Command::new("openssl")
        .args(["genrsa", "-out", pem.to_str().unwrap(), bits])
        .output()
        .expect("openssl (.ci/packages.txt)");
    assert!(ok.status.success());
    let der = Command::new("openssl")
        .args([
            "rsa",
            "-in",
            pem.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ])
        .output()
        .unwrap();
    assert!(der.status.success());
    b64(&der.stdout)
}

fn b64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The Ed25519 public key corpus.py wrote.
fn ed_key(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("ed.pub")).unwrap()
}

fn zone(k1: &str, k2: &str, ed: &str) -> String {
    let mut z = Vec::new();
    let mut rr = |name: &str, ty: &str, data: &str| z.push(format!("{name}. {ty} {data}"));
    let c = format!("{NET}.2");
    // SPF corpus.
    rr(
        "pass.test",
        "TXT",
        &txt(&format!("v=spf1 ip4:{NET}.0/24 -all")),
    );
    rr("fail.test", "TXT", &txt("v=spf1 ip4:192.0.2.1 -all"));
    rr("soft.test", "TXT", &txt("v=spf1 ip4:192.0.2.1 ~all"));
    rr("neutral.test", "TXT", &txt("v=spf1 ?all"));
    rr("default.test", "TXT", &txt("v=spf1 ip4:192.0.2.1"));
    rr(
        "include.test",
        "TXT",
        &txt("v=spf1 include:_spf.include.test -all"),
    );
    rr(
        "_spf.include.test",
        "TXT",
        &txt("v=spf1 a:host.include.test -all"),
    );
    rr("host.include.test", "A", &c);
    rr("incfail.test", "TXT", &txt("v=spf1 include:fail.test ~all"));
    rr(
        "incnone.test",
        "TXT",
        &txt("v=spf1 include:nospf.test -all"),
    );
    rr("redirect.test", "TXT", &txt("v=spf1 redirect=pass.test"));
    rr(
        "redirfail.test",
        "TXT",
        &txt("v=spf1 ip4:192.0.2.9 redirect=fail.test"),
    );
    rr("redirnone.test", "TXT", &txt("v=spf1 redirect=nospf.test"));
    rr(
        "macro.test",
        "TXT",
        &txt("v=spf1 exists:%{i}._spf.%{d} -all"),
    );
    rr(&format!("{c}._spf.macro.test"), "A", "127.0.0.2");
    rr(
        "macro2.test",
        "TXT",
        &txt("v=spf1 exists:%{l}.users.%{d2} -all"),
    );
    rr("alice.users.macro2.test", "A", "127.0.0.2");
    rr(
        "macro3.test",
        "TXT",
        &txt("v=spf1 exists:%{ir}.%{v}.arpa.%{d} -all"),
    );
    rr("2.0.64.10.in-addr.arpa.macro3.test", "A", "127.0.0.2");
    rr("mx.test", "TXT", &txt("v=spf1 mx -all"));
    rr("mx.test", "MX", "10 mail.mx.test.");
    rr("mail.mx.test", "A", &c);
    rr("amask.test", "TXT", &txt("v=spf1 a:net.amask.test/24 -all"));
    rr("net.amask.test", "A", &format!("{NET}.200"));
    let mut many = String::from("v=spf1");
    for i in 1..=11 {
        many.push_str(&format!(" a:a{i}.limit.test"));
        rr(&format!("a{i}.limit.test"), "A", "192.0.2.50");
    }
    many.push_str(&format!(" ip4:{c} -all"));
    rr("limit.test", "TXT", &txt(&many));
    let mut ten = String::from("v=spf1");
    for i in 1..=10 {
        ten.push_str(&format!(" a:a{i}.limit.test"));
    }
    ten.push_str(&format!(" ip4:{c} -all"));
    rr("ten.test", "TXT", &txt(&ten));
    rr(
        "void.test",
        "TXT",
        &txt(&format!(
            "v=spf1 a:v1.void.test a:v2.void.test a:v3.void.test ip4:{c} -all"
        )),
    );
    rr(
        "twovoid.test",
        "TXT",
        &txt(&format!(
            "v=spf1 a:v1.void.test a:v2.void.test ip4:{c} -all"
        )),
    );
    rr("loop.test", "TXT", &txt("v=spf1 include:loop.test -all"));
    rr("loopa.test", "TXT", &txt("v=spf1 include:loopb.test -all"));
    rr("loopb.test", "TXT", &txt("v=spf1 include:loopa.test -all"));
    rr("multi.test", "TXT", &txt("v=spf1 -all"));
    rr("multi.test", "TXT", &txt("v=spf1 +all"));
    rr("syntax.test", "TXT", &txt("v=spf1 ip4:300.1.1.1 -all"));
    rr("unknownmech.test", "TXT", &txt("v=spf1 foo:bar -all"));
    rr(
        "helo.lab.test",
        "TXT",
        &txt(&format!("v=spf1 ip4:{c} -all")),
    );
    rr("otherhelo.lab.test", "TXT", &txt("v=spf1 -all"));
    rr("notspf.test", "TXT", &txt("some verification token"));
    rr("v6.test", "TXT", &txt("v=spf1 ip6:fd00::/64 -all"));
    rr("v6a.test", "TXT", &txt("v=spf1 a:h6.v6a.test -all"));
    rr("h6.v6a.test", "AAAA", "fd00::2");
    rr(
        "macro6.test",
        "TXT",
        &txt("v=spf1 exists:%{ir}.%{v}._spf.%{d} -all"),
    );
    rr(
        "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6._spf.macro6.test",
        "A",
        "127.0.0.2",
    );
    rr("$LOCALZONE", "broken.test", "refuse");
    // DKIM keys.
    rr(
        "s1._domainkey.sig.test",
        "TXT",
        &txt(&format!("v=DKIM1; k=rsa; p={k1}")),
    );
    rr(
        "s2._domainkey.other.test",
        "TXT",
        &txt(&format!("v=DKIM1; k=rsa; p={k2}")),
    );
    rr(
        "s2._domainkey.sig.test",
        "TXT",
        &txt(&format!("v=DKIM1; k=rsa; p={k2}")),
    );
    rr(
        "revoked._domainkey.sig.test",
        "TXT",
        &txt("v=DKIM1; k=rsa; p="),
    );
    rr(
        "ed._domainkey.sig.test",
        "TXT",
        &txt(&format!("v=DKIM1; k=ed25519; p={ed}")),
    );
    // 16 kB of key material: no RSA key anyone can use.
    let big: String = (0..16 * 1024)
        .map(|i| (b'A' + (i % 26) as u8) as char)
        .collect();
    rr(
        "big._domainkey.sig.test",
        "TXT",
        &txt(&format!("v=DKIM1; k=rsa; p={big}")),
    );
    // A TXT answer of ~50 kB (200 records).
    for i in 0..200 {
        rr(
            "huge.test",
            "TXT",
            &txt(&format!("{i:03} {}", "x".repeat(240))),
        );
    }
    // DMARC.
    rr(
        "_dmarc.sig.test",
        "TXT",
        &txt("v=DMARC1; p=reject; sp=quarantine"),
    );
    rr("sig.test", "TXT", &txt(&format!("v=spf1 ip4:{c} -all")));
    rr(
        "_dmarc.strict.test",
        "TXT",
        &txt("v=DMARC1; p=reject; aspf=s; adkim=s"),
    );
    rr(
        "mail.strict.test",
        "TXT",
        &txt(&format!("v=spf1 ip4:{c} -all")),
    );
    rr("_dmarc.none.test", "TXT", &txt("v=DMARC1; p=none"));
    z.join("\n").replace("$LOCALZONE. ", "$LOCALZONE ") + "\n"
}

struct Case {
    ident: Identity,
    sender: &'static str,
    helo: &'static str,
    /// The client address when not the lab client's IPv4 address.
    ip: Option<&'static str>,
}

impl Case {
    fn ip(&self) -> IpAddr {
        self.ip.map_or_else(client_ip, |i| i.parse().unwrap())
    }
}

fn mf(sender: &'static str) -> Case {
    Case {
        ident: Identity::MailFrom,
        sender,
        helo: "client.lab.test",
        ip: None,
    }
}

/// An IPv6 client (only the address given to the checks: the DNS stays IPv4).
fn mf6(sender: &'static str, ip: &'static str) -> Case {
    Case {
        ip: Some(ip),
        ..mf(sender)
    }
}

fn spf_cases() -> Vec<(Case, Option<SpfResult>)> {
    use SpfResult::*;
    vec![
        (mf("a@pass.test"), Some(Pass)),
        (mf("a@fail.test"), Some(Fail)),
        (mf("a@soft.test"), Some(SoftFail)),
        (mf("a@neutral.test"), Some(Neutral)),
        (mf("a@default.test"), Some(Neutral)),
        (mf("a@include.test"), Some(Pass)),
        (mf("a@incfail.test"), Some(SoftFail)),
        (mf("a@incnone.test"), Some(PermError)),
        (mf("a@redirect.test"), Some(Pass)),
        (mf("a@redirfail.test"), Some(Fail)),
        (mf("a@redirnone.test"), Some(PermError)),
        (mf("a@macro.test"), Some(Pass)),
        (mf("alice@macro2.test"), Some(Pass)),
        (mf("bob@macro2.test"), Some(Fail)),
        (mf("a@macro3.test"), Some(Pass)),
        (mf("a@mx.test"), Some(Pass)),
        (mf("a@amask.test"), Some(Pass)),
        (mf("a@limit.test"), Some(PermError)),
        (mf("a@ten.test"), Some(Pass)),
        (mf("a@void.test"), Some(PermError)),
        (mf("a@twovoid.test"), Some(Pass)),
        (mf("a@loop.test"), Some(PermError)),
        (mf("a@loopa.test"), Some(PermError)),
        (mf("a@multi.test"), Some(PermError)),
        (mf("a@syntax.test"), Some(PermError)),
        (mf("a@unknownmech.test"), Some(PermError)),
        (mf("a@nospf.test"), Some(None)),
        (mf("a@notspf.test"), Some(None)),
        (mf("a@broken.test"), Some(TempError)),
        (mf6("a@v6.test", "fd00::2"), Some(Pass)),
        (mf6("a@v6.test", "fd00:1::2"), Some(Fail)),
        (mf6("a@v6a.test", "fd00::2"), Some(Pass)),
        (mf6("a@macro6.test", "fd00::2"), Some(Pass)),
        (mf6("a@macro6.test", "fd00::3"), Some(Fail)),
        (mf6("a@pass.test", "::ffff:10.64.0.2"), Some(Pass)),
        (mf6("a@pass.test", "fd00::2"), Some(Fail)),
        (
            Case {
                ident: Identity::Helo,
                sender: "",
                helo: "helo.lab.test",
                ip: Option::None,
            },
            Some(Pass),
        ),
        (
            Case {
                ident: Identity::Helo,
                sender: "",
                helo: "otherhelo.lab.test",
                ip: Option::None,
            },
            Some(Fail),
        ),
    ]
}

fn budget(src: Source) -> Budget {
    Budget::new(src, 60, Duration::from_secs(30), Duration::from_secs(5))
}

fn client_ip() -> IpAddr {
    format!("{NET}.2").parse().unwrap()
}

fn pyverify(lab: &Lab, cases: &serde_json_lite::Value) -> String {
    let f = lab.tmp.path().join("cases.json");
    std::fs::write(&f, cases.to_string()).unwrap();
    lab.sh(&["exec", "client", PY, CORPUS, "verify", f.to_str().unwrap()])
}

/// A minimal JSON writer and reader for the Python exchange (the crate
/// takes no serde dependency for one test).
mod serde_json_lite {
    pub enum Value {
        S(String),
        A(Vec<Value>),
        O(Vec<(String, Value)>),
    }
    impl std::fmt::Display for Value {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Value::S(s) => write!(f, "{s:?}"),
                Value::A(v) => {
                    write!(f, "[")?;
                    for (i, x) in v.iter().enumerate() {
                        if i > 0 {
                            write!(f, ",")?;
                        }
                        write!(f, "{x}")?;
                    }
                    write!(f, "]")
                }
                Value::O(v) => {
                    write!(f, "{{")?;
                    for (i, (k, x)) in v.iter().enumerate() {
                        if i > 0 {
                            write!(f, ",")?;
                        }
                        write!(f, "{k:?}:{x}")?;
                    }
                    write!(f, "}}")
                }
            }
        }
    }
    /// The quoted strings of `s`, in order (all our values are plain).
    pub fn strings(s: &str) -> Vec<String> {
        s.split('"')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, x)| x.to_string())
            .collect()
    }
}
use serde_json_lite::Value;

/// Per corpus file, each signature's verdict and its debug text.
type DkimByFile = Vec<Vec<(DkimResult, String)>>;

#[test]
fn spf_dkim_agree_with_pyspf_and_dkimpy() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = openssl_key(dir.path(), "k1.pem", "2048");
    let k2 = openssl_key(dir.path(), "k2.pem", "1024");
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let out = Command::new(PY)
        .args([
            CORPUS,
            "sign",
            dir.path().to_str().unwrap(),
            corpus.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dkimpy signing (python3-dkim, python3-nacl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lab = Lab::new(&zone(&k1, &k2, &ed_key(dir.path())));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();

    // The independent side, in the lab host.
    let cases = spf_cases();
    let spf_json = Value::A(
        cases
            .iter()
            .map(|(c, _)| {
                Value::O(vec![
                    ("ip".into(), Value::S(c.ip().to_string())),
                    ("sender".into(), Value::S(c.sender.into())),
                    ("helo".into(), Value::S(c.helo.into())),
                ])
            })
            .collect(),
    );
    let dkim_json = Value::A(
        files
            .iter()
            .map(|f| Value::S(f.to_str().unwrap().into()))
            .collect(),
    );
    let py = pyverify(
        &lab,
        &Value::O(vec![("spf".into(), spf_json), ("dkim".into(), dkim_json)]),
    );
    let (spf_part, dkim_part) = py.split_once("\"dkim\"").expect("python output");
    let py_spf = serde_json_lite::strings(spf_part.split_once('[').unwrap().1);
    assert_eq!(py_spf.len(), cases.len(), "{py}");

    // Ours, in the same lab host.
    let files2 = files.clone();
    let ours: (Vec<(SpfResult, String)>, DkimByFile) = lab.run(move |src| async move {
        let b = budget(src.clone());
        let mut spf_out = Vec::new();
        for (c, _) in spf_cases() {
            let b = budget(src.clone());
            let (sender, domain) = match c.ident {
                Identity::Helo => (format!("postmaster@{}", c.helo), c.helo.to_string()),
                Identity::MailFrom => (
                    c.sender.to_string(),
                    c.sender.rsplit_once('@').unwrap().1.to_string(),
                ),
            };
            let r = spf::check(&b, c.ident, c.ip(), c.helo, &sender, &domain, "mx.lab.test").await;
            spf_out.push((r.result, format!("{r:?}")));
        }
        let mut dk = Vec::new();
        for f in &files2 {
            let m = std::fs::read(f).unwrap();
            let r = dkim::verify(&b, &m, 10).await;
            dk.push(
                r.signatures
                    .iter()
                    .map(|s| (s.result, format!("{s:?}")))
                    .collect(),
            );
        }
        (spf_out, dk)
    });

    let mut disagree = Vec::new();
    for (i, ((case, expect), (ours, dbg))) in cases.iter().zip(&ours.0).enumerate() {
        let theirs = &py_spf[i];
        if ours.as_str() != theirs {
            disagree.push(format!(
                "SPF {} {}: yubin {ours}, pyspf {theirs}\n  {dbg}",
                case.sender, case.helo
            ));
        }
        if let Some(e) = expect {
            if ours != e {
                disagree.push(format!(
                    "SPF {} {}: yubin {ours}, expected {e}\n  {dbg}",
                    case.sender, case.helo
                ));
            }
        }
    }
    for (f, ours) in files.iter().zip(&ours.1) {
        let key = f.to_str().unwrap();
        let tail = &dkim_part[dkim_part.find(key).expect("file in python output") + key.len()..];
        let tail = &tail[tail.find('[').unwrap()..];
        let theirs = serde_json_lite::strings(&tail[..tail.find(']').unwrap()]);
        let ours_pf: Vec<&str> = ours
            .iter()
            .map(|(r, _)| {
                if *r == DkimResult::Pass {
                    "pass"
                } else {
                    "fail"
                }
            })
            .collect();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // Known, reported disagreement: relaxed body canonicalisation with
        // l= and text appended after the trailing empty lines. dkimpy
        // hashes the first l= bytes of the canonical body; mail-auth 0.7.5
        // strips the empty lines only at the very end, so its first l=
        // bytes differ and it fails. Failing is the safe side; the test
        // pins the difference so that a mail-auth fix shows up here.
        if name == "l-appended.eml" {
            assert_eq!(
                (ours_pf.as_slice(), theirs.as_slice()),
                (&["fail"][..], &["pass".to_string()][..])
            );
            continue;
        }
        if ours_pf != theirs {
            disagree.push(format!(
                "DKIM {}: yubin {ours_pf:?}, dkimpy {theirs:?}\n  {ours:?}",
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));

    // The corpus covers what the issue names, with the expected outcome.
    let by_name = |n: &str| -> &Vec<(DkimResult, String)> {
        let i = files
            .iter()
            .position(|f| f.file_name().unwrap() == format!("{n}.eml").as_str())
            .unwrap();
        &ours.1[i]
    };
    for n in [
        "canon-relaxed-relaxed",
        "canon-simple-simple",
        "canon-relaxed-simple",
        "canon-simple-relaxed",
        "l-intact",
        "two-signatures",
        "ed25519",
        "rsa-and-ed25519",
    ] {
        assert!(
            by_name(n).iter().all(|(r, _)| *r == DkimResult::Pass),
            "{n}: {:?}",
            by_name(n)
        );
    }
    let r = by_name("expired");
    assert!(
        r[0].0 == DkimResult::Fail && r[0].1.contains("expired"),
        "{r:?}"
    );
    let r = by_name("big-key");
    assert!(
        r[0].0 == DkimResult::PermError && r[0].1.contains("larger than an 8192-bit key"),
        "{r:?}"
    );
    let r = by_name("revoked");
    assert!(
        r[0].0 == DkimResult::Fail && r[0].1.contains("key revoked"),
        "{r:?}"
    );
    let r = by_name("no-key");
    assert!(
        r[0].0 == DkimResult::PermError && r[0].1.contains("no key"),
        "{r:?}"
    );
    let r = by_name("broken-body");
    assert!(
        r[0].0 == DkimResult::Fail && r[0].1.contains("body hash"),
        "{r:?}"
    );
    let r = by_name("two-one-broken");
    assert_eq!(
        r.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![DkimResult::PermError, DkimResult::Pass]
    );
    let r = by_name("three-one-tampered");
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|x| x.0 == DkimResult::Fail), "{r:?}");
}

#[test]
fn dmarc_and_bad_input_in_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = openssl_key(dir.path(), "k1.pem", "1024");
    let k2 = openssl_key(dir.path(), "k2.pem", "1024");
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    let out = Command::new(PY)
        .args([
            CORPUS,
            "sign",
            dir.path().to_str().unwrap(),
            corpus.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lab = Lab::new(&zone(&k1, &k2, &ed_key(dir.path())));
    let signed = std::fs::read(corpus.join("canon-relaxed-relaxed.eml")).unwrap();
    let tampered = std::fs::read(corpus.join("broken-body.eml")).unwrap();
    let third = std::fs::read(corpus.join("wrong-key.eml")).unwrap();

    let results = lab.run(move |src| async move {
        let s = Settings::new("mx.lab.test");
        let env = |from: &str| Envelope {
            client_ip: "192.0.2.99".parse().unwrap(),
            helo: "client.lab.test".into(),
            mail_from: from.into(),
        };
        let good_ip = Envelope {
            client_ip: client_ip(),
            helo: "client.lab.test".into(),
            mail_from: "bounce@sig.test".into(),
        };
        // DKIM aligned pass from a foreign IP: DMARC pass by DKIM.
        let a = authenticate(src.clone(), &s, &env("x@else.test"), &signed).await;
        // Broken signature, foreign IP, foreign MAIL FROM: fail, p=reject.
        let b = authenticate(src.clone(), &s, &env("x@else.test"), &tampered).await;
        // SPF pass and aligned, signature broken: pass by SPF.
        let c = authenticate(src.clone(), &s, &good_ip, &tampered).await;
        // From a subdomain: the organisational record's sp=quarantine.
        let sub = String::from_utf8(tampered.clone())
            .unwrap()
            .replace("alice@sig.test", "alice@news.sig.test");
        let d = authenticate(src.clone(), &s, &env("x@else.test"), sub.as_bytes()).await;
        // Relaxed SPF alignment: MAIL FROM in mail.strict.test under aspf=s fails.
        let st = String::from_utf8(tampered.clone())
            .unwrap()
            .replace("alice@sig.test", "alice@strict.test");
        let mut e_env = good_ip.clone();
        e_env.mail_from = "b@mail.strict.test".into();
        let e = authenticate(src.clone(), &s, &e_env, st.as_bytes()).await;
        // A 1,000-signature message: bounded, the excess reported.
        let mut many = Vec::new();
        let sig_line = third.split(|&b| b == b'\n').next().unwrap().to_vec();
        for _ in 0..1000 {
            many.extend_from_slice(&sig_line);
            many.push(b'\n');
        }
        many.extend_from_slice(&third);
        let f = authenticate(src.clone(), &s, &env("x@huge.test"), &many).await;
        (a, b, c, d, e, f)
    });
    let (a, b, c, d, e, f) = results;
    assert_eq!(a.dmarc.result, DmarcResult::Pass, "{}", a.explain());
    assert_eq!(b.dmarc.result, DmarcResult::Fail, "{}", b.explain());
    assert_eq!(b.dmarc.policy, Disposition::Reject);
    assert_eq!(b.dmarc.disposition, Disposition::Reject);
    assert!(
        b.header()
            .contains("dmarc=fail (p=reject dis=reject) header.from=sig.test"),
        "{}",
        b.header()
    );
    assert_eq!(c.dmarc.result, DmarcResult::Pass, "{}", c.explain());
    assert_eq!(d.dmarc.result, DmarcResult::Fail, "{}", d.explain());
    assert_eq!(d.dmarc.record_domain.as_deref(), Some("sig.test"));
    assert_eq!(d.dmarc.policy, Disposition::Quarantine, "{}", d.explain());
    assert_eq!(e.spf_mailfrom.result, SpfResult::Pass, "{}", e.explain());
    assert_eq!(e.dmarc.result, DmarcResult::Fail, "{}", e.explain());
    assert!(
        e.explain().contains("not aligned (strict)"),
        "{}",
        e.explain()
    );
    // Huge TXT answer: a clear temperror, not a parse of 50 kB.
    assert_eq!(
        f.spf_mailfrom.result,
        SpfResult::TempError,
        "{}",
        f.explain()
    );
    assert!(f.explain().contains("bytes, over the"), "{}", f.explain());
    assert_eq!(f.dkim.signatures.len(), 10);
    assert_eq!(f.dkim.skipped, 991);
    assert!(
        f.header().contains("991 more signatures not verified"),
        "{}",
        f.header()
    );
    assert!(f.dns_queries <= 60, "{}", f.dns_queries);
}
