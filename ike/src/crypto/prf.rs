//! The pseudorandom functions of IKEv2 and `prf+` (RFC 7296 §2.13).

use crate::wire::PrfId;
use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

/// A negotiated PRF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

/// Bytes that may be keys: wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

impl Prf {
    /// The PRF a transform names, if this daemon has it.
    pub fn of(id: PrfId) -> Option<Prf> {
        Some(match id {
            PrfId::HMAC_SHA1 => Prf::HmacSha1,
            PrfId::HMAC_SHA2_256 => Prf::HmacSha256,
            PrfId::HMAC_SHA2_384 => Prf::HmacSha384,
            PrfId::HMAC_SHA2_512 => Prf::HmacSha512,
            _ => return None,
        })
    }

    /// Its transform ID.
    pub fn id(self) -> PrfId {
        match self {
            Prf::HmacSha1 => PrfId::HMAC_SHA1,
            Prf::HmacSha256 => PrfId::HMAC_SHA2_256,
            Prf::HmacSha384 => PrfId::HMAC_SHA2_384,
            Prf::HmacSha512 => PrfId::HMAC_SHA2_512,
        }
    }

    /// The output length, which is also the preferred key length (SK_d,
    /// SK_pi and SK_pr are this long).
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// `prf(key, data)`, over the concatenation of `data`'s parts.
    pub fn prf(self, key: &[u8], data: &[&[u8]]) -> Secret {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[&[u8]]) -> Secret {
            // HMAC takes a key of any length.
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any length");
            for part in data {
                mac.update(part);
            }
            Zeroizing::new(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Prf::HmacSha1 => run::<Hmac<sha1::Sha1>>(key, data),
            Prf::HmacSha256 => run::<Hmac<sha2::Sha256>>(key, data),
            Prf::HmacSha384 => run::<Hmac<sha2::Sha384>>(key, data),
            Prf::HmacSha512 => run::<Hmac<sha2::Sha512>>(key, data),
        }
    }

    /// `prf+(key, seed)`, its first `len` bytes: T1 = prf(K, S | 0x01),
    /// Tn = prf(K, Tn-1 | S | n), concatenated. At most 255 blocks.
    pub fn prf_plus(self, key: &[u8], seed: &[&[u8]], len: usize) -> Secret {
        assert!(
            len <= 255 * self.output_len(),
            "prf+ gives at most 255 blocks"
        );
        let mut out = Zeroizing::new(Vec::with_capacity(len + self.output_len()));
        let mut last = Zeroizing::new(Vec::new());
        let mut n = 1u8;
        while out.len() < len {
            let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
            parts.push(&last);
            parts.extend_from_slice(seed);
            let counter = [n];
            parts.push(&counter);
            last = self.prf(key, &parts);
            out.extend_from_slice(&last);
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        out
    }
}
