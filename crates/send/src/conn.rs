//! The byte stream to the server: TCP, a UNIX-domain socket, or a child
//! process's stdin/stdout (swaks(1), "TRANSPORTS"), optionally wrapped in
//! TLS. Reads have a deadline per reply, like swaks' `alarm($timeout)`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::reply::{parse_reply, Reply, ReplyError};

/// A byte stream whose reads can be given a timeout.
pub trait Link: Read + Write + Send {
    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()>;
}

impl Link for TcpStream {
    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

impl Link for UnixStream {
    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

/// A child process spoken to over its stdin and stdout (`--pipe`). A thread
/// reads stdout so that reads can time out like socket reads.
pub struct PipeLink {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    timeout: Option<Duration>,
}

impl PipeLink {
    /// Runs `command` through `sh -c`, as swaks' open2 runs a command line.
    pub fn spawn(command: &str) -> io::Result<PipeLink> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("child has no stdout"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(PipeLink {
            child,
            stdin,
            rx,
            pending: Vec::new(),
            timeout: None,
        })
    }
}

impl Read for PipeLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            let chunk = match self.timeout {
                Some(t) => match self.rx.recv_timeout(t) {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(0),
                },
                None => match self.rx.recv() {
                    Ok(c) => c,
                    Err(_) => return Ok(0),
                },
            };
            self.pending = chunk;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

impl Write for PipeLink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stdin {
            Some(s) => s.write(buf),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin closed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stdin {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

impl Link for PipeLink {
    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.timeout = t;
        Ok(())
    }
}

impl Drop for PipeLink {
    fn drop(&mut self) {
        // Closing stdin tells the child we are done; give it a moment to
        // exit, then make sure it does not outlive us.
        self.stdin.take();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which address family `-4`/`-6` allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

/// Connects to `host:port`, trying every address of the allowed family.
pub fn connect_tcp(
    host: &str,
    port: u16,
    family: Family,
    timeout: Option<Duration>,
) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()?
        .filter(|a| match family {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        })
        .collect();
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("no {family:?} address for {host}"),
    );
    for addr in addrs {
        let r = match timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        match r {
            Ok(s) => {
                // Commands are small writes: do not let Nagle delay them.
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// An I/O error as swaks shows it: the OS message without Rust's
/// "(os error N)" suffix.
pub fn describe(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// What reading a reply ended with.
#[derive(Debug)]
pub enum ReadOutcome {
    Reply(Reply),
    /// No complete reply before the deadline.
    Timeout,
    /// The server closed the connection; what arrived of a reply, if anything.
    Closed(String),
    /// A read error or a reply over the size limits.
    Failed(String),
}

/// A connection: the stream, plain or TLS, and the bytes read but not yet
/// parsed.
pub struct Conn {
    pub io: Box<dyn Link>,
    buf: Vec<u8>,
    pub timeout: Option<Duration>,
}

impl Conn {
    pub fn new(io: Box<dyn Link>, timeout: Option<Duration>) -> Conn {
        Conn {
            io,
            buf: Vec::new(),
            timeout,
        }
    }

    /// Replaces the stream (after a TLS handshake); unread plain-text bytes
    /// are dropped, as RFC 3207 section 4.2 requires.
    pub fn replace_io(&mut self, io: Box<dyn Link>) {
        self.io = io;
        self.buf.clear();
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let _ = self.io.set_timeout(self.timeout);
        self.io.write_all(bytes)?;
        self.io.flush()
    }

    /// Reads one reply, waiting at most `self.timeout` in total.
    pub fn read_reply(&mut self) -> ReadOutcome {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut chunk = [0u8; 8192];
        loop {
            match parse_reply(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return ReadOutcome::Reply(reply);
                }
                Ok(None) => {}
                Err(e @ (ReplyError::LineTooLong | ReplyError::TooManyLines)) => {
                    self.buf.clear();
                    return ReadOutcome::Failed(e.to_string());
                }
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return ReadOutcome::Timeout,
                },
                None => None,
            };
            let _ = self.io.set_timeout(remaining);
            match self.io.read(&mut chunk) {
                Ok(0) => {
                    let partial = String::from_utf8_lossy(&self.buf).replace('\r', "");
                    self.buf.clear();
                    return ReadOutcome::Closed(partial.trim_end_matches('\n').to_string());
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return ReadOutcome::Timeout
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    return ReadOutcome::Closed(String::new())
                }
                Err(e) => return ReadOutcome::Failed(describe(&e)),
            }
        }
    }
}
