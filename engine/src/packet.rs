//! A packet in a buffer the caller owns, with room on both sides: the
//! transforms put headers in front of it and trailers behind it, and take
//! them off again, without copying the packet or allocating. One buffer
//! per packet in flight is made once and used for every packet after.

use crate::xform::ip::CannotBuild;

/// Room in front of a packet read into a fresh buffer: enough for the
/// headers of a bundle of two tunnel-mode SAs in IPv6 with ESP in UDP
/// (outer header, UDP, ESP header, IV) or AH.
pub const HEADROOM: usize = 256;

/// Room behind it: ESP's padding, pad length, next header and ICV, twice.
pub const TAILROOM: usize = 256;

/// The longest IP packet.
pub const MAX_PACKET: usize = 65535;

/// The bytes of a buffer that packets up to Ethernet's size use: the
/// headroom, the packet and its trailer.
pub const WORKING_SET: usize = HEADROOM + 1500 + TAILROOM;

/// A packet at `bytes[start..end]`.
pub struct PacketBuf {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("start", &self.start)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for PacketBuf {
    fn default() -> PacketBuf {
        PacketBuf::new()
    }
}

impl PacketBuf {
    /// An empty buffer with room for the longest packet and its headers.
    pub fn new() -> PacketBuf {
        PacketBuf::with_room(MAX_PACKET)
    }

    /// An empty buffer for packets of up to `room` bytes (at most
    /// [`MAX_PACKET`]) as read, with [`HEADROOM`] and [`TAILROOM`] around
    /// them. Its first [`WORKING_SET`] bytes, where packets of a common
    /// size land, are written now: the memory a daemon needs for its
    /// traffic is taken when the buffer is made, not at the first burst.
    pub fn with_room(room: usize) -> PacketBuf {
        let room = room.min(MAX_PACKET);
        let mut bytes = vec![0u8; HEADROOM + room + TAILROOM].into_boxed_slice();
        let touched = WORKING_SET.min(bytes.len());
        // Opaque to the optimizer, which could otherwise drop zeros
        // written over memory that was allocated zeroed.
        std::hint::black_box(&mut bytes[..touched]).fill(0);
        PacketBuf {
            bytes,
            start: HEADROOM,
            end: HEADROOM,
        }
    }

    /// A buffer holding a copy of `packet`, which is cut at
    /// [`MAX_PACKET`] bytes (for tests and tools; the data path reads
    /// straight into [`PacketBuf::space`]).
    pub fn from_slice(packet: &[u8]) -> PacketBuf {
        let mut buf = PacketBuf::new();
        let kept = &packet[..packet.len().min(MAX_PACKET)];
        buf.set(kept)
            .expect("a fresh buffer has room for any IP packet");
        buf
    }

    /// The longest packet the buffer takes as read.
    pub fn room(&self) -> usize {
        self.bytes.len() - HEADROOM - TAILROOM
    }

    /// Replaces the packet with a copy of `packet`; an error, and the
    /// buffer emptied, when it is longer than [`PacketBuf::room`].
    pub fn set(&mut self, packet: &[u8]) -> Result<(), CannotBuild> {
        self.start = HEADROOM;
        self.end = HEADROOM;
        if packet.len() > self.room() {
            return Err(CannotBuild);
        }
        self.end = HEADROOM + packet.len();
        self.bytes[self.start..self.end].copy_from_slice(packet);
        Ok(())
    }

    /// Empties the buffer and returns where the next packet is to be
    /// read: [`PacketBuf::room`] bytes behind the headroom. Then say how
    /// many were read with [`PacketBuf::filled`].
    pub fn space(&mut self) -> &mut [u8] {
        self.start = HEADROOM;
        self.end = HEADROOM;
        let room = self.room();
        &mut self.bytes[HEADROOM..HEADROOM + room]
    }

    /// `n` bytes were read into [`PacketBuf::space`].
    pub fn filled(&mut self, n: usize) {
        self.start = HEADROOM;
        self.end = HEADROOM + n.min(self.room());
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.end]
    }

    /// Grows the packet by `n` bytes in front; returns the whole packet.
    /// The new bytes hold whatever was there.
    pub fn push_front(&mut self, n: usize) -> Result<&mut [u8], CannotBuild> {
        if n > self.start || self.len() + n > MAX_PACKET {
            return Err(CannotBuild);
        }
        self.start -= n;
        Ok(self.as_mut_slice())
    }

    /// Grows the packet by `n` bytes behind; returns the whole packet.
    pub fn push_back(&mut self, n: usize) -> Result<&mut [u8], CannotBuild> {
        if self.end + n > self.bytes.len() || self.len() + n > MAX_PACKET {
            return Err(CannotBuild);
        }
        self.end += n;
        Ok(self.as_mut_slice())
    }

    /// Keeps only `range` of the packet.
    pub fn keep(&mut self, range: std::ops::Range<usize>) {
        let range = range.start.min(self.len())..range.end.min(self.len());
        self.end = self.start + range.end.max(range.start);
        self.start += range.start;
    }

    /// Opens a gap of `n` bytes after the first `at` bytes (a header that
    /// stays in front), moving those `at` bytes, not the rest.
    pub fn insert(&mut self, at: usize, n: usize) -> Result<&mut [u8], CannotBuild> {
        if at > self.len() {
            return Err(CannotBuild);
        }
        let packet = self.push_front(n)?;
        packet.copy_within(n..n + at, 0);
        Ok(packet)
    }

    /// Closes the `n` bytes after the first `at` bytes, moving those `at`
    /// bytes up to what follows the gap.
    pub fn remove(&mut self, at: usize, n: usize) {
        let n = n.min(self.len().saturating_sub(at));
        let packet = self.as_mut_slice();
        packet.copy_within(0..at, n);
        self.start += n;
    }
}

/// Packets in buffers kept for reuse: filled, used, then cleared, and the
/// buffers stay for the next batch.
#[derive(Debug)]
pub struct Batch {
    bufs: Vec<PacketBuf>,
    len: usize,
    /// The room of each buffer.
    room: usize,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch::with_buffers(0, MAX_PACKET)
    }
}

impl Batch {
    /// An empty batch of buffers with room for packets of up to `room`
    /// bytes, `n` of them made already, so that the first `n` packets of
    /// its first burst take no memory that was not taken before.
    pub fn with_buffers(n: usize, room: usize) -> Batch {
        Batch {
            bufs: (0..n).map(|_| PacketBuf::with_room(room)).collect(),
            len: 0,
            room,
        }
    }

    /// The room of each buffer: the longest packet it takes as read.
    pub fn room(&self) -> usize {
        self.room.min(MAX_PACKET)
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The next buffer, empty; a new one only the first time a batch gets
    /// this long.
    pub fn push(&mut self) -> &mut PacketBuf {
        if self.len == self.bufs.len() {
            self.bufs.push(PacketBuf::with_room(self.room));
        }
        self.len += 1;
        let buf = &mut self.bufs[self.len - 1];
        buf.filled(0);
        buf
    }

    /// Gives back the buffer [`Batch::push`] returned last.
    pub fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    /// Gives back every buffer after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[PacketBuf] {
        &self.bufs[..self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [PacketBuf] {
        &mut self.bufs[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_go_in_front_and_come_off_without_moving_the_payload() {
        let mut buf = PacketBuf::from_slice(b"HHHHpayload");
        buf.insert(4, 3).unwrap()[4..7].copy_from_slice(b"ESP");
        assert_eq!(buf.as_slice(), b"HHHHESPpayload");
        buf.push_back(2).unwrap()[14..].copy_from_slice(b"TT");
        buf.push_front(2).unwrap()[..2].copy_from_slice(b"OO");
        assert_eq!(buf.as_slice(), b"OOHHHHESPpayloadTT");
        buf.keep(2..18);
        buf.remove(4, 3);
        assert_eq!(buf.as_slice(), b"HHHHpayloadTT");
        buf.keep(0..11);
        assert_eq!(buf.as_slice(), b"HHHHpayload");
    }

    #[test]
    fn it_refuses_to_grow_past_its_room_or_ip_s_limit() {
        let mut buf = PacketBuf::from_slice(&[0; 100]);
        assert!(buf.push_front(HEADROOM + 1).is_err());
        assert!(buf.push_front(HEADROOM).is_ok());
        let mut buf = PacketBuf::from_slice(&[0; MAX_PACKET]);
        assert!(buf.push_back(1).is_err());
        assert!(buf.insert(20, 8).is_err());
        assert_eq!(buf.len(), MAX_PACKET);
        assert!(PacketBuf::new().insert(1, 1).is_err());
    }

    #[test]
    fn a_batch_keeps_its_buffers() {
        let mut batch = Batch::default();
        let mut small = PacketBuf::with_room(4);
        assert_eq!(small.room(), 4);
        small.set(b"four").unwrap();
        assert_eq!(small.set(b"fives"), Err(CannotBuild));
        assert!(small.is_empty());
        assert_eq!(small.space().len(), 4);
        batch.push().set(b"one").unwrap();
        batch.push().set(b"two").unwrap();
        batch.pop();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.as_slice()[0].as_slice(), b"one");
        batch.clear();
        assert!(batch.is_empty());
        assert!(batch.push().is_empty());
        assert_eq!(batch.bufs.len(), 2);
    }

    #[test]
    fn reads_land_behind_the_headroom() {
        let mut buf = PacketBuf::from_slice(b"old");
        buf.space()[..3].copy_from_slice(b"new");
        buf.filled(3);
        assert_eq!(buf.as_slice(), b"new");
        assert!(buf.push_front(HEADROOM).is_ok());
    }
}
