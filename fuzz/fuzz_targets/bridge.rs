//! Any bytes as a stream of frames arriving on a bridge's ports: each
//! record is a port byte, a time step, a length byte and the frame. The
//! frames go through the learning switch, and the IP packets in them
//! through an engine that holds an ESP pair between two hosts and the
//! flows that require it, as bridge mode runs them. Nothing may panic; a
//! frame never goes back out of the port it came in on, nor a non-IP
//! frame to a port that blocks such; the address table stays within its
//! bound; what crosses is a whole IP packet with a good header checksum
//! (IPv4), and a packet that crosses in the clear is the one that came.
//! The IP addresses the frames carry are learnt as the bridge learns
//! them, and that table stays within its bound too.

#![no_main]

use ipsec_engine::bridge::neighbours::{self, Neighbours};
use ipsec_engine::bridge::{Carries, MacTable, PortConfig, PortId, Switch};
use ipsec_engine::engine::{Crossing, Engine, Events, Policy};
use ipsec_engine::packet::PacketBuf;
use ipsec_engine::sad::{SaId, SecurityAssociation};
use ipsec_engine::spd::{Direction, Selector, prefix_mask};
use ipsec_engine::wire::{etherip, ethernet, ipv4};
use ipsec_engine::xform::ip::Layout;
use libfuzzer_sys::fuzz_target;
use pfkey::{AuthAlg, EncAlg, FlowType, Key, SaType};
use std::net::IpAddr;

const CAPACITY: usize = 8;
const HOST: &str = "10.9.0.1";
const PEER: &str = "10.9.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The ESP SA from `src` to `dst`, AES-128-CBC with HMAC-SHA2-256.
fn sa(src: &str, dst: &str, spi: u32) -> SecurityAssociation {
    let id = SaId {
        dst: ip(dst),
        spi,
        satype: SaType::ESP,
    };
    let mut sa = SecurityAssociation::new(id, ip(src), 0);
    sa.encrypt = EncAlg::X_AES.0;
    sa.enc_key = Some(Key::new(&[spi as u8; 16]));
    sa.auth = AuthAlg::X_SHA2_256;
    sa.auth_key = Some(Key::new(&[!(spi as u8); 32]));
    sa.replay = 32;
    sa
}

fn flow(direction: Direction, src: &str, dst: &str) -> Selector {
    let (src, dst) = (ip(src), ip(dst));
    Selector {
        direction,
        src,
        src_mask: prefix_mask(src, 32),
        dst,
        dst_mask: prefix_mask(dst, 32),
        proto: 0,
        sport: 0,
        sport_mask: 0,
        dport: 0,
        dport_mask: 0,
    }
}

/// The bridge's engine: HOST is behind it, PEER across.
fn engine() -> Engine {
    let mut e = Engine::new([9; 32]);
    e.sad.add(sa(HOST, PEER, 0x1000), 0).unwrap();
    e.sad.add(sa(PEER, HOST, 0x1001), 0).unwrap();
    for (direction, src, dst) in [(Direction::Out, HOST, PEER), (Direction::In, PEER, HOST)] {
        let policy = Policy {
            flow_type: FlowType::REQUIRE,
            satype: SaType::ESP,
            local: None,
            peer: Some(ip(PEER)),
            src_id: None,
            dst_id: None,
            flags: 0,
            usage: Default::default(),
            bound: None,
        };
        e.spd.insert(flow(direction, src, dst), policy);
    }
    e
}

fuzz_target!(|data: &[u8]| {
    let blocking = PortConfig { block_non_ip: true };
    let ports = vec![PortConfig::default(), blocking, PortConfig::default()];
    let mut switch = Switch::new(ports, MacTable::with_capacity(CAPACITY));
    let mut stations = Neighbours::with_capacity(CAPACITY);
    let mut engine = engine();
    let mut events = Events::default();
    let mut now = 0u64;
    let mut rest = data;
    while let [port, step, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        now += u64::from(*step) * 7;
        let port = PortId(port % 3);
        if let Ok(f) = ethernet::Frame::new_checked(frame) {
            let _ = ethernet::Repr::parse(&f);
            let _ = etherip::frame(f.payload());
        }
        let Ok(out) = switch.switch(frame, port, now) else {
            continue;
        };
        assert!(!out.to.contains(port), "back out of its own port");
        if !out.carries.is_ip_or_address_resolution() {
            assert!(!out.to.contains(PortId(1)), "non-IP into a blocking port");
            assert_ne!(port, PortId(1), "non-IP out of a blocking port");
        }
        for _ in out.to.iter() {
            switch.sent(frame, now);
        }
        assert!(switch.table.len() <= CAPACITY);
        if matches!(out.carries, Carries::Ipv4 | Carries::Ipv6) {
            let came = &frame[ethernet::HEADER_LEN..];
            let f = ethernet::Frame::new_unchecked(frame);
            stations.learn_from(came, f.src_addr(), f.dst_addr(), now / 1000);
            assert!(stations.len() <= CAPACITY);
            if let Some((from, _)) = neighbours::addresses(came) {
                let _ = stations.lookup(from, now / 1000);
            }
            let mut buf = PacketBuf::from_slice(came);
            match engine.cross(&mut buf, now / 1000, &mut events) {
                Crossing::Dropped(_) => {}
                crossing => {
                    let packet = buf.as_slice();
                    let layout = Layout::of(packet).expect("what crosses is IP");
                    assert_eq!(layout.len, packet.len());
                    if !layout.v6 {
                        assert!(ipv4::Packet::new_unchecked(packet).verify_checksum());
                    }
                    if crossing == Crossing::Clear {
                        assert_eq!(packet, &came[..packet.len()], "changed in the clear");
                    }
                }
            }
            events.messages.clear();
            events.taps.clear();
        }
    }
});
