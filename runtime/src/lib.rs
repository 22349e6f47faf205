//! The runtime's pure core: the security policy database and, to come, the
//! SA database, the PF_KEY engine and packet processing. Nothing here does
//! I/O; the daemon's shell will live under `sys/`.

pub mod engine;
mod hash;
pub mod sad;
pub mod spd;
