//! What an AUTH payload proves (RFC 7296 §2.15): possession of the key,
//! over the sender's first message, the peer's nonce, and a MAC of the
//! sender's identity under SK_pi or SK_pr. The key is shared, or it is a
//! private key whose certificate the CERT payload carries (RFC 7427's
//! Digital Signature method).

use crate::crypto::pki::Pki;
use crate::crypto::prf::{Prf, Secret};
use crate::wire::{AuthMethod, Body, CertEncoding, Identification, Notify, NotifyType, Payload};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How this end proves itself, and what it takes from the peer.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A key both ends know.
    Psk(Zeroizing<Vec<u8>>),
    /// This end's key and certificate, and the authorities it trusts.
    Certificate(Arc<Pki>),
}

impl Credentials {
    /// The CERTREQ payload for IKE_SA_INIT: the authorities this end
    /// trusts, so that the peer sends its certificate.
    pub fn cert_request(&self) -> Option<Payload> {
        match self {
            Credentials::Psk(_) => None,
            Credentials::Certificate(pki) => Some(Payload::new(Body::CertReq {
                encoding: CertEncoding::X509_SIGNATURE,
                data: pki.authorities(),
            })),
        }
    }

    /// The SIGNATURE_HASH_ALGORITHMS notification for IKE_SA_INIT (RFC
    /// 7427 §4): without it, a peer may not sign with the Digital
    /// Signature method, and would fall back to SHA-1.
    pub fn hash_algorithms(&self) -> Option<Payload> {
        match self {
            Credentials::Psk(_) => None,
            // SHA2-256, SHA2-384, SHA2-512.
            Credentials::Certificate(_) => Some(Payload::new(Body::Notify(Notify::new(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                vec![0, 2, 0, 3, 0, 4],
            )))),
        }
    }

    /// This end's CERT payload, if any, and its AUTH payload over
    /// `octets`; `None` when the key cannot sign.
    pub fn prove(&self, prf: Prf, octets: &[u8]) -> Option<Vec<Payload>> {
        Some(match self {
            Credentials::Psk(key) => vec![Payload::new(Body::Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: psk(prf, key, octets).to_vec(),
            })],
            Credentials::Certificate(pki) => vec![
                Payload::new(Body::Cert {
                    encoding: CertEncoding::X509_SIGNATURE,
                    data: pki.certificate().to_vec(),
                }),
                Payload::new(Body::Auth {
                    method: AuthMethod::DIGITAL_SIGNATURE,
                    data: pki.sign_auth(octets).ok()?,
                }),
            ],
        })
    }

    /// Whether the peer's AUTH (`method`, `data`) over `octets`, with the
    /// certificates of its CERT payloads, proves the identity `id` at
    /// `unix` seconds.
    pub fn check(
        &self,
        prf: Prf,
        octets: &[u8],
        id: &Identification,
        (method, data): (AuthMethod, &[u8]),
        certs: &[Vec<u8>],
        unix: u64,
    ) -> bool {
        match self {
            Credentials::Psk(key) => {
                method == AuthMethod::SHARED_KEY_MIC && psk_matches(prf, key, octets, data)
            }
            Credentials::Certificate(pki) => {
                method == AuthMethod::DIGITAL_SIGNATURE
                    && pki
                        .verify_peer(certs, id, unix)
                        .is_ok_and(|key| key.verify_auth(octets, data).is_ok())
            }
        }
    }
}

/// The X.509 certificates among `payloads`, in order (the peer's own
/// first).
pub fn certificates(payloads: &[Payload]) -> Vec<Vec<u8>> {
    payloads
        .iter()
        .filter_map(|p| match &p.body {
            Body::Cert { encoding, data } if *encoding == CertEncoding::X509_SIGNATURE => {
                Some(data.clone())
            }
            _ => None,
        })
        .collect()
}

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
