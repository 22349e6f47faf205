//! Bridge mode's decisions: a learning bridge between Ethernet ports
//! (`mac_table`, `switch`) that drops what comes back round a loop
//! (`echoes`), on which the SPD and SAD will act for the IP
//! frames that cross it. Pure, like the rest of the engine: frames and
//! the time in, decisions out.

pub mod echoes;
pub mod mac_table;
pub mod switch;

pub use mac_table::{MacTable, PortId};
pub use switch::{Carries, FrameDrop, PortConfig, PortSet, Switch, Switched};
