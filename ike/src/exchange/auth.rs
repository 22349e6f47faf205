//! What an AUTH payload proves (RFC 7296 §2.15): possession of the key,
//! over the sender's first message, the peer's nonce, and a MAC of the
//! sender's identity under SK_pi or SK_pr.

use crate::crypto::prf::{Prf, Secret};
use crate::wire::Identification;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The pad RFC 7296 mixes into a shared key.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// The octets the sender signs or MACs: its IKE_SA_INIT message, the
/// peer's nonce, and prf(SK_p, the sender's ID payload body).
pub fn signed_octets(
    prf: Prf,
    first_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id: &Identification,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + id.data.len());
    body.push(id.id_type.0);
    body.extend_from_slice(&[0; 3]);
    body.extend_from_slice(&id.data);
    let maced_id = prf.prf(sk_p, &[&body]);
    [first_message, peer_nonce, &maced_id].concat()
}

/// AUTH data for a shared key: prf(prf(key, "Key Pad for IKEv2"), octets).
pub fn psk(prf: Prf, key: &[u8], octets: &[u8]) -> Secret {
    let padded = prf.prf(key, &[KEY_PAD]);
    prf.prf(&padded, &[octets])
}

/// Whether `received` is the shared-key AUTH data for `octets`, compared
/// in constant time.
pub fn psk_matches(prf: Prf, key: &[u8], octets: &[u8], received: &[u8]) -> bool {
    let expected = Zeroizing::new(psk(prf, key, octets));
    bool::from(expected.as_slice().ct_eq(received))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IdType;

    #[test]
    fn the_shared_key_auth_covers_message_nonce_and_identity() {
        let id = Identification {
            id_type: IdType::FQDN,
            data: b"a.example".to_vec(),
        };
        let octets = signed_octets(Prf::HmacSha256, b"message", b"nonce", &[9; 32], &id);
        // message | nonce | prf(SK_p, ID type, 3 reserved bytes, ID).
        let maced = Prf::HmacSha256.prf(&[9; 32], &[&[2, 0, 0, 0], b"a.example"]);
        assert_eq!(octets, [&b"message"[..], b"nonce", &maced].concat());
        let auth = psk(Prf::HmacSha256, b"secret", &octets);
        let inner = Prf::HmacSha256.prf(b"secret", &[b"Key Pad for IKEv2"]);
        assert_eq!(*auth, *Prf::HmacSha256.prf(&inner, &[&octets]));
        assert!(psk_matches(Prf::HmacSha256, b"secret", &octets, &auth));
        assert!(!psk_matches(Prf::HmacSha256, b"Secret", &octets, &auth));
        assert!(!psk_matches(
            Prf::HmacSha256,
            b"secret",
            &octets,
            &auth[..31]
        ));
    }
}
