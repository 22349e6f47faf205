//! Bytes in network order: a reader that reports what it ran short of
//! instead of panicking, and a writer that fills in lengths afterwards.

use super::DecodeError;

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes; `what` names the field for the error.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated(what))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// A reader over the next `n` bytes, which this one skips.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        self.take(n, what).map(Reader::new)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// A u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// A u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
}

/// A byte vector being written.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

/// Where a 16- or 32-bit length waits to be filled in, and where what it
/// measures starts.
#[derive(Debug, Clone, Copy)]
#[must_use = "a length left unpatched stays zero"]
pub struct Mark {
    at: usize,
    from: usize,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// What was written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// How many bytes were written.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Appends a u16.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    /// Appends a u32.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    /// Appends a u64.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    /// A u16 length to fill in later, measuring from `from` (an offset
    /// already written, or the current one).
    pub fn length16(&mut self, from: usize) -> Mark {
        let at = self.buf.len();
        self.u16(0);
        Mark { at, from }
    }

    /// A u32 length to fill in later, measuring from `from`.
    pub fn length32(&mut self, from: usize) -> Mark {
        let at = self.buf.len();
        self.u32(0);
        Mark { at, from }
    }

    /// Fills in a u16 length: the bytes from the mark's start to here.
    /// Longer than a u16 can say is an error.
    pub fn patch16(&mut self, mark: Mark) -> Result<(), EncodeError> {
        let len = u16::try_from(self.buf.len() - mark.from).map_err(|_| EncodeError::TooLong)?;
        self.buf[mark.at..mark.at + 2].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Fills in a u32 length.
    pub fn patch32(&mut self, mark: Mark) -> Result<(), EncodeError> {
        let len = u32::try_from(self.buf.len() - mark.from).map_err(|_| EncodeError::TooLong)?;
        self.buf[mark.at..mark.at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// Why a value could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// A payload or message longer than its length field can say.
    TooLong,
    /// A count that does not fit its field (transforms, selectors, SPIs).
    TooMany,
    /// Values that contradict each other: an address range of two
    /// families, SPIs of a size other than the one announced.
    Inconsistent,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::TooLong => f.write_str("longer than its length field can say"),
            EncodeError::TooMany => f.write_str("more items than its count field can say"),
            EncodeError::Inconsistent => f.write_str("fields that contradict each other"),
        }
    }
}

impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_names_what_ran_short() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("port"), Ok(0x0102));
        assert_eq!(r.u16("port"), Err(DecodeError::Truncated("port")));
        assert_eq!(r.remaining(), 1);
        assert_eq!(
            r.take(usize::MAX, "data"),
            Err(DecodeError::Truncated("data"))
        );
        assert_eq!(r.rest(), &[3]);
        assert!(r.is_empty());
    }

    #[test]
    fn lengths_are_filled_in() {
        let mut w = Writer::new();
        w.u8(7);
        let outer = w.length32(0);
        let from = w.len();
        let inner = w.length16(from);
        w.bytes(&[9; 3]);
        w.patch16(inner).unwrap();
        w.patch32(outer).unwrap();
        assert_eq!(w.into_bytes(), [7, 0, 0, 0, 10, 0, 5, 9, 9, 9]);
        let mut big = Writer::new();
        let mark = big.length16(0);
        big.bytes(&[0; 70_000]);
        assert_eq!(big.patch16(mark), Err(EncodeError::TooLong));
    }
}
