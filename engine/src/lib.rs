//! The pure core of the userspace IPsec runtime: packet header views, the
//! SPD, the SAD, the transforms and the PF_KEY engine. It takes bytes, the
//! time and randomness as inputs and returns bytes and actions; it does no
//! I/O. The `ipsecd` crate is the shell that runs it.
//!
//! No unsafe code, with one exception: [`crypto::Mac`] wipes its keyed
//! HMAC states byte by byte when dropped, because the hmac crate cannot
//! zeroize them. (Test builds also count allocations through a global
//! allocator.)

#![deny(unsafe_code)]

#[cfg(test)]
mod allocations;
pub mod bridge;
pub mod crypto;
pub mod engine;
pub mod filter;
mod hash;
pub mod offload;
pub mod packet;
pub mod random;
pub mod replay;
pub mod sa;
pub mod sad;
pub mod sequence;
pub mod spd;
pub mod too_big;
pub mod wire;
pub mod xform;
