//! SEARCH (RFC 3501 section 6.4.4) evaluated over a mailbox snapshot and,
//! when a key needs them, the messages' dates, sizes and text.

use chrono::{DateTime, NaiveDate, Utc};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use crate::store::{Flag, MessageData, MessageMeta};

/// What the evaluation of a key reads besides flags and UIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    Nothing,
    /// INTERNALDATE or RFC822.SIZE.
    Meta,
    /// Headers or body text.
    Content,
}

pub fn need(key: &SearchKey<'_>) -> Need {
    use SearchKey::*;
    match key {
        And(v) => v.as_ref().iter().map(need).max().unwrap_or(Need::Nothing),
        Not(k) => need(k),
        Or(a, b) => need(a).max(need(b)),
        Before(_) | On(_) | Since(_) | Larger(_) | Smaller(_) => Need::Meta,
        Bcc(_) | Body(_) | Cc(_) | From(_) | Header(..) | SentBefore(_) | SentOn(_)
        | SentSince(_) | Subject(_) | Text(_) | To(_) => Need::Content,
        _ => Need::Nothing,
    }
}

/// Whether `v` is in `set`, `*` standing for `star` (RFC 3501 section 9
/// seq-range: `a:b` is the same as `b:a`).
pub fn in_set(set: &SequenceSet, v: u32, star: u32) -> bool {
    let val = |s: &SeqOrUid| match s {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => star,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(a) => val(a) == v,
        Sequence::Range(a, b) => {
            let (a, b) = (val(a), val(b));
            a.min(b) <= v && v <= a.max(b)
        }
    })
}

/// One message as SEARCH sees it.
pub struct Candidate<'a> {
    pub seq: u32,
    pub meta: &'a MessageMeta,
    pub data: Option<&'a MessageData>,
    pub parsed: Option<&'a mail_parser::Message<'a>>,
    pub max_seq: u32,
    pub max_uid: u32,
}

fn contains(hay: &str, needle: &[u8]) -> bool {
    let needle = String::from_utf8_lossy(needle).to_lowercase();
    hay.to_lowercase().contains(&needle)
}

fn internal_day(c: &Candidate<'_>) -> Option<NaiveDate> {
    let d = c.data?;
    DateTime::<Utc>::from_timestamp(d.internal_date, 0).map(|t| t.date_naive())
}

fn sent_day(c: &Candidate<'_>) -> Option<NaiveDate> {
    let d = c.parsed?.date()?;
    NaiveDate::from_ymd_opt(d.year as i32, d.month as u32, d.day as u32)
}

/// The parsed addresses of an address header as `name <addr>` texts, so
/// that comments and encodings in the raw header do not hide a match.
fn address_texts(m: &mail_parser::Message<'_>, name: &str) -> Vec<String> {
    let a = match name.to_ascii_lowercase().as_str() {
        "from" => m.from(),
        "to" => m.to(),
        "cc" => m.cc(),
        "bcc" => m.bcc(),
        _ => None,
    };
    let mut out = Vec::new();
    let mut push = |x: &mail_parser::Addr<'_>| {
        out.push(format!(
            "{} <{}>",
            x.name.as_deref().unwrap_or(""),
            x.address.as_deref().unwrap_or("")
        ))
    };
    match a {
        Some(mail_parser::Address::List(l)) => l.iter().for_each(&mut push),
        Some(mail_parser::Address::Group(g)) => g
            .iter()
            .flat_map(|g| g.addresses.iter())
            .for_each(&mut push),
        None => {}
    }
    out
}

fn header_has(c: &Candidate<'_>, name: &str, needle: &[u8]) -> bool {
    let Some(m) = c.parsed else { return false };
    if address_texts(m, name).iter().any(|t| contains(t, needle)) {
        return true;
    }
    m.headers_raw()
        .any(|(n, v)| n.eq_ignore_ascii_case(name) && (needle.is_empty() || contains(v, needle)))
        || match name.to_ascii_lowercase().as_str() {
            "subject" => m.subject().is_some_and(|s| contains(s, needle)),
            _ => false,
        }
}

fn body_has(c: &Candidate<'_>, needle: &[u8]) -> bool {
    let Some(m) = c.parsed else { return false };
    let mut i = 0;
    while let Some(t) = m.body_text(i) {
        if contains(&t, needle) {
            return true;
        }
        i += 1;
    }
    let raw = m.raw_message();
    let start = m.root_part().offset_body as usize;
    raw.get(start..)
        .is_some_and(|b| contains(&String::from_utf8_lossy(b), needle))
}

fn has(c: &Candidate<'_>, f: Flag) -> bool {
    c.meta.flags.contains(&f)
}

pub fn matches(key: &SearchKey<'_>, c: &Candidate<'_>) -> bool {
    use SearchKey::*;
    let date = |k: &imap_codec::imap_types::datetime::NaiveDate| *k.as_ref();
    match key {
        And(v) => v.as_ref().iter().all(|k| matches(k, c)),
        SequenceSet(s) => in_set(s, c.seq, c.max_seq),
        All => true,
        Answered => has(c, Flag::Answered),
        Bcc(s) => header_has(c, "Bcc", s.as_ref()),
        Before(d) => internal_day(c).is_some_and(|x| x < date(d)),
        Body(s) => body_has(c, s.as_ref()),
        Cc(s) => header_has(c, "Cc", s.as_ref()),
        Deleted => has(c, Flag::Deleted),
        Draft => has(c, Flag::Draft),
        Flagged => has(c, Flag::Flagged),
        From(s) => header_has(c, "From", s.as_ref()),
        Header(n, v) => header_has(c, &String::from_utf8_lossy(n.as_ref()), v.as_ref()),
        Keyword(k) => has(c, Flag::Keyword(k.as_ref().to_string())),
        Larger(n) => c.data.is_some_and(|d| d.size > *n as u64),
        New => c.meta.recent && !has(c, Flag::Seen),
        Not(k) => !matches(k, c),
        Old => !c.meta.recent,
        On(d) => internal_day(c).is_some_and(|x| x == date(d)),
        Or(a, b) => matches(a, c) || matches(b, c),
        Recent => c.meta.recent,
        Seen => has(c, Flag::Seen),
        SentBefore(d) => sent_day(c).is_some_and(|x| x < date(d)),
        SentOn(d) => sent_day(c).is_some_and(|x| x == date(d)),
        SentSince(d) => sent_day(c).is_some_and(|x| x >= date(d)),
        Since(d) => internal_day(c).is_some_and(|x| x >= date(d)),
        Smaller(n) => c.data.is_some_and(|d| d.size < *n as u64),
        Subject(s) => header_has(c, "Subject", s.as_ref()),
        Text(s) => {
            c.parsed.is_some_and(|m| {
                m.headers_raw()
                    .any(|(n, v)| contains(n, s.as_ref()) || contains(v, s.as_ref()))
            }) || body_has(c, s.as_ref())
        }
        To(s) => header_has(c, "To", s.as_ref()),
        Uid(s) => in_set(s, c.meta.uid, c.max_uid),
        Unanswered => !has(c, Flag::Answered),
        Undeleted => !has(c, Flag::Deleted),
        Undraft => !has(c, Flag::Draft),
        Unflagged => !has(c, Flag::Flagged),
        Unkeyword(k) => !has(c, Flag::Keyword(k.as_ref().to_string())),
        Unseen => !has(c, Flag::Seen),
        // RFC 7162 section 3.1.5: mod-sequence at least this. The
        // per-flag entry form is answered from the message's one
        // mod-sequence, as Dovecot does ("all" changes of a message).
        ModSequence { modseq, .. } => c.meta.modseq >= *modseq,
        // WITHIN exists only with an imap-codec feature yubin does not
        // enable, so the parser never produces it.
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether a key uses MODSEQ (RFC 7162 section 3.1.5: the SEARCH response
/// then ends with the highest mod-sequence of the messages found).
pub fn uses_modseq(key: &SearchKey<'_>) -> bool {
    use SearchKey::*;
    match key {
        And(v) => v.as_ref().iter().any(uses_modseq),
        Not(k) => uses_modseq(k),
        Or(a, b) => uses_modseq(a) || uses_modseq(b),
        ModSequence { .. } => true,
        _ => false,
    }
}
