//! D. J. Bernstein's constant database format (cdb), written and read here.
//!
//! Why our own: the format is tiny and fully specified (cr.yp.to/cdb/cdb.txt),
//! needs exactly the two operations postmap needs (build once, look up by
//! exact key), and writing it ourselves lets `yubin postmap` stream a
//! million-line table straight into one buffered file with no intermediate
//! structures. The files are standard cdb: `cdbget` and Postfix's `cdb:`
//! tables read them (keys and values are stored without a trailing NUL, which
//! Postfix's dict_cdb tries as well).
//!
//! Layout: 256 (position, slots) header pairs, the records (key length, data
//! length, key, data), then 256 open-addressing hash tables of (hash,
//! position) slots, twice as many slots as entries. All numbers are 32-bit
//! little-endian, so a file is at most 4 GiB.

use std::io::{self, Write};

/// The cdb hash: h = 5381; h = (h * 33) ^ byte.
pub fn hash(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &b| {
        (h.wrapping_shl(5).wrapping_add(h)) ^ b as u32
    })
}

/// Builds a cdb file in one pass over the records.
pub struct Writer<W: Write> {
    out: W,
    pos: u64,
    /// (hash, record position) per entry, bucketed later.
    index: Vec<(u32, u32)>,
}

fn too_big() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "cdb file would exceed 4 GiB")
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&[0u8; 2048])?;
        Ok(Writer {
            out,
            pos: 2048,
            index: Vec::new(),
        })
    }

    pub fn add(&mut self, key: &[u8], data: &[u8]) -> io::Result<()> {
        let klen = u32::try_from(key.len()).map_err(|_| too_big())?;
        let dlen = u32::try_from(data.len()).map_err(|_| too_big())?;
        let pos = u32::try_from(self.pos).map_err(|_| too_big())?;
        self.out.write_all(&klen.to_le_bytes())?;
        self.out.write_all(&dlen.to_le_bytes())?;
        self.out.write_all(key)?;
        self.out.write_all(data)?;
        self.pos += 8 + key.len() as u64 + data.len() as u64;
        if self.pos > u32::MAX as u64 {
            return Err(too_big());
        }
        self.index.push((hash(key), pos));
        Ok(())
    }

    /// Writes the hash tables and returns the writer; the caller must then
    /// write the 2048-byte header returned here at offset 0.
    pub fn finish(mut self) -> io::Result<(W, [u8; 2048])> {
        let mut counts = [0usize; 256];
        for &(h, _) in &self.index {
            counts[(h & 0xff) as usize] += 1;
        }
        let mut starts = [0usize; 256];
        let mut acc = 0;
        for i in 0..256 {
            starts[i] = acc;
            acc += counts[i];
        }
        // Bucket the entries by their low byte (stable: keeps insertion order).
        let mut sorted = vec![(0u32, 0u32); self.index.len()];
        let mut fill = starts;
        for &(h, p) in &self.index {
            let b = (h & 0xff) as usize;
            sorted[fill[b]] = (h, p);
            fill[b] += 1;
        }
        let mut header = [0u8; 2048];
        let mut slots: Vec<(u32, u32)> = Vec::new();
        for b in 0..256 {
            let n = counts[b] * 2;
            let tpos = u32::try_from(self.pos).map_err(|_| too_big())?;
            header[b * 8..b * 8 + 4].copy_from_slice(&tpos.to_le_bytes());
            header[b * 8 + 4..b * 8 + 8].copy_from_slice(&(n as u32).to_le_bytes());
            if n == 0 {
                continue;
            }
            slots.clear();
            slots.resize(n, (0, 0));
            for &(h, p) in &sorted[starts[b]..starts[b] + counts[b]] {
                let mut s = ((h >> 8) as usize) % n;
                while slots[s].1 != 0 {
                    s = (s + 1) % n;
                }
                slots[s] = (h, p);
            }
            let mut buf = Vec::with_capacity(n * 8);
            for &(h, p) in &slots {
                buf.extend_from_slice(&h.to_le_bytes());
                buf.extend_from_slice(&p.to_le_bytes());
            }
            self.out.write_all(&buf)?;
            self.pos += buf.len() as u64;
            if self.pos > u32::MAX as u64 {
                return Err(too_big());
            }
        }
        Ok((self.out, header))
    }
}

/// Reads a cdb image (usually memory-mapped). Every offset is bounds-checked,
/// so a truncated or hostile file gives `None`/an error, never a panic.
pub struct Reader<'a> {
    data: &'a [u8],
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Option<Reader<'a>> {
        (data.len() >= 2048).then_some(Reader { data })
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        let h = hash(key);
        let b = (h & 0xff) as usize * 8;
        let tpos = u32_at(self.data, b)? as usize;
        let n = u32_at(self.data, b + 4)? as usize;
        if n == 0 {
            return None;
        }
        let mut s = ((h >> 8) as usize) % n;
        for _ in 0..n {
            let slot = tpos.checked_add(s * 8)?;
            let sh = u32_at(self.data, slot)?;
            let pos = u32_at(self.data, slot + 4)? as usize;
            if pos == 0 {
                return None;
            }
            if sh == h {
                let klen = u32_at(self.data, pos)? as usize;
                let dlen = u32_at(self.data, pos + 4)? as usize;
                let kstart = pos + 8;
                let k = self.data.get(kstart..kstart.checked_add(klen)?)?;
                if k == key {
                    let dstart = kstart + klen;
                    return self.data.get(dstart..dstart.checked_add(dlen)?);
                }
            }
            s = (s + 1) % n;
        }
        None
    }

    /// All records in file order (for `postmap -s`).
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        let end = u32_at(self.data, 0).unwrap_or(0) as usize;
        let mut pos = 2048usize;
        std::iter::from_fn(move || {
            if pos + 8 > end {
                return None;
            }
            let klen = u32_at(self.data, pos)? as usize;
            let dlen = u32_at(self.data, pos + 4)? as usize;
            let k = self.data.get(pos + 8..pos + 8 + klen)?;
            let d = self.data.get(pos + 8 + klen..pos + 8 + klen + dlen)?;
            pos += 8 + klen + dlen;
            Some((k, d))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new()).unwrap();
        for (k, v) in pairs {
            w.add(k.as_bytes(), v.as_bytes()).unwrap();
        }
        let (mut out, header) = w.finish().unwrap();
        out[..2048].copy_from_slice(&header);
        out
    }

    #[test]
    fn round_trip() {
        let pairs: Vec<(String, String)> = (0..2000)
            .map(|i| (format!("key{i}"), format!("v{i}")))
            .collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let img = build(&refs);
        let r = Reader::new(&img).unwrap();
        for (k, v) in &refs {
            assert_eq!(r.get(k.as_bytes()), Some(v.as_bytes()));
        }
        assert_eq!(r.get(b"missing"), None);
        assert_eq!(r.iter().count(), 2000);
    }

    #[test]
    fn known_hash_and_hostile_images() {
        assert_eq!(hash(b""), 5381);
        let img = build(&[("a", "b")]);
        for cut in [0, 100, 2048, 2055, img.len() - 1] {
            if let Some(r) = Reader::new(&img[..cut]) {
                let _ = r.get(b"a");
                let _ = r.iter().count();
            }
        }
        let mut junk = vec![0xffu8; 4096];
        junk[0] = 0;
        let r = Reader::new(&junk).unwrap();
        assert_eq!(r.get(b"a"), None);
    }
}
