//! Any bytes as an IKE message from a peer, and as the plaintext of an
//! encrypted payload. Nothing may panic; what decodes encodes to a
//! message that decodes to the same value.

#![no_main]

use ipsec_ike::wire::{Message, PayloadType, decode_chain, encode_chain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let bytes = m.encode().expect("what decoded encodes");
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(&m));
    }
    let first = PayloadType(data.first().copied().unwrap_or(0));
    if let Ok(chain) = decode_chain(first, data.get(1..).unwrap_or_default()) {
        let (kind, bytes) = encode_chain(&chain).expect("what decoded encodes");
        assert_eq!(decode_chain(kind, &bytes).as_ref(), Ok(&chain));
    }
});
