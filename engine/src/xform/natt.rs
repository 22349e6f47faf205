//! ESP in UDP for NAT traversal (RFC 3948): the UDP header in front of
//! ESP on the way out, and on the way in the transport checksums a NAT
//! has invalidated.

use super::ip::{CannotBuild, DEFAULT_TTL, Layout, fix_lengths, proto, reframe};
use crate::packet::PacketBuf;
use crate::wire::{checksum, ipv4, ipv6, udp};
use std::net::IpAddr;

/// The UDP port of ESP in UDP.
pub const PORT: u16 = 4500;

/// How often a host behind a NAT reminds it of the mapping (RFC 3948
/// §4 suggests 20 seconds).
pub const KEEPALIVE_INTERVAL: u64 = 20;

/// A NAT-keepalive (RFC 3948 §2.3): one 0xFF byte in UDP from the NAT-T
/// port to the peer's. None for addresses of two families.
pub fn keepalive(src: IpAddr, dst: IpAddr, dst_port: u16) -> Option<Vec<u8>> {
    let v6 = src.is_ipv6();
    if dst.is_ipv6() != v6 {
        return None;
    }
    let header = if v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    };
    let mut packet = vec![0u8; header + udp::HEADER_LEN + 1];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = ipv4::Packet::new_unchecked(&mut packet[..]);
            ip.set_version_and_header_len(ipv4::HEADER_LEN);
            ip.set_ttl(DEFAULT_TTL);
            ip.set_protocol(proto::UDP);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = ipv6::Packet::new_unchecked(&mut packet[..]);
            ip.set_version_class_and_label(0, 0);
            ip.set_next_header(proto::UDP);
            ip.set_hop_limit(DEFAULT_TTL);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
        }
        _ => return None,
    }
    fix_lengths(&mut packet, v6).ok()?;
    let datagram = &mut packet[header..];
    datagram[udp::HEADER_LEN] = 0xff;
    let mut u = udp::Packet::new_unchecked(&mut datagram[..]);
    u.set_src_port(PORT);
    u.set_dst_port(dst_port);
    u.set_len((udp::HEADER_LEN + 1) as u16);
    if v6 {
        let sum = checksum::pseudo_header(src, dst, proto::UDP, (udp::HEADER_LEN + 1) as u32);
        let value = checksum::finish(checksum::accumulate(sum, datagram));
        udp::Packet::new_unchecked(datagram).set_checksum(if value == 0 { 0xffff } else { value });
    }
    Some(packet)
}

/// ESP in UDP (RFC 3948 §2.1): a UDP header from and to the NAT-T port
/// between the IP header and ESP. IPv4 sends no UDP checksum; IPv6 must.
pub fn encapsulate(buf: &mut PacketBuf, layout: &Layout, dst_port: u16) -> Result<(), CannotBuild> {
    let at = layout.header_len;
    let len = u16::try_from(buf.len() - at + udp::HEADER_LEN).map_err(|_| CannotBuild)?;
    let packet = buf.insert(at, udp::HEADER_LEN)?;
    {
        let mut u = udp::Packet::new_unchecked(&mut packet[at..]);
        u.set_src_port(PORT);
        u.set_dst_port(dst_port);
        u.set_len(len);
        u.set_checksum(0);
    }
    if layout.v6 {
        let sum = checksum::pseudo_header(layout.src, layout.dst, proto::UDP, u32::from(len));
        let value = match checksum::finish(checksum::accumulate(sum, &packet[at..])) {
            0 => 0xffff,
            v => v,
        };
        udp::Packet::new_unchecked(&mut packet[at..]).set_checksum(value);
    }
    reframe(packet, layout, proto::UDP)
}

/// Recomputes a TCP checksum, or clears an IPv4 UDP one, after NAT-T
/// transport mode.
pub fn fix_transport_checksum(packet: &mut [u8], layout: &Layout) {
    let (start, end) = (layout.header_len, layout.len);
    let field = match layout.protocol {
        proto::TCP => 16,
        proto::UDP if !layout.v6 => {
            if end - start >= udp::HEADER_LEN {
                packet[start + 6..start + 8].fill(0);
            }
            return;
        }
        proto::UDP => 6,
        _ => return,
    };
    if end - start < field + 2 {
        return;
    }
    packet[start + field..start + field + 2].fill(0);
    let sum = checksum::pseudo_header(
        layout.src,
        layout.dst,
        layout.protocol,
        (end - start) as u32,
    );
    let mut value = checksum::finish(checksum::accumulate(sum, &packet[start..end]));
    if layout.protocol == proto::UDP && value == 0 {
        value = 0xffff;
    }
    packet[start + field..start + field + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP segment whose checksum is right for other addresses, as
    /// after a NAT rewrote the outer header of a transport-mode packet.
    fn segment(v6: bool) -> Vec<u8> {
        let mut p = if v6 {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, proto::TCP, 64];
            h.extend_from_slice(
                &"2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
            h.extend_from_slice(
                &"2001:db8::2"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
            h
        } else {
            vec![
                0x45,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                64,
                proto::TCP,
                0,
                0,
                198,
                51,
                100,
                1,
                192,
                0,
                2,
                2,
            ]
        };
        let mut tcp = vec![0u8; 20];
        tcp[12] = 0x50;
        tcp[16..18].copy_from_slice(&0xdeadu16.to_be_bytes());
        tcp.extend_from_slice(b"payload");
        p.extend_from_slice(&tcp);
        fix_lengths(&mut p, v6).unwrap();
        p
    }

    fn verifies(packet: &[u8], layout: &Layout) -> bool {
        let (start, end) = (layout.header_len, layout.len);
        let sum = checksum::pseudo_header(
            layout.src,
            layout.dst,
            layout.protocol,
            (end - start) as u32,
        );
        checksum::finish(checksum::accumulate(sum, &packet[start..end])) == 0
    }

    #[test]
    fn transport_checksums_are_made_right_for_the_addresses_seen() {
        for v6 in [false, true] {
            let mut p = segment(v6);
            let layout = Layout::of(&p).unwrap();
            assert!(!verifies(&p, &layout));
            fix_transport_checksum(&mut p, &layout);
            assert!(verifies(&p, &layout), "v6={v6}");
        }
    }

    #[test]
    fn keepalives_are_one_ff_byte_from_the_nat_t_port() {
        let src: IpAddr = "192.168.1.2".parse().unwrap();
        let dst: IpAddr = "198.51.100.2".parse().unwrap();
        let k = keepalive(src, dst, 4501).unwrap();
        let l = Layout::of(&k).unwrap();
        assert_eq!(
            (l.src, l.dst, l.protocol, l.len),
            (src, dst, proto::UDP, 29)
        );
        assert!(ipv4::Packet::new_checked(&k[..]).unwrap().verify_checksum());
        let u = udp::Packet::new_checked(l.payload(&k)).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.payload()),
            (PORT, 4501, &[0xff][..])
        );
        let k = keepalive(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            PORT,
        )
        .unwrap();
        let l = Layout::of(&k).unwrap();
        assert!(verifies(&k, &l));
        assert_eq!(keepalive(src, "2001:db8::2".parse().unwrap(), PORT), None);
    }

    #[test]
    fn esp_goes_in_udp_from_and_to_the_nat_t_port() {
        // The IP header of a segment, with ESP bytes behind it.
        let esp = |v6: bool, byte: u8, port: u16| {
            let p = segment(v6);
            let layout = Layout::of(&p).unwrap();
            let mut buf = PacketBuf::from_slice(&p[..layout.header_len]);
            buf.push_back(16).unwrap()[layout.header_len..].fill(byte);
            encapsulate(&mut buf, &layout, port).unwrap();
            buf.as_slice().to_vec()
        };
        let out = esp(false, 0xaa, 4501);
        let l = Layout::of(&out).unwrap();
        assert_eq!(l.protocol, proto::UDP);
        let u = udp::Packet::new_checked(l.payload(&out)).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.len(), u.checksum()),
            (PORT, 4501, 24, 0)
        );
        assert_eq!(u.payload(), &[0xaa; 16]);
        // IPv6 has no checksum-free UDP: it must verify.
        let out = esp(true, 0xbb, PORT);
        let l = Layout::of(&out).unwrap();
        assert!(verifies(&out, &l));
    }
}
