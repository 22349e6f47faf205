//! Any bytes as a conversation with the PF_KEY engine: the input is cut
//! into messages (each prefixed by a client number and a length byte,
//! scaled to 8-byte units), sent in order, with time passing; the engine
//! must never panic, and every message it writes must decode.

#![no_main]

use ipsec_engine::engine::Engine;
use libfuzzer_sys::fuzz_target;
use pfkey::Message;

const PID: u32 = 7;

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new([1; 32]);
    for client in 0..3 {
        engine.connect(client);
    }
    let mut rest = data;
    let mut now = 0;
    while rest.len() >= 2 {
        let client = u64::from(rest[0] % 3);
        let len = (usize::from(rest[1]) * 8).min(rest.len() - 2);
        let (message, tail) = rest[2..].split_at(len);
        rest = tail;
        // Most inputs should have a well-formed header to get further.
        let mut bytes = message.to_vec();
        if bytes.len() >= 16 {
            bytes[0] = pfkey::PF_KEY_V2;
            bytes[2] = 0;
            let units = (bytes.len() / 8) as u16;
            bytes[4..6].copy_from_slice(&units.to_ne_bytes());
            bytes[6..8].copy_from_slice(&[0, 0]);
            bytes[12..16].copy_from_slice(&PID.to_ne_bytes());
        }
        for sent in engine.handle(client, PID, &bytes, now) {
            check(&sent.bytes);
        }
        now += 7;
        for sent in engine.tick(now) {
            check(&sent.bytes);
        }
    }
});

fn check(bytes: &[u8]) {
    // Wrapped copies for monitors hold a message after their header.
    let inner = if bytes.get(1) == Some(&pfkey::MsgType::X_PROMISC.0) && bytes.len() > 16 {
        &bytes[16..]
    } else {
        bytes
    };
    assert!(
        Message::decode(inner).is_ok(),
        "the engine wrote something undecodable"
    );
}
