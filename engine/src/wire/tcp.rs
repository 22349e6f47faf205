//! TCP headers (RFC 9293), as far as segmentation offload reads and
//! rewrites them: ports, sequence number, header length, flags and
//! checksum.

use super::{Error, Result};

/// The length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Flag bits of the thirteenth byte.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const CWR: u8 = 0x80;
}

/// A view of a TCP segment: the header, then its data.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const PORTS: Range<usize> = 0..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const CHECKSUM: Range<usize> = 16..18;
}

/// Where the checksum sits, from the start of the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes from the wire, checking that the header, options
    /// included, lies inside the buffer.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Whether the buffer holds the whole header its data offset
    /// declares, which is at least [`HEADER_LEN`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source and destination port, as they are on the wire: what tells
    /// a connection apart beside its addresses.
    pub fn ports(&self) -> [u8; 4] {
        let b = &self.bytes()[field::PORTS];
        [b[0], b[1], b[2], b[3]]
    }

    pub fn seq_number(&self) -> u32 {
        let b = &self.bytes()[field::SEQ];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The header's length with its options, from the data offset.
    pub fn header_len(&self) -> usize {
        usize::from(self.bytes()[field::DATA_OFFSET] >> 4) * 4
    }

    pub fn flags(&self) -> u8 {
        self.bytes()[field::FLAGS]
    }

    /// The data behind the header.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_seq_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_lengths() {
        let mut bytes = [0u8; 28];
        bytes[..4].copy_from_slice(&[0x04, 0xd2, 0x00, 0x50]);
        bytes[12] = 6 << 4; // 24 bytes of header
        bytes[13] = flags::ACK | flags::PSH;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(p.ports(), [0x04, 0xd2, 0x00, 0x50]);
        assert_eq!((p.header_len(), p.payload().len()), (24, 4));
        p.set_seq_number(0xdead_beef);
        p.set_flags(flags::ACK);
        p.set_checksum(0x1234);
        assert_eq!((p.seq_number(), p.flags()), (0xdead_beef, flags::ACK));
        assert_eq!(bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2], [0x12, 0x34]);
        assert_eq!(
            Packet::new_checked(&bytes[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&bytes[..22]).unwrap_err(),
            Error::Truncated
        );
        let mut short = bytes;
        short[12] = 4 << 4;
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::BadLength
        );
    }
}
