//! The shell around the pure core: the control socket, signals, logging
//! and the event loop. Everything that touches the operating system lives
//! here.

pub mod cleartext;
pub mod clients;
pub mod control;
pub mod dataplane;
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
