//! bounce(5) templates (`bounce_template_file`): `failure_template`,
//! `delay_template` as here-documents (`name = <<EOF` ... `EOF`), each a
//! header part (`Charset:`, `From:`, `Subject:`, `Postmaster-Subject:`),
//! an empty line, and the text, where `$name` is a main.cf parameter or one
//! of the time helpers (`$delay_warning_time_hours`,
//! `$maximal_queue_lifetime_days`, ... with `_seconds`, `_minutes`,
//! `_hours`, `_days`, `_weeks`). Without a file, Postfix's default texts.

use std::collections::HashMap;
use std::path::Path;

use yubin_conf::Config;

/// One template: subject and the human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub from: String,
    pub subject: String,
    pub text: String,
}

/// The templates in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    pub failure: Template,
    pub delay: Template,
}

const FAILURE: &str =
    "From: MAILER-DAEMON (Mail Delivery System)\nSubject: Undelivered Mail Returned to Sender\n\n\
This is the mail system at host $myhostname.\n\n\
I'm sorry to have to inform you that your message could not\n\
be delivered to one or more recipients. It's attached below.\n\n\
For further assistance, please send mail to postmaster.\n\n\
If you do so, please include this problem report. You can\n\
delete your own text from the attached returned message.\n\n\
                   The mail system\n";

const DELAY: &str =
    "From: MAILER-DAEMON (Mail Delivery System)\nSubject: Delayed Mail (still being retried)\n\n\
This is the mail system at host $myhostname.\n\n\
####################################################################\n\
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
####################################################################\n\n\
Your message could not be delivered for more than $delay_warning_time_hours hour(s).\n\
It will be retried until it is $maximal_queue_lifetime_days day(s) old.\n\n\
For further assistance, please send mail to postmaster.\n\n\
If you do so, please include this problem report. You can\n\
delete your own text from the attached returned message.\n\n\
                   The mail system\n";

/// Splits a bounce(5) file into its here-documents.
fn here_docs(path: &Path, text: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = t.split_once('=') else {
            return Err(format!(
                "{}:{}: expected name = <<TAG",
                path.display(),
                i + 1
            ));
        };
        let Some(tag) = rest.trim().strip_prefix("<<") else {
            return Err(format!(
                "{}:{}: expected a here-document (<<EOF)",
                path.display(),
                i + 1
            ));
        };
        let tag = tag.trim();
        let mut body = String::new();
        let mut closed = false;
        for (_, l) in lines.by_ref() {
            if l.trim() == tag {
                closed = true;
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        if !closed {
            return Err(format!(
                "{}:{}: {}: no closing {tag}",
                path.display(),
                i + 1,
                name.trim()
            ));
        }
        out.insert(name.trim().to_string(), body);
    }
    Ok(out)
}

/// `$name` and `${name}` from the configuration and the time helpers.
fn expand(text: &str, cfg: &Config) -> String {
    let time = |name: &str| -> Option<u64> {
        for (suffix, div) in [
            ("_seconds", 1),
            ("_minutes", 60),
            ("_hours", 3600),
            ("_days", 86400),
            ("_weeks", 604800),
        ] {
            if let Some(param) = name.strip_suffix(suffix) {
                let unit = if param == "maximal_queue_lifetime" {
                    'd'
                } else {
                    'h'
                };
                return cfg.time(param, unit).ok().map(|s| (s / div).max(1));
            }
        }
        None
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        let (name, skip) = if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').unwrap_or(r.len());
            (&r[..end], end + 2)
        } else {
            let n = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            (&rest[..n], n)
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        match time(name) {
            Some(v) => out.push_str(&v.to_string()),
            None => out.push_str(cfg.get(name)),
        }
        rest = &rest[skip.min(rest.len())..];
    }
    out.push_str(rest);
    out
}

fn parse_one(raw: &str, cfg: &Config) -> Template {
    let (head, body) = raw.split_once("\n\n").unwrap_or(("", raw));
    let mut t = Template {
        from: String::new(),
        subject: String::new(),
        text: expand(body, cfg),
    };
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "from" => t.from = v.trim().to_string(),
                "subject" => t.subject = v.trim().to_string(),
                _ => {}
            }
        }
    }
    t
}

impl Templates {
    /// The templates of `bounce_template_file`, or Postfix's defaults. A
    /// file that cannot be read or parsed is an error naming file and line.
    pub fn load(cfg: &Config) -> Result<Templates, String> {
        let file = cfg.get("bounce_template_file");
        if file.is_empty() {
            return Templates::parse(cfg, Path::new(""), "");
        }
        let path = Path::new(file);
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("bounce_template_file {file}: {e}"))?;
        Templates::parse(cfg, path, &text)
    }

    /// The templates of a bounce(5) file's text (`path` names it in
    /// errors); what the file does not define keeps Postfix's default.
    pub fn parse(cfg: &Config, path: &Path, text: &str) -> Result<Templates, String> {
        let docs = here_docs(path, text)?;
        let failure = docs
            .get("failure_template")
            .map(String::as_str)
            .unwrap_or(FAILURE);
        let delay = docs
            .get("delay_template")
            .map(String::as_str)
            .unwrap_or(DELAY);
        Ok(Templates {
            failure: parse_one(failure, cfg),
            delay: parse_one(delay, cfg),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::from_bytes(
            Path::new("/etc/yubin"),
            Path::new("/etc/yubin/main.cf"),
            format!("myhostname = mail.example.com\ndelay_warning_time = 4h\n{extra}").as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_file() {
        let t = Templates::load(&cfg("")).unwrap();
        assert_eq!(t.failure.subject, "Undelivered Mail Returned to Sender");
        assert!(t
            .failure
            .text
            .starts_with("This is the mail system at host mail.example.com.\n"));
        assert!(
            t.delay.text.contains("for more than 4 hour(s)"),
            "{}",
            t.delay.text
        );
        assert!(
            t.delay.text.contains("until it is 5 day(s) old"),
            "{}",
            t.delay.text
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bounce.cf");
        std::fs::write(&f, "# ours\nfailure_template = <<EOF\nCharset: us-ascii\nFrom: MAILER-DAEMON (Post Office)\nSubject: Returned mail\n\nHost ${myhostname} could not deliver it.\nEOF\n").unwrap();
        let t =
            Templates::load(&cfg(&format!("bounce_template_file = {}\n", f.display()))).unwrap();
        assert_eq!(t.failure.subject, "Returned mail");
        assert_eq!(
            t.failure.text,
            "Host mail.example.com could not deliver it.\n"
        );
        assert_eq!(t.delay.subject, "Delayed Mail (still being retried)");
        std::fs::write(&f, "failure_template = <<EOF\nSubject: x\n").unwrap();
        let e = Templates::load(&cfg(&format!("bounce_template_file = {}\n", f.display())))
            .unwrap_err();
        assert!(
            e.contains("bounce.cf:1: failure_template: no closing EOF"),
            "{e}"
        );
    }
}
