//! The policy delegation client against a policy server on a Unix socket:
//! SMTPD_POLICY_README's request, the action used as an access(5) value,
//! one connection for many requests (smtpd_policy_service_request_limit
//! ends it), and the default action when the server is gone.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use yubin_policy::service::{encode_request, Endpoint, Limits, PolicyClient};

/// A server that answers every request with `action`, keeping each request
/// and counting connections.
async fn server(path: PathBuf, action: &'static str, seen: Arc<Mutex<(usize, Vec<String>)>>) {
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    loop {
        let (s, _) = l.accept().await.unwrap();
        seen.lock().unwrap().0 += 1;
        let seen = seen.clone();
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            loop {
                let mut req = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\n" {
                        break;
                    }
                    req.push_str(&line);
                }
                seen.lock().unwrap().1.push(req);
                w.write_all(format!("action={action}\n\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
    }
}

fn limits(request_limit: u64) -> Limits {
    Limits {
        timeout: Duration::from_secs(5),
        retry_delay: Duration::from_millis(10),
        request_limit,
        ..Limits::default()
    }
}

#[tokio::test]
async fn requests_actions_and_connection_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy");
    let seen = Arc::new(Mutex::new((0, Vec::new())));
    tokio::spawn(server(path.clone(), "PREPEND X-Policy: yes", seen.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let req = encode_request(&[
        ("request", "smtpd_access_policy"),
        ("protocol_state", "RCPT"),
        ("sender", "a@example.com"),
    ]);
    let c = PolicyClient::new("unix:policy", Endpoint::Unix(path.clone()), limits(0));
    for _ in 0..3 {
        assert_eq!(c.query(&req).await.unwrap(), "PREPEND X-Policy: yes");
    }
    {
        let g = seen.lock().unwrap();
        assert_eq!(g.0, 1, "one connection for three requests");
        assert_eq!(
            g.1[0],
            "request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a@example.com\n"
        );
    }
    // request_limit = 2: a new connection after every two requests.
    let c = PolicyClient::new("unix:policy", Endpoint::Unix(path.clone()), limits(2));
    for _ in 0..4 {
        c.query(&req).await.unwrap();
    }
    assert_eq!(seen.lock().unwrap().0, 3);
}

#[tokio::test]
async fn a_server_that_is_gone_is_an_error_after_the_tries() {
    let dir = tempfile::tempdir().unwrap();
    let c = PolicyClient::new(
        "unix:nothing",
        Endpoint::Unix(dir.path().join("nothing")),
        limits(0),
    );
    let e = c
        .query(b"request=smtpd_access_policy\n\n")
        .await
        .unwrap_err();
    assert!(e.starts_with("nothing: "), "{e}");
    assert_eq!(c.default_action(), "451 4.3.5 Server configuration problem");
}
