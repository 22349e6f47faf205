//! IKEv2's cryptography from well-kept crates: the PRFs and `prf+`, the
//! key schedule, the key exchanges, the Encrypted payload, certificates
//! and signatures.

pub mod dh;
pub mod keys;
mod modp;
pub mod pki;
pub mod prf;
pub mod sk;

#[cfg(test)]
mod tests;
