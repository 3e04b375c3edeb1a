//! check_policy_service: Postfix's policy delegation protocol
//! (SMTPD_POLICY_README "Protocol description"): the request is
//! `name=value` lines ended by an empty line; the reply is the same with an
//! `action=` attribute, whose value is an access(5) action. The protocol
//! part ([`encode_request`], [`parse_reply`]) is pure; [`PolicyClient`] does
//! the socket I/O with smtpd_policy_service_* limits.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// Longest reply accepted (Postfix's attr_scan line limit is of this order).
pub const MAX_REPLY: usize = 64 * 1024;

/// The request's attributes, in SMTPD_POLICY_README's order.
pub fn encode_request(attrs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        // A value cannot hold a line end (attr_print_plain would end the
        // attribute there).
        for b in v.bytes() {
            out.push(if b == b'\n' || b == b'\r' { b' ' } else { b });
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The reply ended before its empty line.
    Incomplete,
    TooLong,
    /// A line without `=`.
    Malformed(String),
    /// No `action=` attribute.
    NoAction,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Incomplete => f.write_str("premature end of reply"),
            ReplyError::TooLong => f.write_str("reply too long"),
            ReplyError::Malformed(l) => write!(f, "malformed attribute \"{l}\""),
            ReplyError::NoAction => f.write_str("reply has no action attribute"),
        }
    }
}

/// Parses a complete reply (everything up to and including the empty
/// line). Returns the `action` value and how many bytes the reply used.
pub fn parse_reply(input: &[u8]) -> Result<(String, usize), ReplyError> {
    let mut pos = 0;
    let mut action = None;
    loop {
        let Some(nl) = input[pos..].iter().position(|&b| b == b'\n') else {
            return Err(if input.len() > MAX_REPLY {
                ReplyError::TooLong
            } else {
                ReplyError::Incomplete
            });
        };
        let line = &input[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if pos > MAX_REPLY {
            return Err(ReplyError::TooLong);
        }
        if line.is_empty() {
            return action.map(|a| (a, pos)).ok_or(ReplyError::NoAction);
        }
        let text = String::from_utf8_lossy(line);
        let Some((name, value)) = text.split_once('=') else {
            return Err(ReplyError::Malformed(text.chars().take(100).collect()));
        };
        if name == "action" && action.is_none() {
            action = Some(value.trim().to_string());
        }
    }
}

/// An error as strerror(3) words it, without Rust's "(os error N)".
fn plain(e: &dyn std::fmt::Display) -> String {
    let t = e.to_string();
    match t.find(" (os error") {
        Some(i) => t[..i].to_string(),
        None => t,
    }
}

/// Where the policy server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Inet(String),
    Unix(std::path::PathBuf),
}

impl Endpoint {
    /// `inet:host:port`, `unix:/path` (relative paths are under the queue
    /// directory in Postfix: `private/policy`, given here as `base`).
    pub fn parse(text: &str, base: &std::path::Path) -> Result<Endpoint, String> {
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("bad policy endpoint \"{text}\""))?;
        match kind {
            "inet" => {
                if rest
                    .rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                {
                    return Err(format!(
                        "bad policy endpoint \"{text}\": need inet:host:port"
                    ));
                }
                Ok(Endpoint::Inet(
                    rest.trim_start_matches('[').replace("]:", ":"),
                ))
            }
            "unix" => {
                let p = std::path::Path::new(rest);
                Ok(Endpoint::Unix(if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                }))
            }
            _ => Err(format!(
                "bad policy endpoint \"{text}\": yubin speaks to inet: and unix: policy servers"
            )),
        }
    }
}

/// smtpd_policy_service_* settings.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub max_idle: Duration,
    pub max_ttl: Duration,
    pub request_limit: u64,
    pub try_limit: u32,
    pub retry_delay: Duration,
    pub default_action: String,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(100),
            max_idle: Duration::from_secs(300),
            max_ttl: Duration::from_secs(1000),
            request_limit: 0,
            try_limit: 2,
            retry_delay: Duration::from_secs(1),
            default_action: "451 4.3.5 Server configuration problem".into(),
        }
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    io: BufReader<Box<dyn Stream>>,
    opened: Instant,
    used: Instant,
    requests: u64,
}

/// One policy server, one connection kept open between requests (Postfix's
/// attr_clnt: idle and lifetime limits, a request limit, retries).
pub struct PolicyClient {
    text: String,
    endpoint: Endpoint,
    limits: Limits,
    conn: Mutex<Vec<Conn>>,
}

impl PolicyClient {
    pub fn new(text: &str, endpoint: Endpoint, limits: Limits) -> PolicyClient {
        PolicyClient {
            text: text.to_string(),
            endpoint,
            limits,
            conn: Mutex::new(Vec::new()),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.text
    }

    /// The server as Postfix's warnings name it (`127.0.0.1:9998`,
    /// `private/policy`).
    fn address(&self) -> &str {
        self.text
            .split_once(':')
            .map(|(_, a)| a)
            .unwrap_or(&self.text)
    }

    pub fn default_action(&self) -> &str {
        &self.limits.default_action
    }

    async fn connect(&self) -> std::io::Result<Conn> {
        let io: Box<dyn Stream> = match &self.endpoint {
            Endpoint::Inet(addr) => Box::new(tokio::net::TcpStream::connect(addr.as_str()).await?),
            Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        };
        let now = Instant::now();
        Ok(Conn {
            io: BufReader::new(io),
            opened: now,
            used: now,
            requests: 0,
        })
    }

    async fn exchange(conn: &mut Conn, request: &[u8]) -> Result<String, String> {
        conn.io
            .get_mut()
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        loop {
            let n = conn
                .io
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            if buf.len() > MAX_REPLY {
                return Err(ReplyError::TooLong.to_string());
            }
            if buf.ends_with(b"\n\n") || buf == b"\n" || buf.ends_with(b"\n\r\n") {
                break;
            }
        }
        parse_reply(&buf).map(|(a, _)| a).map_err(|e| e.to_string())
    }

    /// Sends one request; the action, or `Err(why)` after the tries are
    /// used up (the caller then applies the default action and logs why).
    pub async fn query(&self, request: &[u8]) -> Result<String, String> {
        let mut why = String::new();
        for attempt in 0..self.limits.try_limit.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.limits.retry_delay).await;
            }
            let cached = {
                let mut g = self.conn.lock().await;
                g.pop()
            };
            let now = Instant::now();
            let conn = match cached {
                Some(c)
                    if now.duration_since(c.used) < self.limits.max_idle
                        && now.duration_since(c.opened) < self.limits.max_ttl =>
                {
                    Ok(c)
                }
                _ => tokio::time::timeout(self.limits.timeout, self.connect())
                    .await
                    .map_err(|_| "timeout".to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
            };
            let mut conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    why = format!("{}: {}", self.address(), plain(&e));
                    continue;
                }
            };
            match tokio::time::timeout(self.limits.timeout, Self::exchange(&mut conn, request))
                .await
            {
                Ok(Ok(action)) => {
                    conn.used = Instant::now();
                    conn.requests += 1;
                    if self.limits.request_limit == 0 || conn.requests < self.limits.request_limit {
                        self.conn.lock().await.push(conn);
                    }
                    return Ok(action);
                }
                Ok(Err(e)) => why = format!("{}: {}", self.address(), plain(&e)),
                Err(_) => why = format!("{}: read timeout", self.address()),
            }
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(
            parse_reply(b"action=DUNNO\n\n").unwrap(),
            ("DUNNO".to_string(), 14)
        );
        assert_eq!(
            parse_reply(b"x=1\naction=PREPEND Received-SPF: pass\n\n")
                .unwrap()
                .0,
            "PREPEND Received-SPF: pass"
        );
        assert_eq!(parse_reply(b"action=OK\n"), Err(ReplyError::Incomplete));
        assert_eq!(parse_reply(b"x=1\n\n"), Err(ReplyError::NoAction));
        assert!(matches!(
            parse_reply(b"garbage\n\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert_eq!(
            encode_request(&[("request", "smtpd_access_policy"), ("helo_name", "a\nb")]),
            b"request=smtpd_access_policy\nhelo_name=a b\n\n".to_vec()
        );
        let base = std::path::Path::new("/var/spool/yubin");
        assert_eq!(
            Endpoint::parse("unix:private/policy", base).unwrap(),
            Endpoint::Unix(base.join("private/policy"))
        );
        assert_eq!(
            Endpoint::parse("inet:127.0.0.1:9998", base).unwrap(),
            Endpoint::Inet("127.0.0.1:9998".into())
        );
        assert!(Endpoint::parse("inet:nohost", base).is_err());
        assert!(Endpoint::parse("tcp:x:1", base).is_err());
    }
}
