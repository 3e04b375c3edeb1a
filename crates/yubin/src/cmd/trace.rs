//! `yubin trace ADDRESS...`: the path an address takes and why, the thing
//! the seed's admin was missing: class and the parameter that decided it,
//! every table, key and source line consulted, the expansion tree, the
//! mailbox, or the exact reject with what to change. For a remote address:
//! the nexthop and why, the MX hosts in the order they would be tried, the
//! TLS level that applies and where it comes from, and whether the mail
//! would be DKIM-signed (DNS lookups only; nothing is sent).

use std::path::Path;

use clap::Args;
use yubin_addr::{parse_address, Agent, Class, Resolver, Verdict};
use yubin_conf::Config;

use crate::fail::{fatal, warn};

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Print one JSON object per address instead of text.
    #[arg(long)]
    json: bool,
    /// The envelope sender: the sender-dependent tables
    /// (sender_dependent_relayhost_maps, sender_dependent_default_transport_maps)
    /// and the DKIM signing decision use it. Without it those tables are
    /// not searched.
    #[arg(long, value_name = "ADDRESS")]
    from: Option<String>,
    /// Addresses as they would appear in RCPT TO (with or without <>).
    #[arg(required = true)]
    addresses: Vec<String>,
}

pub fn run(dir: &Path, a: TraceArgs) -> i32 {
    let cfg = match Config::load(dir) {
        Ok(c) => c,
        Err(e) => return fatal("trace", e),
    };
    for w in cfg.warnings() {
        warn("trace", w);
    }
    let resolver = match Resolver::new(&cfg) {
        Ok(r) => r,
        Err(e) => return fatal("trace", e),
    };
    let outbound = match yubin_outbound::Outbound::with_resolver(
        &cfg,
        std::sync::Arc::new(yubin_dns::Dns::new(
            yubin_dns::parse_servers(&cfg.list("dns_servers")).unwrap_or_default(),
        )),
    ) {
        Ok(o) => o,
        Err(e) => return fatal("trace", e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fatal("trace", e),
    };
    let mut code = 0;
    for text in &a.addresses {
        let inner = text.trim().trim_start_matches('<').trim_end_matches('>');
        let addr = match parse_address(inner, true) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("trace: {text}: 501 5.1.3 Bad recipient address syntax ({e})");
                code = 1;
                continue;
            }
        };
        let from = a
            .from
            .as_deref()
            .map(|f| f.trim().trim_start_matches('<').trim_end_matches('>'));
        let res = resolver.resolve_from(&addr, from);
        if matches!(res.verdict, Verdict::Reject { .. }) {
            code = 1;
        }
        if a.json {
            match serde_json::to_string(&res) {
                Ok(s) => println!("{s}"),
                Err(e) => return fatal("trace", e),
            }
            continue;
        }
        print!("{}", res.render());
        if res.class == Class::Default && matches!(res.verdict, Verdict::Accept) {
            println!(
                "  relaying: a remote domain; smtpd_relay_restrictions ({}) decide: clients in mynetworks ({}) and SASL-authenticated clients may relay, others get \"454 4.7.1 <{}>: Relay access denied\"",
                cfg.origin_text("smtpd_relay_restrictions"),
                cfg.get("mynetworks"),
                res.address
            );
        }
        // Each smtp/relay delivery: the servers, TLS and DKIM for its nexthop.
        if matches!(res.verdict, Verdict::Accept) {
            for d in &res.deliveries {
                if let Agent::Smtp { nexthop, .. } = &d.agent {
                    let how = rt.block_on(outbound.explain(nexthop, from.unwrap_or("")));
                    print!("{how}");
                }
            }
        }
    }
    code
}
