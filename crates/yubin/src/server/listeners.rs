//! Binding the smtpd listeners (before privileges are dropped) and the
//! accept loops, with the per-service session limit (master.cf's maxproc
//! column, `-` meaning default_process_limit: with maxproc 2 a third client
//! waits in the listen queue, unanswered, until a session ends, as with
//! Postfix's master(8)), a listen backlog of max(maxproc,
//! default_process_limit) as master_listen.c gives inet_listen(),
//! and the per-client limit (smtpd_client_connection_count_limit; clients
//! in mynetworks are exempt, as with Postfix's
//! smtpd_client_event_limit_exceptions default).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;

use super::runtime::{Runtime, Shared};

pub struct Bound {
    pub service: String,
    pub addr: SocketAddr,
    pub listener: TcpListener,
    pub index: usize,
}

/// A master.cf `unix` service's listening socket (lmtpd).
pub struct UnixBound {
    pub service: String,
    pub path: PathBuf,
    pub listener: tokio::net::UnixListener,
    pub index: usize,
}

/// Binds the `unix` services: a stale socket file from an earlier run is
/// replaced (master(8) does the same), the directory is made if missing,
/// and the mode is the service's (0660 private, 0666 public).
pub fn bind_unix(rt: &Runtime) -> anyhow::Result<Vec<UnixBound>> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut out = Vec::new();
    for (index, svc) in rt.services.iter().enumerate() {
        let Some((path, mode)) = &svc.unix else {
            continue;
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("service {}: create {}", svc.name, dir.display()))?;
        }
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(path);
        }
        let listener = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("service {}: bind {}", svc.name, path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
            .with_context(|| format!("service {}: chmod {}", svc.name, path.display()))?;
        out.push(UnixBound {
            service: svc.name.clone(),
            path: path.clone(),
            listener,
            index,
        });
    }
    Ok(out)
}

/// The accept loops of the `unix` services, with the same maxproc slots.
pub fn serve_unix(shared: Arc<Shared>, bound: Vec<UnixBound>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        for b in bound {
            let shared = shared.clone();
            let svc = shared.current().services.get(b.index).cloned();
            let limit = svc.as_ref().map(|s| s.process_limit.0).unwrap_or(100);
            let daemon = svc.as_ref().map(|s| s.daemon()).unwrap_or("smtpd");
            let slots = Arc::new(Semaphore::new(limit));
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let stream = match b.listener.accept().await {
                        Ok((s, _)) => s,
                        Err(e) => {
                            shared.log.log(daemon, &format!("warning: accept: {e}"));
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let shared = shared.clone();
                    let index = b.index;
                    tokio::spawn(async move {
                        super::smtpd::handle_unix(shared, index, stream).await;
                        drop(permit);
                    });
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    })
}

pub async fn bind(rt: &Runtime) -> anyhow::Result<Vec<Bound>> {
    let mut out = Vec::new();
    for (index, svc) in rt.services.iter().enumerate() {
        for addr in &svc.addrs {
            let listener = listen(addr, svc.process_limit.1)
                .with_context(|| format!("service {}: bind {addr}", svc.name))?;
            let addr = listener.local_addr()?;
            out.push(Bound {
                service: svc.name.clone(),
                addr,
                listener,
                index,
            });
        }
    }
    Ok(out)
}

/// A listening socket with Postfix's backlog (std's bind always uses 128).
fn listen(addr: &SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std and Postfix's inet_listen(): rebinding right after a restart.
    sock.set_reuseaddr(true)?;
    sock.bind(*addr)?;
    sock.listen(backlog)
}

/// Starts the accept loops; the returned handle stops them when aborted.
pub fn serve(shared: Arc<Shared>, bound: Vec<Bound>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        for b in bound {
            let shared = shared.clone();
            let limit = shared
                .current()
                .services
                .get(b.index)
                .map(|s| s.process_limit.0)
                .unwrap_or(100);
            let slots = Arc::new(Semaphore::new(limit));
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (stream, peer) = match b.listener.accept().await {
                        Ok(x) => x,
                        Err(e) => {
                            shared.log.log("smtpd", &format!("warning: accept: {e}"));
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let shared = shared.clone();
                    let index = b.index;
                    tokio::spawn(async move {
                        super::smtpd::handle(shared, index, stream, peer).await;
                        drop(permit);
                    });
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    })
}
