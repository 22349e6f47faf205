//! The exchanges of IKEv2 and what they rest on: algorithm choice
//! (`suite`), authentication (`auth`), NAT detection (`nat`).

pub mod auth;
pub mod handshake;
pub mod nat;
pub mod selectors;
pub mod suite;
