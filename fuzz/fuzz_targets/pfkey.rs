//! Any bytes as a PF_KEY message, as the runtime will receive them:
//! decoding, the kernel's checks and the monitor's rendering must not
//! panic, and whatever decodes must encode to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pfkey::{Message, Monitor, decode_stream, validate};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = validate::parse_request(data, 1) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = Message::decode(data) {
        assert_eq!(
            m.encode(),
            data,
            "a decoded frame must encode to the same bytes"
        );
        let _ = validate::check_request(&m, m.header.pid);
        let _ = validate::check_reply(&m);
        let _ = Monitor {
            message: &m,
            show_keys: true,
        }
        .to_string();
    }
    if let Ok(all) = decode_stream(data) {
        assert_eq!(pfkey::encode_stream(&all), data);
    }
});
