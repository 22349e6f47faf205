//! The IPv6 fixed header (RFC 8200 §3). Extension headers are part of the
//! payload; the transforms walk them where they must.

use std::net::Ipv6Addr;

use super::{Error, Result};

/// The length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet: the fixed header and what follows it.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

fn addr(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(bytes);
    Ipv6Addr::from(octets)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes from the wire, checking that they hold the fixed header
    /// and the payload length it declares. Jumbograms (RFC 2675) are not
    /// supported: a payload length of zero means an empty payload.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Whether the buffer holds an IPv6 fixed header and the payload
    /// length it declares.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        if len < HEADER_LEN + usize::from(self.payload_len()) {
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

    fn first_word(&self) -> u32 {
        let b = &self.bytes()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The version field (6 for a valid packet).
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    /// The traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// The payload length: everything after the fixed header.
    pub fn payload_len(&self) -> u16 {
        let b = &self.bytes()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The type of the header after the fixed one.
    pub fn next_header(&self) -> u8 {
        self.bytes()[field::NEXT_HEADER]
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.bytes()[field::HOP_LIMIT]
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.bytes()[field::SRC])
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.bytes()[field::DST])
    }

    /// The payload, extension headers included, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets version 6, the traffic class and the flow label (low 20 bits).
    pub fn set_version_class_and_label(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.bytes_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, value: u16) {
        self.bytes_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the type of the next header.
    pub fn set_next_header(&mut self, value: u8) {
        self.bytes_mut()[field::NEXT_HEADER] = value;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.bytes_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.bytes_mut()[field::SRC].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.bytes_mut()[field::DST].copy_from_slice(&value.octets());
    }

    /// The payload, for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.bytes_mut()[HEADER_LEN..end]
    }
}

/// A fixed IPv6 header, as values (the flow label is not kept: nothing
/// here sets one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    /// The bytes behind the fixed header.
    pub payload_len: usize,
    pub traffic_class: u8,
    pub hop_limit: u8,
}

impl Repr {
    /// Reads a fixed header whose payload length fits the buffer.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            traffic_class: packet.traffic_class(),
            hop_limit: packet.hop_limit(),
        })
    }

    /// The bytes the header and its payload take.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `packet`,
    /// flow label 0; `BadLength` when the payload is longer than the
    /// header can say.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let length = u16::try_from(self.payload_len).map_err(|_| Error::BadLength)?;
        packet.set_version_class_and_label(self.traffic_class, 0);
        packet.set_payload_len(length);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src);
        packet.set_dst_addr(self.dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repr_reads_back_what_it_wrote() {
        let repr = Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: 50,
            payload_len: 64,
            traffic_class: 0x28,
            hop_limit: 33,
        };
        let mut bytes = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((packet.version(), packet.flow_label()), (6, 0));
        assert_eq!(Repr::parse(&packet), Ok(repr));
        let huge = Repr {
            payload_len: 65_536,
            ..repr
        };
        assert_eq!(
            huge.emit(&mut Packet::new_unchecked(&mut bytes[..])),
            Err(Error::BadLength)
        );
    }

    // The fixed header of an ICMPv6 echo request from fe80::1 to fe80::2
    // with traffic class 0x2e and flow label 0x12345, and its 16-byte
    // payload.
    const PACKET: [u8; 56] = [
        0x62, 0xe1, 0x23, 0x45, 0x00, 0x10, 0x3a, 0x40, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x80, 0x00, 0xf1, 0x12, 0x00, 0x07, 0x00, 0x01, //
        0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0x2e);
        assert_eq!(packet.flow_label(), 0x12345);
        assert_eq!(packet.payload_len(), 16);
        assert_eq!(packet.next_header(), 58);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(packet.dst_addr(), "fe80::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(packet.payload(), &PACKET[40..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5; 56];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version_class_and_label(0x2e, 0x12345);
        packet.set_payload_len(16);
        packet.set_next_header(58);
        packet.set_hop_limit(64);
        packet.set_src_addr("fe80::1".parse().unwrap());
        packet.set_dst_addr("fe80::2".parse().unwrap());
        packet.payload_mut().copy_from_slice(&PACKET[40..]);
        assert_eq!(bytes, PACKET);
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            Packet::new_checked(&PACKET[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..55]).unwrap_err(),
            Error::Truncated
        );
        let mut v4 = PACKET;
        v4[0] = 0x45;
        assert_eq!(Packet::new_checked(&v4[..]).unwrap_err(), Error::BadVersion);
        // Trailing bytes beyond the payload length are not payload.
        let mut padded = PACKET.to_vec();
        padded.extend([0; 4]);
        assert_eq!(
            Packet::new_checked(&padded[..]).unwrap().payload().len(),
            16
        );
    }
}
