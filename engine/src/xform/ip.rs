//! The IP header around a transform: where the payload starts, which
//! protocol it is, and putting the packet back together once the payload
//! has changed (lengths and the IPv4 checksum made right again).

use crate::packet::PacketBuf;
pub use crate::wire::layout::Layout;
pub use crate::wire::proto;
use crate::wire::{ipv4, ipv6};
use std::net::IpAddr;

/// Names `protocol` as what follows the header of `layout` (which must
/// still describe the packet's header), and makes the lengths (and the
/// IPv4 checksum) agree with the packet after a transform changed what
/// follows the header. Fails when the packet is too long for IP.
pub fn reframe(packet: &mut [u8], layout: &Layout, protocol: u8) -> Result<(), CannotBuild> {
    packet[layout.protocol_at] = protocol;
    fix_lengths(packet, layout.v6)
}

/// The packet would exceed IP's 64 KiB, or its addresses are of two
/// families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CannotBuild;

/// Makes the length fields (and the IPv4 checksum) agree with the buffer.
pub fn fix_lengths(packet: &mut [u8], v6: bool) -> Result<(), CannotBuild> {
    if v6 {
        let len = u16::try_from(packet.len() - ipv6::HEADER_LEN).map_err(|_| CannotBuild)?;
        ipv6::Packet::new_unchecked(packet).set_payload_len(len);
    } else {
        let len = u16::try_from(packet.len()).map_err(|_| CannotBuild)?;
        let mut ip = ipv4::Packet::new_unchecked(packet);
        ip.set_total_len(len);
        ip.fill_checksum();
    }
    Ok(())
}

/// Puts the packet in `buf` behind a new outer header from `src` to `dst`
/// (tunnel mode, RFC 2003 and RFC 2473). The outer header copies the
/// inner traffic class with its ECN bits (RFC 6040's normal mode) and,
/// for IPv4 inside IPv4, the don't-fragment bit.
pub fn encapsulate(
    buf: &mut PacketBuf,
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
) -> Result<(), CannotBuild> {
    let inner = buf.as_slice();
    let (protocol, class, dont_fragment) = match Layout::of(inner) {
        Ok(l) if l.v6 => (
            proto::IPV6,
            ipv6::Packet::new_unchecked(inner).traffic_class(),
            false,
        ),
        Ok(_) => {
            let ip = ipv4::Packet::new_unchecked(inner);
            (proto::IPV4, ip.tos(), ip.dont_fragment())
        }
        Err(_) => (proto::IPV4, 0, false),
    };
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let packet = buf.push_front(ipv4::HEADER_LEN)?;
            packet[..ipv4::HEADER_LEN].fill(0);
            let mut ip = ipv4::Packet::new_unchecked(&mut packet[..]);
            ip.set_version_and_header_len(ipv4::HEADER_LEN);
            ip.set_tos(class);
            ip.set_ident(ident);
            ip.set_unfragmented(dont_fragment);
            ip.set_ttl(DEFAULT_TTL);
            ip.set_protocol(protocol);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            fix_lengths(packet, false)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let packet = buf.push_front(ipv6::HEADER_LEN)?;
            packet[..ipv6::HEADER_LEN].fill(0);
            let mut ip = ipv6::Packet::new_unchecked(&mut packet[..]);
            ip.set_version_class_and_label(class, 0);
            ip.set_next_header(protocol);
            ip.set_hop_limit(DEFAULT_TTL);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            fix_lengths(packet, true)
        }
        // An SA's addresses are always of one family.
        _ => Err(CannotBuild),
    }
}

/// The TTL or hop limit of headers the runtime makes.
pub const DEFAULT_TTL: u8 = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spd::{Direction, PacketKey};
    use crate::wire;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An IPv4 UDP packet with the given ports and payload.
    pub(crate) fn udp4(src: &str, dst: &str, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[8] = 64;
        p[9] = proto::UDP;
        let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(src), ip(dst)) else {
            panic!("v4 only")
        };
        p[12..16].copy_from_slice(&s.octets());
        p[16..20].copy_from_slice(&d.octets());
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[24..26].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        p.extend_from_slice(data);
        fix_lengths(&mut p, false).unwrap();
        p
    }

    #[test]
    fn layout_and_key_of_an_ipv4_udp_packet() {
        let mut p = udp4("10.0.0.1", "10.0.0.2", 1234, 53, b"hello");
        p.extend_from_slice(&[0xee; 6]); // link padding
        let l = Layout::of(&p).unwrap();
        assert_eq!((l.v6, l.header_len, l.protocol, l.len), (false, 20, 17, 33));
        assert_eq!(&l.payload(&p)[8..], b"hello");
        let k = PacketKey::of(&l, &p, Direction::Out);
        assert_eq!((k.sport, k.dport, k.proto), (1234, 53, 17));
        assert_eq!((k.src, k.dst), (ip("10.0.0.1"), ip("10.0.0.2")));
    }

    #[test]
    fn later_fragments_have_no_ports() {
        let mut p = udp4("10.0.0.1", "10.0.0.2", 1234, 53, b"hello");
        p[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        let k = PacketKey::of(&Layout::of(&p).unwrap(), &p, Direction::In);
        assert_eq!((k.sport, k.dport), (0, 0));
    }

    #[test]
    fn ipv6_hop_by_hop_stays_in_front() {
        let mut p = vec![0u8; 40 + 8 + 4];
        p[0] = 0x60;
        p[6] = proto::HOP_BY_HOP;
        p[40] = proto::ICMPV6;
        p[41] = 0; // 8 bytes
        fix_lengths(&mut p, true).unwrap();
        let l = Layout::of(&p).unwrap();
        assert_eq!((l.header_len, l.protocol, l.protocol_at), (48, 58, 40));
        let mut q = p[..l.header_len].to_vec();
        q.extend_from_slice(&[1, 2, 3]);
        reframe(&mut q, &l, proto::ESP).unwrap();
        assert_eq!(q[40], proto::ESP);
        assert_eq!(q[6], proto::HOP_BY_HOP);
        assert_eq!(u16::from_be_bytes([q[4], q[5]]), 11);
        // A hop-by-hop header that runs past the packet is refused.
        p[41] = 1;
        assert_eq!(Layout::of(&p), Err(wire::Error::Truncated));
    }

    #[test]
    fn reframe_fixes_length_and_checksum() {
        let p = udp4("10.0.0.1", "10.0.0.2", 1, 2, b"x");
        let l = Layout::of(&p).unwrap();
        let mut q = p[..20].to_vec();
        q.extend_from_slice(&[0u8; 100]);
        reframe(&mut q, &l, proto::ESP).unwrap();
        let v = ipv4::Packet::new_checked(&q[..]).unwrap();
        assert_eq!((v.total_len(), v.protocol()), (120, proto::ESP));
        assert!(v.verify_checksum());
        q.resize(65536, 0);
        assert_eq!(reframe(&mut q, &l, 1), Err(CannotBuild));
    }

    #[test]
    fn tunnel_headers_carry_class_and_df() {
        let mut inner = udp4("10.0.0.1", "10.0.0.2", 1, 2, b"x");
        inner[1] = 0xb9; // DSCP 46, ECN 01
        inner[6] = 0x40; // DF
        fix_lengths(&mut inner, false).unwrap();
        let tunnel = |src: &str, dst: &str, ident| {
            let mut buf = PacketBuf::from_slice(&inner);
            encapsulate(&mut buf, ip(src), ip(dst), ident).map(|()| buf.as_slice().to_vec())
        };
        let outer = tunnel("192.0.2.1", "192.0.2.2", 7).unwrap();
        let v = ipv4::Packet::new_checked(&outer[..]).unwrap();
        assert_eq!((v.protocol(), v.tos(), v.ident()), (proto::IPV4, 0xb9, 7));
        assert!(v.dont_fragment() && v.verify_checksum());
        assert_eq!(v.payload(), &inner[..]);
        let outer = tunnel("2001:db8::1", "2001:db8::2", 0).unwrap();
        let v = ipv6::Packet::new_checked(&outer[..]).unwrap();
        assert_eq!((v.next_header(), v.traffic_class()), (proto::IPV4, 0xb9));
        assert_eq!(v.payload(), &inner[..]);
        assert_eq!(tunnel("192.0.2.1", "2001:db8::2", 0), Err(CannotBuild));
    }
}
