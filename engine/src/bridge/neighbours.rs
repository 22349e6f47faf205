//! Which station each IP address is reached through, as the bridged
//! hosts themselves say: an IP frame's source address is its sender's
//! station, and its destination address is reached through the station
//! the sender wrote to (the host itself on the segment, or its router).
//!
//! The bridge needs this only for packets it did not see cross: those an
//! SA under the bridge's own address opened, which go on to the bridged
//! host as the station it wrote to would have sent them. Entries age and
//! the table is bounded as the MAC table is; a full table learns nothing
//! new, and a packet for an address it does not know goes to the host's
//! stack instead.

use super::mac_table::MAX_AGE;
use crate::wire::ethernet::Address;
use crate::wire::{ipv4, ipv6};
use std::collections::HashMap;
use std::net::IpAddr;

/// Addresses remembered at most: a segment's hosts and, through a
/// router, the hosts they talk to.
pub const DEFAULT_CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    station: Address,
    seen: u64,
}

#[derive(Debug, Clone)]
pub struct Neighbours {
    entries: HashMap<IpAddr, Entry>,
    capacity: usize,
}

impl Default for Neighbours {
    fn default() -> Neighbours {
        Neighbours::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Neighbours {
    pub fn with_capacity(capacity: usize) -> Neighbours {
        Neighbours {
            entries: HashMap::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            capacity,
        }
    }

    /// Learns from the IP `packet` of a frame from station `src` to
    /// station `dst`, at `now`.
    pub fn learn_from(&mut self, packet: &[u8], src: Address, dst: Address, now: u64) {
        if let Some((from, to)) = addresses(packet) {
            self.learn(from, src, now);
            self.learn(to, dst, now);
        }
    }

    /// Notes that `addr` is reached through `station` at `now`.
    pub fn learn(&mut self, addr: IpAddr, station: Address, now: u64) {
        if !station.is_unicast() || addr.is_unspecified() || addr.is_multicast() {
            return;
        }
        let entry = Entry { station, seen: now };
        if let Some(known) = self.entries.get_mut(&addr) {
            *known = entry;
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries
                .retain(|_, e| now.saturating_sub(e.seen) < MAX_AGE);
            if self.entries.len() >= self.capacity {
                return;
            }
        }
        self.entries.insert(addr, entry);
    }

    /// The station `addr` is reached through, if known and fresh at `now`.
    pub fn lookup(&self, addr: IpAddr, now: u64) -> Option<Address> {
        self.entries
            .get(&addr)
            .filter(|e| now.saturating_sub(e.seen) < MAX_AGE)
            .map(|e| e.station)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The source and destination of an IPv4 or IPv6 packet.
pub fn addresses(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match packet.first()? >> 4 {
        4 => {
            let p = ipv4::Packet::new_checked(packet).ok()?;
            Some((p.src_addr().into(), p.dst_addr().into()))
        }
        6 => {
            let p = ipv6::Packet::new_checked(packet).ok()?;
            Some((p.src_addr().into(), p.dst_addr().into()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station(n: u8) -> Address {
        Address([0x02, 0, 0, 0, 0, n])
    }

    fn packet(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut bytes = vec![0u8; 28];
        let repr = ipv4::Repr {
            src: src.into(),
            dst: dst.into(),
            protocol: 17,
            payload_len: 8,
            tos: 0,
            ttl: 64,
            ident: 1,
            dont_fragment: false,
        };
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        bytes
    }

    #[test]
    fn a_frame_says_who_sent_it_and_through_whom_its_destination_is_reached() {
        let mut table = Neighbours::default();
        // Host .1 (station 1) writes to 10.8.0.1 through its router (station 9).
        table.learn_from(
            &packet([10, 9, 0, 1], [10, 8, 0, 1]),
            station(1),
            station(9),
            0,
        );
        assert_eq!(
            table.lookup("10.9.0.1".parse().unwrap(), 10),
            Some(station(1))
        );
        assert_eq!(
            table.lookup("10.8.0.1".parse().unwrap(), 10),
            Some(station(9))
        );
        assert_eq!(table.lookup("10.8.0.2".parse().unwrap(), 10), None);
        // Broadcast is no station; entries age.
        table.learn_from(
            &packet([10, 9, 0, 3], [255, 255, 255, 255]),
            station(3),
            Address::BROADCAST,
            0,
        );
        assert_eq!(table.lookup("255.255.255.255".parse().unwrap(), 1), None);
        assert_eq!(table.lookup("10.9.0.1".parse().unwrap(), MAX_AGE), None);
        // Not IP: nothing learnt.
        table.learn_from(&[0x45, 0, 0], station(4), station(5), 0);
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn a_full_table_learns_only_in_place_of_stale_entries() {
        let mut table = Neighbours::with_capacity(2);
        let addr = |n: u8| IpAddr::from([10, 0, 0, n]);
        table.learn(addr(1), station(1), 0);
        table.learn(addr(2), station(2), 0);
        table.learn(addr(3), station(3), 1);
        assert_eq!(table.lookup(addr(3), 1), None, "full of live entries");
        // Known addresses still move.
        table.learn(addr(1), station(7), 1);
        assert_eq!(table.lookup(addr(1), 1), Some(station(7)));
        // Once the others are stale, they make room.
        table.learn(addr(3), station(3), MAX_AGE + 1);
        assert_eq!(table.lookup(addr(3), MAX_AGE + 1), Some(station(3)));
        assert_eq!(table.len(), 1);
    }
}
