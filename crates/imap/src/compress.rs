//! RFC 4978 COMPRESS=DEFLATE as a byte transform (raw deflate, RFC 1951,
//! no zlib header; every write ends with a sync flush so the peer can read
//! it at once). No I/O: the driver passes what it writes and reads
//! through it once [`crate::Action::Compress`] was emitted.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// How much inflated data is handed on at a time: a small compressed
/// input can inflate to gigabytes, so it is passed on in pieces (the
/// session's own line and literal limits then apply) instead of being
/// collected.
const PIECE: usize = 64 * 1024;

pub struct Deflate {
    out: Compress,
    inp: Decompress,
}

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflate {
    pub fn new() -> Deflate {
        Deflate {
            // Level 6 as Dovecot's imap_zlib default; raw deflate (no
            // zlib wrapper), as RFC 4978 section 4 requires.
            out: Compress::new(Compression::new(6), false),
            inp: Decompress::new(false),
        }
    }

    /// `data` compressed and sync-flushed.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before_in = self.out.total_in();
            // Writing into a Vec with spare capacity cannot fail.
            let _ = self.out.compress_vec(input, &mut out, FlushCompress::Sync);
            let used = (self.out.total_in() - before_in) as usize;
            input = &input[used..];
            // Done when all input is taken and the flush fitted (space
            // left over in the buffer).
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// Inflates from `input` at most one piece of [`PIECE`] bytes:
    /// returns how much of `input` was used, the output, and whether more
    /// output may be pending without new input (the piece was full). The
    /// driver hands one piece to the session at a time, so a small input
    /// that inflates to gigabytes costs no more memory than a piece. `Err`
    /// for a corrupt stream (the connection is then closed).
    pub fn inflate_piece(&mut self, input: &[u8]) -> Result<(usize, Vec<u8>, bool), String> {
        let mut buf = Vec::with_capacity(PIECE);
        let before_in = self.inp.total_in();
        let status = self
            .inp
            .decompress_vec(input, &mut buf, FlushDecompress::Sync)
            .map_err(|e| format!("deflate: {e}"))?;
        let used = (self.inp.total_in() - before_in) as usize;
        let full = buf.len() == buf.capacity();
        if used == 0 && buf.is_empty() && !input.is_empty() && status != Status::StreamEnd {
            return Err("deflate: stream makes no progress".into());
        }
        Ok((used, buf, full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn round_trip_with_flate2_streams() {
        let mut d = Deflate::new();
        let a = d.compress(b"* OK hello\r\n");
        let b = d.compress(&vec![b'x'; 200_000]);
        // The peer (here flate2's reader) can read each write at once.
        let mut all = a.clone();
        all.extend(&b);
        let mut r = flate2::read::DeflateDecoder::new(&all[..]);
        let mut got = vec![0u8; 12];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, b"* OK hello\r\n");

        let mut w = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        w.write_all(b"a NOOP\r\n").unwrap();
        w.flush().unwrap();
        let (used, seen, more) = d.inflate_piece(w.get_ref()).unwrap();
        assert_eq!(
            (used, seen.as_slice(), more),
            (w.get_ref().len(), &b"a NOOP\r\n"[..], false)
        );
    }

    #[test]
    fn bomb_is_handed_on_in_pieces_and_garbage_is_an_error() {
        let mut w = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        w.write_all(&vec![b'A'; 10 << 20]).unwrap();
        w.flush().unwrap();
        let mut d = Deflate::new();
        let (mut total, mut input) = (0usize, &w.get_ref()[..]);
        loop {
            let (used, out, more) = d.inflate_piece(input).unwrap();
            assert!(out.len() <= PIECE);
            total += out.len();
            input = &input[used..];
            if !more && input.is_empty() {
                break;
            }
        }
        assert_eq!(total, 10 << 20);
        let mut d = Deflate::new();
        assert!(d.inflate_piece(&[0xff; 64]).is_err());
    }
}
