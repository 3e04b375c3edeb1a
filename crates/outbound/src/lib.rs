//! Outbound delivery, Postfix's smtp(8): from a routed nexthop (the
//! resolver's: relayhost, transport_maps, ...) to the servers (MX), the TLS policy, SASL credentials, and the async driver
//! that runs the I/O-free client core of `yubin-smtp` over real sockets.
//! It does not queue, retry later, bounce or log: it returns typed
//! per-recipient results and the caller (the queue manager) does the rest.

pub mod agent;
pub mod cache;
pub mod dane;
pub mod dkim;
pub mod dns;
pub mod explain;
pub mod lmtp;
pub mod log;
pub mod mta_sts;
pub mod outbound;
pub mod settings;
pub mod tls;

pub use agent::{deliver, deliver_with, Delivery, Job, RcptResult, Status};
pub use cache::{CacheSettings, ConnCache};
pub use dns::Dns;
pub use lmtp::LmtpTarget;
pub use outbound::Outbound;
pub use settings::{Settings, Timeouts};
pub use tls::{TlsClient, TlsLevel};
/// Nexthops are parsed where routes are decided (yubin-addr).
pub use yubin_addr::nexthop;
pub use yubin_addr::nexthop::{Host, Nexthop};
