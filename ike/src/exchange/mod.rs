//! The exchanges of IKEv2 and what they rest on: algorithm choice
//! (`suite`), authentication (`auth`), NAT detection (`nat`), selector
//! narrowing (`selectors`), the initial exchanges (`handshake`), an
//! authenticated SA's messages (`session`), and rekeying a Child SA
//! (`rekey`) or the IKE SA (`ike_rekey`).

pub mod auth;
pub mod cookie;
pub mod handshake;
pub mod ike_rekey;
pub mod nat;
pub mod rekey;
pub mod selectors;
pub mod session;
pub mod suite;
