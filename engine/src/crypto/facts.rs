//! What each algorithm is, in one place: the key sizes PF_KEY may give
//! it (as OpenBSD's kernel checks them), and what it makes ESP and AH
//! carry per packet. The SAD's checks, the transforms' overhead and the
//! keyed ciphers and MACs all read this table.

use pfkey::{AuthAlg, EncAlg};

/// The key sizes, in bytes, an algorithm takes from PF_KEY (for ciphers
/// with a salt or nonce, the 4 bytes of it included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySizes {
    Each(&'static [usize]),
    Between(usize, usize),
}

impl KeySizes {
    pub fn allows(self, len: usize) -> bool {
        match self {
            KeySizes::Each(sizes) => sizes.contains(&len),
            KeySizes::Between(min, max) => (min..=max).contains(&len),
        }
    }
}

/// An encryption algorithm as ESP uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherFacts {
    pub alg: EncAlg,
    pub keys: KeySizes,
    /// IV bytes carried in each packet.
    pub iv: usize,
    /// What the payload is padded to a multiple of (before ESP's 4).
    pub block: usize,
    /// ICV bytes a combined cipher makes itself; 0 for the others, which
    /// need a MAC for integrity.
    pub icv: usize,
    /// The IV must be unique, not unpredictable: ESP sends its sequence
    /// number (CTR, GCM, GMAC, ChaCha20-Poly1305).
    pub counter_iv: bool,
    /// Whether this host can key it; OpenBSD takes keys for some it
    /// cannot.
    pub built: bool,
}

/// An authentication algorithm as ESP and AH use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacFacts {
    pub alg: AuthAlg,
    /// The one key size PF_KEY may give it.
    pub key: usize,
    /// The truncated ICV: 96 bits for MD5, SHA-1 and RIPEMD-160, half
    /// the hash for SHA-2 (RFC 4868).
    pub icv: usize,
    pub built: bool,
}

const AES: KeySizes = KeySizes::Each(&[16, 24, 32]);
/// AES keys with a 4-byte salt or nonce behind them.
const AES_SALTED: KeySizes = KeySizes::Each(&[20, 28, 36]);

pub const CIPHERS: [CipherFacts; 12] = [
    plain(EncAlg::NONE, KeySizes::Each(&[0]), 0, 1),
    plain(EncAlg::NULL, KeySizes::Between(0, 256), 0, 1),
    plain(EncAlg::TRIPLE_DES_CBC, KeySizes::Each(&[24]), 8, 8),
    plain(EncAlg::X_AES, AES, 16, 16),
    CipherFacts {
        counter_iv: true,
        ..plain(EncAlg::X_AESCTR, AES_SALTED, 8, 1)
    },
    combined(EncAlg::X_AESGCM8, AES_SALTED, 8),
    combined(EncAlg::X_AESGCM12, AES_SALTED, 12),
    combined(EncAlg::X_AESGCM16, AES_SALTED, 16),
    combined(EncAlg::X_AESGMAC, AES_SALTED, 16),
    combined(EncAlg::X_CHACHA20POLY1305, KeySizes::Each(&[36]), 16),
    CipherFacts {
        built: false,
        ..plain(EncAlg::X_CAST, KeySizes::Between(5, 16), 8, 8)
    },
    CipherFacts {
        built: false,
        ..plain(EncAlg::X_BLF, KeySizes::Between(5, 56), 8, 8)
    },
];

pub const MACS: [MacFacts; 6] = [
    hmac(AuthAlg::MD5HMAC, 16, 12),
    hmac(AuthAlg::SHA1HMAC, 20, 12),
    MacFacts {
        built: false,
        ..hmac(AuthAlg::X_RIPEMD160HMAC, 20, 12)
    },
    hmac(AuthAlg::X_SHA2_256, 32, 16),
    hmac(AuthAlg::X_SHA2_384, 48, 24),
    hmac(AuthAlg::X_SHA2_512, 64, 32),
];

/// The facts of an encryption algorithm; `None` for one PF_KEY names
/// that ESP has no use for here.
pub fn cipher(alg: EncAlg) -> Option<&'static CipherFacts> {
    CIPHERS.iter().find(|c| c.alg == alg)
}

/// The facts of an authentication algorithm; `None` for NONE and for
/// the names combined ciphers go by.
pub fn mac(alg: AuthAlg) -> Option<&'static MacFacts> {
    MACS.iter().find(|m| m.alg == alg)
}

const fn plain(alg: EncAlg, keys: KeySizes, iv: usize, block: usize) -> CipherFacts {
    CipherFacts {
        alg,
        keys,
        iv,
        block,
        icv: 0,
        counter_iv: false,
        built: true,
    }
}

const fn combined(alg: EncAlg, keys: KeySizes, icv: usize) -> CipherFacts {
    CipherFacts {
        icv,
        counter_iv: true,
        ..plain(alg, keys, 8, 1)
    }
}

const fn hmac(alg: AuthAlg, key: usize, icv: usize) -> MacFacts {
    MacFacts {
        alg,
        key,
        icv,
        built: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_is_in_the_table_once() {
        for c in &CIPHERS {
            assert_eq!(CIPHERS.iter().filter(|o| o.alg == c.alg).count(), 1);
        }
        for m in &MACS {
            assert_eq!(MACS.iter().filter(|o| o.alg == m.alg).count(), 1);
        }
        assert!(cipher(EncAlg(250)).is_none());
        assert!(mac(AuthAlg::NONE).is_none());
    }

    #[test]
    fn key_sizes() {
        assert!(KeySizes::Each(&[16, 24, 32]).allows(24));
        assert!(!KeySizes::Each(&[16, 24, 32]).allows(20));
        assert!(KeySizes::Between(5, 16).allows(5) && KeySizes::Between(5, 16).allows(16));
        assert!(!KeySizes::Between(5, 16).allows(17));
    }
}
