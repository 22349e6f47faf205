//! Per-packet cost of the data path through the engine: `Engine::outbound`
//! (SPD lookup, SA choice, IP-in-IP, seal) on one gateway and
//! `Engine::inbound` (SA lookup, replay check, open, decapsulation, inbound
//! policy check) on its peer, for 64-, 512- and 1400-byte IPv4 packets in
//! tunnel mode, per algorithm. Copies, allocations and counters are
//! included; system calls are not.
//!
//!   cargo bench -p ipsec-engine --bench esp [-- FILTER...]
//!
//! A case runs when its name ("aes-128-gcm 1400 open") contains every
//! FILTER. ESP_BENCH_SECS (default 1) is the measuring time per case, after
//! a warm-up of a fifth of it. Each sample is a batch of packets; the
//! table shows the median and the fastest sample, in ns per packet, and
//! the median as Gbit/s of inner packets.
//!
//! Written without criterion: it is not in Cargo.lock, and the other
//! benches here measure the same way.

use ipsec_engine::engine::{Engine, Events, FlowUsage, Policy, Verdict};
use ipsec_engine::packet::PacketBuf;
use ipsec_engine::sad::{SaId, SecurityAssociation};
use ipsec_engine::spd::{Direction, Selector, prefix_mask};
use pfkey::{AuthAlg, EncAlg, FlowType, Key, SaType, sa_flags};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Suite {
    name: &'static str,
    satype: SaType,
    enc: EncAlg,
    enc_len: usize,
    auth: AuthAlg,
    auth_len: usize,
}

const fn esp(
    name: &'static str,
    enc: EncAlg,
    enc_len: usize,
    auth: AuthAlg,
    auth_len: usize,
) -> Suite {
    Suite {
        name,
        satype: SaType::ESP,
        enc,
        enc_len,
        auth,
        auth_len,
    }
}

const SUITES: &[Suite] = &[
    esp(
        "aes-128-cbc+sha2-256",
        EncAlg::X_AES,
        16,
        AuthAlg::X_SHA2_256,
        32,
    ),
    esp(
        "aes-256-cbc+sha2-512",
        EncAlg::X_AES,
        32,
        AuthAlg::X_SHA2_512,
        64,
    ),
    // Combined ciphers: the auth key is the cipher's, as keymgr sends them.
    esp("aes-128-gcm", EncAlg::X_AESGCM16, 20, AuthAlg::NONE, 0),
    esp("aes-256-gcm", EncAlg::X_AESGCM16, 36, AuthAlg::NONE, 0),
    esp(
        "chacha20-poly1305",
        EncAlg::X_CHACHA20POLY1305,
        36,
        AuthAlg::NONE,
        0,
    ),
    esp(
        "aes-128-ctr+sha1",
        EncAlg::X_AESCTR,
        20,
        AuthAlg::SHA1HMAC,
        20,
    ),
    esp(
        "3des-cbc+sha1",
        EncAlg::TRIPLE_DES_CBC,
        24,
        AuthAlg::SHA1HMAC,
        20,
    ),
    esp("null+sha2-256", EncAlg::NULL, 0, AuthAlg::X_SHA2_256, 32),
    Suite {
        name: "ah sha2-256",
        satype: SaType::AH,
        enc: EncAlg::NONE,
        enc_len: 0,
        auth: AuthAlg::X_SHA2_256,
        auth_len: 32,
    },
];

/// Inner packet sizes, IP header included.
const SIZES: &[usize] = &[64, 512, 1400];

const GW_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const GW_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const NET_A: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 0);
const NET_B: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 0);

fn key(len: usize, fill: u8) -> Option<Key> {
    (len > 0).then(|| Key::new(&(0..len).map(|i| fill ^ i as u8).collect::<Vec<_>>()))
}

fn sa(suite: Suite, src: Ipv4Addr, dst: Ipv4Addr, spi: u32) -> SecurityAssociation {
    let id = SaId {
        dst: IpAddr::V4(dst),
        spi,
        satype: suite.satype,
    };
    let mut sa = SecurityAssociation::new(id, IpAddr::V4(src), 0);
    sa.encrypt = suite.enc.0;
    sa.enc_key = key(suite.enc_len, spi as u8);
    sa.auth = suite.auth;
    sa.auth_key = key(suite.auth_len, 0x5a ^ spi as u8);
    sa.replay = 64;
    sa.flags |= sa_flags::TUNNEL;
    sa
}

fn selector(direction: Direction, src: Ipv4Addr, dst: Ipv4Addr) -> Selector {
    let (src, dst) = (IpAddr::V4(src), IpAddr::V4(dst));
    Selector {
        direction,
        src,
        src_mask: prefix_mask(src, 16),
        dst,
        dst_mask: prefix_mask(dst, 16),
        proto: 0,
        sport: 0,
        sport_mask: 0,
        dport: 0,
        dport_mask: 0,
    }
}

/// A gateway protecting `net` toward the peer gateway behind which `far`
/// lies: flows both ways (type require) and both SAs, as ipsecctl and a key
/// manager would leave them.
fn gateway(
    suite: Suite,
    me: Ipv4Addr,
    net: Ipv4Addr,
    peer: Ipv4Addr,
    far: Ipv4Addr,
    seed: u8,
) -> Engine {
    let mut e = Engine::new([seed; 32]);
    e.path_mtu = 1500;
    for (dir, src, dst) in [(Direction::Out, net, far), (Direction::In, far, net)] {
        let policy = Policy {
            flow_type: FlowType::REQUIRE,
            satype: suite.satype,
            local: None,
            peer: Some(IpAddr::V4(peer)),
            src_id: None,
            dst_id: None,
            flags: 0,
            usage: FlowUsage::default(),
            bound: None,
        };
        e.spd.insert(selector(dir, src, dst), policy);
    }
    let spi = |to: Ipv4Addr| 0x1000 + u32::from(to.octets()[3]);
    e.sad.add(sa(suite, me, peer, spi(peer)), 0).unwrap();
    e.sad.add(sa(suite, peer, me, spi(me)), 0).unwrap();
    e
}

/// An IPv4 UDP packet of `size` bytes in all, from a host behind A to one
/// behind B.
fn udp_packet(size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    let host = |net: Ipv4Addr| (u32::from(net) + 7).to_be_bytes();
    p[..12].copy_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0]);
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[12..16].copy_from_slice(&host(NET_A));
    p[16..20].copy_from_slice(&host(NET_B));
    let mut sum = 0u32;
    for pair in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5001u16.to_be_bytes());
    p[24..26].copy_from_slice(&((size - 20) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

/// Packets per sample: enough that timer reads do not count.
fn batch(size: usize) -> usize {
    if size < 256 { 4096 } else { 1024 }
}

struct Timing {
    median: f64,
    best: f64,
}

/// Runs `sample` (which handles `n` packets and returns the time that
/// took) for the warm-up and then for `measure`; ns per packet.
fn measure(n: usize, measure: Duration, mut sample: impl FnMut() -> Duration) -> Timing {
    let warm_until = Instant::now() + measure / 5;
    while Instant::now() < warm_until {
        sample();
    }
    let mut samples = Vec::new();
    let until = Instant::now() + measure;
    while Instant::now() < until || samples.len() < 5 {
        samples.push(sample().as_nanos() as f64 / n as f64);
    }
    samples.sort_by(f64::total_cmp);
    Timing {
        median: samples[samples.len() / 2],
        best: samples[0],
    }
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let secs: f64 = std::env::var("ESP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let time = Duration::from_secs_f64(secs);
    println!(
        "{:<22} {:>5} {:<5} {:>10} {:>10} {:>9}",
        "suite", "bytes", "path", "ns/pkt", "best ns", "Gbit/s"
    );
    for suite in SUITES {
        for &size in SIZES {
            for path in ["seal", "open"] {
                let name = format!("{} {size} {path}", suite.name);
                if !filters.iter().all(|f| name.contains(f.as_str())) {
                    continue;
                }
                let mut a = gateway(*suite, GW_A, NET_A, GW_B, NET_B, 1);
                let mut b = gateway(*suite, GW_B, NET_B, GW_A, NET_A, 2);
                let plain = udp_packet(size);
                let n = batch(size);
                // As the shell does: one buffer, each packet copied in as
                // a read would put it there.
                let mut buf = PacketBuf::new();
                let mut events = Events::default();
                let mut now = 1;
                let timing = if path == "seal" {
                    measure(n, time, || {
                        let start = Instant::now();
                        for _ in 0..n {
                            buf.set(black_box(&plain)).unwrap();
                            a.outbound(&mut buf, now, &mut events);
                        }
                        let took = start.elapsed();
                        now += 1;
                        took
                    })
                } else {
                    let mut wire: Vec<Vec<u8>> = Vec::with_capacity(n);
                    measure(n, time, || {
                        wire.clear();
                        for _ in 0..n {
                            buf.set(&plain).unwrap();
                            if a.outbound(&mut buf, now, &mut events) == Verdict::Wire {
                                wire.push(buf.as_slice().to_vec());
                            }
                        }
                        let start = Instant::now();
                        for packet in &wire {
                            buf.set(black_box(packet)).unwrap();
                            b.inbound(&mut buf, None, now, &mut events);
                        }
                        let took = start.elapsed();
                        now += 1;
                        took
                    })
                };
                // Every packet went through: none dropped on the way.
                let c = (&a.counters, &b.counters);
                let drops = |c: &ipsec_engine::engine::Counters| c.drops().collect::<Vec<_>>();
                assert!(c.0.protected_out > 0, "{name}");
                assert!(drops(c.0).is_empty(), "{name}: {:?}", drops(c.0));
                assert!(drops(c.1).is_empty(), "{name}: {:?}", drops(c.1));
                if path == "open" {
                    assert_eq!(c.1.protected_in, c.0.protected_out, "{name}");
                }
                println!(
                    "{:<22} {:>5} {:<5} {:>10.1} {:>10.1} {:>9.2}",
                    suite.name,
                    size,
                    path,
                    timing.median,
                    timing.best,
                    size as f64 * 8.0 / timing.median
                );
            }
        }
    }
}
