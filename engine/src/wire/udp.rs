//! UDP headers (RFC 768), which NAT-T (RFC 3948) wraps ESP in.

use super::{Error, Result};

/// The length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Where the checksum sits, from the start of the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes from the wire, checking the header and that the length
    /// field covers the header and fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let declared = usize::from(packet.len());
        if declared < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len < declared {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The checksum field (zero when the sender computed none).
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, at: std::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value);
    }

    /// Sets the checksum field. RFC 3948 §2.1 lets ESP-in-UDP senders
    /// send zero over IPv4.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// The payload, for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An ESP-in-UDP datagram (RFC 3948) from port 4500 to 4500 with no
    // checksum, carrying the start of an ESP header (SPI 0x100).
    const DATAGRAM: [u8; 16] = [
        0x11, 0x94, 0x11, 0x94, 0x00, 0x10, 0x00, 0x00, //
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(packet.src_port(), 4500);
        assert_eq!(packet.dst_port(), 4500);
        assert_eq!(packet.len(), 16);
        assert_eq!(packet.checksum(), 0);
        assert_eq!(packet.payload(), &DATAGRAM[8..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5; 16];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(4500);
        packet.set_dst_port(4500);
        packet.set_len(16);
        packet.set_checksum(0);
        packet.payload_mut().copy_from_slice(&DATAGRAM[8..]);
        assert_eq!(bytes, DATAGRAM);
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            Packet::new_checked(&DATAGRAM[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&DATAGRAM[..15]).unwrap_err(),
            Error::Truncated
        );
        let mut short = DATAGRAM;
        short[5] = 7;
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::BadLength
        );
    }
}
