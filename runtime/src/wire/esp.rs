//! The ESP header (RFC 4303 §2): the SPI and sequence number that come
//! before the encrypted payload. The trailer and the ICV are inside what
//! the transforms open, so they are not read here.

use super::{Error, Result};

/// The length of the SPI and the sequence number.
pub const HEADER_LEN: usize = 8;

/// A view of an ESP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const SPI: Range<usize> = 0..4;
    pub const SEQUENCE: Range<usize> = 4..8;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes from the wire, checking that the header is all there.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u32_at(&self, at: std::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[at];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The security parameters index.
    pub fn spi(&self) -> u32 {
        self.u32_at(field::SPI)
    }

    /// The low 32 bits of the sequence number.
    pub fn sequence_number(&self) -> u32 {
        self.u32_at(field::SEQUENCE)
    }

    /// Everything after the header: IV, ciphertext, trailer and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the security parameters index.
    pub fn set_spi(&mut self, value: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the low 32 bits of the sequence number.
    pub fn set_sequence_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQUENCE].copy_from_slice(&value.to_be_bytes());
    }

    /// The payload, for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The start of an ESP packet: SPI 0x0000_1000, sequence number 1, then
    // the first bytes of the IV.
    const BYTES: [u8; 12] = [
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x9d, 0x2f, 0x63, 0x1e,
    ];

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(packet.spi(), 0x1000);
        assert_eq!(packet.sequence_number(), 1);
        assert_eq!(packet.payload(), &BYTES[8..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5; 12];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_spi(0x1000);
        packet.set_sequence_number(1);
        packet.payload_mut().copy_from_slice(&BYTES[8..]);
        assert_eq!(bytes, BYTES);
    }

    #[test]
    fn one_byte_short_is_truncated() {
        assert_eq!(
            Packet::new_checked(&BYTES[..7]).unwrap_err(),
            Error::Truncated
        );
        assert!(
            Packet::new_checked(&BYTES[..8])
                .unwrap()
                .payload()
                .is_empty()
        );
    }
}
