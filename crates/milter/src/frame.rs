//! The milter frame: a 4-byte big-endian length (counting the command byte),
//! the command byte, then the data (libmilter's mi_rd_cmd / mi_wr_cmd).

use std::fmt;

/// The longest frame yubin accepts from a milter. libmilter refuses frames
/// over MILTER_MAX_DATA_SIZE (64 KiB by default, up to 1 MiB when built with
/// _FFR_MAXDATASIZE); a replaced body arrives in several REPLBODY frames.
pub const MAX_FRAME: usize = 1024 * 1024;

/// A body chunk sent to a milter: libmilter's MILTER_CHUNK_SIZE.
pub const BODY_CHUNK: usize = 65535;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub cmd: u8,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn new(cmd: u8, data: Vec<u8>) -> Frame {
        Frame { cmd, data }
    }

    /// Appends the frame's wire form to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = self.data.len() as u32 + 1;
        out.extend_from_slice(&len.to_be_bytes());
        out.push(self.cmd);
        out.extend_from_slice(&self.data);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.data.len() + 5);
        self.encode_into(&mut v);
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A zero length (no command byte).
    Empty,
    /// Longer than [`MAX_FRAME`] (or the decoder's bound).
    TooLong(u32),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Empty => write!(f, "zero-length packet"),
            FrameError::TooLong(n) => write!(f, "packet too long: {n} bytes"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a byte stream into frames. Memory held is bounded by the largest
/// allowed frame plus one read: the length is checked before any data is
/// kept for it.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(MAX_FRAME)
    }
}

impl Decoder {
    pub fn new(max: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds bytes read from the milter.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet make a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed. After
    /// an error the stream is out of step and must be dropped.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len as usize > self.max {
            return Err(FrameError::TooLong(len));
        }
        let total = 4 + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let cmd = self.buf[4];
        let data = self.buf[5..total].to_vec();
        self.buf.drain(..total);
        Ok(Some(Frame { cmd, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_split_reads() {
        let f = Frame::new(b'h', b"X-Spam\0Yes\0".to_vec());
        let wire = f.encode();
        assert_eq!(&wire[..5], &[0, 0, 0, 12, b'h']);
        let mut d = Decoder::default();
        for b in &wire[..wire.len() - 1] {
            d.push(std::slice::from_ref(b));
            assert_eq!(d.next_frame(), Ok(None));
        }
        d.push(&wire[wire.len() - 1..]);
        assert_eq!(d.next_frame(), Ok(Some(f)));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn two_frames_in_one_read() {
        let mut d = Decoder::default();
        let mut wire = Frame::new(b'c', vec![]).encode();
        Frame::new(b'a', vec![]).encode_into(&mut wire);
        d.push(&wire);
        assert_eq!(d.next_frame().unwrap().unwrap().cmd, b'c');
        assert_eq!(d.next_frame().unwrap().unwrap().cmd, b'a');
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn length_is_bounded_before_allocation() {
        let mut d = Decoder::new(100);
        d.push(&[0xff, 0xff, 0xff, 0xff, b'b']);
        assert_eq!(d.next_frame(), Err(FrameError::TooLong(u32::MAX)));
        let mut d = Decoder::default();
        d.push(&[0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::Empty));
    }
}
