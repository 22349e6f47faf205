//! The ICMP errors the data path answers with when a packet no longer fits
//! once protected: "fragmentation needed" for IPv4 packets with DF set
//! (RFC 792, RFC 1191) and "packet too big" for IPv6 (RFC 4443 §3.2), so
//! that the sender's path MTU discovery shrinks what it sends.
//!
//! The rules for when not to answer are RFC 1812 §4.3.2.7 and RFC 4443
//! §2.4(e): never about an ICMP error, a later fragment, or a packet from
//! an address nobody can answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{icmp, ipv4, ipv6};

/// How much of an IPv4 error datagram may be (RFC 1812 §4.3.2.3).
const IPV4_ERROR_MAX: usize = 576;
/// How much of an IPv6 error packet may be: the minimum MTU (RFC 4443).
const IPV6_ERROR_MAX: usize = 1280;
const ICMP_HEADER_LEN: usize = icmp::HEADER_LEN;
const TTL: u8 = 64;

/// The error to send back to the source of `packet` (an IPv4 or IPv6
/// packet that would leave larger than `mtu` bytes), from the address
/// `from`, or `None` when none may be sent. For IPv4 the caller asks only
/// when DF is set; otherwise it fragments.
pub fn reply(packet: &[u8], mtu: u16, from: IpAddr) -> Option<Vec<u8>> {
    match (packet.first()? >> 4, from) {
        (4, IpAddr::V4(from)) => reply_v4(packet, mtu, from),
        (6, IpAddr::V6(from)) => reply_v6(packet, mtu, from),
        _ => None,
    }
}

fn reply_v4(packet: &[u8], mtu: u16, from: Ipv4Addr) -> Option<Vec<u8>> {
    let offending = ipv4::Packet::new_checked(packet).ok()?;
    let to = offending.src_addr();
    if offending.fragment_offset() != 0 || !answerable_v4(to) {
        return None;
    }
    if offending.protocol() == 1 && is_icmpv4_error(offending.payload()) {
        return None;
    }
    let quoted = &packet[..usize::from(offending.total_len())];
    let quoted = &quoted[..quoted
        .len()
        .min(IPV4_ERROR_MAX - ipv4::HEADER_LEN - ICMP_HEADER_LEN)];
    let total = ipv4::HEADER_LEN + ICMP_HEADER_LEN + quoted.len();

    let mut out = vec![0; total];
    let (header, body) = out.split_at_mut(ipv4::HEADER_LEN);
    // Type 3 (unreachable), code 4 (fragmentation needed), next-hop MTU.
    let mut icmp = icmp::Packet::new_unchecked(body);
    icmp.set_type_and_code(3, 4);
    icmp.set_rest(u32::from(mtu));
    icmp.body_mut().copy_from_slice(quoted);
    icmp.fill_checksum();
    let ip = ipv4::Repr {
        src: from,
        dst: to,
        protocol: 1,
        payload_len: total - ipv4::HEADER_LEN,
        // Internetwork control, as routers mark the errors they originate.
        tos: 0xc0,
        ttl: TTL,
        ident: 0,
        dont_fragment: false,
    };
    ip.emit(&mut ipv4::Packet::new_unchecked(header)).ok()?;
    Some(out)
}

fn answerable_v4(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast())
}

/// Whether an ICMP message is an error (or too short to tell), rather
/// than a query such as an echo request.
fn is_icmpv4_error(icmp: &[u8]) -> bool {
    match icmp.first() {
        // Unreachable, source quench, redirect, time exceeded, parameter
        // problem.
        Some(3 | 4 | 5 | 11 | 12) | None => true,
        Some(_) => false,
    }
}

fn reply_v6(packet: &[u8], mtu: u16, from: Ipv6Addr) -> Option<Vec<u8>> {
    let offending = ipv6::Packet::new_checked(packet).ok()?;
    let to = offending.src_addr();
    if to.is_unspecified() || to.is_multicast() {
        return None;
    }
    match offending.next_header() {
        // ICMPv6 types below 128 are errors.
        58 if offending.payload().first().is_none_or(|&kind| kind < 128) => return None,
        // A fragment header with a non-zero offset: a later fragment.
        44 => {
            let fragment = offending.payload().get(2..4)?;
            if u16::from_be_bytes([fragment[0], fragment[1]]) & 0xfff8 != 0 {
                return None;
            }
        }
        _ => {}
    }
    let quoted = &packet[..ipv6::HEADER_LEN + usize::from(offending.payload_len())];
    let quoted = &quoted[..quoted
        .len()
        .min(IPV6_ERROR_MAX - ipv6::HEADER_LEN - ICMP_HEADER_LEN)];
    let icmp_len = ICMP_HEADER_LEN + quoted.len();

    let mut out = vec![0; ipv6::HEADER_LEN + icmp_len];
    let (header, body) = out.split_at_mut(ipv6::HEADER_LEN);
    // Type 2 (packet too big), code 0, a 32-bit MTU.
    let mut icmp = icmp::Packet::new_unchecked(body);
    icmp.set_type_and_code(2, 0);
    icmp.set_rest(u32::from(mtu));
    icmp.body_mut().copy_from_slice(quoted);
    icmp.fill_checksum_v6(from, to);
    let ip = ipv6::Repr {
        src: from,
        dst: to,
        next_header: 58,
        payload_len: icmp_len,
        traffic_class: 0,
        hop_limit: TTL,
    };
    ip.emit(&mut ipv6::Packet::new_unchecked(header)).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    fn ipv4_packet(protocol: u8, payload: &[u8], flags_frag: u16) -> Vec<u8> {
        let mut bytes = vec![0; 20 + payload.len()];
        let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
        ip.set_version_and_header_len(20);
        ip.set_total_len((20 + payload.len()) as u16);
        ip.set_ttl(63);
        ip.set_protocol(protocol);
        ip.set_src_addr(Ipv4Addr::new(10, 1, 0, 5));
        ip.set_dst_addr(Ipv4Addr::new(10, 2, 0, 9));
        ip.payload_mut().copy_from_slice(payload);
        bytes[6..8].copy_from_slice(&flags_frag.to_be_bytes());
        ipv4::Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        bytes
    }

    fn ipv6_packet(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0; 40 + payload.len()];
        let mut ip = ipv6::Packet::new_unchecked(&mut bytes[..]);
        ip.set_version_class_and_label(0, 0);
        ip.set_payload_len(payload.len() as u16);
        ip.set_next_header(next_header);
        ip.set_hop_limit(63);
        ip.set_src_addr("2001:db8:1::5".parse().unwrap());
        ip.set_dst_addr("2001:db8:2::9".parse().unwrap());
        ip.payload_mut().copy_from_slice(payload);
        bytes
    }

    const ROUTER4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

    #[test]
    fn fragmentation_needed_quotes_the_packet() {
        let offending = ipv4_packet(6, &[0x55; 1480], 0x4000);
        let reply = reply(&offending, 1400, ROUTER4.into()).unwrap();
        let ip = ipv4::Packet::new_checked(&reply[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), 1);
        assert_eq!(ip.src_addr(), ROUTER4);
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 1, 0, 5));
        assert_eq!(usize::from(ip.total_len()), IPV4_ERROR_MAX);
        let icmp = ip.payload();
        assert_eq!(&icmp[..2], &[3, 4]);
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400);
        assert_eq!(checksum::of(icmp), 0);
        // The quote starts with the offending header, as sent.
        assert_eq!(&icmp[8..], &offending[..IPV4_ERROR_MAX - 28]);
    }

    #[test]
    fn a_short_packet_is_quoted_whole() {
        let offending = ipv4_packet(17, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0x4000);
        let reply = reply(&offending, 1400, ROUTER4.into()).unwrap();
        assert_eq!(&reply[28..], &offending[..]);
    }

    #[test]
    fn no_reply_about_errors_fragments_or_unanswerable_sources() {
        let echo = ipv4_packet(1, &[8, 0, 0, 0, 0, 1, 0, 1], 0x4000);
        assert!(reply(&echo, 1400, ROUTER4.into()).is_some());
        let unreachable = ipv4_packet(1, &[3, 1, 0, 0, 0, 0, 0, 0], 0x4000);
        assert!(reply(&unreachable, 1400, ROUTER4.into()).is_none());
        let later_fragment = ipv4_packet(6, &[0; 64], 0x4000 | 185);
        assert!(reply(&later_fragment, 1400, ROUTER4.into()).is_none());
        let mut from_nobody = ipv4_packet(6, &[0; 64], 0x4000);
        from_nobody[12..16].copy_from_slice(&[0, 0, 0, 0]);
        assert!(reply(&from_nobody, 1400, ROUTER4.into()).is_none());
        // Garbage, and an answer from the wrong family.
        assert!(reply(&[0x45, 0, 0], 1400, ROUTER4.into()).is_none());
        assert!(reply(&echo, 1400, "fe80::1".parse().unwrap()).is_none());
    }

    #[test]
    fn packet_too_big_for_ipv6() {
        let offending = ipv6_packet(6, &[0x55; 1400]);
        let router: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let reply = reply(&offending, 1300, router.into()).unwrap();
        assert_eq!(reply.len(), IPV6_ERROR_MAX);
        let ip = ipv6::Packet::new_checked(&reply[..]).unwrap();
        assert_eq!(ip.next_header(), 58);
        assert_eq!(ip.src_addr(), router);
        assert_eq!(ip.dst_addr(), "2001:db8:1::5".parse::<Ipv6Addr>().unwrap());
        let icmp = ip.payload();
        assert_eq!(&icmp[..2], &[2, 0]);
        assert_eq!(
            u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
            1300
        );
        let sum =
            checksum::pseudo_header(router.into(), ip.dst_addr().into(), 58, icmp.len() as u32);
        assert_eq!(checksum::finish(checksum::accumulate(sum, icmp)), 0);
        assert_eq!(&icmp[8..], &offending[..IPV6_ERROR_MAX - 48]);
    }

    #[test]
    fn no_ipv6_reply_about_errors_or_later_fragments() {
        let router: IpAddr = "2001:db8:1::1".parse().unwrap();
        let echo = ipv6_packet(58, &[128, 0, 0, 0, 0, 1, 0, 1]);
        assert!(reply(&echo, 1300, router).is_some());
        let error = ipv6_packet(58, &[1, 4, 0, 0, 0, 0, 0, 0]);
        assert!(reply(&error, 1300, router).is_none());
        // Fragment header: next header, reserved, offset 1 (in 8-byte units).
        let later = ipv6_packet(44, &[6, 0, 0, 8, 0, 0, 0, 1]);
        assert!(reply(&later, 1300, router).is_none());
        let first = ipv6_packet(44, &[6, 0, 0, 1, 0, 0, 0, 1]);
        assert!(reply(&first, 1300, router).is_some());
    }
}
