//! Where each station is: the learning bridge's address cache. A
//! frame's source address says which port its sender is behind; an entry
//! not refreshed for [`MAX_AGE`] seconds is forgotten, as is one whose
//! station shows up behind another port. The table is bounded: when it
//! is full of live entries nothing new is learnt, and frames to stations
//! it does not know are flooded, which is correct, only slower.

use crate::wire::ethernet::Address;
use std::collections::HashMap;

/// A bridge port, by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u8);

/// How long an entry lives without frames from its station (IEEE
/// 802.1D's default, and OpenBSD's `brt_age`).
pub const MAX_AGE: u64 = 240;

/// Stations remembered at most, as OpenBSD's default `maxaddr`.
pub const DEFAULT_CAPACITY: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    port: PortId,
    seen: u64,
}

/// What learning a source address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learnt {
    /// A station not known before.
    New,
    /// Known behind this port: its entry lives on.
    Refreshed,
    /// Known behind another port: it moved (or is spoofed, or there is a
    /// loop between the ports).
    Moved { from: PortId },
    /// Not learnt: a group or zero address, or a full table.
    Ignored,
}

#[derive(Debug, Clone)]
pub struct MacTable {
    entries: HashMap<Address, Entry>,
    capacity: usize,
}

impl Default for MacTable {
    fn default() -> MacTable {
        MacTable::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MacTable {
    pub fn with_capacity(capacity: usize) -> MacTable {
        MacTable {
            entries: HashMap::with_capacity(capacity),
            capacity,
        }
    }

    /// Notes that `src` sent a frame that arrived on `port` at `now`.
    pub fn learn(&mut self, src: Address, port: PortId, now: u64) -> Learnt {
        if !src.is_unicast() {
            return Learnt::Ignored;
        }
        if let Some(entry) = self.entries.get_mut(&src) {
            let was = entry.port;
            *entry = Entry { port, seen: now };
            return if was == port {
                Learnt::Refreshed
            } else {
                Learnt::Moved { from: was }
            };
        }
        if self.entries.len() >= self.capacity {
            self.expire(now);
            if self.entries.len() >= self.capacity {
                return Learnt::Ignored;
            }
        }
        self.entries.insert(src, Entry { port, seen: now });
        Learnt::New
    }

    /// The port `dst` is behind, if it is known and its entry still
    /// lives at `now`.
    pub fn lookup(&self, dst: Address, now: u64) -> Option<PortId> {
        self.entries
            .get(&dst)
            .filter(|e| now.saturating_sub(e.seen) < MAX_AGE)
            .map(|e| e.port)
    }

    /// Forgets the entries that have not been refreshed for [`MAX_AGE`].
    pub fn expire(&mut self, now: u64) {
        self.entries
            .retain(|_, e| now.saturating_sub(e.seen) < MAX_AGE);
    }

    /// Forgets every station behind `port` (its link went down).
    pub fn forget_port(&mut self, port: PortId) {
        self.entries.retain(|_, e| e.port != port);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station(n: u8) -> Address {
        Address([0x02, 0, 0, 0, 0, n])
    }

    #[test]
    fn stations_are_learnt_moved_and_aged_out() {
        let (a, b) = (PortId(0), PortId(1));
        let mut t = MacTable::default();
        assert_eq!(t.learn(station(1), a, 10), Learnt::New);
        assert_eq!(t.learn(station(1), a, 20), Learnt::Refreshed);
        assert_eq!(t.lookup(station(1), 20 + MAX_AGE - 1), Some(a));
        assert_eq!(t.lookup(station(1), 20 + MAX_AGE), None);
        assert_eq!(t.learn(station(1), b, 30), Learnt::Moved { from: a });
        assert_eq!(t.lookup(station(1), 30), Some(b));
        assert_eq!(t.lookup(station(2), 30), None);
        // Group and zero sources say nothing about where anyone is.
        assert_eq!(t.learn(Address::BROADCAST, a, 30), Learnt::Ignored);
        assert_eq!(
            t.learn(Address([0x01, 0, 0x5e, 0, 0, 1]), a, 30),
            Learnt::Ignored
        );
        assert_eq!(t.learn(Address([0; 6]), a, 30), Learnt::Ignored);
        t.forget_port(b);
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_learns_only_in_place_of_the_dead() {
        let mut t = MacTable::with_capacity(3);
        for n in 0..3 {
            assert_eq!(t.learn(station(n), PortId(0), n.into()), Learnt::New);
        }
        assert_eq!(t.learn(station(9), PortId(0), 10), Learnt::Ignored);
        assert_eq!(t.len(), 3);
        // Once the first has aged out there is room again.
        assert_eq!(t.learn(station(9), PortId(0), MAX_AGE), Learnt::New);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(station(0), MAX_AGE), None);
    }
}
