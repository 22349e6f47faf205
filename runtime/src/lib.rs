//! The runtime: a pure core (packet header views, the SPD, the SAD and the
//! PF_KEY engine, which take bytes and time and return bytes) and a thin
//! shell under [`sys`] (the control socket, signals, logging) that the
//! `ipsecd` binary runs. Only `sys` does I/O.

pub mod crypto;
pub mod engine;
mod hash;
pub mod offload;
pub mod random;
pub mod replay;
pub mod sad;
pub mod sequence;
pub mod spd;
pub mod sys;
pub mod too_big;
pub mod wire;
pub mod xform;
