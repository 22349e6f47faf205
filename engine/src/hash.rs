//! A fast hash for table keys the configuration chooses (flows, SAs).
//!
//! The standard hasher is built to resist keys chosen by an attacker and
//! costs tens of nanoseconds per key; table keys here come from policy, and
//! packets only probe. A multiply-rotate hash with a per-table random seed
//! is enough, and several times faster.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Builds [`FastHasher`]s with a seed drawn once per table.
#[derive(Debug, Clone)]
pub struct FastHash {
    seed: u64,
}

impl Default for FastHash {
    fn default() -> FastHash {
        // RandomState is randomly keyed; hashing a constant draws from it.
        FastHash {
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.seed)
    }
}

#[derive(Debug, Clone)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_u128(&mut self, n: u128) {
        self.add(n as u64);
        self.add((n >> 64) as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // Fold the high bits down: hash tables index with the low ones.
        self.0 ^ (self.0 >> 29)
    }
}
