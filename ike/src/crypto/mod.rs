//! IKEv2's cryptography from well-kept crates: the PRFs and `prf+`, the
//! key schedule, the key exchanges.

pub mod dh;
pub mod keys;
mod modp;
pub mod prf;

#[cfg(test)]
mod tests;
