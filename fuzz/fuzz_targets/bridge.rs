//! Any bytes as a stream of frames arriving on a bridge's ports: each
//! record is a port byte, a time step, a length byte and the frame.
//! Nothing may panic; a frame never goes back out of the port it came
//! in on, nor a non-IP frame to a port that blocks such; the address
//! table stays within its bound.

#![no_main]

use ipsec_engine::bridge::{Carries, MacTable, PortConfig, PortId, Switch};
use ipsec_engine::wire::{etherip, ethernet};
use libfuzzer_sys::fuzz_target;

const CAPACITY: usize = 8;

fuzz_target!(|data: &[u8]| {
    let blocking = PortConfig { block_non_ip: true };
    let ports = vec![PortConfig::default(), blocking, PortConfig::default()];
    let mut switch = Switch::new(ports, MacTable::with_capacity(CAPACITY));
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
        assert!(matches!(
            out.carries,
            Carries::Ipv4 | Carries::Ipv6 | Carries::Arp | Carries::Rarp | Carries::Other(_)
        ));
        for _ in out.to.iter() {
            switch.sent(frame, now);
        }
        assert!(switch.table.len() <= CAPACITY);
    }
});
