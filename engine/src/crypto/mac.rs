//! AH's and ESP's MACs: HMAC, truncated as RFC 2403 (MD5), RFC 2404
//! (SHA-1) and RFC 4868 (SHA-2) say.

use std::fmt;
use std::mem::ManuallyDrop;

use zeroize::Zeroize;

use hmac::Hmac;
use hmac::digest::{KeyInit, Output};
use md5::Md5;
use pfkey::AuthAlg;
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use super::facts;
use super::{BadIcv, KeyError};

/// An HMAC keyed for one SA, in one direction.
///
/// It holds the keyed hash states, so the key is processed once per SA,
/// not once per packet.
#[derive(Clone)]
pub struct Mac {
    /// ManuallyDrop: [`Drop`] wipes it and nothing may read it after.
    keyed: ManuallyDrop<Keyed>,
    icv: usize,
}

impl Drop for Mac {
    // The crate's one exception to its ban on unsafe code.
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // hmac 0.12 cannot zeroize, and its keyed states are as good as
        // the key. They are plain words and buffers with nothing on the
        // heap, so their bytes are overwritten where they lie.
        let at = std::ptr::from_mut::<Keyed>(&mut self.keyed).cast::<u8>();
        // SAFETY: `at` covers exactly the Keyed value, which is never
        // read or dropped after this (it sits in a ManuallyDrop).
        let bytes = unsafe { std::slice::from_raw_parts_mut(at, std::mem::size_of::<Keyed>()) };
        bytes.zeroize();
    }
}

#[derive(Clone)]
enum Keyed {
    Md5(Hmac<Md5>),
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
    Sha512(Hmac<Sha512>),
}

impl Mac {
    /// Keys `alg` with the PF_KEY key material, which must be exactly as
    /// long as OpenBSD requires: MD5 16 bytes, SHA-1 20, SHA2-256 32,
    /// SHA2-384 48, SHA2-512 64.
    pub fn new(alg: AuthAlg, key: &[u8]) -> Result<Mac, KeyError> {
        let facts = facts::mac(alg)
            .filter(|f| f.built)
            .ok_or(KeyError::Unsupported)?;
        if key.len() != facts.key {
            return Err(KeyError::BadLength);
        }
        Mac::any_length(alg, key)
    }

    /// Keys `alg` with a key of any length, as HMAC itself allows (RFC
    /// 2104); [`new`](Self::new) holds PF_KEY to the lengths OpenBSD does.
    pub(super) fn any_length(alg: AuthAlg, key: &[u8]) -> Result<Mac, KeyError> {
        fn keyed<M: KeyInit>(key: &[u8]) -> M {
            M::new_from_slice(key).expect("HMAC takes keys of any length")
        }
        let keyed = match alg {
            AuthAlg::MD5HMAC => Keyed::Md5(keyed(key)),
            AuthAlg::SHA1HMAC => Keyed::Sha1(keyed(key)),
            AuthAlg::X_SHA2_256 => Keyed::Sha256(keyed(key)),
            AuthAlg::X_SHA2_384 => Keyed::Sha384(keyed(key)),
            AuthAlg::X_SHA2_512 => Keyed::Sha512(keyed(key)),
            _ => return Err(KeyError::Unsupported),
        };
        let icv = facts::mac(alg).map_or(0, |f| f.icv);
        Ok(Mac {
            keyed: ManuallyDrop::new(keyed),
            icv,
        })
    }

    /// Truncated ICV length: half the hash for SHA-2 (RFC 4868), 96 bits
    /// for MD5 and SHA-1.
    pub fn icv_len(&self) -> usize {
        self.icv
    }

    /// Writes the truncated HMAC of the concatenation of `parts` into
    /// `icv`.
    ///
    /// # Panics
    ///
    /// If `icv.len()` is not [`icv_len`](Self::icv_len).
    pub fn sign(&self, parts: &[&[u8]], icv: &mut [u8]) {
        let len = self.icv_len();
        self.with_full(parts, |full| icv.copy_from_slice(&full[..len]));
    }

    /// Checks `icv` against the truncated HMAC of the concatenation of
    /// `parts`, in constant time. An ICV of the wrong length is a mismatch.
    pub fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> Result<(), BadIcv> {
        let len = self.icv_len();
        let equal = self.with_full(parts, |full| full[..len].ct_eq(icv));
        if bool::from(equal) {
            Ok(())
        } else {
            Err(BadIcv)
        }
    }

    /// The full, untruncated HMAC, for checking against RFC vectors.
    #[cfg(test)]
    pub(super) fn untruncated(&self, parts: &[&[u8]]) -> Vec<u8> {
        self.with_full(parts, <[u8]>::to_vec)
    }

    /// Runs `f` on the untruncated HMAC of the concatenation of `parts`,
    /// computed on a copy of the keyed state.
    fn with_full<R>(&self, parts: &[&[u8]], f: impl FnOnce(&[u8]) -> R) -> R {
        fn run<M: hmac::Mac + Clone>(keyed: &M, parts: &[&[u8]]) -> Output<M> {
            let mut mac = keyed.clone();
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes()
        }
        match &*self.keyed {
            Keyed::Md5(m) => f(&run(m, parts)),
            Keyed::Sha1(m) => f(&run(m, parts)),
            Keyed::Sha256(m) => f(&run(m, parts)),
            Keyed::Sha384(m) => f(&run(m, parts)),
            Keyed::Sha512(m) => f(&run(m, parts)),
        }
    }
}

/// Names the algorithm, never the key.
impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alg = match *self.keyed {
            Keyed::Md5(_) => "hmac-md5-96",
            Keyed::Sha1(_) => "hmac-sha1-96",
            Keyed::Sha256(_) => "hmac-sha2-256-128",
            Keyed::Sha384(_) => "hmac-sha2-384-192",
            Keyed::Sha512(_) => "hmac-sha2-512-256",
        };
        f.debug_struct("Mac")
            .field("alg", &format_args!("{alg}"))
            .finish_non_exhaustive()
    }
}
