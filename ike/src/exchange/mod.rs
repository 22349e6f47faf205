//! The exchanges of IKEv2 and what they rest on: algorithm choice
//! (`suite`), authentication (`auth`), NAT detection (`nat`), selector
//! narrowing (`selectors`), the initial exchanges (`handshake`), and an
//! authenticated SA's messages (`session`).

pub mod auth;
pub mod cookie;
pub mod handshake;
pub mod nat;
pub mod rekey;
pub mod selectors;
pub mod session;
pub mod suite;
