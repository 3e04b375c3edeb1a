//! In-place editing of main.cf for `postconf -e` / `-X`: the logical line
//! that sets a parameter (with its continuation lines) is replaced or
//! removed; a new parameter is appended. Comments and order are kept, and
//! the file is replaced atomically.

use std::io::Write;
use std::path::Path;

fn logical_ranges(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') || l.starts_with([' ', '\t']) {
            i += 1;
            continue;
        }
        let name = l.split('=').next().unwrap_or("").trim().to_string();
        let mut j = i + 1;
        while j < lines.len() && lines[j].starts_with([' ', '\t']) && !lines[j].trim().is_empty() {
            j += 1;
        }
        out.push((name, i, j));
        i = j;
    }
    out
}

fn rewrite(path: &Path, f: impl FnOnce(Vec<String>) -> Vec<String>) -> std::io::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let new = f(lines).concat();
    let tmp = path.with_extension("cf.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(new.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Sets `name = value`, replacing every existing setting of `name` (the
/// first in place, later ones removed).
pub fn set(path: &Path, name: &str, value: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let ranges = logical_ranges(&text);
    rewrite(path, |mut lines| {
        let line = format!("{name} = {value}\n");
        let mine: Vec<_> = ranges.iter().filter(|(n, _, _)| n == name).collect();
        match mine.first() {
            None => {
                if lines.last().is_some_and(|l| !l.ends_with('\n')) {
                    lines.push("\n".into());
                }
                lines.push(line);
            }
            Some(&&(_, start, _)) => {
                for &&(_, s, e) in mine.iter().rev() {
                    lines.drain(s..e);
                }
                lines.insert(start, line);
            }
        }
        lines
    })
}

/// Removes every setting of `name`.
pub fn remove(path: &Path, name: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let ranges = logical_ranges(&text);
    rewrite(path, |mut lines| {
        for (_, s, e) in ranges.iter().rev().filter(|(n, _, _)| n == name) {
            lines.drain(*s..*e);
        }
        lines
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("main.cf");
        std::fs::write(
            &p,
            "# c\nmydestination = a,\n  b\nmyorigin = x\nmydestination = dup\n",
        )
        .unwrap();
        set(&p, "mydestination", "localhost").unwrap();
        set(&p, "relayhost", "[mx]").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# c\nmydestination = localhost\nmyorigin = x\nrelayhost = [mx]\n"
        );
        remove(&p, "myorigin").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# c\nmydestination = localhost\nrelayhost = [mx]\n"
        );
    }
}
