//! Two engines in memory, each the other's peer: what one seals the other
//! opens, for every transform, mode and address family; and what must not
//! get through does not.

use super::*;
use crate::sad::SecurityAssociation;
use crate::spd::{Selector, prefix_mask};
use crate::wire::udp;
use pfkey::{AuthAlg, CompAlg, EncAlg, Key, Lifetime};
use proptest::prelude::*;

/// What one packet produced, collected the way the tests look at it: the
/// packet where the verdict sends it, and the events.
#[derive(Debug, Default)]
struct Output {
    wire: Vec<Vec<u8>>,
    enc: Vec<Vec<u8>>,
    taps: Vec<Tap>,
    messages: Vec<Delivery>,
    dropped: Option<DropReason>,
}

impl Output {
    fn clear(&mut self) {
        *self = Output::default();
    }

    fn take(&mut self, verdict: Verdict, buf: &PacketBuf, events: Events) {
        let packet = buf.as_slice().to_vec();
        match verdict {
            Verdict::Wire => self.wire.push(packet),
            Verdict::Enc => self.enc.push(packet),
            Verdict::Dropped { reason, reply } => {
                self.dropped = Some(reason);
                if reply {
                    self.enc.push(packet);
                }
            }
        }
        self.taps.extend(events.taps);
        self.messages.extend(events.messages);
    }
}

/// The engine's packet path on a copy of a packet.
trait Run {
    fn run_outbound(&mut self, packet: &[u8], now: u64, out: &mut Output);
    fn run_inbound(&mut self, packet: &[u8], udp_port: Option<u16>, now: u64, out: &mut Output);
}

impl Engine {
    /// A copy of `packet` protected by an SA and its bundle, whatever the
    /// flows say.
    fn protect_copy(&mut self, packet: &[u8], sa: SaId, now: u64) -> Fate<Vec<u8>> {
        let mut buf = PacketBuf::from_slice(packet);
        self.protect(&mut buf, sa, now, &mut Events::default())?;
        Ok(buf.as_slice().to_vec())
    }
}

impl Run for Engine {
    fn run_outbound(&mut self, packet: &[u8], now: u64, out: &mut Output) {
        let mut buf = PacketBuf::from_slice(packet);
        let mut events = Events::default();
        let verdict = self.outbound(&mut buf, now, &mut events);
        out.take(verdict, &buf, events);
    }

    fn run_inbound(&mut self, packet: &[u8], udp_port: Option<u16>, now: u64, out: &mut Output) {
        let mut buf = PacketBuf::from_slice(packet);
        let mut events = Events::default();
        let verdict = self.inbound(&mut buf, udp_port, now, &mut events);
        out.take(verdict, &buf, events);
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Addresses of the two gateways and the networks behind them.
struct Site {
    gw: IpAddr,
    net: IpAddr,
    len: u8,
}

fn sites(v6: bool) -> (Site, Site) {
    if v6 {
        (
            Site {
                gw: ip("2001:db8::1"),
                net: ip("fd01::"),
                len: 64,
            },
            Site {
                gw: ip("2001:db8::2"),
                net: ip("fd02::"),
                len: 64,
            },
        )
    } else {
        (
            Site {
                gw: ip("192.0.2.1"),
                net: ip("10.1.0.0"),
                len: 16,
            },
            Site {
                gw: ip("192.0.2.2"),
                net: ip("10.2.0.0"),
                len: 16,
            },
        )
    }
}

/// A host behind a site (tunnel mode) or the gateway itself (transport).
fn host(site: &Site, tunnel: bool) -> IpAddr {
    if !tunnel {
        return site.gw;
    }
    match site.net {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) + 7).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) + 7).into()),
    }
}

/// What an SA pair uses.
#[derive(Debug, Clone, Copy)]
struct Suite {
    satype: SaType,
    enc: EncAlg,
    enc_len: usize,
    auth: AuthAlg,
    auth_len: usize,
}

const fn esp(enc: EncAlg, enc_len: usize, auth: AuthAlg, auth_len: usize) -> Suite {
    Suite {
        satype: SaType::ESP,
        enc,
        enc_len,
        auth,
        auth_len,
    }
}

const fn ah(auth: AuthAlg, auth_len: usize) -> Suite {
    Suite {
        satype: SaType::AH,
        enc: EncAlg::NONE,
        enc_len: 0,
        auth,
        auth_len,
    }
}

/// Every algorithm a peer may name, in a combination it can use.
const SUITES: &[Suite] = &[
    esp(EncAlg::X_AES, 16, AuthAlg::X_SHA2_256, 32),
    esp(EncAlg::X_AES, 24, AuthAlg::SHA1HMAC, 20),
    esp(EncAlg::X_AES, 32, AuthAlg::X_SHA2_512, 64),
    esp(EncAlg::TRIPLE_DES_CBC, 24, AuthAlg::MD5HMAC, 16),
    esp(EncAlg::X_AESCTR, 20, AuthAlg::X_SHA2_384, 48),
    esp(EncAlg::X_AESCTR, 36, AuthAlg::X_SHA2_256, 32),
    esp(EncAlg::NULL, 0, AuthAlg::X_SHA2_256, 32),
    esp(EncAlg::X_AESGCM16, 20, AuthAlg::X_AES128GMAC, 0),
    esp(EncAlg::X_AESGCM16, 36, AuthAlg::X_AES256GMAC, 0),
    esp(EncAlg::X_AESGCM12, 28, AuthAlg::NONE, 0),
    esp(EncAlg::X_AESGCM8, 20, AuthAlg::NONE, 0),
    esp(EncAlg::X_AESGMAC, 20, AuthAlg::X_AES128GMAC, 0),
    esp(
        EncAlg::X_CHACHA20POLY1305,
        36,
        AuthAlg::X_CHACHA20POLY1305,
        0,
    ),
    ah(AuthAlg::MD5HMAC, 16),
    ah(AuthAlg::SHA1HMAC, 20),
    ah(AuthAlg::X_SHA2_256, 32),
    ah(AuthAlg::X_SHA2_384, 48),
    ah(AuthAlg::X_SHA2_512, 64),
];

fn key(len: usize, fill: u8) -> Option<Key> {
    (len > 0).then(|| Key::new(&(0..len).map(|i| fill ^ i as u8).collect::<Vec<_>>()))
}

fn make_sa(suite: Suite, src: IpAddr, dst: IpAddr, spi: u32, tunnel: bool) -> SecurityAssociation {
    let id = SaId {
        dst,
        spi,
        satype: suite.satype,
    };
    let mut sa = SecurityAssociation::new(id, src, 0);
    sa.encrypt = suite.enc.0;
    sa.enc_key = key(suite.enc_len, spi as u8);
    sa.auth = suite.auth;
    sa.auth_key = key(suite.auth_len, 0x5a ^ spi as u8);
    sa.replay = 64;
    if tunnel {
        sa.flags |= sa_flags::TUNNEL;
    }
    sa
}

fn selector(direction: Direction, src: &Site, dst: &Site, tunnel: bool) -> Selector {
    let (s, sl, d, dl) = if tunnel {
        (src.net, src.len, dst.net, dst.len)
    } else {
        let full = if src.gw.is_ipv6() { 128 } else { 32 };
        (src.gw, full, dst.gw, full)
    };
    Selector {
        direction,
        src: s,
        src_mask: prefix_mask(s, sl),
        dst: d,
        dst_mask: prefix_mask(d, dl),
        proto: 0,
        sport: 0,
        sport_mask: 0,
        dport: 0,
        dport_mask: 0,
    }
}

fn policy(flow_type: FlowType, satype: SaType, peer: IpAddr) -> Policy {
    Policy {
        flow_type,
        satype,
        local: None,
        peer: Some(peer),
        src_id: None,
        dst_id: None,
        flags: 0,
        usage: FlowUsage::default(),
        bound: None,
    }
}

/// Engine `a` at site `me` talking to `them`: flows both ways and both SAs.
fn gateway(me: &Site, them: &Site, suite: Suite, tunnel: bool, seed: u8) -> Engine {
    let mut e = Engine::new([seed; 32]);
    e.capture = true;
    // Room for the largest test packets in tunnel mode.
    e.path_mtu = 9000;
    for (dir, from, to) in [(Direction::Out, me, them), (Direction::In, them, me)] {
        let sel = selector(dir, from, to, tunnel);
        e.spd
            .insert(sel, policy(FlowType::REQUIRE, suite.satype, them.gw));
    }
    // SPIs by direction: 0x1000 + the last byte of the receiver.
    for (from, to) in [(me, them), (them, me)] {
        let spi = 0x1000 + u32::from(last_byte(to.gw));
        e.sad
            .add(make_sa(suite, from.gw, to.gw, spi, tunnel), 0)
            .unwrap();
    }
    e
}

fn last_byte(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    }
}

fn pair(suite: Suite, v6: bool, tunnel: bool) -> (Engine, Engine, IpAddr, IpAddr) {
    let (x, y) = sites(v6);
    let a = gateway(&x, &y, suite, tunnel, 1);
    let b = gateway(&y, &x, suite, tunnel, 2);
    (a, b, host(&x, tunnel), host(&y, tunnel))
}

/// A UDP packet with a payload, IPv4 or IPv6 by the addresses.
fn udp_packet(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let mut datagram = vec![0u8; 8];
    datagram[0..2].copy_from_slice(&40000u16.to_be_bytes());
    datagram[2..4].copy_from_slice(&5001u16.to_be_bytes());
    datagram[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    datagram.extend_from_slice(payload);
    let mut p = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto::UDP, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, proto::UDP, 64];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        _ => unreachable!(),
    };
    p.extend_from_slice(&datagram);
    ipx::fix_lengths(&mut p, src.is_ipv6()).unwrap();
    p
}

/// Sends `packet` out of `a`; returns what went on the wire.
fn seal(a: &mut Engine, packet: &[u8]) -> Vec<u8> {
    let mut out = Output::default();
    a.run_outbound(packet, 10, &mut out);
    assert_eq!(out.dropped, None);
    assert_eq!(out.wire.len(), 1);
    out.wire.pop().unwrap()
}

fn open(b: &mut Engine, wire: &[u8]) -> Result<Vec<u8>, DropReason> {
    let mut out = Output::default();
    b.run_inbound(wire, None, 10, &mut out);
    match out.dropped {
        Some(d) => {
            assert!(out.enc.is_empty());
            Err(d)
        }
        None => Ok(out.enc.pop().unwrap()),
    }
}

#[test]
fn every_suite_mode_and_family_round_trips() {
    for suite in SUITES {
        for v6 in [false, true] {
            for tunnel in [false, true] {
                let what = format!("{suite:?} v6={v6} tunnel={tunnel}");
                let (mut a, mut b, ha, hb) = pair(*suite, v6, tunnel);
                for size in [0, 1, 15, 16, 17, 100, 1400] {
                    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
                    let plain = udp_packet(ha, hb, &payload);
                    let wire = seal(&mut a, &plain);
                    let outer = Layout::of(&wire).unwrap();
                    assert_eq!(outer.protocol, suite.satype_protocol(), "{what}");
                    assert_eq!((outer.src, outer.dst), (a_gw(v6), b_gw(v6)), "{what}");
                    if suite.satype == SaType::ESP
                        && suite.enc != EncAlg::NULL
                        && size >= 16
                        && suite.enc != EncAlg::X_AESGMAC
                    {
                        assert!(!contains(&wire, &payload), "{what}: plaintext visible");
                    }
                    assert_eq!(
                        open(&mut b, &wire).as_ref(),
                        Ok(&plain),
                        "{what} size {size}"
                    );
                }
                // And back the other way.
                let reply = udp_packet(hb, ha, b"pong");
                let wire = seal(&mut b, &reply);
                assert_eq!(open(&mut a, &wire), Ok(reply), "{what}");
                assert_eq!(a.counters.protected_in, 1);
                assert_eq!(b.counters.protected_out, 1);
            }
        }
    }
}

impl Suite {
    fn satype_protocol(&self) -> u8 {
        if self.satype == SaType::AH {
            proto::AH
        } else {
            proto::ESP
        }
    }
}

fn a_gw(v6: bool) -> IpAddr {
    sites(v6).0.gw
}

fn b_gw(v6: bool) -> IpAddr {
    sites(v6).1.gw
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn replays_are_dropped_and_counted() {
    let (mut a, mut b, ha, hb) = pair(SUITES[0], false, true);
    let first = seal(&mut a, &udp_packet(ha, hb, b"one"));
    let second = seal(&mut a, &udp_packet(ha, hb, b"two"));
    assert!(open(&mut b, &second).is_ok());
    assert!(open(&mut b, &first).is_ok(), "late but inside the window");
    assert_eq!(open(&mut b, &first), Err(DropReason::Replay));
    assert_eq!(open(&mut b, &second), Err(DropReason::Replay));
    assert_eq!(b.counters.dropped(DropReason::Replay, true), 2);
}

#[test]
fn a_forged_packet_does_not_move_the_window() {
    let (mut a, mut b, ha, hb) = pair(SUITES[0], false, false);
    let good = seal(&mut a, &udp_packet(ha, hb, b"good"));
    let mut forged = good.clone();
    // The same SPI, a sequence number far ahead, a wrong ICV.
    forged[24..28].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert_eq!(open(&mut b, &forged), Err(DropReason::Authentication));
    assert!(open(&mut b, &good).is_ok(), "the window did not move");
}

#[test]
fn unknown_spis_truncations_and_wrong_encapsulation_are_dropped() {
    let (mut a, mut b, ha, hb) = pair(SUITES[0], false, false);
    let wire = seal(&mut a, &udp_packet(ha, hb, b"data"));
    let mut unknown = wire.clone();
    unknown[20..24].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    assert_eq!(open(&mut b, &unknown), Err(DropReason::NoSa));
    let mut short = wire[..30].to_vec();
    ipx::fix_lengths(&mut short, false).unwrap();
    assert_eq!(open(&mut b, &short), Err(DropReason::Malformed));
    // Header errors are counted by their cause.
    assert_eq!(open(&mut b, &wire[..10]), Err(DropReason::Truncated));
    let mut version = wire.clone();
    version[0] = 0x75;
    assert_eq!(open(&mut b, &version), Err(DropReason::BadVersion));
    let mut out = Output::default();
    b.run_inbound(&wire, Some(4500), 10, &mut out);
    assert_eq!(out.dropped, Some(DropReason::EncapMismatch));
    assert_eq!(b.counters.protected_in, 0);
}

#[test]
fn flow_types_decide_without_an_sa() {
    let (x, y) = sites(false);
    let mut e = Engine::new([3; 32]);
    e.connect(1);
    e.handle(1, 1, &register(SaType::ESP), 0);
    let mut out = Output::default();
    let packet = udp_packet(host(&x, true), host(&y, true), b"x");
    for (flow_type, sent_clear, dropped, acquires) in [
        (FlowType::USE, true, None, false),
        (FlowType::ACQUIRE, true, None, true),
        (FlowType::REQUIRE, false, Some(DropReason::NoSa), true),
        (FlowType::DONTACQ, false, Some(DropReason::NoSa), false),
        (FlowType::BYPASS, true, None, false),
        (FlowType::DENY, false, Some(DropReason::Denied), false),
    ] {
        e.spd.clear();
        e.acquires.clear();
        let sel = selector(Direction::Out, &x, &y, true);
        e.spd.insert(sel, policy(flow_type, SaType::ESP, y.gw));
        out.clear();
        e.run_outbound(&packet, 5, &mut out);
        assert_eq!(out.dropped, dropped, "{flow_type:?}");
        // In the clear means the packet itself, one hop on.
        let clear = out
            .wire
            .first()
            .is_some_and(|w| w[12..] == packet[12..] && w[8] == 63);
        assert_eq!(clear, sent_clear, "{flow_type:?}");
        let acquired = out
            .messages
            .iter()
            .any(|m| m.bytes[1] == MsgType::ACQUIRE.0);
        assert_eq!(acquired, acquires, "{flow_type:?}");
    }
    // No flow at all: no IPsec, and one hop less, as a router would.
    e.spd.clear();
    out.clear();
    e.run_outbound(&packet, 5, &mut out);
    let mut sent = packet.clone();
    sent[8] -= 1;
    ipx::fix_lengths(&mut sent, false).unwrap();
    assert_eq!(out.wire, vec![sent.clone()]);
    // A route that brings such packets back into enc0 cannot loop them
    // for ever.
    let mut hops = 1;
    loop {
        let again = out.wire.pop().unwrap();
        out.clear();
        e.run_outbound(&again, 5, &mut out);
        if out.dropped.is_some() {
            break;
        }
        hops += 1;
    }
    assert_eq!(out.dropped, Some(DropReason::HopLimit));
    assert_eq!(hops, 63, "the test packet starts at TTL 64");
}

fn register(satype: SaType) -> Vec<u8> {
    Message::new(Header::new(MsgType::REGISTER, satype, 1, 1)).encode()
}

#[test]
fn an_sa_from_another_peer_does_not_satisfy_the_flow() {
    let suite = SUITES[0];
    let (x, y) = sites(false);
    let mut a = gateway(&x, &y, suite, true, 1);
    let mut b = gateway(&y, &x, suite, true, 2);
    // b also holds an SA from a third gateway, which a impersonates.
    let rogue = ip("192.0.2.66");
    let spi = 0x6666;
    b.sad
        .add(make_sa(suite, rogue, y.gw, spi, true), 0)
        .unwrap();
    let mut evil = make_sa(suite, rogue, y.gw, spi, true);
    evil.id.spi = spi;
    a.sad.add(evil, 0).unwrap();
    a.spd.insert(
        selector(Direction::Out, &x, &y, true),
        policy(FlowType::REQUIRE, suite.satype, y.gw),
    );
    // Sealed by the rogue SA (the outer source is rewritten to match).
    let plain = udp_packet(host(&x, true), host(&y, true), b"sneaky");
    let wire = a
        .protect_copy(
            &plain,
            SaId {
                dst: y.gw,
                spi,
                satype: suite.satype,
            },
            0,
        )
        .unwrap();
    assert_eq!(open(&mut b, &wire), Err(DropReason::PolicyMismatch));
    // A packet for a network no flow covers is refused too.
    let stray = udp_packet(ip("172.16.0.1"), host(&y, true), b"stray");
    let wire = a
        .protect_copy(
            &stray,
            SaId {
                dst: y.gw,
                spi: 0x1002,
                satype: suite.satype,
            },
            0,
        )
        .unwrap();
    assert_eq!(open(&mut b, &wire), Err(DropReason::NoPolicy));
}

#[test]
fn a_hard_byte_lifetime_expires_the_sa() {
    let (mut a, _, ha, hb) = pair(SUITES[0], false, true);
    let id = a.sad.by_dst(b_gw(false), SaType::ESP).next().unwrap().id;
    let mut sa = a.sad.delete(&id).unwrap();
    sa.hard = Some(Lifetime {
        bytes: 100,
        ..Lifetime::default()
    });
    a.sad.add(sa, 0).unwrap();
    a.connect(9);
    let mut out = Output::default();
    a.run_outbound(&udp_packet(ha, hb, &[0; 200]), 1, &mut out);
    assert_eq!(out.dropped, Some(DropReason::Expired));
    assert!(out.messages.iter().any(|m| m.bytes[1] == MsgType::EXPIRE.0));
    assert!(a.sad.get(&id).is_none());
}

#[test]
fn ah_padding_is_authenticated() {
    // SHA2-256's 16-byte ICV is padded with 4 bytes in IPv6.
    let suite = ah(AuthAlg::X_SHA2_256, 32);
    let (mut a, mut b, ha, hb) = pair(suite, true, false);
    let wire = seal(&mut a, &udp_packet(ha, hb, b"padded"));
    let padding = 40 + 12 + 16;
    assert_eq!(&wire[padding..padding + 4], &[0; 4]);
    let mut tampered = wire.clone();
    tampered[padding + 2] = 0x70;
    assert_eq!(open(&mut b, &tampered), Err(DropReason::Authentication));
    assert!(open(&mut b, &wire).is_ok());
}

#[test]
fn an_sa_that_used_up_its_sequence_numbers_expires() {
    let (mut a, _, ha, hb) = pair(SUITES[0], false, true);
    a.connect(9);
    let id = a.sad.by_dst(b_gw(false), SaType::ESP).next().unwrap().id;
    seal(&mut a, &udp_packet(ha, hb, b"first"));
    let (_, live) = a.sad.live_mut(&id).unwrap().unwrap();
    live.sequence = crate::sequence::SendSequence::new(false);
    while live
        .sequence
        .take()
        .is_some_and(|s| s < u64::from(u32::MAX) - 1)
    {}
    seal(&mut a, &udp_packet(ha, hb, b"last"));
    let mut out = Output::default();
    a.run_outbound(&udp_packet(ha, hb, b"one too many"), 1, &mut out);
    assert_eq!(out.dropped, Some(DropReason::Expired));
    assert!(out.wire.is_empty());
    assert!(out.messages.iter().any(|m| m.bytes[1] == MsgType::EXPIRE.0));
    assert!(a.sad.get(&id).is_none(), "the SA is gone");
}

#[test]
fn packets_too_big_for_the_path_are_answered() {
    let (mut a, _, ha, hb) = pair(SUITES[0], false, true);
    a.path_mtu = 1000;
    let mut out = Output::default();
    a.run_outbound(&udp_packet(ha, hb, &[0; 990]), 1, &mut out);
    assert_eq!(out.dropped, Some(DropReason::TooBig));
    let icmp = &out.enc[0];
    assert_eq!((icmp[9], icmp[20], icmp[21]), (proto::ICMP, 3, 4));
    let mtu = u16::from_be_bytes([icmp[26], icmp[27]]);
    assert!((900..1000).contains(&mtu), "{mtu}");
}

#[test]
fn nat_t_wraps_esp_in_udp() {
    let suite = SUITES[0];
    let (mut a, mut b, ha, hb) = pair(suite, false, true);
    in_udp([&mut a, &mut b]);
    let plain = udp_packet(ha, hb, b"behind a nat");
    // Keepalives only once this side has sent: the NAT maps on its
    // first packet.
    assert!(a.keepalives().is_empty());
    let wire = seal(&mut a, &plain);
    let keepalives = a.keepalives();
    assert_eq!(keepalives.len(), 1);
    assert_eq!(Layout::of(&keepalives[0]).unwrap().dst, b_gw(false));
    let l = Layout::of(&wire).unwrap();
    assert_eq!(l.protocol, proto::UDP);
    let u = udp::Packet::new_checked(l.payload(&wire)).unwrap();
    assert_eq!((u.src_port(), u.dst_port(), u.checksum()), (4500, 4501, 0));
    // What the shell hands in: the IP header over the ESP alone.
    let mut esp = wire[..l.header_len].to_vec();
    esp.extend_from_slice(u.payload());
    ipx::reframe(&mut esp, &l, proto::ESP).unwrap();
    let mut out = Output::default();
    b.run_inbound(&esp, Some(4501), 1, &mut out);
    assert_eq!(out.dropped, None);
    assert_eq!(out.enc, vec![plain]);
    // Plain ESP to a NAT-T SA is refused.
    b.run_inbound(&esp, None, 1, &mut out);
    assert_eq!(out.dropped, Some(DropReason::EncapMismatch));
}

#[test]
fn captures_show_plaintext_with_spi_and_flags() {
    let (mut a, mut b, ha, hb) = pair(SUITES[0], false, false);
    let plain = udp_packet(ha, hb, b"tap");
    let mut out = Output::default();
    a.run_outbound(&plain, 1, &mut out);
    assert_eq!(out.taps.len(), 1);
    assert_eq!(out.taps[0].packet, plain);
    assert_eq!(out.taps[0].flags, ENC_CONF | ENC_AUTH);
    assert!(!out.taps[0].inbound);
    let wire = out.wire.pop().unwrap();
    let mut back = Output::default();
    b.run_inbound(&wire, None, 1, &mut back);
    assert_eq!(back.taps[0].packet, plain);
    assert_eq!(back.taps[0].spi, out.taps[0].spi);
    assert!(back.taps[0].inbound);
}

#[test]
fn bundles_apply_in_order_and_open_in_reverse() {
    let (x, y) = sites(false);
    let esp_suite = SUITES[0];
    let ah_suite = SUITES[15];
    let mut engines = Vec::new();
    for (me, them, seed) in [(&x, &y, 1), (&y, &x, 2)] {
        let mut e = gateway(me, them, esp_suite, false, seed);
        for (from, to) in [(me, them), (them, me)] {
            let spi = 0x2000 + u32::from(last_byte(to.gw));
            let ah_sa = make_sa(ah_suite, from.gw, to.gw, spi, false);
            let ah_id = ah_sa.id;
            e.sad.add(ah_sa, 0).unwrap();
            let esp_id = SaId {
                dst: to.gw,
                spi: 0x1000 + u32::from(last_byte(to.gw)),
                satype: SaType::ESP,
            };
            e.sad.group(esp_id, ah_id).unwrap();
        }
        engines.push(e);
    }
    let (a, b) = engines.split_at_mut(1);
    let plain = udp_packet(x.gw, y.gw, b"belt and braces");
    let wire = seal(&mut a[0], &plain);
    let l = Layout::of(&wire).unwrap();
    assert_eq!(l.protocol, proto::AH, "AH outside ESP");
    assert_eq!(l.payload(&wire)[0], proto::ESP);
    assert_eq!(open(&mut b[0], &wire), Ok(plain));
}

#[test]
fn ipcomp_and_ipip_sas_carry_packets() {
    let (x, y) = sites(false);
    for satype in [SaType::X_IPCOMP, SaType::X_IPIP] {
        let suite = Suite {
            satype,
            enc: EncAlg(CompAlg::DEFLATE.0),
            enc_len: 0,
            auth: AuthAlg::NONE,
            auth_len: 0,
        };
        let mut a = gateway(&x, &y, suite, true, 1);
        let mut b = gateway(&y, &x, suite, true, 2);
        // Flows that do not require protection: IPComp and IP-in-IP give none.
        for e in [&mut a, &mut b] {
            let flows: Vec<Selector> = e.spd.iter().map(|(s, _)| *s).collect();
            for s in flows {
                let peer = e.spd.get(&s).unwrap().peer.unwrap();
                e.spd.insert(s, policy(FlowType::USE, satype, peer));
            }
        }
        let plain = udp_packet(host(&x, true), host(&y, true), &b"squeeze me ".repeat(30));
        let wire = seal(&mut a, &plain);
        let l = Layout::of(&wire).unwrap();
        if satype == SaType::X_IPCOMP {
            assert_eq!(l.protocol, proto::IPCOMP);
            assert!(wire.len() < plain.len());
            assert_eq!(open(&mut b, &wire), Ok(plain));
        } else {
            assert_eq!(l.protocol, proto::IPV4);
            assert_eq!(l.payload(&wire), &plain[..]);
        }
    }
}

/// Makes every SA of both engines one carried in UDP (NAT-T).
fn in_udp(engines: [&mut Engine; 2]) {
    for e in engines {
        let ids: Vec<SaId> = e.sad.iter().map(|s| s.id).collect();
        for id in ids {
            let mut sa = e.sad.delete(&id).unwrap();
            sa.flags |= sa_flags::UDPENCAP;
            sa.udpencap_port = Some(4501);
            e.sad.add(sa, 0).unwrap();
        }
    }
}

#[test]
fn the_packet_path_allocates_nothing_once_warm() {
    for suite in SUITES {
        for v6 in [false, true] {
            for tunnel in [false, true] {
                for udp in [false, true] {
                    if udp && suite.satype != SaType::ESP {
                        continue;
                    }
                    let what = format!("{suite:?} v6={v6} tunnel={tunnel} udp={udp}");
                    let (mut a, mut b, ha, hb) = pair(*suite, v6, tunnel);
                    if udp {
                        in_udp([&mut a, &mut b]);
                    }
                    // Only an enc capture copies packets.
                    a.capture = false;
                    b.capture = false;
                    let plain = udp_packet(ha, hb, &[0x5a; 1000]);
                    let mut buf = PacketBuf::new();
                    let mut events = Events::default();
                    let mut round_trip = |a: &mut Engine, b: &mut Engine| {
                        buf.set(&plain).unwrap();
                        assert_eq!(
                            a.outbound(&mut buf, 1, &mut events),
                            Verdict::Wire,
                            "{what}"
                        );
                        let port = udp.then(|| {
                            // The shell hands in the IP header over the ESP.
                            let l = Layout::of(buf.as_slice()).unwrap();
                            buf.remove(l.header_len, udp::HEADER_LEN);
                            ipx::reframe(buf.as_mut_slice(), &l, proto::ESP).unwrap();
                            4501
                        });
                        assert_eq!(
                            b.inbound(&mut buf, port, 1, &mut events),
                            Verdict::Enc,
                            "{what}"
                        );
                        // In transport mode through a NAT the transport
                        // checksum is made right for the addresses seen.
                        let checksum = Layout::of(&plain).unwrap().header_len + 6;
                        let (got, want) = (buf.as_slice(), &plain[..]);
                        assert_eq!(got.len(), want.len(), "{what}");
                        assert_eq!(got[..checksum], want[..checksum], "{what}");
                        assert_eq!(got[checksum + 2..], want[checksum + 2..], "{what}");
                    };
                    // The first packets key the SAs.
                    for _ in 0..3 {
                        round_trip(&mut a, &mut b);
                    }
                    let before = crate::allocations::count();
                    for _ in 0..50 {
                        round_trip(&mut a, &mut b);
                    }
                    let made = crate::allocations::count() - before;
                    assert_eq!(made, 0, "{what}: {made} allocations in 50 round trips");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn open_inverts_seal_and_any_flipped_bit_is_refused(
        suite in prop::sample::select(SUITES.iter().filter(|s| s.auth != AuthAlg::NONE || s.enc != EncAlg::NULL).copied().collect::<Vec<_>>()),
        v6 in any::<bool>(),
        tunnel in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..600),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut a, mut b, ha, hb) = pair(suite, v6, tunnel);
        let plain = udp_packet(ha, hb, &payload);
        let wire = seal(&mut a, &plain);
        let mut tampered = wire.clone();
        let at = flip.index(tampered.len());
        tampered[at] ^= 1 << bit;
        // Only a flip in the outer IP header may get through, in a field
        // the transform leaves unprotected (any, for ESP; the mutable
        // ones, for AH), and then what comes out is what went in, with
        // the flip only if that header is the one delivered.
        let protocol_at = if v6 { 6 } else { 9 };
        if let Ok(opened) = open(&mut b, &tampered) {
            if tunnel && at == protocol_at {
                // The flip made the outer packet one that is not IPsec: in
                // tunnel mode no flow covers the gateways' own traffic, so
                // it is clear text that passes as it is.
                prop_assert_eq!(opened, tampered);
                return Ok(());
            }
            let outer = Layout::of(&wire).unwrap().header_len;
            prop_assert!(at < outer, "a flip at {} got through", at);
            prop_assert!(suite.satype == SaType::ESP || mutable_field(&wire, at), "AH missed a flip at {}", at);
            let mut expected = plain.clone();
            if !tunnel {
                expected[at] ^= 1 << bit;
                ipx::fix_lengths(&mut expected, v6).unwrap();
            }
            prop_assert_eq!(opened, expected);
        } else {
            // A refused packet changed nothing: the real one still opens.
            prop_assert_eq!(open(&mut b, &wire), Ok(plain));
        }
    }
}

/// Bytes of an IP header that AH leaves out of its ICV because routers
/// change them.
fn mutable_field(wire: &[u8], at: usize) -> bool {
    if wire[0] >> 4 == 4 {
        // type of service, flags and fragment offset, TTL, checksum
        matches!(at, 1 | 6..=8 | 10 | 11)
    } else {
        // traffic class, flow label, hop limit
        matches!(at, 0..=3 | 7)
    }
}

#[test]
fn a_flow_keeps_to_its_sa_until_it_goes_then_takes_the_next() {
    let (mut a, _, ha, hb) = pair(SUITES[0], false, true);
    let old = a.sad.by_dst(b_gw(false), SaType::ESP).next().unwrap().id;
    let spi_of = |wire: &[u8]| u32::from_be_bytes(wire[20..24].try_into().unwrap());
    assert_eq!(spi_of(&seal(&mut a, &udp_packet(ha, hb, b"one"))), old.spi);
    // The next generation arrives: the flow stays on the SA it uses.
    let mut next = a.sad.get(&old).unwrap().clone();
    next.id.spi = 0x2000;
    next.usage = Default::default();
    a.sad.add(next.clone(), 5).unwrap();
    next.id.spi = 0x3000;
    a.sad.add(next, 6).unwrap();
    assert_eq!(spi_of(&seal(&mut a, &udp_packet(ha, hb, b"two"))), old.spi);
    // The old SA goes: the next generation takes over, not the last,
    // which the peer may not have yet.
    a.sad.delete(&old);
    assert_eq!(spi_of(&seal(&mut a, &udp_packet(ha, hb, b"three"))), 0x2000);
}

/// A packet through a bridge engine, as bridge mode hands it over.
fn cross(e: &mut Engine, packet: &[u8]) -> (Crossing, Vec<u8>, Events) {
    let mut buf = PacketBuf::from_slice(packet);
    let mut events = Events::default();
    let crossing = e.cross(&mut buf, 10, &mut events);
    (crossing, buf.as_slice().to_vec(), events)
}

#[test]
fn a_bridge_protects_and_opens_under_the_hosts_own_addresses() {
    for v6 in [false, true] {
        // `bridge` stands in front of host `h`, whose address its SAs
        // use (transport mode); `peer` is an IPsec host.
        let (mut bridge, mut peer, h, p) = pair(SUITES[0], v6, false);
        let out = udp_packet(h, p, b"from the host");
        let (crossing, wire, _) = cross(&mut bridge, &out);
        assert_eq!(crossing, Crossing::Protected, "v6={v6}");
        assert_eq!(open(&mut peer, &wire).unwrap(), out);
        // The answer, sealed by the peer to the host's address: the
        // bridge holds the SA and opens it for the host.
        let back = udp_packet(p, h, b"to the host");
        let sealed = seal(&mut peer, &back);
        let (crossing, opened, _) = cross(&mut bridge, &sealed);
        assert_eq!((crossing, opened), (Crossing::Opened, back.clone()));
        // The same answer in the clear may not reach the host.
        let (crossing, _, _) = cross(&mut bridge, &back);
        assert_eq!(crossing, Crossing::Dropped(DropReason::PolicyMismatch));
        // A replay of what was opened is refused too.
        let (crossing, _, _) = cross(&mut bridge, &sealed);
        assert_eq!(crossing, Crossing::Dropped(DropReason::Replay));
    }
}

#[test]
fn a_bridge_leaves_what_it_protects_under_its_own_address_to_its_host() {
    // Tunnel mode between the gateways: `bridge` protects host `h`'s
    // packets under its own address, which the host's stack must route.
    let (mut bridge, mut peer, h, p) = pair(SUITES[0], false, true);
    let out = udp_packet(h, p, b"from the host");
    let (crossing, wire, _) = cross(&mut bridge, &out);
    assert_eq!(crossing, Crossing::Routed);
    let outer = Layout::of(&wire).unwrap();
    assert_eq!((outer.src, outer.protocol), (sites(false).0.gw, proto::ESP));
    assert_eq!(open(&mut peer, &wire).unwrap(), out);
}

#[test]
fn what_no_flow_covers_crosses_untouched() {
    let (mut bridge, _, _, _) = pair(SUITES[0], false, false);
    let (a, b) = (ip("198.51.100.7"), ip("198.51.100.8"));
    let other = udp_packet(a, b, b"someone else's");
    let (crossing, bytes, _) = cross(&mut bridge, &other);
    // A bridge does not route: the TTL is the sender's.
    assert_eq!((crossing, bytes), (Crossing::Clear, other.clone()));
    // ESP under an SA the bridge does not hold is someone else's too.
    let mut esp = udp_packet(a, b, b"........");
    esp[9] = proto::ESP;
    ipx::fix_lengths(&mut esp, false).unwrap();
    let (crossing, bytes, _) = cross(&mut bridge, &esp);
    assert_eq!((crossing, bytes), (Crossing::Clear, esp));
    // What cannot be read as IP goes nowhere, nor a damaged header.
    let (crossing, _, _) = cross(&mut bridge, &[0x45, 0, 0]);
    assert_eq!(crossing, Crossing::Dropped(DropReason::Truncated));
    let mut damaged = other.clone();
    damaged[8] ^= 1;
    let (crossing, _, _) = cross(&mut bridge, &damaged);
    assert_eq!(crossing, Crossing::Dropped(DropReason::BadChecksum));
}

#[test]
fn a_bridge_without_an_sa_drops_and_asks_for_one() {
    let (x, y) = sites(false);
    let mut e = Engine::new([3; 32]);
    e.connect(1);
    e.handle(1, 1, &register(SaType::ESP), 0);
    let sel = selector(Direction::Out, &x, &y, false);
    e.spd
        .insert(sel, policy(FlowType::REQUIRE, SaType::ESP, y.gw));
    let (crossing, _, events) = cross(&mut e, &udp_packet(x.gw, y.gw, b"x"));
    assert_eq!(crossing, Crossing::Dropped(DropReason::NoSa));
    assert!(
        events
            .messages
            .iter()
            .any(|m| m.bytes[1] == MsgType::ACQUIRE.0),
        "no ACQUIRE"
    );
}
