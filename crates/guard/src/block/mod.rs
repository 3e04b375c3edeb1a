//! Blocking backends: tcp_wrappers' hosts.deny and an nftables set.

pub mod hosts_deny;
pub mod nft;
