//! Unpredictable bytes for CBC IVs, from AES-128 in counter mode keyed
//! once with entropy the shell reads from the kernel. The pure core stays
//! free of system calls, and each IV costs one block encryption rather
//! than a `getrandom` call.

use aes::Aes128;
use ctr::cipher::{KeyIvInit, StreamCipher};

/// A keystream generator (the construction of NIST SP 800-90A's CTR_DRBG
/// without its reseeding).
pub struct Random {
    stream: ctr::Ctr128BE<Aes128>,
}

impl std::fmt::Debug for Random {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Random")
    }
}

impl Random {
    /// A generator keyed and started from `seed`, which must be secret and
    /// fresh (the shell reads it with `getrandom`).
    pub fn new(seed: &[u8; 32]) -> Random {
        let (key, iv) = seed.split_at(16);
        Random {
            stream: ctr::Ctr128BE::<Aes128>::new(key.into(), iv.into()),
        }
    }

    /// Fills `out` with the next bytes of the keystream.
    pub fn fill(&mut self, out: &mut [u8]) {
        out.fill(0);
        self.stream.apply_keystream(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_seed_and_never_repeat_within_one() {
        let mut a = Random::new(&[1; 32]);
        let mut b = Random::new(&[2; 32]);
        let (mut x, mut y, mut z) = ([0u8; 16], [0u8; 16], [0u8; 16]);
        a.fill(&mut x);
        a.fill(&mut y);
        b.fill(&mut z);
        assert_ne!(x, y);
        assert_ne!(x, z);
        assert_ne!(x, [0; 16]);
        // The same seed gives the same stream: the key is all there is.
        let mut c = Random::new(&[1; 32]);
        let mut w = [0u8; 16];
        c.fill(&mut w);
        assert_eq!(w, x);
    }
}
