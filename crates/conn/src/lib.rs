//! The one session driver for line protocols: it runs an I/O-free core
//! (SMTP today; IMAP and LMTP next) over a connection with the read
//! timeout, the STARTTLS upgrade, the delays the core asks for, shutdown,
//! and the connection-level log lines. It holds no protocol logic: what to
//! answer is the core's, what to look up is the handler's.

pub mod driver;
pub mod smtp;
pub mod stream;

pub use driver::{drive, Core, End, Handler, Options, Step};
pub use stream::Conn;
