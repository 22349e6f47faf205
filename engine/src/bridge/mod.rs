//! Bridge mode's decisions: a learning bridge between Ethernet ports
//! (`mac_table`, `switch`) that drops what comes back round a loop
//! (`echoes`), on which the SPD and SAD act for the IP frames that
//! cross it, and which knows each IP address's station (`neighbours`) for
//! what an SA under its own address opens. Pure, like the rest of the engine: frames and
//! the time in, decisions out.

pub mod echoes;
pub mod mac_table;
pub mod neighbours;
pub mod switch;

pub use mac_table::{MacTable, PortId};
pub use neighbours::Neighbours;
pub use switch::{Carries, FrameDrop, PortConfig, PortSet, Switch, Switched};
