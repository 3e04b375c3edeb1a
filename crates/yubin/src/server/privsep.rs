//! Alias `|command` and `/file` targets run as `default_privs`, as local(8)
//! runs them — never as root and not as `mail_owner`, who owns every
//! mailbox. Started as root, `yubin serve` forks this helper before it drops
//! its own privileges; the helper keeps root only to switch to
//! `default_privs` in a fresh child for each job. The server sends jobs over
//! a socket pair; the helper can run nothing as any other user, so a
//! compromised server gains nothing through it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use yubin_deliver::{mbox, pipe, Failure, Message};

/// One delivery to a command or file.
#[derive(Serialize, Deserialize)]
struct Job {
    file: bool,
    target: String,
    queue_id: String,
    sender: String,
    original_recipient: String,
    recipient: String,
    hostname: String,
    size_limit: u64,
}

#[derive(Serialize, Deserialize)]
struct Outcome {
    ok: bool,
    temporary: bool,
    dsn: String,
    text: String,
}

/// The server's end of the helper.
pub struct PrivSep {
    sock: Mutex<UnixStream>,
}

fn send_frame(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(&(bytes.len() as u64).to_be_bytes())?;
    w.write_all(bytes)
}

fn read_frame(r: &mut impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let len = u64::from_be_bytes(len);
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Largest message the helper accepts (the server's own limit is lower).
const MAX_FRAME: u64 = 1 << 30;

/// Forks the helper when running as root. Must be called before any thread
/// starts (before the async runtime).
pub fn start(default_privs: &str) -> anyhow::Result<Option<PrivSep>> {
    if !yubin_sys::is_root() {
        return Ok(None);
    }
    let user = yubin_addr::passwd::lookup(default_privs)
        .ok_or_else(|| anyhow::anyhow!("default_privs = {default_privs}: no such user"))?;
    if user.uid == 0 {
        anyhow::bail!("default_privs = {default_privs}: must not be root");
    }
    let (parent, child) = UnixStream::pair()?;
    // SAFETY: called while the process is single-threaded (before the
    // async runtime starts); the child only serves jobs and exits.
    match unsafe { yubin_sys::fork() }? {
        yubin_sys::Forked::Child => {
            drop(parent);
            serve(child, user.uid, user.gid);
            yubin_sys::exit_now(0)
        }
        yubin_sys::Forked::Parent(_) => {
            drop(child);
            Ok(Some(PrivSep {
                sock: Mutex::new(parent),
            }))
        }
    }
}

/// The helper's loop: one job at a time, each in a child that becomes
/// `uid`/`gid` before touching anything.
fn serve(mut sock: UnixStream, uid: u32, gid: u32) {
    loop {
        let (Ok(head), Ok(content)) = (
            read_frame(&mut sock, 1 << 20),
            read_frame(&mut sock, MAX_FRAME),
        ) else {
            return; // the server went away
        };
        let Ok(job) = serde_json::from_slice::<Job>(&head) else {
            return;
        };
        let outcome = run_as(&job, &content, uid, gid);
        let Ok(bytes) = serde_json::to_vec(&outcome) else {
            return;
        };
        if send_frame(&mut sock, &bytes).is_err() {
            return;
        }
    }
}

fn run_as(job: &Job, content: &[u8], uid: u32, gid: u32) -> Outcome {
    let Ok((mut r, mut w)) = UnixStream::pair() else {
        return Outcome {
            ok: false,
            temporary: true,
            dsn: "4.3.0".into(),
            text: "socketpair failed".into(),
        };
    };
    // SAFETY: the helper is single-threaded; the child drops privileges
    // first, delivers, reports and exits.
    let forked = unsafe { yubin_sys::fork() };
    if forked
        .as_ref()
        .is_ok_and(|f| *f == yubin_sys::Forked::Child)
    {
        drop(r);
        let ok = yubin_sys::become_ids(uid, gid).is_ok();
        let result = if !ok {
            Err(Failure::temp("4.3.0", "cannot switch to default_privs"))
        } else {
            let m = Message {
                queue_id: &job.queue_id,
                sender: &job.sender,
                original_recipient: &job.original_recipient,
                recipient: &job.recipient,
                content,
                hostname: &job.hostname,
            };
            if job.file {
                mbox::deliver(std::path::Path::new(&job.target), &m, job.size_limit)
            } else {
                pipe::command(&job.target, &m, std::time::Duration::from_secs(1000))
            }
        };
        let o = match result {
            Ok(()) => Outcome {
                ok: true,
                temporary: false,
                dsn: "2.0.0".into(),
                text: String::new(),
            },
            Err(f) => Outcome {
                ok: false,
                temporary: f.temporary,
                dsn: f.dsn,
                text: f.text,
            },
        };
        let _ = serde_json::to_vec(&o).map(|b| send_frame(&mut w, &b));
        yubin_sys::exit_now(0)
    }
    drop(w);
    let outcome = read_frame(&mut r, 1 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Outcome {
            ok: false,
            temporary: true,
            dsn: "4.3.0".into(),
            text: "delivery helper child failed".into(),
        });
    if let Ok(yubin_sys::Forked::Parent(pid)) = forked {
        yubin_sys::wait_child(pid);
    }
    outcome
}

impl PrivSep {
    /// Delivers to a `|command` (file = false) or `/file` as default_privs.
    pub fn deliver(
        &self,
        file: bool,
        target: &str,
        m: &Message<'_>,
        size_limit: u64,
    ) -> Result<(), Failure> {
        let job = Job {
            file,
            target: target.to_string(),
            queue_id: m.queue_id.to_string(),
            sender: m.sender.to_string(),
            original_recipient: m.original_recipient.to_string(),
            recipient: m.recipient.to_string(),
            hostname: m.hostname.to_string(),
            size_limit,
        };
        let head = serde_json::to_vec(&job).map_err(|e| Failure::temp("4.3.0", e.to_string()))?;
        let mut sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let io = |e: std::io::Error| Failure::temp("4.3.0", format!("delivery helper: {e}"));
        send_frame(&mut *sock, &head).map_err(io)?;
        send_frame(&mut *sock, m.content).map_err(io)?;
        let reply = read_frame(&mut *sock, 1 << 20).map_err(io)?;
        let o: Outcome =
            serde_json::from_slice(&reply).map_err(|e| Failure::temp("4.3.0", e.to_string()))?;
        if o.ok {
            Ok(())
        } else if o.temporary {
            Err(Failure::temp(&o.dsn, o.text))
        } else {
            Err(Failure::perm(&o.dsn, o.text))
        }
    }
}

/// The delivery agents run command and file targets through the helper.
impl yubin_deliver::agent::AsUser for PrivSep {
    fn deliver(
        &self,
        file: bool,
        target: &str,
        m: &Message<'_>,
        limit: u64,
    ) -> Result<(), Failure> {
        PrivSep::deliver(self, file, target, m, limit)
    }
}
