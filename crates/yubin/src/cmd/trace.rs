//! `yubin trace ADDRESS...`: the path an address takes and why, the thing
//! the seed's admin was missing: class and the parameter that decided it,
//! every table, key and source line consulted, the expansion tree, the
//! mailbox, or the exact reject with what to change. For a remote address:
//! the nexthop and why, the MX hosts in the order they would be tried, the
//! TLS level that applies and where it comes from, and whether the mail
//! would be DKIM-signed (DNS lookups only; nothing is sent).
//! With `--message FILE`: the message authentication smtpd would do at the
//! end of DATA for that client (SPF record and matched mechanism, each DKIM
//! signature, DMARC policy and alignment, the header, and what
//! smtpd_end_of_data_restrictions would answer); docs/msgauth.md.

use std::path::Path;

use clap::Args;
use yubin_addr::{parse_address, Class, Resolver, Verdict};
use yubin_conf::Config;

use crate::fail::{fatal, warn};

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Print one JSON object per address instead of text.
    #[arg(long)]
    json: bool,
    /// The envelope sender (MAIL FROM): for the DKIM signing decision of
    /// remote mail, and SPF's MAIL FROM identity with --message.
    #[arg(long, value_name = "ADDRESS", default_value = "")]
    from: String,
    /// A received message (RFC 5322 file): judge its SPF, DKIM and DMARC as
    /// smtpd would at the end of DATA (needs --client).
    #[arg(long, value_name = "FILE", requires = "client")]
    message: Option<std::path::PathBuf>,
    /// The SMTP client's IP address, for --message.
    #[arg(long, value_name = "IP")]
    client: Option<std::net::IpAddr>,
    /// The client's HELO/EHLO name, for --message.
    #[arg(long, value_name = "NAME", default_value = "")]
    helo: String,
    /// Addresses as they would appear in RCPT TO (with or without <>).
    #[arg(required_unless_present = "message")]
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
    if let (Some(file), Some(ip)) = (&a.message, a.client) {
        code = trace_message(&cfg, &rt, file, ip, &a.helo, &a.from);
    }
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
        let res = resolver.resolve(&addr);
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
        if res.class == Class::Default || res.class == Class::Relay {
            let how = rt.block_on(outbound.explain(&a.from, &addr.internal()));
            print!("{how}");
        }
    }
    code
}

/// `--message`: what yubin-msgauth says about this message from this client.
fn trace_message(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    file: &Path,
    ip: std::net::IpAddr,
    helo: &str,
    from: &str,
) -> i32 {
    let data = match std::fs::read(file) {
        Ok(d) => d,
        Err(e) => return fatal("trace", format!("{}: {e}", file.display())),
    };
    let dns = std::sync::Arc::new(yubin_dns::Dns::new(
        yubin_dns::parse_servers(&cfg.list("dns_servers")).unwrap_or_default(),
    ));
    let mut enabled = true;
    let ma = match crate::server::msgauth::from_config(cfg, &dns) {
        Ok(Some(m)) => m,
        Ok(None) => {
            // Show what the checks would say even when they are off.
            enabled = false;
            std::sync::Arc::new(crate::server::msgauth::MsgAuth {
                settings: yubin_msgauth::Settings::new(cfg.get("msgauth_authserv_id")),
                dns: dns.clone(),
                end_of_data: vec![],
            })
        }
        Err(e) => return fatal("trace", format!("{e:#}")),
    };
    let (stripped, forged) = yubin_msgauth::results::strip_ours(&data, &ma.settings.authserv_id);
    let env = yubin_msgauth::Envelope {
        client_ip: ip,
        helo: helo.to_string(),
        mail_from: from
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
    };
    let source = yubin_msgauth::Source::Hickory(dns.resolver().clone());
    let report = rt.block_on(yubin_msgauth::authenticate(
        source,
        &ma.settings,
        &env,
        &stripped,
    ));
    println!(
        "message {} from [{ip}] helo={helo} mail from=<{}>",
        file.display(),
        env.mail_from
    );
    if !enabled {
        println!(
            "  (msgauth_enable = no: smtpd does not run these checks; shown as they would be)"
        );
    }
    print!("{}", report.explain());
    if forged > 0 {
        println!(
            "{forged} Authentication-Results header(s) claiming authserv-id {} would be removed",
            ma.settings.authserv_id
        );
    }
    print!("header: {}", report.header().replace("\r\n", "\n"));
    let in_mynetworks = cfg.list("mynetworks").iter().any(|n| {
        yubin_table::cidr::parse_network(n)
            .map(|(net, p)| yubin_table::cidr::contains(net, p, ip))
            .unwrap_or(false)
    });
    let verdict = crate::server::msgauth::restriction_verdict(
        &ma,
        &report,
        ip,
        in_mynetworks,
        &env.mail_from,
    );
    match verdict {
        Some((r, reply)) => {
            println!(
                "verdict: {r:?} in smtpd_end_of_data_restrictions answers \"{} {} {}\"",
                reply.code,
                reply.enhanced.map(|e| e.to_string()).unwrap_or_default(),
                reply.text.join(" ")
            );
            1
        }
        None => {
            println!("verdict: accepted (header added)");
            0
        }
    }
}
