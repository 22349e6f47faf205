//! The key schedule (RFC 7296 §2.14, §2.17, §2.18): SKEYSEED from the
//! nonces and the shared secret, the IKE SA's seven keys from it, a Child
//! SA's keying material from SK_d, and a rekeyed IKE SA's SKEYSEED from
//! the old SK_d.

use super::prf::{Prf, Secret};
use zeroize::Zeroizing;

/// How long each of an IKE SA's keys is, as its suite fixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLengths {
    /// SK_ai and SK_ar: the integrity key; 0 with an AEAD cipher.
    pub integ: usize,
    /// SK_ei and SK_er: the cipher key, with an AEAD's salt.
    pub encr: usize,
}

/// An IKE SA's keys. `i` keys protect what the original initiator sends,
/// `r` keys what the original responder sends.
#[derive(Debug, Clone)]
pub struct IkeKeys {
    /// What Child SAs' keys and a rekeyed IKE SA's come from.
    pub d: Secret,
    pub ai: Secret,
    pub ar: Secret,
    pub ei: Secret,
    pub er: Secret,
    /// What the AUTH payloads are computed with.
    pub pi: Secret,
    pub pr: Secret,
}

/// SKEYSEED = prf(Ni | Nr, g^ir).
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], shared: &[u8]) -> Secret {
    let key = Zeroizing::new([ni, nr].concat());
    prf.prf(&key, &[shared])
}

/// A rekeyed IKE SA's SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr).
pub fn rekey_skeyseed(prf: Prf, old_d: &[u8], shared: &[u8], ni: &[u8], nr: &[u8]) -> Secret {
    prf.prf(old_d, &[shared, ni, nr])
}

impl IkeKeys {
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} =
    /// prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
    pub fn derive(
        prf: Prf,
        lengths: KeyLengths,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> IkeKeys {
        let p = prf.output_len();
        let total = 3 * p + 2 * lengths.integ + 2 * lengths.encr;
        let (spi_i, spi_r) = (spi_i.to_be_bytes(), spi_r.to_be_bytes());
        let stream = prf.prf_plus(skeyseed, &[ni, nr, &spi_i, &spi_r], total);
        let mut at = 0;
        let mut take = |n: usize| {
            let key = Zeroizing::new(stream[at..at + n].to_vec());
            at += n;
            key
        };
        IkeKeys {
            d: take(p),
            ai: take(lengths.integ),
            ar: take(lengths.integ),
            ei: take(lengths.encr),
            er: take(lengths.encr),
            pi: take(p),
            pr: take(p),
        }
    }
}

/// A Child SA's keying material: prf+(SK_d, [g^ir (new) |] Ni | Nr),
/// `len` bytes. The initiator-to-responder SA's keys come first, each
/// SA's cipher key before its integrity key.
pub fn child_keymat(
    prf: Prf,
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Secret {
    match shared {
        Some(g) => prf.prf_plus(sk_d, &[g, ni, nr], len),
        None => prf.prf_plus(sk_d, &[ni, nr], len),
    }
}
