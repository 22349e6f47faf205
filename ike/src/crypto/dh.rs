//! The key exchanges of IKE SA_INIT and of CREATE_CHILD_SA: MODP groups
//! (RFC 3526), the NIST curves P-256 and P-384 (RFC 5903: a public value
//! is x | y, the shared secret is x), and Curve25519 (RFC 8031).

use super::modp;
use super::prf::Secret;
use crate::wire::DhGroup;
use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Encoding, U2048, U3072, U4096, Uint};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

/// A group this daemon can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Modp2048,
    Modp3072,
    Modp4096,
    Ecp256,
    Ecp384,
    Curve25519,
}

/// Why a peer's public value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhError {
    /// Not the length the group's values have.
    Length,
    /// Not a valid element: off the curve, 0, 1 or p - 1, or a
    /// Curve25519 value of small order (an all-zero secret).
    Invalid,
}

/// The bits of a MODP private exponent: twice the strength of the
/// largest group (RFC 3526 puts 4096 bits at about 150-240 bits).
const EXPONENT_BITS: usize = 512;

impl Group {
    /// The group a transform names, if this daemon has it.
    pub fn of(id: DhGroup) -> Option<Group> {
        Some(match id {
            DhGroup::MODP_2048 => Group::Modp2048,
            DhGroup::MODP_3072 => Group::Modp3072,
            DhGroup::MODP_4096 => Group::Modp4096,
            DhGroup::ECP_256 => Group::Ecp256,
            DhGroup::ECP_384 => Group::Ecp384,
            DhGroup::CURVE25519 => Group::Curve25519,
            _ => return None,
        })
    }

    /// Its transform ID.
    pub fn id(self) -> DhGroup {
        match self {
            Group::Modp2048 => DhGroup::MODP_2048,
            Group::Modp3072 => DhGroup::MODP_3072,
            Group::Modp4096 => DhGroup::MODP_4096,
            Group::Ecp256 => DhGroup::ECP_256,
            Group::Ecp384 => DhGroup::ECP_384,
            Group::Curve25519 => DhGroup::CURVE25519,
        }
    }

    /// The length of a public value (the KE payload's data).
    pub fn public_len(self) -> usize {
        match self {
            Group::Modp2048 => 256,
            Group::Modp3072 => 384,
            Group::Modp4096 => 512,
            Group::Ecp256 => 64,
            Group::Ecp384 => 96,
            Group::Curve25519 => 32,
        }
    }

    /// A fresh private value and its public value.
    pub fn generate(self, rng: &mut dyn CryptoRngCore) -> KeyPair {
        let private = match self {
            Group::Modp2048 | Group::Modp3072 | Group::Modp4096 => {
                let mut x = Zeroizing::new(vec![0u8; EXPONENT_BITS / 8]);
                rng.fill_bytes(&mut x);
                Private::Modp(x)
            }
            Group::Ecp256 => Private::P256(p256::SecretKey::random(&mut RngRef(rng))),
            Group::Ecp384 => Private::P384(p384::SecretKey::random(&mut RngRef(rng))),
            Group::Curve25519 => {
                Private::X25519(x25519_dalek::StaticSecret::random_from_rng(RngRef(rng)))
            }
        };
        KeyPair::new(self, private)
    }
}

/// A private value.
enum Private {
    /// The exponent's bytes, big-endian.
    Modp(Zeroizing<Vec<u8>>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    X25519(x25519_dalek::StaticSecret),
}

/// One side's private value and the public value it sends.
pub struct KeyPair {
    group: Group,
    private: Private,
    public: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({:?}, private hidden)", self.group)
    }
}

impl KeyPair {
    fn new(group: Group, private: Private) -> KeyPair {
        let public = match &private {
            Private::Modp(x) => modp_public(group, x),
            Private::P256(k) => k.public_key().to_encoded_point(false).as_bytes()[1..].to_vec(),
            Private::P384(k) => k.public_key().to_encoded_point(false).as_bytes()[1..].to_vec(),
            Private::X25519(k) => x25519_dalek::PublicKey::from(k).as_bytes().to_vec(),
        };
        KeyPair {
            group,
            private,
            public,
        }
    }

    /// A key pair from a known private value (big-endian for MODP and
    /// the curves, as RFC 7748 writes it for Curve25519): for tests.
    pub fn from_private(group: Group, private: &[u8]) -> Option<KeyPair> {
        let private = match group {
            Group::Modp2048 | Group::Modp3072 | Group::Modp4096 => {
                Private::Modp(Zeroizing::new(private.to_vec()))
            }
            Group::Ecp256 => Private::P256(p256::SecretKey::from_slice(private).ok()?),
            Group::Ecp384 => Private::P384(p384::SecretKey::from_slice(private).ok()?),
            Group::Curve25519 => {
                let bytes: [u8; 32] = private.try_into().ok()?;
                Private::X25519(x25519_dalek::StaticSecret::from(bytes))
            }
        };
        Some(KeyPair::new(group, private))
    }

    pub fn group(&self) -> Group {
        self.group
    }

    /// The public value, as the KE payload carries it.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret with the peer whose public value is `peer`, as
    /// IKE uses it (g^ir: padded to the modulus for MODP, x alone for
    /// the NIST curves).
    pub fn shared(&self, peer: &[u8]) -> Result<Secret, DhError> {
        if peer.len() != self.group.public_len() {
            return Err(DhError::Length);
        }
        match &self.private {
            Private::Modp(x) => modp_shared(self.group, x, peer),
            Private::P256(k) => {
                let point = sec1(peer);
                let peer =
                    p256::PublicKey::from_sec1_bytes(&point).map_err(|_| DhError::Invalid)?;
                let shared = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            Private::P384(k) => {
                let point = sec1(peer);
                let peer =
                    p384::PublicKey::from_sec1_bytes(&point).map_err(|_| DhError::Invalid)?;
                let shared = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            Private::X25519(k) => {
                let bytes: [u8; 32] = peer.try_into().map_err(|_| DhError::Length)?;
                let shared = k.diffie_hellman(&x25519_dalek::PublicKey::from(bytes));
                // RFC 8031 §2: an all-zero result means a small-order point.
                if !shared.was_contributory() {
                    return Err(DhError::Invalid);
                }
                Ok(Zeroizing::new(shared.as_bytes().to_vec()))
            }
        }
    }
}

/// An uncompressed SEC1 point from IKE's x | y.
fn sec1(xy: &[u8]) -> Vec<u8> {
    let mut point = Vec::with_capacity(xy.len() + 1);
    point.push(0x04);
    point.extend_from_slice(xy);
    point
}

fn modp_public(group: Group, x: &[u8]) -> Vec<u8> {
    match group {
        Group::Modp2048 => modp_pow::<{ U2048::LIMBS }>(modp::P2048, &[2], x).to_vec(),
        Group::Modp3072 => modp_pow::<{ U3072::LIMBS }>(modp::P3072, &[2], x).to_vec(),
        _ => modp_pow::<{ U4096::LIMBS }>(modp::P4096, &[2], x).to_vec(),
    }
}

fn modp_shared(group: Group, x: &[u8], peer: &[u8]) -> Result<Secret, DhError> {
    let shared = match group {
        Group::Modp2048 => modp_agree::<{ U2048::LIMBS }>(modp::P2048, peer, x)?,
        Group::Modp3072 => modp_agree::<{ U3072::LIMBS }>(modp::P3072, peer, x)?,
        _ => modp_agree::<{ U4096::LIMBS }>(modp::P4096, peer, x)?,
    };
    Ok(shared)
}

/// A big-endian number of at most `LIMBS` limbs, zero-extended.
fn uint<const LIMBS: usize>(bytes: &[u8]) -> Uint<LIMBS> {
    let mut full = vec![0u8; Uint::<LIMBS>::BYTES];
    let n = bytes.len().min(full.len());
    full[Uint::<LIMBS>::BYTES - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    Uint::<LIMBS>::from_be_slice(&full)
}

/// `base ^ exponent mod p`, big-endian, as long as the modulus.
fn modp_pow<const LIMBS: usize>(prime: &str, base: &[u8], exponent: &[u8]) -> Zeroizing<Vec<u8>>
where
    Uint<LIMBS>: Encoding,
{
    let p = Uint::<LIMBS>::from_be_hex(prime);
    let params = DynResidueParams::new(&p);
    let e = uint::<LIMBS>(exponent);
    let r = DynResidue::new(&uint::<LIMBS>(base), params).pow_bounded_exp(&e, exponent.len() * 8);
    Zeroizing::new(r.retrieve().to_be_bytes().as_ref().to_vec())
}

/// The shared secret with peer value `y`, which must lie in 1 < y < p - 1.
fn modp_agree<const LIMBS: usize>(prime: &str, y: &[u8], x: &[u8]) -> Result<Secret, DhError>
where
    Uint<LIMBS>: Encoding,
{
    let p = Uint::<LIMBS>::from_be_hex(prime);
    let value = uint::<LIMBS>(y);
    let top = p.wrapping_sub(&Uint::ONE);
    if value <= Uint::ONE || value >= top {
        return Err(DhError::Invalid);
    }
    Ok(modp_pow::<LIMBS>(prime, y, x))
}

/// `rand_core`'s traits for a borrowed generator, which the curve crates
/// take by value or by `&mut impl`.
struct RngRef<'a>(&'a mut dyn CryptoRngCore);

impl rand_core::RngCore for RngRef<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl rand_core::CryptoRng for RngRef<'_> {}
