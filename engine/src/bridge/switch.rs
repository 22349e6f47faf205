//! Where a frame goes: the learning bridge's decision for one frame that
//! arrived on one port, before anything looks inside it. Its sender is
//! learnt; a frame for a known station goes to that station's port (or
//! nowhere, when the station is on the port it came from); broadcast,
//! multicast and unknown stations are flooded to every other port. A port
//! may refuse all but IPv4, IPv6, ARP and RARP.

use super::echoes::Echoes;
use super::mac_table::{MacTable, PortId};
use crate::wire::ethernet::{self, Address, ethertype};

/// What an Ethernet frame carries, by its EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    Ipv4,
    Ipv6,
    Arp,
    Rarp,
    /// Any other EtherType, or an 802.3 length.
    Other(u16),
}

impl Carries {
    pub fn of(ethertype: u16) -> Carries {
        match ethertype {
            ethertype::IPV4 => Carries::Ipv4,
            ethertype::IPV6 => Carries::Ipv6,
            ethertype::ARP => Carries::Arp,
            ethertype::RARP => Carries::Rarp,
            other => Carries::Other(other),
        }
    }

    /// What a port that blocks non-IP lets through.
    pub fn is_ip_or_address_resolution(self) -> bool {
        !matches!(self, Carries::Other(_))
    }
}

/// Why the bridge dropped a frame, to be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameDrop {
    /// Shorter than an Ethernet header.
    Truncated,
    /// A group address as the source, which no station has.
    BadSource,
    /// An 802.1Q or 802.1ad tag: this bridge has no VLANs, and what is
    /// inside a tag would pass unseen by the SPD.
    Tagged,
    /// Not IPv4, IPv6, ARP or RARP, on or toward a port that blocks such.
    Blocked,
    /// For a station on the port it came from: that segment delivered it.
    Local,
    /// A frame the bridge itself sent a moment ago, come back round a
    /// loop.
    Echo,
    /// For the bridge's own station: its host's stack takes it.
    ForHost,
}

impl FrameDrop {
    pub const ALL: [FrameDrop; 7] = [
        FrameDrop::Truncated,
        FrameDrop::BadSource,
        FrameDrop::Tagged,
        FrameDrop::Blocked,
        FrameDrop::Local,
        FrameDrop::Echo,
        FrameDrop::ForHost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FrameDrop::Truncated => "truncated frame",
            FrameDrop::BadSource => "group source address",
            FrameDrop::Tagged => "VLAN tagged",
            FrameDrop::Blocked => "not IP (blocked)",
            FrameDrop::Local => "local to its segment",
            FrameDrop::Echo => "echo of a frame sent",
            FrameDrop::ForHost => "for this host",
        }
    }
}

/// A set of ports, by index (up to 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortSet(u32);

impl PortSet {
    pub fn one(port: PortId) -> PortSet {
        PortSet(1 << port.0)
    }

    /// The set with `port` added.
    pub fn with(self, port: PortId) -> PortSet {
        PortSet(self.0 | 1 << port.0)
    }

    pub fn contains(self, port: PortId) -> bool {
        self.0 & (1 << port.0) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = PortId> {
        (0..32u8).map(PortId).filter(move |&p| self.contains(p))
    }
}

/// How a port is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortConfig {
    /// Pass only IPv4, IPv6, ARP and RARP.
    pub block_non_ip: bool,
}

/// Where a frame is to go, and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    pub to: PortSet,
    /// Whether it went to every other port rather than to one station.
    pub flooded: bool,
    pub carries: Carries,
    pub dst: Address,
}

/// The learning bridge between its ports.
#[derive(Debug, Clone)]
pub struct Switch {
    pub table: MacTable,
    ports: Vec<PortConfig>,
    echoes: Echoes,
}

impl Switch {
    /// A bridge between ports 0 to `ports.len() - 1`, at most 32.
    pub fn new(ports: Vec<PortConfig>, table: MacTable) -> Switch {
        assert!(ports.len() <= 32, "a bridge has at most 32 ports");
        Switch {
            table,
            ports,
            echoes: Echoes::default(),
        }
    }

    pub fn ports(&self) -> usize {
        self.ports.len()
    }

    /// Decides where `frame`, which arrived on `port` at `now_ms`
    /// milliseconds, goes.
    pub fn switch(
        &mut self,
        frame: &[u8],
        port: PortId,
        now_ms: u64,
    ) -> Result<Switched, FrameDrop> {
        if self.echoes.is_echo(frame, now_ms) {
            return Err(FrameDrop::Echo);
        }
        let now = now_ms / 1000;
        let frame = ethernet::Frame::new_checked(frame).map_err(|_| FrameDrop::Truncated)?;
        let (src, dst) = (frame.src_addr(), frame.dst_addr());
        if src.is_multicast() {
            return Err(FrameDrop::BadSource);
        }
        self.table.learn(src, port, now);
        let carries = Carries::of(frame.ethertype());
        if matches!(carries, Carries::Other(ethertype::VLAN | ethertype::QINQ)) {
            return Err(FrameDrop::Tagged);
        }
        let allows = |p: PortId| {
            carries.is_ip_or_address_resolution()
                || !self
                    .ports
                    .get(usize::from(p.0))
                    .is_some_and(|c| c.block_non_ip)
        };
        if !allows(port) {
            return Err(FrameDrop::Blocked);
        }
        let known = (!dst.is_multicast())
            .then(|| self.table.lookup(dst, now))
            .flatten();
        let (to, flooded) = match known {
            Some(p) if p == port => return Err(FrameDrop::Local),
            Some(p) => (PortSet::one(p), false),
            None => {
                let all = (0..self.ports.len() as u8)
                    .map(PortId)
                    .filter(|&p| p != port);
                (PortSet(all.fold(0, |set, p| set | 1 << p.0)), true)
            }
        };
        let to = PortSet(
            to.iter()
                .filter(|&p| allows(p))
                .fold(0, |set, p| set | 1 << p.0),
        );
        if to.is_empty() {
            return Err(FrameDrop::Blocked);
        }
        Ok(Switched {
            to,
            flooded,
            carries,
            dst,
        })
    }
}

impl Switch {
    /// Notes a frame as the bridge sends it on a port (after whatever was
    /// done to it), so that it is known for an echo when it comes back.
    pub fn sent(&mut self, frame: &[u8], now_ms: u64) {
        self.echoes.sent(frame, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: Address, src: Address, ethertype: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; ethernet::HEADER_LEN + 46];
        ethernet::Repr {
            dst,
            src,
            ethertype,
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut bytes[..]));
        bytes
    }

    fn station(n: u8) -> Address {
        Address([0x02, 0, 0, 0, 0, n])
    }

    const A: PortId = PortId(0);
    const B: PortId = PortId(1);
    const C: PortId = PortId(2);

    fn three_ports() -> Switch {
        Switch::new(vec![PortConfig::default(); 3], MacTable::default())
    }

    #[test]
    fn unknown_and_group_destinations_flood_and_known_ones_go_to_their_port() {
        let mut s = three_ports();
        // Station 2 is not known yet: flooded to every other port.
        let out = s
            .switch(&frame(station(2), station(1), ethertype::IPV4), A, 0)
            .unwrap();
        assert_eq!(out.to.iter().collect::<Vec<_>>(), [B, C]);
        assert!(out.flooded);
        assert_eq!(out.carries, Carries::Ipv4);
        // Its answer goes straight back to station 1's port, and teaches
        // the bridge where station 2 is.
        let out = s
            .switch(&frame(station(1), station(2), ethertype::IPV4), C, 1)
            .unwrap();
        assert_eq!((out.to, out.flooded), (PortSet::one(A), false));
        let out = s
            .switch(&frame(station(2), station(1), ethertype::IPV6), A, 2)
            .unwrap();
        assert_eq!(out.to, PortSet::one(C));
        // Broadcast floods even to known stations' ports.
        let out = s
            .switch(&frame(Address::BROADCAST, station(2), ethertype::ARP), C, 3)
            .unwrap();
        assert_eq!(out.to.iter().collect::<Vec<_>>(), [A, B]);
        assert_eq!(out.carries, Carries::Arp);
        // A frame for a station on its own segment goes nowhere.
        let out = s.switch(&frame(station(1), station(3), ethertype::IPV4), A, 4);
        assert_eq!(out, Err(FrameDrop::Local));
    }

    #[test]
    fn two_ports_on_one_segment_pass_each_frame_once_each() {
        // Ports A and B on one segment: what the bridge sends on one
        // arrives on the other, and the segment's own frames on both.
        let mut s = Switch::new(vec![PortConfig::default(); 2], MacTable::default());
        let mut forwarded = 0;
        let original = frame(Address::BROADCAST, station(1), ethertype::ARP);
        let mut arriving = vec![(original.clone(), A), (original, B)];
        let mut now = 5_000;
        while let Some((bytes, port)) = arriving.pop() {
            now += 1;
            assert!(forwarded < 100, "the frame circles");
            if let Ok(out) = s.switch(&bytes, port, now) {
                for p in out.to.iter() {
                    forwarded += 1;
                    s.sent(&bytes, now);
                    let other = if p == A { B } else { A };
                    arriving.push((bytes.clone(), other));
                }
            }
        }
        assert_eq!(forwarded, 1, "the first copy crosses; the rest are echoes");
        // Later, beyond the window, the same bytes are a new frame.
        let again = frame(Address::BROADCAST, station(1), ethertype::ARP);
        assert!(s.switch(&again, A, now + 1000).is_ok());
    }

    #[test]
    fn bad_frames_are_dropped_by_reason() {
        let mut s = three_ports();
        let good = frame(station(2), station(1), ethertype::IPV4);
        assert_eq!(s.switch(&good[..13], A, 0), Err(FrameDrop::Truncated));
        let group_source = frame(station(2), Address::BROADCAST, ethertype::IPV4);
        assert_eq!(s.switch(&group_source, A, 0), Err(FrameDrop::BadSource));
        for tag in [ethertype::VLAN, ethertype::QINQ] {
            assert_eq!(
                s.switch(&frame(station(2), station(1), tag), A, 0),
                Err(FrameDrop::Tagged)
            );
        }
    }

    #[test]
    fn a_port_that_blocks_non_ip_takes_and_gives_only_ip_arp_and_rarp() {
        let blocking = PortConfig { block_non_ip: true };
        let mut s = Switch::new(
            vec![PortConfig::default(), blocking, PortConfig::default()],
            MacTable::default(),
        );
        let ipx = frame(Address::BROADCAST, station(1), 0x8137);
        // From an open port, flooded to the other open port only.
        let out = s.switch(&ipx, A, 0).unwrap();
        assert_eq!(out.to, PortSet::one(C));
        // Into the blocking port: refused.
        assert_eq!(s.switch(&ipx, B, 0), Err(FrameDrop::Blocked));
        for kind in [
            ethertype::IPV4,
            ethertype::IPV6,
            ethertype::ARP,
            ethertype::RARP,
        ] {
            let out = s
                .switch(&frame(Address::BROADCAST, station(4), kind), B, 0)
                .unwrap();
            assert_eq!(out.to.iter().collect::<Vec<_>>(), [A, C]);
        }
        // An 802.3 frame (a length where the type goes) is not IP either.
        let two_ports =
            &mut Switch::new(vec![PortConfig::default(), blocking], MacTable::default());
        assert_eq!(
            two_ports.switch(&frame(Address::BROADCAST, station(1), 46), A, 0),
            Err(FrameDrop::Blocked)
        );
    }
}
