//! The control socket (`queue_directory/public/control`), Postfix's
//! public/qmgr and master signals in one: `flush` (postqueue -f),
//! `flush SITE` (postqueue -s SITE), `reload`
//! (yubin reload), `stop` (yubin stop). One word per line, answered `ok`.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::runtime::{QmgrMsg, Shared};

pub fn start(shared: Arc<Shared>) -> anyhow::Result<()> {
    let path = shared.spool.control_socket();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut line = String::new();
                let mut r = BufReader::new(r.take(256));
                if r.read_line(&mut line).await.is_err() {
                    return;
                }
                let answer = match line.trim() {
                    "flush" => {
                        let _ = shared.qmgr.send(QmgrMsg::Flush);
                        "ok"
                    }
                    l if l.starts_with("flush ") => {
                        let site = l["flush ".len()..].trim().to_string();
                        let _ = shared.qmgr.send(QmgrMsg::FlushSite(site));
                        "ok"
                    }
                    "pickup" => {
                        super::pickup::wake();
                        "ok"
                    }
                    "reload" => {
                        shared.reload();
                        "ok"
                    }
                    "stop" => {
                        shared.stop_request.notify_one();
                        "ok"
                    }
                    _ => "unknown request",
                };
                let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// Client side: sends one request to a running server.
pub fn request(socket: &std::path::Path, what: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    s.write_all(format!("{what}\n").as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim().to_string())
}
