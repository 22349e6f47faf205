//! IKEv2 (RFC 7296) for `iked`, as a pure protocol core: IKE messages
//! as bytes and values ([`wire`]). Like the runtime's engine, it does no
//! I/O: datagrams, PF_KEY messages, the time and randomness come in as
//! values, and what to send comes out as values.

pub mod crypto;
pub mod exchange;
pub mod install;
pub mod keyer;
pub mod policy;
pub mod wire;
