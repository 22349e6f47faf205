//! The Authentication Header (RFC 4302 §2).

use super::{Error, Result};

/// The length of the fields before the ICV.
pub const FIXED_LEN: usize = 12;

/// A view of an AH header and what it protects after it.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const NEXT_HEADER: usize = 0;
    pub const PAYLOAD_LEN: usize = 1;
    pub const RESERVED: Range<usize> = 2..4;
    pub const SPI: Range<usize> = 4..8;
    pub const SEQUENCE: Range<usize> = 8..12;
}

/// The value of the payload length field for an ICV of `icv_len` bytes:
/// the header's length in 32-bit words, minus 2.
pub const fn payload_len_for(icv_len: usize) -> u8 {
    ((FIXED_LEN + icv_len) / 4 - 2) as u8
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes from the wire, checking that the header, ICV included,
    /// is all there. Whether the ICV has the length the SA expects is the
    /// transform's question.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < FIXED_LEN {
            return Err(Error::Truncated);
        }
        if packet.header_len() < FIXED_LEN {
            return Err(Error::BadLength);
        }
        if len < packet.header_len() {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u32_at(&self, at: std::ops::Range<usize>) -> u32 {
        let b = &self.bytes()[at];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The protocol of what follows the header.
    pub fn next_header(&self) -> u8 {
        self.bytes()[field::NEXT_HEADER]
    }

    /// The payload length field, as sent.
    pub fn payload_len(&self) -> u8 {
        self.bytes()[field::PAYLOAD_LEN]
    }

    /// The length of the whole header in bytes, ICV included.
    pub fn header_len(&self) -> usize {
        (usize::from(self.payload_len()) + 2) * 4
    }

    /// The reserved field, which senders must set to zero.
    pub fn reserved(&self) -> u16 {
        let b = &self.bytes()[field::RESERVED];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The security parameters index.
    pub fn spi(&self) -> u32 {
        self.u32_at(field::SPI)
    }

    /// The low 32 bits of the sequence number.
    pub fn sequence_number(&self) -> u32 {
        self.u32_at(field::SEQUENCE)
    }

    /// The integrity check value (with any padding the sender added).
    pub fn icv(&self) -> &[u8] {
        &self.bytes()[FIXED_LEN..self.header_len()]
    }

    /// What the header protects after itself.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the protocol of what follows.
    pub fn set_next_header(&mut self, value: u8) {
        self.bytes_mut()[field::NEXT_HEADER] = value;
    }

    /// Sets the payload length field; see [`payload_len_for`].
    pub fn set_payload_len(&mut self, value: u8) {
        self.bytes_mut()[field::PAYLOAD_LEN] = value;
    }

    /// Zeroes the reserved field.
    pub fn clear_reserved(&mut self) {
        self.bytes_mut()[field::RESERVED].fill(0);
    }

    /// Sets the security parameters index.
    pub fn set_spi(&mut self, value: u32) {
        self.bytes_mut()[field::SPI].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the low 32 bits of the sequence number.
    pub fn set_sequence_number(&mut self, value: u32) {
        self.bytes_mut()[field::SEQUENCE].copy_from_slice(&value.to_be_bytes());
    }

    /// The ICV, for writing (and for zeroing before it is computed).
    pub fn icv_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.bytes_mut()[FIXED_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An AH header for HMAC-SHA2-256-128 (a 16-byte ICV) over an inner
    // TCP segment: next header 6, length (12 + 16) / 4 - 2 = 5, SPI 0x2000,
    // sequence number 7, then the ICV and the first payload bytes.
    const BYTES: [u8; 32] = [
        0x06, 0x05, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x07, //
        0x3c, 0x1b, 0x9e, 0x47, 0x80, 0x22, 0xd1, 0x05, 0x6a, 0x91, 0x0f, 0xe3, 0x55, 0xc0, 0x18,
        0x7b, //
        0x04, 0xd2, 0x00, 0x50,
    ];

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(packet.next_header(), 6);
        assert_eq!(packet.payload_len(), 5);
        assert_eq!(packet.header_len(), 28);
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.spi(), 0x2000);
        assert_eq!(packet.sequence_number(), 7);
        assert_eq!(packet.icv(), &BYTES[12..28]);
        assert_eq!(packet.payload(), &BYTES[28..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5; 32];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_next_header(6);
        packet.set_payload_len(payload_len_for(16));
        packet.clear_reserved();
        packet.set_spi(0x2000);
        packet.set_sequence_number(7);
        packet.icv_mut().copy_from_slice(&BYTES[12..28]);
        bytes[28..].copy_from_slice(&BYTES[28..]);
        assert_eq!(bytes, BYTES);
    }

    #[test]
    fn payload_len_for_common_icvs() {
        // RFC 4302 §2.2: HMAC-*-96 gives 4, and the 128-bit SHA-2 ICVs 5.
        assert_eq!(payload_len_for(12), 4);
        assert_eq!(payload_len_for(16), 5);
        assert_eq!(payload_len_for(32), 9);
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            Packet::new_checked(&BYTES[..11]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&BYTES[..27]).unwrap_err(),
            Error::Truncated
        );
        let mut short = BYTES;
        short[1] = 0; // 8 bytes: shorter than the fixed fields
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::BadLength
        );
        short[1] = 255; // 1028 bytes
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::Truncated
        );
    }
}
