//! ESMTP parameters of MAIL and RCPT: SIZE (RFC 1870), BODY (RFC 6152),
//! SMTPUTF8 (RFC 6531), RET/ENVID (RFC 3461 section 4.3/4.4), NOTIFY/ORCPT
//! (RFC 3461 section 4.1/4.2), with Postfix's reply for each bad form.

/// A reply to send instead of accepting the command.
pub type Refusal = (u16, &'static str, String);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<String>,
    pub smtputf8: bool,
    pub ret: Option<String>,
    pub envid: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

fn unsupported(p: &str) -> Refusal {
    (555, "5.5.4", format!("Unsupported option: {p}"))
}

/// RFC 3461 xtext: printable ASCII except `+` and `=`, with `+XX` escapes.
/// `equals` lets `=` through as Postfix's ENVID check does (it decodes
/// `+XX` and wants printable text; ENVID=a=b is accepted).
fn is_xtext(s: &str, equals: bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = b.get(i + 1..i + 3);
                if !hex.is_some_and(|h| {
                    h.iter()
                        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
                }) {
                    return false;
                }
                i += 3;
            }
            33..=126 if b[i] != b'=' || equals => i += 1,
            _ => return false,
        }
    }
    !b.is_empty()
}

/// Each parameter's reply is Postfix's (smtpd.c mail_cmd): a known keyword
/// without `=` is an unsupported option, a repeated RET or ENVID is a syntax
/// error. AUTH= (RFC 4954 section 5) is accepted whether AUTH is offered or
/// not, and its value (the original submitter) is not used, as in Postfix.
pub fn parse_mail(params: &[&str], size_limit: u64) -> Result<MailParams, Refusal> {
    let mut out = MailParams::default();
    for p in params {
        let Some((name, value)) = p.split_once('=') else {
            if p.eq_ignore_ascii_case("SMTPUTF8") {
                out.smtputf8 = true;
                continue;
            }
            return Err(unsupported(p));
        };
        match name.to_ascii_uppercase().as_str() {
            "SIZE" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err((501, "5.5.4", "Bad message size syntax".to_string()));
                }
                // A size past what a file offset holds cannot fit anywhere.
                let n = match value.parse::<i64>() {
                    Ok(n) => n as u64,
                    Err(_) => {
                        return Err((
                            552,
                            "5.3.4",
                            "Message size exceeds file system imposed limit".into(),
                        ))
                    }
                };
                if size_limit > 0 && n > size_limit {
                    return Err((552, "5.3.4", "Message size exceeds fixed limit".into()));
                }
                out.size = Some(n);
            }
            "BODY" => match value.to_ascii_uppercase().as_str() {
                v @ ("7BIT" | "8BITMIME") => out.body = Some(v.to_string()),
                _ => return Err(unsupported(p)),
            },
            "AUTH" => {}
            "RET" => match value.to_ascii_uppercase().as_str() {
                v @ ("FULL" | "HDRS") if out.ret.is_none() => out.ret = Some(v.to_string()),
                _ => return Err((501, "5.5.4", "Bad RET parameter syntax".into())),
            },
            "ENVID" => {
                // No length limit: Postfix takes any ENVID the command line holds.
                if out.envid.is_some() || !is_xtext(value, true) {
                    return Err((501, "5.5.4", "Bad ENVID parameter syntax".into()));
                }
                out.envid = Some(value.to_string());
            }
            _ => return Err(unsupported(p)),
        }
    }
    Ok(out)
}

pub fn parse_rcpt(params: &[&str]) -> Result<RcptParams, Refusal> {
    let mut out = RcptParams::default();
    for p in params {
        let Some((name, value)) = p.split_once('=') else {
            return Err(unsupported(p));
        };
        match name.to_ascii_uppercase().as_str() {
            "NOTIFY" => {
                let v = value.to_ascii_uppercase();
                let words: Vec<&str> = v.split(',').collect();
                let ok = out.notify.is_none()
                    && !v.is_empty()
                    && (v == "NEVER"
                        || words
                            .iter()
                            .all(|w| matches!(*w, "SUCCESS" | "FAILURE" | "DELAY")));
                if !ok {
                    return Err((501, "5.5.4", "Error: Bad NOTIFY parameter syntax".into()));
                }
                out.notify = Some(v);
            }
            "ORCPT" => {
                let ok = out.orcpt.is_none()
                    && value.split_once(';').is_some_and(|(t, a)| {
                        !t.is_empty()
                            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                            && is_xtext(a, false)
                    });
                if !ok {
                    return Err((501, "5.5.4", "Error: Bad ORCPT parameter syntax".into()));
                }
                out.orcpt = Some(value.to_string());
            }
            _ => return Err(unsupported(p)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params_match_postfix_replies() {
        assert_eq!(
            parse_mail(&["SIZE=99999999"], 10240000).unwrap_err().2,
            "Message size exceeds fixed limit"
        );
        assert_eq!(parse_mail(&["SIZE=abc"], 0).unwrap_err().0, 501);
        assert_eq!(
            parse_mail(&["BODY=9BIT"], 0).unwrap_err().2,
            "Unsupported option: BODY=9BIT"
        );
        assert_eq!(
            parse_mail(&["RET=FOO"], 0).unwrap_err().2,
            "Bad RET parameter syntax"
        );
        let ok = parse_mail(&["BODY=8BITMIME", "SMTPUTF8", "RET=HDRS", "ENVID=xyz"], 0).unwrap();
        assert!(ok.smtputf8);
        assert_eq!(parse_mail(&["size=286"], 10240000).unwrap().size, Some(286));
    }

    #[test]
    fn rcpt_params() {
        assert!(parse_rcpt(&["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;hoge@mydomain.com"]).is_ok());
        assert_eq!(
            parse_rcpt(&["NOTIFY=BOGUS"]).unwrap_err().2,
            "Error: Bad NOTIFY parameter syntax"
        );
        assert_eq!(
            parse_rcpt(&["FOO=bar"]).unwrap_err().2,
            "Unsupported option: FOO=bar"
        );
        assert!(parse_rcpt(&["ORCPT=rfc822;a+2Bb"]).is_ok());
        assert!(parse_rcpt(&["ORCPT=rfc822;a+zz"]).is_err());
    }
}
