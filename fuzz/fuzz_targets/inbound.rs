//! Any bytes as a packet from a peer, into an engine with SAs of every
//! kind installed (ESP with AES-CBC and HMAC, ESP with AES-GCM over IPv4
//! and IPv6, AH over IPv4 and IPv6, IPComp bundled with ESP, ESP in UDP,
//! IPv6 tunnelled in IPv4; most with replay windows) and the flows that
//! require them. Nothing may panic; whatever is delivered must be a whole
//! IP packet with a good header checksum; a packet is delivered or has a
//! drop reason, never both, and the counters say the same.
//!
//! Two modes, by the first byte:
//! - raw: the rest is the packet, from the ESP/AH sockets (even first
//!   byte) or from UDP port 4500 (odd);
//! - structured ([`MAGIC`]): a twin engine on the peer's side seals a
//!   packet built from the input through one of the SAs, the input's
//!   mutations are applied to it, and the engine under test opens it.
//!   Then more is known: an unchanged packet is delivered as sealed (and
//!   refused as a replay the second time); a changed one is delivered
//!   only if the change was to the outer header (for AH, to its mutable
//!   fields), and never disturbs the replay window, as packets sealed
//!   earlier and delivered afterwards show.
//!
//! Seeds: with `INBOUND_SEEDS=dir` in the environment, the first run
//! writes sealed packets of every SA, raw and structured, into `dir`:
//! `INBOUND_SEEDS=fuzz/corpus/inbound cargo +nightly fuzz run inbound -- -runs=1`

#![no_main]

use ipsec_engine::engine::{DropReason, Engine, Events, Verdict};
use ipsec_engine::packet::PacketBuf;
use ipsec_engine::sad::{SaId, SecurityAssociation};
use ipsec_engine::spd::{Direction, Selector, prefix_mask};
use ipsec_engine::wire::ipv4;
use ipsec_engine::xform::ip::{Layout, fix_lengths, proto, reframe};
use libfuzzer_sys::fuzz_target;
use pfkey::{AuthAlg, CompAlg, EncAlg, FlowType, Key, SaType, sa_flags};
use std::net::IpAddr;

/// The first byte of a structured input.
const MAGIC: u8 = 0xA5;

/// The engine's clock, in seconds.
const NOW: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    /// AES-128-CBC, HMAC-SHA2-256-128.
    Cbc,
    /// AES-GCM with a 16-byte ICV: the key's length (with its salt)
    /// and the auth algorithm that goes with it.
    Gcm(usize, AuthAlg),
    /// HMAC-SHA2-256-128.
    Ah,
}

/// One peer of the engine under test and what it sends through.
#[derive(Debug)]
struct Peer {
    gw: &'static str,
    /// The engine's own address toward this peer.
    me: &'static str,
    spi: u32,
    suite: Suite,
    /// Tunnel mode: the peer's network, ours, and their prefix length.
    tunnel: Option<(&'static str, &'static str, u8)>,
    replay: u8,
    natt: bool,
    /// IPComp applied before ESP, with this CPI.
    ipcomp: Option<u32>,
}

const PEERS: &[Peer] = &[
    Peer {
        gw: "192.0.2.1",
        me: "192.0.2.2",
        spi: 0x1001,
        suite: Suite::Cbc,
        tunnel: None,
        replay: 32,
        natt: false,
        ipcomp: None,
    },
    Peer {
        gw: "192.0.2.3",
        me: "192.0.2.2",
        spi: 0x1003,
        suite: Suite::Gcm(20, AuthAlg::NONE),
        tunnel: Some(("10.3.0.0", "10.2.0.0", 16)),
        replay: 64,
        natt: false,
        ipcomp: None,
    },
    Peer {
        gw: "192.0.2.4",
        me: "192.0.2.2",
        spi: 0x1004,
        suite: Suite::Ah,
        tunnel: None,
        replay: 16,
        natt: false,
        ipcomp: None,
    },
    Peer {
        gw: "192.0.2.6",
        me: "192.0.2.2",
        spi: 0x1006,
        suite: Suite::Cbc,
        tunnel: None,
        replay: 64,
        natt: true,
        ipcomp: None,
    },
    Peer {
        gw: "2001:db8::7",
        me: "2001:db8::2",
        spi: 0x1007,
        suite: Suite::Gcm(36, AuthAlg::X_AES256GMAC),
        tunnel: Some(("fd07::", "fd02::", 64)),
        replay: 64,
        natt: false,
        ipcomp: None,
    },
    Peer {
        gw: "192.0.2.8",
        me: "192.0.2.2",
        spi: 0x1008,
        suite: Suite::Cbc,
        tunnel: None,
        replay: 64,
        natt: false,
        ipcomp: Some(0x2008),
    },
    Peer {
        gw: "2001:db8::9",
        me: "2001:db8::2",
        spi: 0x1009,
        suite: Suite::Ah,
        tunnel: None,
        replay: 0,
        natt: false,
        ipcomp: None,
    },
    Peer {
        gw: "192.0.2.10",
        me: "192.0.2.2",
        spi: 0x100a,
        suite: Suite::Cbc,
        tunnel: Some(("fd0a::", "fd02::", 64)),
        replay: 64,
        natt: false,
        ipcomp: None,
    },
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(len: usize, fill: u8) -> Option<Key> {
    (len > 0).then(|| Key::new(&(0..len).map(|i| fill ^ (i as u8)).collect::<Vec<_>>()))
}

impl Peer {
    fn satype(&self) -> SaType {
        match self.suite {
            Suite::Ah => SaType::AH,
            _ => SaType::ESP,
        }
    }

    /// The SA from the peer to us, as both ends hold it.
    fn sa(&self) -> SecurityAssociation {
        let id = SaId {
            dst: ip(self.me),
            spi: self.spi,
            satype: self.satype(),
        };
        let mut sa = SecurityAssociation::new(id, ip(self.gw), 0);
        let fill = self.spi as u8;
        match self.suite {
            Suite::Cbc => {
                sa.encrypt = EncAlg::X_AES.0;
                sa.enc_key = key(16, fill);
                sa.auth = AuthAlg::X_SHA2_256;
                sa.auth_key = key(32, !fill);
            }
            Suite::Gcm(len, auth) => {
                sa.encrypt = EncAlg::X_AESGCM16.0;
                sa.enc_key = key(len, fill);
                sa.auth = auth;
            }
            Suite::Ah => {
                sa.auth = AuthAlg::X_SHA2_256;
                sa.auth_key = key(32, !fill);
            }
        }
        sa.replay = self.replay;
        if self.tunnel.is_some() {
            sa.flags |= sa_flags::TUNNEL;
        }
        if self.natt {
            sa.flags |= sa_flags::UDPENCAP;
            sa.udpencap_port = Some(4500);
        }
        sa
    }

    fn ipcomp_sa(&self) -> Option<SecurityAssociation> {
        let cpi = self.ipcomp?;
        let id = SaId {
            dst: ip(self.me),
            spi: cpi,
            satype: SaType::X_IPCOMP,
        };
        let mut sa = SecurityAssociation::new(id, ip(self.gw), 0);
        sa.encrypt = CompAlg::DEFLATE.0;
        Some(sa)
    }

    /// What the flows select, from the peer's side to ours:
    /// (src, dst, prefix length).
    fn selected(&self) -> (IpAddr, IpAddr, u8) {
        match self.tunnel {
            Some((theirs, ours, len)) => (ip(theirs), ip(ours), len),
            None => {
                let full = if ip(self.gw).is_ipv6() { 128 } else { 32 };
                (ip(self.gw), ip(self.me), full)
            }
        }
    }

    /// The hosts a packet goes between: the gateways, or a host on each
    /// network.
    fn hosts(&self) -> (IpAddr, IpAddr) {
        let (src, dst, _) = self.selected();
        if self.tunnel.is_none() {
            return (src, dst);
        }
        let host = |a: IpAddr| match a {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) + 7).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + 7).into()),
        };
        (host(src), host(dst))
    }

    fn selector(&self, direction: Direction) -> Selector {
        let (src, dst, len) = self.selected();
        Selector {
            direction,
            src,
            src_mask: prefix_mask(src, len),
            dst,
            dst_mask: prefix_mask(dst, len),
            proto: 0,
            sport: 0,
            sport_mask: 0,
            dport: 0,
            dport_mask: 0,
        }
    }

    fn policy(&self, satype: SaType, peer: &str) -> ipsec_engine::engine::Policy {
        ipsec_engine::engine::Policy {
            flow_type: FlowType::REQUIRE,
            satype,
            local: None,
            peer: Some(ip(peer)),
            src_id: None,
            dst_id: None,
            flags: 0,
            usage: Default::default(),
            bound: None,
        }
    }

    /// The peer's side: its SA (and bundle) to us and the flow that uses it.
    fn twin(&self, seed: u8) -> Engine {
        let mut e = Engine::new([seed; 32]);
        e.path_mtu = 65535;
        let sa = self.sa();
        let esp_id = sa.id;
        e.sad.add(sa, 0).unwrap();
        let mut first = self.satype();
        if let Some(ipcomp) = self.ipcomp_sa() {
            let id = ipcomp.id;
            e.sad.add(ipcomp, 0).unwrap();
            e.sad.group(id, esp_id).unwrap();
            first = SaType::X_IPCOMP;
        }
        e.spd
            .insert(self.selector(Direction::Out), self.policy(first, self.me));
        e
    }
}

/// The engine under test, holding every peer's SA and inbound flow.
fn receiver() -> Engine {
    let mut e = Engine::new([7; 32]);
    e.capture = true;
    for peer in PEERS {
        e.sad.add(peer.sa(), 0).unwrap();
        if let Some(ipcomp) = peer.ipcomp_sa() {
            e.sad.add(ipcomp, 0).unwrap();
        }
        e.spd.insert(
            peer.selector(Direction::In),
            peer.policy(peer.satype(), peer.gw),
        );
    }
    e
}

/// What one inbound packet did.
#[derive(Debug)]
struct Fate {
    delivered: Option<Vec<u8>>,
    dropped: Option<DropReason>,
    /// Some SA (other than IPComp) opened it.
    opened: bool,
}

/// Hands a packet to the engine and checks what must always hold.
fn inbound(engine: &mut Engine, packet: &[u8], udp_port: Option<u16>) -> Fate {
    let before = engine.counters.clone();
    let mut buf = PacketBuf::from_slice(packet);
    let mut events = Events::default();
    let verdict = engine.inbound(&mut buf, udp_port, NOW, &mut events);
    let (delivered, dropped) = match verdict {
        Verdict::Enc => (Some(buf.as_slice().to_vec()), None),
        Verdict::Dropped { reason, reply } => {
            assert!(!reply, "an arrival answered");
            (None, Some(reason))
        }
        Verdict::Wire => panic!("inbound sent something to the wire"),
    };
    let c = &engine.counters;
    assert_eq!(
        c.protected_in - before.protected_in,
        u64::from(delivered.is_some())
    );
    for reason in DropReason::ALL {
        let counted = c.dropped(reason, true) - before.dropped(reason, true);
        assert_eq!(counted, u64::from(dropped == Some(reason)), "{reason}");
        assert_eq!(c.dropped(reason, false), before.dropped(reason, false));
    }
    if let Some(p) = &delivered {
        let layout = Layout::of(p).expect("a delivered packet parses");
        assert_eq!(layout.len, p.len(), "a delivered packet is whole");
        // Cleartext that no flow covers passes as it came (the shell never
        // hands in such a packet, but the engine takes it); a packet that
        // was opened, or came with a good header, leaves with one.
        let came_good = ipv4::Packet::new_checked(packet).is_ok_and(|h| h.verify_checksum());
        if !layout.v6 && (came_good || !events.taps.is_empty()) {
            let header = ipv4::Packet::new_checked(&p[..]).expect("an IPv4 header");
            assert!(header.verify_checksum(), "a delivered header's checksum");
        }
    }
    for tap in &events.taps {
        assert!(tap.inbound);
        Layout::of(&tap.packet).expect("a captured packet parses");
    }
    Fate {
        delivered,
        dropped,
        opened: !events.taps.is_empty(),
    }
}

/// Reads input bytes; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
}

/// A plaintext packet between the peer's hosts: UDP, TCP, ICMP or some
/// other protocol (never one the inbound path would take for another
/// layer to open).
fn plaintext(peer: &Peer, kind: u8, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = peer.hosts();
    let v6 = src.is_ipv6();
    let protocol = match kind % 4 {
        0 => proto::UDP,
        1 => proto::TCP,
        2 if v6 => proto::ICMPV6,
        2 => proto::ICMP,
        _ => match kind {
            proto::HOP_BY_HOP
            | proto::IPV4
            | proto::IPV6
            | proto::ESP
            | proto::AH
            | proto::IPCOMP
            | 43 // routing
            | 44 // fragment
            | 60 => 59, // destination options; 59 is "no next header"
            other => other,
        },
    };
    let mut packet = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, protocol, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, protocol, 64];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        _ => unreachable!(),
    };
    let header = packet.len();
    match protocol {
        proto::UDP => {
            packet.extend_from_slice(&sport.to_be_bytes());
            packet.extend_from_slice(&dport.to_be_bytes());
            let len = (8 + payload.len()) as u16;
            packet.extend_from_slice(&len.to_be_bytes());
            packet.extend_from_slice(&[0, 0]);
        }
        proto::TCP => {
            packet.extend_from_slice(&sport.to_be_bytes());
            packet.extend_from_slice(&dport.to_be_bytes());
            packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        }
        proto::ICMP | proto::ICMPV6 => {
            let echo = if v6 { 128 } else { 8 };
            packet.extend_from_slice(&[echo, 0, 0, 0]);
            packet.extend_from_slice(&sport.to_be_bytes());
            packet.extend_from_slice(&dport.to_be_bytes());
        }
        _ => {}
    }
    packet.extend_from_slice(payload);
    // A little over the largest sealed packet must still fit in IP.
    packet.truncate(header + 60_000);
    fix_lengths(&mut packet, v6).unwrap();
    packet
}

/// The twin seals a packet; in UDP (NAT-T) it comes back as the shell
/// hands it in: the IP header over the ESP, and the UDP source port.
fn seal(twin: &mut Engine, plain: &[u8]) -> (Vec<u8>, Option<u16>) {
    let mut buf = PacketBuf::from_slice(plain);
    let verdict = twin.outbound(&mut buf, NOW, &mut Events::default());
    assert_eq!(verdict, Verdict::Wire, "the twin cannot seal");
    let wire = buf.as_slice().to_vec();
    let layout = Layout::of(&wire).unwrap();
    if layout.protocol != proto::UDP {
        return (wire, None);
    }
    let datagram = layout.payload(&wire);
    let port = u16::from_be_bytes([datagram[0], datagram[1]]);
    let mut esp = wire[..layout.header_len].to_vec();
    esp.extend_from_slice(&datagram[8..]);
    reframe(&mut esp, &layout, proto::ESP).unwrap();
    (esp, Some(port))
}

/// What a NAT-T peer's transport-mode packet looks like once opened: its
/// TCP checksum recomputed or its UDP checksum cleared. Compared without.
fn comparable(peer: &Peer, packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    if peer.natt
        && peer.tunnel.is_none()
        && let Ok(l) = Layout::of(&p)
    {
        let at = match l.protocol {
            proto::TCP => l.header_len + 16,
            proto::UDP => l.header_len + 6,
            _ => return p,
        };
        if at + 2 <= l.len {
            p[at..at + 2].fill(0);
        }
    }
    p
}

/// Bytes of an IPv4 or IPv6 header that AH leaves out of its ICV.
fn ah_mutable(v6: bool, at: usize) -> bool {
    if v6 {
        matches!(at, 0..=3 | 7)
    } else {
        matches!(at, 1 | 6..=8 | 10 | 11)
    }
}

/// A changed packet that was delivered: only its outer header may differ
/// from what was sealed (for AH, only in fields its ICV leaves out), and
/// the packet the header describes must hold all that was sealed, no
/// more.
fn check_forgery(peer: &Peer, sealed: &[u8], changed: &[u8]) {
    let outer = Layout::of(sealed).unwrap();
    let layout = Layout::of(changed).expect("it was delivered");
    assert_eq!(
        layout.header_len, outer.header_len,
        "a new header length got through"
    );
    let payload = &changed[layout.header_len..layout.len];
    let genuine = &sealed[outer.header_len..];
    assert_eq!(payload, genuine, "a changed payload got through");
    if peer.suite == Suite::Ah {
        for at in 0..outer.header_len {
            assert!(
                changed[at] == sealed[at] || ah_mutable(outer.v6, at),
                "AH: a change at {at} in the header got through"
            );
        }
    }
}

fn structured(mut input: Bytes) {
    let index = usize::from(input.u8()) % PEERS.len();
    let peer = &PEERS[index];
    let flags = input.u8();
    let kind = input.u8();
    let (sport, dport) = (input.u16(), input.u16());
    let ops: Vec<[u8; 4]> = (0..input.u8() % 5)
        .map(|_| [input.u8(), input.u8(), input.u8(), input.u8()])
        .collect();
    let payload = input.0;

    let mut rx = receiver();
    let mut twin = peer.twin(index as u8 + 1);
    let plain = plaintext(peer, kind, sport, dport, payload);
    // Packets sealed before the one under test, delivered after it.
    let early: Vec<_> = (0..(flags >> 1) % 4)
        .map(|_| seal(&mut twin, &plain))
        .collect();
    let (sealed, port) = seal(&mut twin, &plain);
    let expected = comparable(peer, &plain);

    let opens = |fate: &Fate| fate.delivered.as_ref().map(|p| comparable(peer, p));
    let replayed = flags & 1 != 0;
    if replayed {
        let fate = inbound(&mut rx, &sealed, port);
        assert_eq!(opens(&fate), Some(expected.clone()), "{fate:?}");
    }

    let mut changed = sealed.clone();
    let mut changed_port = port;
    for [op, hi, lo, value] in ops {
        let at = usize::from(u16::from_be_bytes([hi, lo]));
        match op % 5 {
            0 if !changed.is_empty() => {
                let n = changed.len();
                changed[at % n] ^= value | 1;
            }
            1 if !changed.is_empty() => {
                let n = changed.len();
                changed[at % n] = value;
            }
            2 => changed.truncate(at % (changed.len() + 1)),
            3 => changed.extend(std::iter::repeat_n(value, usize::from(value % 32) + 1)),
            4 => {
                changed_port = if changed_port.is_some() {
                    None
                } else {
                    Some(4500)
                }
            }
            _ => {}
        }
    }
    let fate = inbound(&mut rx, &changed, changed_port);
    if changed == sealed && changed_port == port {
        if replayed && peer.replay != 0 {
            assert_eq!(
                fate.dropped,
                Some(DropReason::Replay),
                "a replay got through"
            );
        } else {
            assert_eq!(opens(&fate), Some(expected.clone()), "{fate:?}");
        }
    } else if fate.delivered.is_some() && fate.opened {
        assert_eq!(changed_port, port, "the wrong encapsulation got through");
        check_forgery(peer, &sealed, &changed);
    }

    // Whatever came before moved the window no further than genuine
    // packets do: the earlier ones still open, once.
    for (packet, port) in &early {
        let fate = inbound(&mut rx, packet, *port);
        assert_eq!(
            opens(&fate),
            Some(expected.clone()),
            "a late packet: {fate:?}"
        );
        if peer.replay != 0 {
            let again = inbound(&mut rx, packet, *port);
            assert_eq!(again.dropped, Some(DropReason::Replay));
        }
    }
}

/// Writes seeds into `dir`: each SA's sealed packets, raw (as the shell
/// hands them in) and as structured inputs.
fn write_seeds(dir: &str) {
    let _ = std::fs::create_dir_all(dir);
    for (index, peer) in PEERS.iter().enumerate() {
        let mut twin = peer.twin(index as u8 + 1);
        for (kind, payload) in [(0u8, &b"seed"[..]), (1, &[0x61; 200][..]), (2, &[][..])] {
            let plain = plaintext(peer, kind, 40000, 5001, payload);
            let (sealed, port) = seal(&mut twin, &plain);
            let mut raw = vec![u8::from(port.is_some())];
            raw.extend_from_slice(&sealed);
            let _ = std::fs::write(format!("{dir}/raw-{index}-{kind}"), raw);
            let mut structured = vec![MAGIC, index as u8, 0, kind, 0x9c, 0x40, 0x13, 0x89, 0];
            structured.extend_from_slice(payload);
            let _ = std::fs::write(format!("{dir}/structured-{index}-{kind}"), structured);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    static SEEDS: std::sync::Once = std::sync::Once::new();
    SEEDS.call_once(|| {
        if let Ok(dir) = std::env::var("INBOUND_SEEDS") {
            write_seeds(&dir);
        }
    });
    let mut input = Bytes(data);
    let first = input.u8();
    if first == MAGIC {
        structured(input);
        return;
    }
    let udp_port = (first & 1 == 1).then_some(4500);
    let mut rx = receiver();
    inbound(&mut rx, input.0, udp_port);
});
