//! SAD insertion and lookup by (destination, SPI, protocol) at 100,000
//! SAs, each with keys, as manual keying or a busy key manager leaves it.

use ipsec_engine::sad::*;
use pfkey::{Key, SaType};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

const SAS: u32 = 100_000;

fn id(i: u32) -> SaId {
    SaId {
        dst: IpAddr::V4(Ipv4Addr::from(0xc000_0200 | (i % 251))),
        spi: 0x1000_0000 + i,
        satype: SaType::ESP,
    }
}

fn main() {
    let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let sas: Vec<SecurityAssociation> = (0..SAS)
        .map(|i| {
            let mut sa = SecurityAssociation::new(id(i), src, 0);
            sa.auth_key = Some(Key::new(&[0x5a; 32]));
            sa.enc_key = Some(Key::new(&[0xc3; 16]));
            sa
        })
        .collect();
    let mut sad = Sad::new();
    let start = Instant::now();
    for sa in sas {
        sad.add(sa, 0).expect("distinct SAs");
    }
    let insert = start.elapsed().as_nanos() as f64 / f64::from(SAS);
    let mut state = 88_172_645_463_325_252_u64;
    let probes: Vec<SaId> = (0..1_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            id((state % u64::from(SAS * 2)) as u32)
        })
        .collect();
    let start = Instant::now();
    let mut hits = 0usize;
    for p in &probes {
        hits += usize::from(sad.get(black_box(p)).is_some());
    }
    let lookup = start.elapsed().as_nanos() as f64 / probes.len() as f64;
    println!(
        "{SAS} SAs: insert {insert:.0} ns each, lookup {lookup:.0} ns ({}% hits)",
        hits * 100 / probes.len()
    );
}
