//! Outbound delivery, Postfix's smtp(8): routing a message to its nexthop
//! (relayhost or MX), the TLS policy, SASL credentials, and the async driver
//! that runs the I/O-free client core of `yubin-smtp` over real sockets.
//! It does not queue, retry later, bounce or log: it returns typed
//! per-recipient results and the caller (the queue manager) does the rest.

pub mod agent;
pub mod dkim;
pub mod dns;
pub mod explain;
pub mod lmtp;
pub mod log;
pub mod nexthop;
pub mod outbound;
pub mod settings;
pub mod tls;

pub use agent::{deliver, Delivery, Job, RcptResult, Status};
pub use dns::Dns;
pub use lmtp::LmtpTarget;
pub use nexthop::{Host, Nexthop};
pub use outbound::Outbound;
pub use settings::{Settings, Timeouts};
pub use tls::{TlsClient, TlsLevel};
