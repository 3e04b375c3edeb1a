//! swaks' command-line syntax, parsed by hand.
//!
//! Why not clap: swaks (which uses Perl's Getopt::Long) accepts long options
//! with one dash (`-to`, `-tls`), unique abbreviations of any option name
//! (`--quit` for `--quit-after`, `--susp` ...), options whose *name* carries a
//! value (`--h-Subject VALUE`, `--header-X-Foo VALUE`), `--no-OPTION` to forget
//! an earlier occurrence, and optional arguments that are taken only when the
//! next word does not look like an option. clap models none of these, and the
//! seed document's own command line (`-to root@localhost -h-subject "Test
//! Message"`) depends on them. See swaks(1), "OPTION PROCESSING".

/// Whether an option takes an argument (swaks' Arg-None / Arg-Optional /
/// Arg-Required, and Getopt::Long's `=s` vs `:s` vs `:i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A flag.
    None,
    /// Getopt's `=s`: always takes the next word, even one starting with `-`.
    Required,
    /// Getopt's `:s` for an option swaks would prompt for: takes the next word
    /// unless it looks like an option; yubin does not prompt, so a missing
    /// value is an error.
    Needed,
    /// Getopt's `:s`: takes the next word unless it looks like an option.
    Optional,
    /// Getopt's `:i`: takes the next word only if it is a number.
    OptionalNumber,
}

/// One option: its names (the first is canonical), argument kind, and help.
pub struct Spec {
    pub names: &'static [&'static str],
    pub arg: Arg,
    pub help: &'static str,
}

macro_rules! spec {
    ([$($n:literal),+], $a:ident, $h:literal) => {
        Spec { names: &[$($n),+], arg: Arg::$a, help: $h }
    };
}

/// Every option `yubin send` knows, in `--help` order.
pub static SPECS: &[Spec] = &[
    // transport
    spec!(["server", "s"], Needed, "HOST[:PORT] to connect to ([HOST]:PORT and HOST/PORT for IPv6). Default: localhost (swaks would look up the recipient domain's MX; yubin does not)"),
    spec!(["port", "p"], Needed, "TCP port or service name. Default 25 (24 for LMTP, 465 with --tls-on-connect)"),
    spec!(["4"], None, "use IPv4 only"),
    spec!(["6"], None, "use IPv6 only"),
    spec!(["socket"], Needed, "talk to a UNIX-domain socket instead of TCP"),
    spec!(["pipe"], Needed, "spawn COMMAND (through sh -c) and talk SMTP over its stdin/stdout, e.g. --pipe 'yubin sendmail -bs'"),
    // protocol
    spec!(["to", "t"], Needed, "envelope recipient(s), comma-separated"),
    spec!(["from", "f"], Needed, "envelope sender; <> for the null sender. Default: $LOGNAME@HOSTNAME"),
    spec!(["helo", "ehlo", "lhlo", "h"], Needed, "HELO/EHLO/LHLO argument. Default: this host's name"),
    spec!(["quit-after", "quit", "q"], Required, "stop with QUIT after STAGE: connect, banner, first-helo, tls, helo, auth, mail (from), rcpt (to), data, dot"),
    spec!(["drop-after", "drop", "da"], Required, "like --quit-after but close the connection without QUIT"),
    spec!(["timeout"], Needed, "per-reply timeout: N, Ns, Nm or Nh; 0 for none. Default 30s"),
    spec!(["protocol"], Required, "SMTP, SSMTP, SSMTPA, SMTPS, ESMTP (default), ESMTPA, ESMTPS, ESMTPSA, LMTP, LMTPA, LMTPS, LMTPSA"),
    spec!(["pipeline"], None, "use PIPELINING (RFC 2920) for MAIL and RCPT when the server offers it"),
    spec!(["force-getpwuid"], None, "take the default sender's local part from the password database, not $LOGNAME"),
    // TLS
    spec!(["tls"], None, "require STARTTLS (RFC 3207)"),
    spec!(["tls-optional", "tlso"], None, "use STARTTLS if offered; go on in plain text if it fails"),
    spec!(["tls-optional-strict", "tlsos"], None, "use STARTTLS if offered; fail if it is offered but fails"),
    spec!(["tls-on-connect", "tlsc"], None, "start TLS right after connecting (SMTPS, port 465)"),
    spec!(["tls-verify"], None, "verify the server certificate (default: accept any, like swaks)"),
    spec!(["tls-ca-path"], Required, "PEM file or directory of CA certificates for --tls-verify (default: the system store)"),
    spec!(["tls-sni"], Required, "server name to send in SNI and to verify"),
    spec!(["tls-cert"], Required, "PEM client certificate (needs --tls-key)"),
    spec!(["tls-key"], Required, "PEM client private key (needs --tls-cert)"),
    // auth
    spec!(["auth", "a"], Optional, "require AUTH; optional comma list of PLAIN, LOGIN, CRAM-MD5. Default: every type the server offers, in swaks' order (CRAM-MD5, LOGIN, PLAIN)"),
    spec!(["auth-optional", "ao"], Optional, "like --auth, but go on unauthenticated if it fails"),
    spec!(["auth-optional-strict", "aos"], Optional, "like --auth-optional, but fail if AUTH is offered and fails"),
    spec!(["auth-user", "au"], Needed, "AUTH user name (implies --auth); <> for empty"),
    spec!(["auth-password", "ap"], Needed, "AUTH password (implies --auth); <> for empty"),
    spec!(["auth-plaintext", "apt"], None, "show AUTH exchanges decoded instead of base64"),
    spec!(["auth-hide-password", "ahp"], Optional, "show STRING (default PROVIDED_BUT_REMOVED) instead of the password"),
    // data
    spec!(["data", "d"], Needed, "the whole DATA: text (\\n for line breaks), @FILE, or - for stdin. Tokens %FROM_ADDRESS% %TO_ADDRESS% %DATE% %MESSAGEID% %SWAKS_VERSION% %NEW_HEADERS% %BODY% %NEWLINE%"),
    spec!(["body"], Needed, "message body: text, @FILE, FILE, or - for stdin. Default: \"This is a test mailing\""),
    spec!(["attach"], Needed, "attach text, @FILE, FILE or - (repeatable; makes a MIME message)"),
    spec!(["attach-type"], Needed, "MIME type for the following --attach (default application/octet-stream)"),
    spec!(["attach-name"], Optional, "file name for the next --attach; empty for none"),
    spec!(["attach-body"], Needed, "a body part (repeat for multipart/alternative)"),
    spec!(["add-header", "ah"], Needed, "add a header line (repeatable; \\n separates several)"),
    spec!(["header"], Needed, "\"Name: value\": replace header Name, or add it. Also --h-Name VALUE and --header-Name VALUE"),
    spec!(["no-data-fixup", "ndf"], None, "send --data exactly as given: no tokens, headers, dot handling"),
    spec!(["no-strip-from", "nsf"], None, "keep a leading mbox 'From ' line in --data"),
    // output
    spec!(["suppress-data", "n"], None, "print \"N lines sent\" instead of the message"),
    spec!(["silent", "S"], OptionalNumber, "1 (default): print nothing until an error; 2: only errors; 3: nothing"),
    spec!(["hide-receive", "hr"], None, "do not print server replies"),
    spec!(["hide-send", "hs"], None, "do not print what is sent"),
    spec!(["hide-informational", "hi"], None, "do not print === lines"),
    spec!(["hide-all", "ha"], None, "print nothing"),
    spec!(["no-hints", "nth"], None, "no -> and <- prefixes"),
    spec!(["no-send-hints", "nsh"], None, "no prefixes on sent lines"),
    spec!(["no-receive-hints", "nrh"], None, "no prefixes on received lines"),
    spec!(["no-info-hints", "nih"], None, "no === prefixes"),
    spec!(["show-time-lapse", "stl"], Optional, "print the time each reply took (i: whole seconds)"),
    spec!(["dump-mail"], None, "print the message that would be sent, and exit"),
    spec!(["help"], None, "this list"),
    spec!(["version"], None, "print the version"),
    // beyond swaks
    spec!(["expect-delivery"], Optional, "after \"queued as ID\", wait up to SECONDS (default 30) for ID's delivery in the yubin mail log and print where it landed or why not"),
    spec!(["maillog"], Required, "mail log for --expect-delivery (default: `yubin -c DIR postconf -h maillog_file`)"),
    spec!(["yubin-command"], Required, "the yubin executable asked for postconf/trace by --expect-delivery (default: this one)"),
    spec!(["count"], Required, "load mode: send N messages, one per connection, and report msgs/s and latency percentiles"),
    spec!(["concurrency"], Required, "load mode: connections at once (default 1)"),
    spec!(["size"], Required, "load mode: message size in bytes (default 1024)"),
];

/// One option occurrence after parsing: canonical name and its value, or a
/// `--no-NAME` that forgets earlier occurrences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Set(&'static str, Option<String>),
    Unset(&'static str),
}

/// Finds the option a (dash-less) name refers to: an exact name first, then a
/// unique prefix of one option's names (Getopt::Long's auto_abbrev).
pub fn lookup(name: &str) -> Result<&'static Spec, String> {
    if let Some(s) = SPECS.iter().find(|s| s.names.contains(&name)) {
        return Ok(s);
    }
    let hits: Vec<&Spec> = SPECS
        .iter()
        .filter(|s| s.names.iter().any(|n| n.starts_with(name)))
        .collect();
    match hits.len() {
        1 => Ok(hits[0]),
        0 => Err(format!("Unknown option: {name}")),
        _ => Err(format!(
            "Option {name} is ambiguous ({})",
            hits.iter()
                .map(|s| s.names[0])
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn looks_like_option(word: &str) -> bool {
    word.starts_with('-') && word != "-"
}

/// Parses the words after `yubin send` into option occurrences, in order.
pub fn parse(words: &[String]) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if !looks_like_option(word) {
            return Err(format!(
                "unexpected argument {word:?}: every value belongs to an option (see --help)"
            ));
        }
        let body = word.trim_start_matches('-');
        if word.len() - body.len() > 2 || body.is_empty() {
            return Err(format!("Unknown option: {word}"));
        }
        // --h-Name VALUE / --header-Name VALUE (a trailing colon is allowed):
        // rewritten to --header "Name: VALUE" as swaks does.
        if let Some(name) = header_in_name(body) {
            let Some(value) = words.get(i) else {
                return Err(format!("option {word} needs a value"));
            };
            i += 1;
            items.push(Item::Set("header", Some(format!("{name}: {value}"))));
            continue;
        }
        if let Some(rest) = body.strip_prefix("no-") {
            if header_in_name(rest).is_some() {
                items.push(Item::Unset("header"));
                continue;
            }
            if let Ok(spec) = lookup(rest) {
                items.push(Item::Unset(spec.names[0]));
                continue;
            }
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let spec = lookup(name)?;
        let canon = spec.names[0];
        let value = match (spec.arg, inline) {
            (Arg::None, Some(_)) => return Err(format!("option --{canon} does not take a value")),
            (Arg::None, None) => None,
            (_, Some(v)) => Some(v),
            (Arg::Required, None) => match words.get(i) {
                Some(v) => {
                    i += 1;
                    Some(v.clone())
                }
                None => return Err(format!("option --{canon} needs a value")),
            },
            (Arg::Needed | Arg::Optional, None) => match words.get(i) {
                Some(v) if !looks_like_option(v) => {
                    i += 1;
                    Some(v.clone())
                }
                _ if spec.arg == Arg::Needed => {
                    return Err(format!(
                        "option --{canon} needs a value (yubin send does not prompt)"
                    ))
                }
                _ => None,
            },
            (Arg::OptionalNumber, None) => match words.get(i) {
                Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    i += 1;
                    Some(v.clone())
                }
                _ => None,
            },
        };
        items.push(Item::Set(canon, value));
    }
    Ok(items)
}

/// `h-Name`, `header-Name` or `h-Name:` → `Name` (swaks' `^-?-h(?:eader)?-([^:]+):?$`).
fn header_in_name(body: &str) -> Option<&str> {
    let rest = body
        .strip_prefix("header-")
        .or_else(|| body.strip_prefix("h-"))?;
    let rest = rest.strip_suffix(':').unwrap_or(rest);
    (!rest.is_empty() && !rest.contains(':')).then_some(rest)
}

/// The `--help` text: every option with its aliases.
pub fn help() -> String {
    let mut out = String::from(
        "usage: yubin send [OPTIONS]   (a swaks-compatible SMTP test client)\n\n\
         Options may start with - or --, may be abbreviated while unique, and\n\
         --no-OPTION forgets an earlier one. Exit codes are swaks' (see docs/send.md).\n\n",
    );
    for s in SPECS {
        let names: Vec<String> = s
            .names
            .iter()
            .map(|n| {
                if n.len() == 1 {
                    format!("-{n}")
                } else {
                    format!("--{n}")
                }
            })
            .collect();
        let arg = match s.arg {
            Arg::None => "",
            Arg::Required | Arg::Needed => " VALUE",
            Arg::Optional | Arg::OptionalNumber => " [VALUE]",
        };
        out.push_str(&format!("  {}{arg}\n      {}\n", names.join(", "), s.help));
    }
    out.push_str("  --h-NAME VALUE, --header-NAME VALUE\n      same as --header \"NAME: VALUE\"\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &[&str]) -> Result<Vec<Item>, String> {
        parse(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn seed_command_line() {
        let items = p(&[
            "-4",
            "--server",
            "localhost",
            "--from",
            "hogehoge@onotherdomain.com",
            "-to",
            "root@localhost",
            "-h-subject",
            "Test Message",
            "--body",
            "-",
        ])
        .unwrap();
        assert_eq!(
            items,
            vec![
                Item::Set("4", None),
                Item::Set("server", Some("localhost".into())),
                Item::Set("from", Some("hogehoge@onotherdomain.com".into())),
                Item::Set("to", Some("root@localhost".into())),
                Item::Set("header", Some("subject: Test Message".into())),
                Item::Set("body", Some("-".into())),
            ]
        );
    }

    #[test]
    fn abbreviations_aliases_and_inline_values() {
        assert_eq!(
            p(&["--quit", "rcpt", "--suppress", "--tim=5", "-q", "mail"]).unwrap(),
            vec![
                Item::Set("quit-after", Some("rcpt".into())),
                Item::Set("suppress-data", None),
                Item::Set("timeout", Some("5".into())),
                Item::Set("quit-after", Some("mail".into())),
            ]
        );
        assert!(p(&["--hide"]).unwrap_err().contains("ambiguous"));
        assert!(p(&["--bogus"]).unwrap_err().contains("Unknown option"));
        assert!(p(&["stray"]).unwrap_err().contains("unexpected argument"));
    }

    #[test]
    fn optional_and_required_values() {
        // --auth takes no value when an option follows; --quit-after always takes one.
        assert_eq!(
            p(&["--auth", "--tls"]).unwrap(),
            vec![Item::Set("auth", None), Item::Set("tls", None)]
        );
        assert_eq!(
            p(&["-a", "PLAIN"]).unwrap(),
            vec![Item::Set("auth", Some("PLAIN".into()))]
        );
        assert!(p(&["--to"]).unwrap_err().contains("needs a value"));
        assert!(p(&["--to", "--tls"]).is_err());
        assert_eq!(
            p(&["--body", "-"]).unwrap(),
            vec![Item::Set("body", Some("-".into()))]
        );
        assert_eq!(
            p(&["-S", "2"]).unwrap(),
            vec![Item::Set("silent", Some("2".into()))]
        );
        assert_eq!(
            p(&["--tls=x"]).unwrap_err(),
            "option --tls does not take a value"
        );
    }

    #[test]
    fn header_names_and_negation() {
        assert_eq!(
            p(&["--header-X-Test:", "v", "--no-h-X-Test", "--no-tls"]).unwrap(),
            vec![
                Item::Set("header", Some("X-Test: v".into())),
                Item::Unset("header"),
                Item::Unset("tls"),
            ]
        );
        assert!(p(&["--h-Subject"]).is_err());
    }

    #[test]
    fn help_lists_every_option() {
        let h = help();
        for s in SPECS {
            assert!(h.contains(&format!("-{}", s.names[0])), "{}", s.names[0]);
        }
    }
}
