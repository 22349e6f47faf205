//! ESP and AH's ciphers and MACs, keyed from PF_KEY key material.
//!
//! Pure: no I/O, no randomness (ESP chooses IVs). Keys are checked and
//! expanded once, when an SA is built, so the per-packet work is the
//! cipher and MAC alone. Key material never outlives its [`Cipher`] or
//! [`Mac`]: the expanded keys zeroize themselves on drop, and so do the
//! salts and nonces kept beside them.

pub mod cipher;
pub mod facts;
pub mod mac;
#[cfg(test)]
mod tests;

use std::fmt;

pub use cipher::Cipher;
pub use mac::Mac;

/// Why a key could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Not an algorithm this module implements for that purpose.
    Unsupported,
    /// The algorithm does not take a key of that length.
    BadLength,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::Unsupported => "unsupported algorithm",
            KeyError::BadLength => "bad key length for the algorithm",
        })
    }
}

impl std::error::Error for KeyError {}

/// The ICV did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadIcv;

impl fmt::Display for BadIcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("integrity check value mismatch")
    }
}

impl std::error::Error for BadIcv {}
