//! The exchanges of IKEv2 and what they rest on: algorithm choice
//! (`suite`), authentication (`auth`), NAT detection (`nat`).

pub mod auth;
pub mod nat;
pub mod suite;
