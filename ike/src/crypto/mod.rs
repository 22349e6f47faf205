//! IKEv2's cryptography from well-kept crates: the PRFs and `prf+`, the
//! key schedule, the key exchanges, the Encrypted payload.

pub mod dh;
pub mod keys;
mod modp;
pub mod prf;
pub mod sk;

#[cfg(test)]
mod tests;
