//! SPD lookup cost at 10, 1,000 and 100,000 flows, against a scan of every
//! flow in the same run. Flows are net-to-net (/24 to /24), host-to-net and
//! port-specific ones, as a site with many peers has; lookups mix hits and
//! misses.

use ipsec_engine::spd::*;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

fn ip(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn flows(n: usize) -> Vec<(Selector, usize)> {
    (0..n)
        .map(|i| {
            let k = i as u32;
            let (src, sl, dst, dl, proto, dport) = match i % 4 {
                0 | 1 => (0x0a00_0000, 16, 0xac00_0000 | (k << 8), 24, 0, 0),
                2 => (0x0a00_0001, 32, 0xac00_0000 | (k << 8), 24, 0, 0),
                _ => (0x0a00_0000, 16, 0xac00_0000 | (k << 8), 24, 6, 443),
            };
            let sel = Selector {
                direction: Direction::Out,
                src: ip(src),
                src_mask: prefix_mask(ip(src), sl),
                dst: ip(dst),
                dst_mask: prefix_mask(ip(dst), dl),
                proto,
                sport: 0,
                sport_mask: 0,
                dport,
                dport_mask: if dport != 0 { 0xffff } else { 0 },
            };
            (sel, i)
        })
        .collect()
}

fn packets(n: usize, count: usize) -> Vec<PacketKey> {
    let mut state = 0x2545_f491_u32;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // Three in four go to a network that has a flow.
            let net = state % (n as u32 * 4 / 3 + 1);
            PacketKey {
                direction: Direction::Out,
                src: ip(0x0a00_0000 | (state >> 24)),
                dst: ip(0xac00_0000 | (net << 8) | 7),
                proto: if state & 1 == 0 { 6 } else { 17 },
                sport: 40000,
                dport: 443,
            }
        })
        .collect()
}

fn ns_per(iterations: usize, start: Instant) -> f64 {
    start.elapsed().as_nanos() as f64 / iterations as f64
}

fn main() {
    println!(
        "{:>8} {:>12} {:>12} {:>8}",
        "flows", "spd ns", "scan ns", "ratio"
    );
    for n in [10, 1_000, 100_000] {
        let list = flows(n);
        let mut spd = Spd::new();
        for (sel, p) in &list {
            spd.insert(*sel, *p);
        }
        let probes = packets(n, 1_000_000);
        let start = Instant::now();
        let mut found = 0usize;
        for p in &probes {
            found += usize::from(spd.lookup(black_box(p)).is_some());
        }
        let fast = ns_per(probes.len(), start);
        let scans = (20_000_000 / n).clamp(20, 1_000_000);
        let start = Instant::now();
        let mut agree = 0usize;
        for p in &probes[..scans] {
            let slow = linear_lookup(black_box(&list), p).map(|f| f.1);
            agree += usize::from(slow == spd.lookup(p).map(|(_, v)| *v));
        }
        let slow = ns_per(scans, start);
        assert_eq!(agree, scans, "the SPD and the scan must agree");
        println!(
            "{n:>8} {fast:>12.0} {slow:>12.0} {:>7.0}x   ({}% of packets matched a flow)",
            slow / fast,
            found * 100 / probes.len()
        );
    }
}
