//! Any bytes as a packet arriving from the network: every header view
//! over it, the ESP trailer check, and the ICMP error that would answer
//! it. Nothing may panic, and any ICMP error built must be well formed.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipsec_engine::too_big;
use ipsec_engine::wire::{ah, checksum, esp, ipv4, ipv6, udp};
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
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = ipv4::Packet::new_checked(data) {
        let _ = (packet.verify_checksum(), packet.is_fragment());
        upper_layer(packet.protocol(), packet.payload());
        if let Some(reply) = too_big::reply(data, 1400, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))) {
            let reply = ipv4::Packet::new_checked(&reply[..]).expect("a well-formed reply");
            assert!(reply.verify_checksum());
            assert!(reply.total_len() <= 576);
            assert_eq!(checksum::of(reply.payload()), 0);
        }
    }
    if let Ok(packet) = ipv6::Packet::new_checked(data) {
        upper_layer(packet.next_header(), packet.payload());
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
