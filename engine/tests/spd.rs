//! The SPD chooses what a look at every flow would choose.

use ipsec_engine::spd::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

/// Addresses from a small space, so that flows overlap often.
fn addr() -> impl Strategy<Value = IpAddr> {
    (0u8..4, 0u8..4).prop_map(|(c, d)| IpAddr::V4(Ipv4Addr::new(10, 0, c, d)))
}

fn selector() -> impl Strategy<Value = Selector> {
    (
        any::<bool>(),
        addr(),
        prop::sample::select(vec![0u8, 8, 16, 24, 30, 32]),
        addr(),
        prop::sample::select(vec![0u8, 16, 24, 31, 32]),
        prop::sample::select(vec![0u8, 6, 17]),
        prop::sample::select(vec![0u16, 22, 53]),
        prop::sample::select(vec![0u16, 80, 443]),
    )
        .prop_map(|(out, src, sl, dst, dl, proto, sport, dport)| Selector {
            direction: if out { Direction::Out } else { Direction::In },
            src,
            src_mask: prefix_mask(src, sl),
            dst,
            dst_mask: prefix_mask(dst, dl),
            proto,
            sport,
            sport_mask: if sport != 0 { 0xffff } else { 0 },
            dport,
            dport_mask: if dport != 0 { 0xffff } else { 0 },
        })
}

fn packet() -> impl Strategy<Value = PacketKey> {
    (
        any::<bool>(),
        addr(),
        addr(),
        prop::sample::select(vec![6u8, 17, 1]),
        prop::sample::select(vec![22u16, 53, 1000]),
        prop::sample::select(vec![80u16, 443, 2000]),
    )
        .prop_map(|(out, src, dst, proto, sport, dport)| PacketKey {
            direction: if out { Direction::Out } else { Direction::In },
            src,
            dst,
            proto,
            sport,
            dport,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn best_match_agrees_with_a_linear_scan(
        flows in prop::collection::vec(selector(), 0..40),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        packets in prop::collection::vec(packet(), 1..20),
    ) {
        let mut spd = Spd::new();
        let mut model: Vec<(Selector, usize)> = Vec::new();
        for (i, sel) in flows.iter().enumerate() {
            spd.insert(*sel, i);
            // Same selector and mask: the new policy replaces the old.
            match model.iter_mut().find(|(s, _)| s.mask_eq(sel)) {
                Some(entry) => *entry = (*sel, i),
                None => model.push((*sel, i)),
            }
        }
        for r in removals {
            if model.is_empty() { break; }
            let (sel, _) = model.remove(r.index(model.len()));
            prop_assert!(spd.remove(&sel).is_some());
        }
        prop_assert_eq!(spd.len(), model.len());
        for p in &packets {
            let fast = spd.lookup(p).map(|(_, policy)| *policy);
            let slow = linear_lookup(&model, p).map(|(_, policy)| *policy);
            prop_assert_eq!(fast, slow, "packet {:?}", p);
        }
    }
}

#[test]
fn a_host_source_beats_a_network_source() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let sel = |src: &str, sl, dst: &str, dl| Selector {
        direction: Direction::Out,
        src: ip(src),
        src_mask: prefix_mask(ip(src), sl),
        dst: ip(dst),
        dst_mask: prefix_mask(ip(dst), dl),
        proto: 0,
        sport: 0,
        sport_mask: 0,
        dport: 0,
        dport_mask: 0,
    };
    let mut spd = Spd::new();
    spd.insert(sel("10.0.0.0", 24, "10.1.0.1", 32), "net to host");
    spd.insert(sel("10.0.0.5", 32, "0.0.0.0", 0), "host to any");
    spd.insert(sel("10.0.0.0", 24, "10.1.0.0", 16), "net to net");
    let p = |src: &str, dst: &str| PacketKey {
        direction: Direction::Out,
        src: ip(src),
        dst: ip(dst),
        proto: 6,
        sport: 1,
        dport: 2,
    };
    assert_eq!(
        spd.lookup(&p("10.0.0.5", "10.1.0.1")).unwrap().1,
        &"host to any"
    );
    assert_eq!(
        spd.lookup(&p("10.0.0.6", "10.1.0.1")).unwrap().1,
        &"net to host"
    );
    assert_eq!(
        spd.lookup(&p("10.0.0.6", "10.1.9.9")).unwrap().1,
        &"net to net"
    );
    assert!(spd.lookup(&p("10.0.1.6", "10.1.9.9")).is_none());
    let inbound = PacketKey {
        direction: Direction::In,
        ..p("10.0.0.5", "10.1.0.1")
    };
    assert!(spd.lookup(&inbound).is_none());
    let names: Vec<&str> = spd.iter().map(|(_, p)| *p).collect();
    assert_eq!(names, ["net to host", "host to any", "net to net"]);
}
