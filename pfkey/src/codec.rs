//! Bytes in, bytes out: a reader that reports running short instead of
//! panicking, and a writer that fills in 64-bit-unit lengths afterwards.
//!
//! Header and extension fields are in host byte order (PF_KEY is local
//! IPC); SPIs, addresses and ports are in network order, and the callers
//! say so by choosing `be` methods.

use crate::DecodeError;

/// PF_KEY measures lengths in 8-byte units and pads everything to them.
pub const UNIT: usize = 8;

/// Rounds up to a whole number of units.
pub const fn pad_up(len: usize) -> usize {
    (len + UNIT - 1) & !(UNIT - 1)
}

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes, or `Truncated` if fewer are left.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a u16 in host byte order.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_ne_bytes(self.array()?))
    }

    /// Reads a u32 in host byte order.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_ne_bytes(self.array()?))
    }

    /// Reads a u64 in host byte order.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_ne_bytes(self.array()?))
    }

    /// Reads a u16 in network byte order (ports).
    pub fn be16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a u32 in network byte order (SPIs, IPv4 addresses).
    pub fn be32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// The rest, which must be padding: all zero.
    pub fn padding(&mut self) -> Result<(), DecodeError> {
        let rest = self.bytes(self.remaining())?;
        if rest.iter().all(|&b| b == 0) {
            Ok(())
        } else {
            Err(DecodeError::Padding)
        }
    }
}

/// Builds a message; lengths are written when their part is finished.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

/// Where a length field waits to be filled in.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    start: usize,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// An empty writer with room reserved for `n` bytes.
    pub fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// How many bytes have been written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Writes one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Writes a u16 in host byte order.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_ne_bytes());
    }

    /// Writes a u32 in host byte order.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_ne_bytes());
    }

    /// Writes a u64 in host byte order.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_ne_bytes());
    }

    /// Writes a u16 in network byte order (ports).
    pub fn be16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes a u32 in network byte order (SPIs, IPv4 addresses).
    pub fn be32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes bytes as they are.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Writes `n` zero bytes.
    pub fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Starts a part whose first u16 is its length in units.
    pub fn begin(&mut self) -> Mark {
        let mark = Mark {
            start: self.buf.len(),
        };
        self.u16(0);
        mark
    }

    /// Pads the part to a whole unit and writes its length.
    pub fn end(&mut self, mark: Mark) {
        let padded = pad_up(self.buf.len() - mark.start);
        self.buf.resize(mark.start + padded, 0);
        let units = (padded / UNIT) as u16;
        self.buf[mark.start..mark.start + 2].copy_from_slice(&units.to_ne_bytes());
    }

    /// Overwrites a u16 already written at `offset`.
    pub fn patch_u16(&mut self, offset: usize, v: u16) {
        self.buf[offset..offset + 2].copy_from_slice(&v.to_ne_bytes());
    }

    /// The bytes written, lengths filled in.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_never_overruns() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u32(), Err(DecodeError::Truncated));
        assert_eq!(r.be16(), Ok(0x0203));
        assert_eq!(r.u8(), Err(DecodeError::Truncated));
        assert_eq!(
            Reader::new(&[]).bytes(usize::MAX),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn lengths_are_back_patched_in_units() {
        let mut w = Writer::new();
        let m = w.begin();
        w.u16(7);
        w.bytes(b"abc");
        w.end(m);
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 8);
        assert_eq!(u16::from_ne_bytes([bytes[0], bytes[1]]), 1);
        assert_eq!(&bytes[4..8], b"abc\0");
        assert_eq!(pad_up(0), 0);
        assert_eq!(pad_up(17), 24);
    }
}
