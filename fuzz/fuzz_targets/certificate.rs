//! Any bytes as a peer's certificate (a CERT payload) and AUTH data:
//! parsing the certificate, following it to the test authority, matching
//! the identity and checking the signature must not panic.

#![no_main]

use ipsec_ike::crypto::pki::{Pki, PrivateKey};
use ipsec_ike::wire::{IdType, Identification};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const KEY: &[u8] = include_bytes!("../../ike/testdata/pki/a.key");
const CERT: &[u8] = include_bytes!("../../ike/testdata/pki/a.crt");
const CA: &[u8] = include_bytes!("../../ike/testdata/pki/ca.crt");

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki::new(PrivateKey::from_bytes(KEY).unwrap(), CERT, &[CA]).unwrap())
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many bytes at the end are AUTH data.
    let Some((&auth_len, rest)) = data.split_first() else {
        return;
    };
    let (cert, auth) = rest.split_at(rest.len() - usize::from(auth_len).min(rest.len()));
    let chain = vec![cert.to_vec()];
    let id = Identification {
        id_type: IdType::FQDN,
        data: b"b.example".to_vec(),
    };
    // 2026-12-03.
    if let Ok(key) = pki().verify_peer(&chain, &id, 1_796_300_000) {
        let _ = key.verify_auth(b"octets", auth);
    }
});
