//! Any bytes as a packet arriving from the network: every header view
//! over it, the ESP trailer check, and the ICMP error that would answer
//! it. Nothing may panic, and any ICMP error built must be well formed.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipsec_engine::too_big;
use ipsec_engine::wire::{ah, checksum, esp, icmp, ipv4, ipv6, tcp, udp};
use libfuzzer_sys::fuzz_target;

fn upper_layer(protocol: u8, payload: &[u8]) {
    match protocol {
        50 => {
            if let Ok(packet) = esp::Packet::new_checked(payload) {
                let _ = (packet.spi(), packet.sequence_number());
                let _ = esp::read_trailer(packet.payload());
            }
        }
        51 => {
            if let Ok(packet) = ah::Packet::new_checked(payload) {
                let _ = (packet.spi(), packet.sequence_number(), packet.icv());
                upper_layer(packet.next_header(), packet.payload());
            }
        }
        17 => {
            if let Ok(packet) = udp::Packet::new_checked(payload) {
                let _ = (packet.src_port(), packet.dst_port(), packet.checksum());
                // NAT-T: ESP after the UDP header.
                upper_layer(50, packet.payload());
            }
        }
        6 => {
            if let Ok(packet) = tcp::Packet::new_checked(payload) {
                let _ = (packet.ports(), packet.seq_number(), packet.flags());
                assert!(packet.payload().len() + packet.header_len() == payload.len());
            }
        }
        1 | 58 => {
            if let Ok(packet) = icmp::Packet::new_checked(payload) {
                let _ = (packet.msg_type(), packet.code());
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = ipv4::Packet::new_checked(data) {
        let _ = (packet.verify_checksum(), packet.is_fragment());
        upper_layer(packet.protocol(), packet.payload());
        // What a header says, written again without its options, reads
        // back the same.
        if let Ok(repr) = ipv4::Repr::parse(&packet) {
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut ipv4::Packet::new_unchecked(&mut bytes[..]))
                .expect("a parsed header fits");
            assert_eq!(
                ipv4::Repr::parse(&ipv4::Packet::new_unchecked(&bytes[..])),
                Ok(repr)
            );
        }
        if let Some(reply) = too_big::reply(data, 1400, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))) {
            let reply = ipv4::Packet::new_checked(&reply[..]).expect("a well-formed reply");
            assert!(reply.verify_checksum());
            assert!(reply.total_len() <= 576);
            assert_eq!(checksum::of(reply.payload()), 0);
        }
    }
    if let Ok(packet) = ipv6::Packet::new_checked(data) {
        upper_layer(packet.next_header(), packet.payload());
        if let Ok(repr) = ipv6::Repr::parse(&packet) {
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut ipv6::Packet::new_unchecked(&mut bytes[..]))
                .expect("a parsed header fits");
            assert_eq!(
                ipv6::Repr::parse(&ipv6::Packet::new_unchecked(&bytes[..])),
                Ok(repr)
            );
        }
        let from = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        if let Some(reply) = too_big::reply(data, 1280, IpAddr::V6(from)) {
            let reply = ipv6::Packet::new_checked(&reply[..]).expect("a well-formed reply");
            assert!(reply.payload_len() <= 1280 - 40);
            let sum = checksum::pseudo_header(
                IpAddr::V6(from),
                IpAddr::V6(reply.dst_addr()),
                58,
                u32::from(reply.payload_len()),
            );
            assert_eq!(
                checksum::finish(checksum::accumulate(sum, reply.payload())),
                0
            );
        }
    }
});
