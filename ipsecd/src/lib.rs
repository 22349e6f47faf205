//! The daemon around the pure engine: everything `ipsecd` does that
//! touches the operating system lives here, and nothing else does. The
//! event loop reads the control socket, `enc0` and the peer sockets, hands
//! what it read to the engine with the time, and carries out what the
//! engine returns.

mod args;
pub mod bridge;
pub mod cleartext;
pub mod clients;
pub mod clock;
pub mod control;
mod daemon;
pub mod dataplane;
pub mod filter;
pub mod log;
pub mod memory;
pub mod net;
pub mod netlink;
pub mod pcap;
pub mod private;
pub mod privileges;
pub mod routes;
pub mod saved;
pub mod signals;
pub mod tun;

pub use daemon::{daemonize, main};
