//! ICMP and ICMPv6 messages (RFC 792, RFC 4443): the common header of
//! type, code and checksum, the four bytes after it that each type uses
//! its own way, and the body. The data path reads them to tell errors
//! from queries and writes the "too big" errors it answers with.

use super::{Error, Result, checksum};
use std::net::Ipv6Addr;

/// Type, code, checksum and the four bytes of the type's own.
pub const HEADER_LEN: usize = 8;

/// A view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes from the wire, checking that the header is there.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_type_and_code(&mut self, msg_type: u8, code: u8) {
        let b = self.buffer.as_mut();
        b[field::TYPE] = msg_type;
        b[field::CODE] = code;
    }

    /// Sets the four bytes after the checksum: for "fragmentation
    /// needed" the next-hop MTU in the low half, for "packet too big"
    /// the whole MTU.
    pub fn set_rest(&mut self, value: u32) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&value.to_be_bytes());
    }

    /// The body behind the header, for writing.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes an ICMP (IPv4) checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.buffer.as_mut()[field::CHECKSUM].fill(0);
        let sum = checksum::of(self.buffer.as_ref());
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    }

    /// Computes an ICMPv6 checksum, which covers the pseudo-header too.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.buffer.as_mut()[field::CHECKSUM].fill(0);
        let bytes = self.buffer.as_ref();
        let sum = checksum::pseudo_header(src.into(), dst.into(), 58, bytes.len() as u32);
        let sum = checksum::finish(checksum::accumulate(sum, bytes));
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_checksum() {
        let mut bytes = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_type_and_code(3, 4);
        p.set_rest(1400);
        p.body_mut().copy_from_slice(b"body");
        p.fill_checksum();
        assert_eq!(checksum::of(&bytes), 0);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (3, 4));
        assert_eq!(bytes[4..8], [0, 0, 0x05, 0x78]);
        assert_eq!(
            Packet::new_checked(&bytes[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
