//! What `yubin trace` says about a remote address once the resolver has
//! routed it (transport and nexthop, and why, are the resolver's steps):
//! the servers that would be tried in order, the TLS level that applies and
//! where it comes from, and whether the mail would be DKIM-signed. Only DNS
//! lookups, no connection.

use std::fmt;

use crate::dane;
use crate::dns::{RouteError, Server, Shuffle};
use crate::nexthop::Nexthop;
use crate::outbound::Outbound;
use crate::tls::TlsLevel;

#[derive(Debug, Clone)]
pub struct Explanation {
    pub nexthop: Nexthop,
    /// The servers in the order they would be tried, or why there are none.
    pub servers: Result<Vec<Server>, RouteError>,
    pub tls: TlsLevel,
    pub tls_why: String,
    /// Under dane/dane-only: what the DNS says for the MX RRset and each
    /// server's TLSA records, and the level that follows.
    pub dane: Vec<String>,
    /// With `yubin_mta_sts_enable`: the domain's policy and where it came from.
    pub mta_sts: Option<String>,
    /// `(domain, selector, key file)` of the DKIM key for the sender.
    pub dkim: Option<(String, String, String)>,
}

impl Outbound {
    /// Explains delivery to `nexthop` (as routed) of mail from `sender`.
    pub async fn explain(&self, nexthop: &Nexthop, sender: &str) -> Explanation {
        let nexthop = nexthop.clone();
        let s = &self.settings;
        let servers = self
            .dns
            .servers(
                &nexthop,
                s.protocols,
                s.address_preference,
                &s.my_addresses,
                &mut Shuffle::from_clock(),
            )
            .await;
        let (tls, tls_why) = s.tls_level_for(&nexthop);
        let dane = if tls.is_dane() {
            self.explain_dane(&nexthop, &servers).await
        } else {
            Vec::new()
        };
        let mta_sts = match (&s.mta_sts, &nexthop) {
            (Some(sts), Nexthop::Mx { domain, .. }) => Some(
                match sts
                    .cache
                    .lookup(&self.dns, &sts.tls.verified, domain, s.timeouts.connect)
                    .await
                {
                    crate::mta_sts::Decision::Policy(p, why) => format!(
                        "{} (mx: {}; max_age {}s) from {why}{}",
                        p.mode.name(),
                        p.mx.join(", "),
                        p.max_age,
                        if matches!(tls, TlsLevel::None | TlsLevel::May | TlsLevel::Encrypt) {
                            ""
                        } else {
                            " (not applied: the TLS level above takes precedence)"
                        }
                    ),
                    crate::mta_sts::Decision::NoPolicy(why)
                    | crate::mta_sts::Decision::Failed(why) => {
                        format!("no policy: {why}")
                    }
                },
            ),
            _ => None,
        };
        let dkim = s.dkim.for_sender(sender).map(|k| {
            (
                k.domain.clone(),
                k.selector.clone(),
                k.key_file.display().to_string(),
            )
        });
        Explanation {
            nexthop,
            servers,
            tls,
            tls_why,
            dane,
            mta_sts,
            dkim,
        }
    }
}

impl Outbound {
    async fn explain_dane(
        &self,
        nexthop: &Nexthop,
        servers: &Result<Vec<Server>, RouteError>,
    ) -> Vec<String> {
        let resolvers = dane::resolvers(&self.settings.dns_servers);
        let limit = self.settings.timeouts.connect;
        let mut out = Vec::new();
        if let Nexthop::Mx { domain, .. } = nexthop {
            out.push(match dane::mx_secure(&resolvers, domain, limit).await {
                Ok(true) => format!("MX records of {domain}: DNSSEC-authenticated (AD)"),
                Ok(false) => format!(
                    "MX records of {domain}: not authenticated (no AD from the resolver): no DANE"
                ),
                Err(e) => format!("MX records of {domain}: lookup error: {e}"),
            });
        }
        for s in servers.iter().flatten() {
            let port = nexthop.port();
            let name = format!("_{port}._tcp.{}", s.name);
            out.push(match dane::tlsa(&resolvers, &s.name, port, limit).await {
                Ok(dane::TlsaAnswer::Secure(r)) if r.is_empty() => {
                    format!("{name}: no TLSA records (authenticated denial)")
                }
                Ok(dane::TlsaAnswer::Secure(r)) => {
                    let list: Vec<String> = r
                        .iter()
                        .map(|t| {
                            let hex: String = t.data.iter().map(|b| format!("{b:02x}")).collect();
                            format!(
                                "{} {} {} {}{}",
                                t.usage,
                                t.selector,
                                t.matching,
                                hex,
                                if t.usable() { "" } else { " (unusable)" }
                            )
                        })
                        .collect();
                    format!("{name}: TLSA (authenticated): {}", list.join("; "))
                }
                Ok(dane::TlsaAnswer::Insecure) => {
                    format!("{name}: answer not authenticated (no AD): no DANE for this host")
                }
                Err(e) => format!("{name}: lookup error: {e} (this host would be skipped)"),
            });
        }
        out
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match &self.nexthop {
            Nexthop::Mx { .. } => "MX lookup",
            Nexthop::Host { .. } => "no MX lookup",
        };
        writeln!(f, "nexthop {} ({how}):", self.nexthop)?;
        match &self.servers {
            Ok(list) => {
                for (i, s) in list.iter().enumerate() {
                    let addrs: Vec<String> = s.addrs.iter().map(|a| a.to_string()).collect();
                    writeln!(
                        f,
                        "  {}. {} (preference {}) {}",
                        i + 1,
                        s.name,
                        s.preference,
                        addrs.join(", ")
                    )?;
                }
            }
            Err(e) => writeln!(
                f,
                "  no server: {} {e} ({})",
                e.enhanced(),
                if e.is_permanent() { "bounce" } else { "defer" }
            )?,
        }
        writeln!(f, "TLS: {} (from {})", self.tls.name(), self.tls_why)?;
        for line in &self.dane {
            writeln!(f, "  DANE: {line}")?;
        }
        if let Some(m) = &self.mta_sts {
            writeln!(f, "  MTA-STS: {m}")?;
        }
        match &self.dkim {
            Some((d, s, k)) => writeln!(f, "DKIM: signed as d={d} s={s} with {k}"),
            None => writeln!(
                f,
                "DKIM: not signed (sender domain not in yubin_dkim_signing_maps)"
            ),
        }
    }
}
