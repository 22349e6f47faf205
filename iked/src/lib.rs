//! `iked`: the IKEv2 key manager of `ipsecd`. Everything it decides is in
//! the pure core (`ipsec_ike::keyer`); this shell owns the sockets (UDP
//! port 500 on the policies' addresses, the PF_KEY connection to `ipsecd`,
//! the control socket `ipsecctl -i` sends `ike` rules to), the clock, the
//! signals and the randomness, and carries out what the core returns.

mod args;
mod control;
mod daemon;
pub mod ikectl;
mod pki_files;
mod status;
mod udp;

pub use daemon::main;
