//! The pure core of the userspace IPsec runtime: packet header views, the
//! SPD, the SAD, the transforms and the PF_KEY engine. It takes bytes, the
//! time and randomness as inputs and returns bytes and actions; it does no
//! I/O. The `ipsecd` crate is the shell that runs it.

#[cfg(test)]
mod allocations;
pub mod crypto;
pub mod engine;
mod hash;
pub mod offload;
pub mod packet;
pub mod random;
pub mod replay;
pub mod sad;
pub mod sequence;
pub mod spd;
pub mod too_big;
pub mod wire;
pub mod xform;
