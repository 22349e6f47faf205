//! The security policy database: flows, found by best match.
//!
//! OpenBSD keeps flows in a radix tree keyed by (direction, source,
//! destination, protocol, source port, destination port) under each flow's
//! mask, and a packet gets the flow whose mask has the longest run of
//! leading one bits in that key order; between masks with equally long
//! runs, the one that covers the other (more bits) wins. So a host source
//! beats a network source whatever the destinations, and among equal
//! sources the longer destination prefix wins.
//!
//! Here flows are grouped by mask. Each group is a hash table from the
//! masked selector to its flow, and the groups are kept in the order of
//! their masks' precedence, so a lookup costs one hash probe per distinct
//! mask, not one comparison per flow.

use crate::hash::FastHash;
use crate::wire::layout::Layout;
use crate::wire::proto;
use std::collections::HashMap;
use std::net::IpAddr;

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    In,
    Out,
}

/// The parts of a packet a flow can select on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketKey {
    pub direction: Direction,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The transport protocol.
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

impl PacketKey {
    /// What the SPD matches this packet by. TCP and UDP ports come from
    /// the first four bytes of the transport header; a packet too short
    /// to have them has none (OpenBSD refuses it; 0 selects only
    /// port-less flows, which is as strict).
    pub fn of(layout: &Layout, packet: &[u8], direction: Direction) -> PacketKey {
        let mut key = PacketKey {
            direction,
            src: layout.src,
            dst: layout.dst,
            proto: layout.protocol,
            sport: 0,
            dport: 0,
        };
        if matches!(layout.protocol, proto::TCP | proto::UDP)
            && !layout.later_fragment
            && let [a, b, c, d, ..] = *layout.payload(packet)
        {
            key.sport = u16::from_be_bytes([a, b]);
            key.dport = u16::from_be_bytes([c, d]);
        }
        key
    }
}

/// What a flow matches: addresses and ports under masks, and a protocol
/// (0 for any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    pub direction: Direction,
    pub src: IpAddr,
    pub src_mask: IpAddr,
    pub dst: IpAddr,
    pub dst_mask: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub sport_mask: u16,
    pub dport: u16,
    pub dport_mask: u16,
}

/// The mask of a selector, as one comparable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Mask {
    v6: bool,
    src: u128,
    dst: u128,
    proto: u8,
    sport: u16,
    dport: u16,
}

/// A selector or packet with its mask applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Masked {
    src: u128,
    dst: u128,
    proto: u8,
    sport: u16,
    dport: u16,
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Mask {
    fn width(&self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }

    /// The mask's bits in key order, most significant first: source,
    /// destination, protocol, ports.
    fn fields(&self) -> [(u128, u32); 5] {
        let w = self.width();
        [
            (self.src, w),
            (self.dst, w),
            (u128::from(self.proto), 8),
            (u128::from(self.sport), 16),
            (u128::from(self.dport), 16),
        ]
    }

    /// How many bits, from the start of the key, the mask covers without
    /// a gap.
    fn leading_ones(&self) -> u32 {
        let mut total = 0;
        for (value, width) in self.fields() {
            let ones = (value << (128 - width)).leading_ones().min(width);
            total += ones;
            if ones < width {
                break;
            }
        }
        total
    }

    fn count_ones(&self) -> u32 {
        self.fields().iter().map(|(v, _)| v.count_ones()).sum()
    }

    /// Precedence: longer leading run first, then more bits; masks that
    /// tie on both (only possible with gaps in them) are ordered by value,
    /// so the choice never depends on the order flows were added.
    fn rank(&self) -> (u32, u32, u128, u128, u8, u16, u16) {
        (
            self.leading_ones(),
            self.count_ones(),
            self.src,
            self.dst,
            self.proto,
            self.sport,
            self.dport,
        )
    }

    fn apply(&self, src: u128, dst: u128, proto: u8, sport: u16, dport: u16) -> Masked {
        Masked {
            src: src & self.src,
            dst: dst & self.dst,
            proto: proto & self.proto,
            sport: sport & self.sport,
            dport: dport & self.dport,
        }
    }
}

impl Selector {
    fn family_v6(&self) -> bool {
        self.src.is_ipv6()
    }

    fn mask(&self) -> Mask {
        Mask {
            v6: self.family_v6(),
            src: bits(self.src_mask),
            dst: bits(self.dst_mask),
            proto: if self.proto != 0 { 0xff } else { 0 },
            sport: self.sport_mask,
            dport: self.dport_mask,
        }
    }

    fn masked(&self) -> Masked {
        self.mask().apply(
            bits(self.src),
            bits(self.dst),
            self.proto,
            self.sport,
            self.dport,
        )
    }

    /// Whether two selectors name the same flow: equal under equal masks.
    pub fn mask_eq(&self, other: &Selector) -> bool {
        self.direction == other.direction
            && self.family_v6() == other.family_v6()
            && self.mask() == other.mask()
            && self.masked() == other.masked()
    }

    /// Whether a packet falls under this selector.
    pub fn matches(&self, p: &PacketKey) -> bool {
        p.direction == self.direction
            && p.src.is_ipv6() == self.family_v6()
            && p.dst.is_ipv6() == self.family_v6()
            && self
                .mask()
                .apply(bits(p.src), bits(p.dst), p.proto, p.sport, p.dport)
                == self.masked()
    }
}

/// The flows sharing one mask.
#[derive(Debug)]
struct Group<P> {
    mask: Mask,
    flows: HashMap<Masked, Entry<P>, FastHash>,
}

#[derive(Debug)]
struct Entry<P> {
    selector: Selector,
    policy: P,
    /// Insertion number, so dumps list flows in the order they came.
    order: u64,
}

/// One direction and address family.
#[derive(Debug)]
struct Table<P> {
    /// In order of precedence.
    groups: Vec<Group<P>>,
}

impl<P> Default for Table<P> {
    fn default() -> Table<P> {
        Table { groups: Vec::new() }
    }
}

/// Flows and what to do with the packets they select (`P`).
#[derive(Debug)]
pub struct Spd<P> {
    tables: HashMap<(Direction, bool), Table<P>>,
    next_order: u64,
    len: usize,
}

impl<P> Default for Spd<P> {
    fn default() -> Spd<P> {
        Spd {
            tables: HashMap::new(),
            next_order: 0,
            len: 0,
        }
    }
}

impl<P> Spd<P> {
    pub fn new() -> Spd<P> {
        Spd::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a flow, or replaces the policy of a flow with the same
    /// selector and mask (returning the old one).
    pub fn insert(&mut self, selector: Selector, policy: P) -> Option<P> {
        let mask = selector.mask();
        let order = self.next_order;
        self.next_order += 1;
        let table = self
            .tables
            .entry((selector.direction, selector.family_v6()))
            .or_default();
        let at = match table.groups.iter().position(|g| g.mask == mask) {
            Some(i) => i,
            None => {
                let rank = mask.rank();
                let i = table.groups.partition_point(|g| g.mask.rank() > rank);
                table.groups.insert(
                    i,
                    Group {
                        mask,
                        flows: HashMap::default(),
                    },
                );
                i
            }
        };
        let key = selector.masked();
        let group = &mut table.groups[at];
        match group.flows.get_mut(&key) {
            Some(existing) => {
                existing.selector = selector;
                Some(std::mem::replace(&mut existing.policy, policy))
            }
            None => {
                group.flows.insert(
                    key,
                    Entry {
                        selector,
                        policy,
                        order,
                    },
                );
                self.len += 1;
                None
            }
        }
    }

    /// Removes the flow with exactly this selector and mask.
    pub fn remove(&mut self, selector: &Selector) -> Option<P> {
        let mask = selector.mask();
        let table = self
            .tables
            .get_mut(&(selector.direction, selector.family_v6()))?;
        let at = table.groups.iter().position(|g| g.mask == mask)?;
        let entry = table.groups[at].flows.remove(&selector.masked())?;
        if table.groups[at].flows.is_empty() {
            table.groups.remove(at);
        }
        self.len -= 1;
        Some(entry.policy)
    }

    /// The flow with exactly this selector and mask.
    pub fn get(&self, selector: &Selector) -> Option<&P> {
        let mask = selector.mask();
        let table = self
            .tables
            .get(&(selector.direction, selector.family_v6()))?;
        let group = table.groups.iter().find(|g| g.mask == mask)?;
        group.flows.get(&selector.masked()).map(|e| &e.policy)
    }

    /// The best flow for a packet.
    pub fn lookup(&self, p: &PacketKey) -> Option<(&Selector, &P)> {
        if p.src.is_ipv6() != p.dst.is_ipv6() {
            return None;
        }
        let table = self.tables.get(&(p.direction, p.src.is_ipv6()))?;
        let (src, dst) = (bits(p.src), bits(p.dst));
        table.groups.iter().find_map(|g| {
            let key = g.mask.apply(src, dst, p.proto, p.sport, p.dport);
            g.flows.get(&key).map(|e| (&e.selector, &e.policy))
        })
    }

    /// The best flow for a packet, to count what it carries.
    pub fn lookup_mut(&mut self, p: &PacketKey) -> Option<(&Selector, &mut P)> {
        if p.src.is_ipv6() != p.dst.is_ipv6() {
            return None;
        }
        let table = self.tables.get_mut(&(p.direction, p.src.is_ipv6()))?;
        let (src, dst) = (bits(p.src), bits(p.dst));
        let g = table.groups.iter_mut().find(|g| {
            let key = g.mask.apply(src, dst, p.proto, p.sport, p.dport);
            g.flows.contains_key(&key)
        })?;
        let key = g.mask.apply(src, dst, p.proto, p.sport, p.dport);
        g.flows.get_mut(&key).map(|e| (&e.selector, &mut e.policy))
    }

    /// Every flow, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&Selector, &P)> {
        let mut all: Vec<&Entry<P>> = self
            .tables
            .values()
            .flat_map(|t| t.groups.iter().flat_map(|g| g.flows.values()))
            .collect();
        all.sort_by_key(|e| e.order);
        all.into_iter().map(|e| (&e.selector, &e.policy))
    }

    pub fn clear(&mut self) {
        self.tables.clear();
        self.len = 0;
    }
}

/// The same choice made by looking at every flow: what [`Spd::lookup`]
/// must agree with, and the baseline its benchmark compares against.
pub fn linear_lookup<'a, P>(
    flows: &'a [(Selector, P)],
    p: &PacketKey,
) -> Option<&'a (Selector, P)> {
    flows
        .iter()
        .filter(|flow| flow.0.matches(p))
        .max_by_key(|flow| flow.0.mask().rank())
}

/// A prefix length as a mask address of the family of `like`.
/// `addr` under `mask`, bit by bit.
pub fn masked(addr: IpAddr, mask: IpAddr) -> IpAddr {
    match (addr, mask) {
        (IpAddr::V4(a), IpAddr::V4(m)) => IpAddr::V4((u32::from(a) & u32::from(m)).into()),
        (IpAddr::V6(a), IpAddr::V6(m)) => IpAddr::V6((u128::from(a) & u128::from(m)).into()),
        _ => addr,
    }
}

/// The length of the prefix a mask starts with.
pub fn prefix_len(mask: IpAddr) -> u8 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones() as u8,
        IpAddr::V6(m) => u128::from(m).leading_ones() as u8,
    }
}

pub fn prefix_mask(like: IpAddr, len: u8) -> IpAddr {
    match like {
        IpAddr::V4(_) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(m.into())
        }
        IpAddr::V6(_) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(m.into())
        }
    }
}
