//! Ethernet II frames (IEEE 802.3 with an EtherType), as a bridge sees
//! them on its ports: destination and source address, the type of what
//! follows, and the payload. No frame check sequence: the NIC keeps it.

use super::{Error, Result};
use std::fmt;

/// Destination, source and EtherType.
pub const HEADER_LEN: usize = 14;

/// EtherType values the bridge tells apart.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const RARP: u16 = 0x8035;
    pub const IPV6: u16 = 0x86dd;
    /// An IEEE 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// An IEEE 802.1ad service tag (QinQ).
    pub const QINQ: u16 = 0x88a8;
    /// Below this the field is an 802.3 length, not a type.
    pub const MIN_TYPE: u16 = 0x0600;
}

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// Group addresses (broadcast included) have the low bit of the
    /// first byte set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Address::BROADCAST
    }

    /// An address one station owns: not a group, not all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps bytes from a port, checking that the header is there.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Frame::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn address(&self, at: std::ops::Range<usize>) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[at]);
        Address(a)
    }

    pub fn dst_addr(&self) -> Address {
        self.address(field::DST)
    }

    pub fn src_addr(&self) -> Address {
        self.address(field::SRC)
    }

    /// The EtherType, or for an 802.3 frame its length.
    pub fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&value.0);
    }

    pub fn set_src_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&value.0);
    }

    pub fn set_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An Ethernet header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub dst: Address,
    pub src: Address,
    pub ethertype: u16,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            dst: frame.dst_addr(),
            src: frame.src_addr(),
            ethertype: frame.ethertype(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `frame`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst);
        frame.set_src_addr(self.src);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_round_trip() {
        let repr = Repr {
            dst: Address::BROADCAST,
            src: Address([0x02, 0, 0x5e, 0x10, 0, 1]),
            ethertype: ethertype::ARP,
        };
        let mut bytes = [0u8; HEADER_LEN + 28];
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]));
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&frame), Ok(repr));
        assert_eq!(frame.payload().len(), 28);
        assert_eq!(repr.src.to_string(), "02:00:5e:10:00:01");
        assert_eq!(
            Frame::new_checked(&bytes[..13]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn kinds_of_address() {
        assert!(Address::BROADCAST.is_multicast() && Address::BROADCAST.is_broadcast());
        assert!(Address([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(Address([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(Address([0x02, 0, 0, 0, 0, 1]).is_unicast());
        assert!(!Address([0; 6]).is_unicast());
    }
}
