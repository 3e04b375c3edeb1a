//! Reads the subject name out of a DER certificate (RFC 5280 section
//! 4.1.2.6) and formats it as OpenSSL's `X509_NAME_oneline`, which is what
//! swaks prints in `=== TLS peer DN="/C=JP/CN=mail.example"`. A small,
//! bounded DER walker: certificates are attacker-controlled input.

/// One DER element: tag, contents, and the bytes after it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn oid_string(oid: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        value = (value << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if parts.is_empty() && i < 4 {
                let first = (value / 40).min(2);
                parts.push(first.to_string());
                parts.push((value - first * 40).to_string());
            } else {
                parts.push(value.to_string());
            }
            value = 0;
        }
    }
    parts.join(".")
}

fn short_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        other => other,
    }
    .to_string()
}

/// The subject of `cert` as `/K=V/K=V`, or `None` when it does not parse.
pub fn subject_oneline(cert: &[u8]) -> Option<String> {
    let (_, certificate, _) = element(cert)?;
    let (_, tbs, _) = element(certificate)?;
    let mut rest = tbs;
    // version [0] EXPLICIT is optional.
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (_, mut name, _) = element(rest)?;
    let mut out = String::new();
    while !name.is_empty() {
        let (_, mut set, next) = element(name)?;
        name = next;
        while !set.is_empty() {
            let (_, atv, next_atv) = element(set)?;
            set = next_atv;
            let (_, oid, value_der) = element(atv)?;
            let (_, value, _) = element(value_der)?;
            out.push('/');
            out.push_str(&short_name(&oid_string(oid)));
            out.push('=');
            out.push_str(&String::from_utf8_lossy(value));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_and_garbage() {
        assert_eq!(oid_string(&[0x55, 0x04, 0x03]), "2.5.4.3");
        assert_eq!(
            oid_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(subject_oneline(b""), None);
        assert_eq!(subject_oneline(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subject_oneline(&[0x30, 0x02, 0x30, 0x00]), None);
    }
}
