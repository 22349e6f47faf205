//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::{Error, Result, checksum};

/// The length of a header without options.
pub const HEADER_LEN: usize = 20;

/// A view of an IPv4 packet: the header, its options and the payload.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use std::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

const FLAG_DONT_FRAGMENT: u16 = 0x4000;
const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; see the module contract.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps bytes from the wire, checking that they hold a whole IPv4
    /// header and the total length it declares. The buffer may run on
    /// past that length (link padding); [`Packet::payload`] ignores the rest.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Whether the buffer holds a whole IPv4 header and the total length
    /// it declares.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || total_len < header_len {
            return Err(Error::BadLength);
        }
        if len < total_len {
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

    fn u16_at(&self, at: std::ops::Range<usize>) -> u16 {
        let b = &self.bytes()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The version field (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.bytes()[field::VER_IHL] >> 4
    }

    /// The header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.bytes()[field::VER_IHL] & 0x0f) * 4
    }

    /// The type-of-service byte (DSCP and ECN).
    pub fn tos(&self) -> u8 {
        self.bytes()[field::TOS]
    }

    /// The total length field: header plus payload.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Whether the sender forbade fragmentation.
    pub fn dont_fragment(&self) -> bool {
        self.u16_at(field::FLAGS_FRAG) & FLAG_DONT_FRAGMENT != 0
    }

    /// Whether more fragments follow this one.
    pub fn more_fragments(&self) -> bool {
        self.u16_at(field::FLAGS_FRAG) & FLAG_MORE_FRAGMENTS != 0
    }

    /// The fragment offset, in bytes.
    pub fn fragment_offset(&self) -> u16 {
        (self.u16_at(field::FLAGS_FRAG) & FRAGMENT_OFFSET_MASK) * 8
    }

    /// Whether this packet is a fragment (not the whole datagram).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.fragment_offset() != 0
    }

    /// The time-to-live field.
    pub fn ttl(&self) -> u8 {
        self.bytes()[field::TTL]
    }

    /// The protocol number of the payload.
    pub fn protocol(&self) -> u8 {
        self.bytes()[field::PROTOCOL]
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.bytes()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.bytes()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Whether the header checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::of(&self.bytes()[..self.header_len()]) == 0
    }

    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.bytes()[..self.header_len()]
    }

    /// The payload: the bytes after the header, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    fn set_u16_at(&mut self, at: std::ops::Range<usize>, value: u16) {
        self.bytes_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len.is_multiple_of(4) && (HEADER_LEN..=60).contains(&header_len));
        self.bytes_mut()[field::VER_IHL] = 0x40 | (header_len / 4) as u8;
    }

    /// Sets the type-of-service byte.
    pub fn set_tos(&mut self, value: u8) {
        self.bytes_mut()[field::TOS] = value;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, value: u16) {
        self.set_u16_at(field::IDENT, value);
    }

    /// Sets the flags and fragment offset: a whole datagram, with or
    /// without the don't-fragment bit.
    pub fn set_unfragmented(&mut self, dont_fragment: bool) {
        let flags = if dont_fragment { FLAG_DONT_FRAGMENT } else { 0 };
        self.set_u16_at(field::FLAGS_FRAG, flags);
    }

    /// Sets the time-to-live.
    pub fn set_ttl(&mut self, value: u8) {
        self.bytes_mut()[field::TTL] = value;
    }

    /// Sets the payload's protocol number.
    pub fn set_protocol(&mut self, value: u8) {
        self.bytes_mut()[field::PROTOCOL] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.bytes_mut()[field::SRC].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.bytes_mut()[field::DST].copy_from_slice(&value.octets());
    }

    /// Sets the header checksum field as given.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Computes the header checksum and writes it.
    pub fn fill_checksum(&mut self) {
        self.set_u16_at(field::CHECKSUM, 0);
        let sum = checksum::of(self.header());
        self.set_u16_at(field::CHECKSUM, sum);
    }

    /// The payload, for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.bytes_mut()[range]
    }
}

/// An IPv4 header without options, as values: what a header says once
/// read, or what is to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// The bytes behind the header.
    pub payload_len: usize,
    pub tos: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

impl Repr {
    /// Reads a whole, unfragmented datagram's header whose checksum
    /// holds; options are skipped.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.is_fragment() {
            return Err(Error::BadLength);
        }
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            tos: packet.tos(),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_fragment: packet.dont_fragment(),
        })
    }

    /// The bytes the header and its payload take.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header, checksum included, into the first
    /// [`HEADER_LEN`] bytes of `packet`; `BadLength` when the datagram
    /// would be longer than IPv4 allows.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let total = u16::try_from(self.buffer_len()).map_err(|_| Error::BadLength)?;
        packet.set_version_and_header_len(HEADER_LEN);
        packet.set_tos(self.tos);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.set_unfragmented(self.dont_fragment);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src);
        packet.set_dst_addr(self.dst);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repr_reads_back_what_it_wrote() {
        let repr = Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            protocol: 50,
            payload_len: 100,
            tos: 0x2e,
            ttl: 9,
            ident: 0x1234,
            dont_fragment: true,
        };
        let mut bytes = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(Repr::parse(&packet), Ok(repr));
        bytes[10] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bytes[..])),
            Err(Error::BadChecksum)
        );
        let huge = Repr {
            payload_len: 65_535,
            ..repr
        };
        assert_eq!(
            huge.emit(&mut Packet::new_unchecked(&mut bytes[..])),
            Err(Error::BadLength)
        );
    }

    // A UDP datagram's IPv4 header as captured (the example often used to
    // show the checksum: 192.168.0.1 to 192.168.0.199, checksum b861),
    // followed by 95 bytes of payload.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn datagram() -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        bytes.extend((0..95).map(|i| i as u8));
        bytes
    }

    #[test]
    fn deconstruct() {
        let bytes = datagram();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.tos(), 0);
        assert_eq!(packet.total_len(), 0x73);
        assert_eq!(packet.ident(), 0);
        assert!(packet.dont_fragment());
        assert!(!packet.more_fragments());
        assert_eq!(packet.fragment_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), 17);
        assert_eq!(packet.checksum(), 0xb861);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &bytes[20..]);
    }

    #[test]
    fn construct() {
        // Junk first, so a field that is never written shows up.
        let mut bytes = [0xa5; 0x73];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version_and_header_len(20);
        packet.set_tos(0);
        packet.set_total_len(0x73);
        packet.set_ident(0);
        packet.set_unfragmented(true);
        packet.set_ttl(64);
        packet.set_protocol(17);
        packet.set_src_addr(Ipv4Addr::new(192, 168, 0, 1));
        packet.set_dst_addr(Ipv4Addr::new(192, 168, 0, 199));
        packet.fill_checksum();
        assert_eq!(&bytes[..20], &HEADER);
    }

    #[test]
    fn flipped_bit_fails_the_checksum() {
        let mut bytes = datagram();
        bytes[15] ^= 0x01;
        assert!(!Packet::new_checked(&bytes[..]).unwrap().verify_checksum());
    }

    #[test]
    fn lengths_are_checked() {
        let bytes = datagram();
        assert_eq!(
            Packet::new_checked(&bytes[..19]).unwrap_err(),
            Error::Truncated
        );
        // One byte short of the declared total length.
        assert_eq!(
            Packet::new_checked(&bytes[..0x72]).unwrap_err(),
            Error::Truncated
        );
        // Link padding after the datagram is allowed and ignored.
        let mut padded = bytes.clone();
        padded.extend([0; 6]);
        assert_eq!(
            Packet::new_checked(&padded[..]).unwrap().payload().len(),
            95
        );

        let mut bad = bytes.clone();
        bad[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            Error::BadVersion
        );
        bad[0] = 0x44; // a header of 16 bytes
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::BadLength);
        bad[0] = 0x4f; // 60 bytes of header, beyond the total length of 20
        bad[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn fragments_are_recognised() {
        let mut bytes = datagram();
        bytes[6..8].copy_from_slice(&0x2003u16.to_be_bytes());
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.more_fragments());
        assert_eq!(packet.fragment_offset(), 24);
        assert!(packet.is_fragment());
    }

    #[test]
    fn no_bytes_make_it_panic() {
        // Every prefix of a header whose length fields are hostile.
        let mut bytes = datagram();
        bytes[0] = 0x4f;
        bytes[2..4].copy_from_slice(&0xffffu16.to_be_bytes());
        for end in 0..=bytes.len() {
            if let Ok(packet) = Packet::new_checked(&bytes[..end]) {
                let _ = (packet.payload(), packet.verify_checksum(), packet.header());
            }
        }
    }
}
