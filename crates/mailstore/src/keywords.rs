//! `dovecot-keywords` (Dovecot's maildir-keywords.c): the names of the
//! IMAP keywords whose letters `a`..`z` appear in file names, one
//! `<index> <name>` line each; at most 26.

use std::io;
use std::path::Path;

pub const FILE: &str = "dovecot-keywords";
pub const MAX: usize = 26;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<Option<String>>,
}

/// A keyword name IMAP allows (RFC 3501 `atom`, no `\`): Dovecot refuses
/// others, and a space or newline would break the file.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| {
            b > 0x20
                && b < 0x7f
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

impl Keywords {
    /// Parses the file; lines that do not parse are skipped, as Dovecot
    /// does (it logs them and rewrites the file on the next change).
    pub fn parse(text: &str) -> Keywords {
        let mut k = Keywords::default();
        for line in text.lines() {
            let Some((idx, name)) = line.split_once(' ') else {
                continue;
            };
            let Ok(idx) = idx.parse::<usize>() else {
                continue;
            };
            if idx >= MAX || !valid_name(name) || k.index_of(name).is_some() {
                continue;
            }
            if k.names.len() <= idx {
                k.names.resize(idx + 1, None);
            }
            k.names[idx] = Some(name.to_string());
        }
        k
    }

    pub fn to_text(&self) -> String {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| format!("{i} {n}\n")))
            .collect()
    }

    pub fn read(dir: &Path) -> io::Result<Keywords> {
        match std::fs::read(dir.join(FILE)) {
            Ok(b) => Ok(Keywords::parse(&String::from_utf8_lossy(&b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Keywords::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the file atomically; call with `dovecot-uidlist.lock` held.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        crate::atomic_write(&dir.join(FILE), self.to_text().as_bytes())
    }

    /// The letter index of `name` (IMAP keywords compare case-insensitively).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }

    pub fn name(&self, idx: usize) -> Option<&str> {
        self.names.get(idx).and_then(|n| n.as_deref())
    }

    /// The index of `name`, adding it if there is room: `Ok(None)` when
    /// all 26 letters are taken; `Err` for a name IMAP does not allow.
    pub fn get_or_add(&mut self, name: &str) -> Result<(usize, bool), KeywordError> {
        if !valid_name(name) {
            return Err(KeywordError::Invalid(name.to_string()));
        }
        if let Some(i) = self.index_of(name) {
            return Ok((i, false));
        }
        let free = match self.names.iter().position(|n| n.is_none()) {
            Some(i) => i,
            None if self.names.len() < MAX => {
                self.names.push(None);
                self.names.len() - 1
            }
            None => return Err(KeywordError::Full),
        };
        self.names[free] = Some(name.to_string());
        Ok((free, true))
    }

    /// All `(index, name)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &str)> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (i, n)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordError {
    #[error("invalid keyword {0:?}")]
    Invalid(String),
    #[error("too many keywords in this mailbox (Maildir allows 26)")]
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_format() {
        let mut k = Keywords::parse("0 $Forwarded\n2 Junk\nbad line\n30 x\n1 bad\\name\n");
        assert_eq!(k.name(0), Some("$Forwarded"));
        assert_eq!(k.name(1), None);
        assert_eq!(k.index_of("junk"), Some(2));
        assert_eq!(k.get_or_add("$MDNSent").unwrap(), (1, true));
        assert_eq!(k.get_or_add("$forwarded").unwrap(), (0, false));
        assert_eq!(k.to_text(), "0 $Forwarded\n1 $MDNSent\n2 Junk\n");
        for i in 3..26 {
            k.get_or_add(&format!("k{i}")).unwrap();
        }
        assert_eq!(k.get_or_add("one-more"), Err(KeywordError::Full));
        assert!(matches!(k.get_or_add("a b"), Err(KeywordError::Invalid(_))));
        assert_eq!(Keywords::parse(&k.to_text()), k);
    }
}
