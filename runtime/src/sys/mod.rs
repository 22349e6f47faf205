//! The shell around the pure core: the control socket, signals, logging
//! and the event loop. Everything that touches the operating system lives
//! here.

pub mod control;
pub mod log;
pub mod signals;
