//! Modified UTF-7 (RFC 3501 5.1.3), the IMAP mailbox name encoding that
//! Dovecot also uses for Maildir++ folder names on disk: printable ASCII
//! stands for itself except `&`, written `&-`; anything else is `&`, the
//! UTF-16BE code units in base64 with `,` for `/` and no padding, then `-`.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&b| b == c).map(|p| p as u32)
}

/// Encodes a UTF-8 name.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |a, (i, &b)| a | (b as u32) << (16 - 8 * i));
            let chars = match chunk.len() {
                1 => 2,
                2 => 3,
                _ => 4,
            };
            for i in 0..chars {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid modified UTF-7 mailbox name: {0}")]
pub struct Mutf7Error(pub &'static str);

/// Decodes a modified UTF-7 name to UTF-8, refusing every form RFC 3501
/// does not allow (so that one name has one spelling).
pub fn decode(s: &str) -> Result<String, Mutf7Error> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    // Index of the `-` that closed the last non-empty encoded section.
    let mut last_end: Option<usize> = None;
    while i < b.len() {
        let c = b[i];
        if !(0x20..=0x7e).contains(&c) {
            return Err(Mutf7Error("character outside printable ASCII"));
        }
        if c != b'&' {
            out.push(c as char);
            i += 1;
            continue;
        }
        let amp = i;
        let start = i + 1;
        let end = b[start..]
            .iter()
            .position(|&c| c == b'-')
            .map(|p| start + p)
            .ok_or(Mutf7Error("unterminated &"))?;
        i = end + 1;
        if end == start {
            out.push('&');
            continue;
        }
        if amp > 0 && last_end == Some(amp - 1) {
            return Err(Mutf7Error("two adjacent encoded sections"));
        }
        last_end = Some(end);
        let mut bits = 0u32;
        let mut nbits = 0;
        let mut units: Vec<u16> = Vec::new();
        for &c in &b[start..end] {
            let v = b64_value(c).ok_or(Mutf7Error("bad base64 character"))?;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push((bits >> nbits) as u16);
                bits &= (1 << nbits) - 1;
            }
        }
        if nbits >= 6 || bits != 0 {
            return Err(Mutf7Error("bad base64 padding"));
        }
        let text = String::from_utf16(&units).map_err(|_| Mutf7Error("bad UTF-16"))?;
        if text.chars().any(|c| (' '..='~').contains(&c)) {
            return Err(Mutf7Error("printable ASCII in an encoded section"));
        }
        out.push_str(&text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example_and_round_trips() {
        // RFC 3501 5.1.3: "~peter/mail/台北/日本語"
        let utf8 = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        let m = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        assert_eq!(encode(utf8), m);
        assert_eq!(decode(m).unwrap(), utf8);
        for s in ["INBOX", "a&b", "Entwürfe", "\u{1F600} smile", "é", "Ωmega&"] {
            assert_eq!(decode(&encode(s)).unwrap(), s);
        }
        assert_eq!(encode("&"), "&-");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "&",
            "&U,BTFw",
            "&AGE-",
            "&U,BTFw-&ZeVnLIqe-",
            "a\u{e9}",
            "&*-",
            "&2D0-",
            "&U,BTF-",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        assert_eq!(decode("&-&U,BTFw-").unwrap(), "&\u{53f0}\u{5317}");
    }
}
