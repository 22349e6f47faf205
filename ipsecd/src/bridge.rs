//! Bridge mode's shell (`ipsecd -b A -b B`): frames read from the ports,
//! switched by the engine's learning bridge, their IP packets protected,
//! opened or passed by the engine (`Engine::cross`), and written out on
//! the ports the switch chose, with the Ethernet header they came with.
//! Nothing crosses while the daemon is not running: the kernel does not
//! bridge the ports by itself, so a bridge that stops fails closed.
//!
//! A port may also be an EtherIP tunnel to another bridge
//! (`-b etherip:ADDRESS`, RFC 3378): what the switch sends there goes
//! whole, Ethernet header and all, in an IP packet of protocol 97 from
//! this host to that bridge, which an outbound flow for EtherIP must
//! protect (it is never sent in the clear); what that bridge sends back
//! arrives as ESP, and once opened its frame enters the switch from that
//! port. Two bridges so joined make one LAN of their two segments.
//!
//! What an SA under the bridge's own address protects (tunnel mode from
//! this host) leaves through the host's stack, which routes it to the
//! peer; what comes back is the host's, through its sockets, and once
//! opened goes to the bridged station it is for ([`Bridge::to_station`]).
//! Frames for a port's own address are the host's too: never bridged.

use crate::log;
use crate::net::{Outbox, Peers, Port};
use ipsec_engine::bridge::neighbours::{self, Neighbours};
use ipsec_engine::bridge::{Carries, FrameDrop, MacTable, PortConfig, PortId, PortSet, Switch};
use ipsec_engine::engine::{Crossing, Delivery, Engine, Events, Verdict};
use ipsec_engine::filter::Way;
use ipsec_engine::offload::{self, VnetHeader};
use ipsec_engine::packet::{Batch, PacketBuf};
use ipsec_engine::wire::ethernet::{self, ethertype};
use ipsec_engine::wire::layout::Layout;
use ipsec_engine::wire::{etherip, ipv4, ipv6, proto};
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::time::Instant;

/// Frames taken from one port per poll round, so that neither port
/// starves the other or the rest of the daemon.
const BURST: usize = 64;

/// How a port argument names an EtherIP tunnel.
const ETHERIP_PREFIX: &str = "etherip:";

/// The port option that lets only IP, ARP and RARP through (OpenBSD's
/// bridge member flag of the same name).
const BLOCK_NON_IP: &str = "blocknonip";

/// One of the bridge's ports.
#[derive(Debug)]
enum Member {
    Ethernet(Port),
    /// An EtherIP tunnel to the bridge at this address.
    EtherIp(IpAddr),
}

/// The bridge between its ports.
#[derive(Debug)]
pub struct Bridge {
    members: Vec<Member>,
    /// Each member's name, as filter rules give it (`on NAME`): the
    /// interface's, or `etherip:ADDRESS`.
    names: Vec<String>,
    /// Frames waiting to leave, by member (tunnels' stay empty).
    outboxes: Vec<Outbox>,
    switch: Switch,
    /// Which station each IP address is reached through.
    neighbours: Neighbours,
    /// Packets protected under the bridge's own address, given to the
    /// host's stack; packets opened for a bridged station.
    routed: u64,
    to_stations: u64,
    /// One read: a virtio-net header and a frame, or a run of them.
    buffer: Vec<u8>,
    /// The IP packets of one read: one, or the segments of a run.
    segments: Batch,
    /// The frame being sent.
    out: Vec<u8>,
    tunnels: TunnelSender,
    events: Events,
    drops: [u64; FrameDrop::ALL.len()],
    send_errors: u64,
    /// Frames the switch sees are timed in milliseconds from here.
    start: Instant,
}

impl Bridge {
    /// Opens the bridge's ports: Ethernet interfaces by name, EtherIP
    /// tunnels as `etherip:ADDRESS`; either may be followed by
    /// `,blocknonip`, for a port that passes only IPv4, IPv6, ARP and RARP.
    pub fn open(specs: &[String]) -> io::Result<Bridge> {
        let mut members = Vec::new();
        let mut configs = Vec::new();
        for spec in specs {
            let invalid = |what: String| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bridge port {spec}: {what}"),
                )
            };
            let mut parts = spec.split(',');
            let name = parts.next().unwrap_or_default();
            let mut config = PortConfig::default();
            for option in parts {
                match option {
                    BLOCK_NON_IP => config.block_non_ip = true,
                    other => {
                        return Err(invalid(format!(
                            "unknown port option {other:?} (known: {BLOCK_NON_IP})"
                        )));
                    }
                }
            }
            let member = match name.strip_prefix(ETHERIP_PREFIX) {
                Some(address) => address
                    .parse()
                    .map(Member::EtherIp)
                    .map_err(|_| invalid(format!("not an IP address after {ETHERIP_PREFIX}")))?,
                None => Port::open(name)
                    .map(Member::Ethernet)
                    .map_err(|e| io::Error::new(e.kind(), format!("bridge port {name}: {e}")))?,
            };
            members.push(member);
            configs.push(config);
        }
        let switch = Switch::new(configs, MacTable::default());
        let names = members
            .iter()
            .map(|m| match m {
                Member::Ethernet(port) => port.name().to_owned(),
                Member::EtherIp(peer) => format!("{ETHERIP_PREFIX}{peer}"),
            })
            .collect();
        Ok(Bridge {
            outboxes: members.iter().map(|_| Outbox::default()).collect(),
            members,
            names,
            switch,
            neighbours: Neighbours::default(),
            routed: 0,
            to_stations: 0,
            buffer: vec![0u8; offload::HEADER_LEN + 65536],
            segments: Batch::default(),
            out: Vec::with_capacity(ethernet::HEADER_LEN + 65536),
            tunnels: TunnelSender {
                buf: PacketBuf::new(),
                ident: 0,
                unprotected: 0,
                sources: Vec::new(),
                sources_at: None,
            },
            events: Events::default(),
            drops: [0; FrameDrop::ALL.len()],
            send_errors: 0,
            start: Instant::now(),
        })
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.ports().map(|(_, port)| port.fd()).collect()
    }

    /// Whether `fd` is one of the bridge's ports.
    pub fn owns(&self, fd: RawFd) -> bool {
        self.ports().any(|(_, port)| port.fd() == fd)
    }

    /// The names of the Ethernet ports.
    pub fn port_names(&self) -> Vec<String> {
        self.ports()
            .map(|(_, port)| port.name().to_owned())
            .collect()
    }

    fn ports(&self) -> impl Iterator<Item = (PortId, &Port)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match m {
                Member::Ethernet(port) => Some((PortId(i as u8), port)),
                Member::EtherIp(_) => None,
            })
    }

    /// Whether `peer` is the far end of one of the bridge's tunnels.
    pub fn tunnels_to(&self, peer: IpAddr) -> bool {
        self.tunnel_port(peer).is_some()
    }

    fn tunnel_port(&self, peer: IpAddr) -> Option<PortId> {
        self.members
            .iter()
            .position(|m| matches!(m, Member::EtherIp(a) if *a == peer))
            .map(|i| PortId(i as u8))
    }

    /// Bridges what waits on `fd` (one of [`Bridge::fds`]); returns the
    /// PF_KEY messages the engine produced (ACQUIREs, EXPIREs).
    pub fn ready(
        &mut self,
        fd: RawFd,
        engine: &mut Engine,
        peers: &Peers,
        now: u64,
    ) -> Vec<Delivery> {
        let Some(index) = self
            .members
            .iter()
            .position(|m| matches!(m, Member::Ethernet(p) if p.fd() == fd))
        else {
            return Vec::new();
        };
        for _ in 0..BURST {
            let Member::Ethernet(port) = &self.members[index] else {
                break;
            };
            match port.recv(&mut self.buffer) {
                Ok(Some(frame)) if frame.tagged => {
                    self.drops[FrameDrop::Tagged as usize] += 1;
                }
                Ok(Some(frame)) if frame.for_host => {
                    self.drops[FrameDrop::ForHost as usize] += 1;
                }
                Ok(Some(frame)) => self.frame(frame.len, PortId(index as u8), engine, peers, now),
                Ok(None) => break,
                Err(e) => {
                    log::warn(&format!("{}: {e}", port.name()));
                    break;
                }
            }
        }
        self.take_messages()
    }

    fn take_messages(&mut self) -> Vec<Delivery> {
        self.flush();
        self.events.taps.clear();
        std::mem::take(&mut self.events.messages)
    }

    /// One read from Ethernet port `port`, `n` bytes in the buffer.
    fn frame(&mut self, n: usize, port: PortId, engine: &mut Engine, peers: &Peers, now: u64) {
        let now_ms = self.now_ms();
        let read = &self.buffer[..n];
        let (Some(header), Some(frame)) =
            (VnetHeader::parse(read), read.get(offload::HEADER_LEN..))
        else {
            return;
        };
        let switched = match self.switch.switch(frame, port, now_ms) {
            Ok(switched) => switched,
            Err(drop) => {
                self.drops[drop as usize] += 1;
                return;
            }
        };
        let (links, tunnels) = self.split(switched.to);
        // A frame goes into a tunnel whole: as it came, or for IP once its
        // packet is whole too (a run cut into frames that fit, a checksum
        // the sender's stack left to the NIC completed).
        let ip = matches!(switched.carries, Carries::Ipv4 | Carries::Ipv6);
        let cut = !tunnels.is_empty() && ip;
        if !cut {
            for peer in tunnels.iter().filter_map(|p| peer_of(&self.members, p)) {
                let frame = &self.buffer[offload::HEADER_LEN..n];
                self.tunnels
                    .send(frame, peer, engine, peers, &mut self.events, now);
            }
        }
        let frame = &self.buffer[offload::HEADER_LEN..n];
        let link = ethernet::Frame::new_unchecked(frame);
        let (dst, src) = (link.dst_addr(), link.src_addr());
        if !matches!(switched.carries, Carries::Ipv4 | Carries::Ipv6) {
            // ARP, RARP and what else the ports let through, as it came.
            self.out.clear();
            self.out.extend_from_slice(frame);
            self.send(links, now_ms);
            return;
        }
        // The IP packet, or the packets of a run the sender's stack
        // handed over whole: the header's offsets count from the frame.
        let ip = &frame[ethernet::HEADER_LEN..];
        self.neighbours.learn_from(ip, src, dst, now_ms / 1000);
        let within = |offset: u16| offset.saturating_sub(ethernet::HEADER_LEN as u16);
        let header = VnetHeader {
            hdr_len: within(header.hdr_len),
            csum_start: within(header.csum_start),
            ..header
        };
        self.segments.clear();
        if offload::segment(&header, ip, &mut self.segments).is_err() {
            self.drops[FrameDrop::Truncated as usize] += 1;
            return;
        }
        for i in 0..self.segments.len() {
            let packet = self.segments.as_slice()[i].as_slice();
            let name = &self.names[usize::from(port.0)];
            if !engine.filter_allows(packet, name, Way::In, &mut self.events) {
                continue;
            }
            if cut {
                let into = let_out(engine, &self.names, packet, tunnels, &mut self.events);
                frame_ip(&mut self.out, dst, src, packet);
                for peer in into.iter().filter_map(|p| peer_of(&self.members, p)) {
                    self.tunnels
                        .send(&self.out, peer, engine, peers, &mut self.events, now);
                }
            }
            if links.is_empty() {
                continue;
            }
            let buf = &mut self.segments.as_mut_slice()[i];
            let (to, dst, src) = match engine.cross(buf, now, &mut self.events) {
                Crossing::Protected | Crossing::Opened | Crossing::Clear => (links, dst, src),
                Crossing::Routed => {
                    self.routed += 1;
                    if let Err(e) = peers.send(buf.as_slice()) {
                        self.send_errors += 1;
                        log::debug(format_args!("protected under this host's address: {e}"));
                    }
                    continue;
                }
                // The ICMP error goes back to the sender, from the station
                // it wrote to, as a router between them would answer.
                Crossing::TooBig => (PortSet::one(port), src, dst),
                // Counted by the engine, by reason.
                Crossing::Dropped(_) => continue,
            };
            let packet = self.segments.as_slice()[i].as_slice();
            let allowed = let_out(engine, &self.names, packet, to, &mut self.events);
            frame_ip(&mut self.out, dst, src, packet);
            self.send(allowed, now_ms);
        }
    }

    /// Sends `packet`, which an SA under this host's address opened, to
    /// the bridged station it is for: as from the station its sender is
    /// reached through (the port itself when that is not known), on the
    /// port of the station its destination is reached through, if the
    /// filter lets it out there. `false` when no bridged station is known
    /// for its destination: the packet is then the host's own.
    pub fn to_station(&mut self, packet: &[u8], engine: &mut Engine) -> bool {
        let now_ms = self.now_ms();
        let now = now_ms / 1000;
        let Some((from, to)) = neighbours::addresses(packet) else {
            return false;
        };
        let Some(dst) = self.neighbours.lookup(to, now) else {
            return false;
        };
        let Some(port) = self.switch.table.lookup(dst, now) else {
            return false;
        };
        let Some(Member::Ethernet(out)) = self.members.get(usize::from(port.0)) else {
            return false;
        };
        let src = self
            .neighbours
            .lookup(from, now)
            .unwrap_or(ethernet::Address(out.address()));
        if engine.filter_allows(
            packet,
            &self.names[usize::from(port.0)],
            Way::Out,
            &mut self.events,
        ) {
            self.to_stations += 1;
            frame_ip(&mut self.out, dst, src, packet);
            self.send(PortSet::one(port), now_ms);
        }
        true
    }

    /// Sends what waits to leave, and returns the PF_KEY messages the
    /// engine produced meanwhile.
    pub fn finish(&mut self) -> Vec<Delivery> {
        self.take_messages()
    }

    /// A frame that came out of the tunnel to `peer`, opened: into the
    /// switch from that tunnel's port, and out as it came. Returns the
    /// PF_KEY messages the engine produced.
    pub fn from_tunnel(
        &mut self,
        peer: IpAddr,
        payload: &[u8],
        engine: &mut Engine,
        peers: &Peers,
        now: u64,
    ) -> Vec<Delivery> {
        let Some(port) = self.tunnel_port(peer) else {
            return Vec::new();
        };
        let Ok(frame) = etherip::frame(payload) else {
            self.drops[FrameDrop::Truncated as usize] += 1;
            return Vec::new();
        };
        let now_ms = self.now_ms();
        let switched = match self.switch.switch(frame, port, now_ms) {
            Ok(switched) => switched,
            Err(drop) => {
                self.drops[drop as usize] += 1;
                return self.take_messages();
            }
        };
        let (mut links, mut tunnels) = self.split(switched.to);
        // The filter judges an IP frame coming in from the tunnel and
        // going out of each port, as between Ethernet ports.
        if matches!(switched.carries, Carries::Ipv4 | Carries::Ipv6) {
            let packet = &frame[ethernet::HEADER_LEN..];
            let name = &self.names[usize::from(port.0)];
            if !engine.filter_allows(packet, name, Way::In, &mut self.events) {
                return self.take_messages();
            }
            links = let_out(engine, &self.names, packet, links, &mut self.events);
            tunnels = let_out(engine, &self.names, packet, tunnels, &mut self.events);
        }
        self.out.clear();
        self.out.extend_from_slice(frame);
        self.send(links, now_ms);
        for peer in tunnels.iter().filter_map(|p| peer_of(&self.members, p)) {
            self.tunnels
                .send(&self.out, peer, engine, peers, &mut self.events, now);
        }
        self.take_messages()
    }

    /// The Ethernet ports of `to`, and its tunnels.
    fn split(&self, to: PortSet) -> (PortSet, PortSet) {
        let mut links = PortSet::default();
        let mut tunnels = PortSet::default();
        for port in to.iter() {
            match self.members.get(usize::from(port.0)) {
                Some(Member::Ethernet(_)) => links = links.with(port),
                Some(Member::EtherIp(_)) => tunnels = tunnels.with(port),
                None => {}
            }
        }
        (links, tunnels)
    }

    /// Sends the frame in `out` on each Ethernet port of `to`.
    /// What leaves together: the frames of one poll round (or of
    /// [`Outbox::CAPACITY`]) go out in one system call per port.
    fn send(&mut self, to: PortSet, now_ms: u64) {
        for port in to.iter() {
            let i = usize::from(port.0);
            if !matches!(self.members.get(i), Some(Member::Ethernet(_))) {
                continue;
            }
            self.switch.sent(&self.out, now_ms);
            self.outboxes[i].push(&self.out);
            if self.outboxes[i].len() >= Outbox::CAPACITY {
                self.flush();
            }
        }
    }

    /// Sends what waits in the outboxes.
    fn flush(&mut self) {
        for (member, outbox) in self.members.iter().zip(&mut self.outboxes) {
            if let Member::Ethernet(port) = member
                && !outbox.is_empty()
            {
                self.send_errors += port.flush(outbox) as u64;
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A summary for the log when the daemon stops.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "bridge {}: {} stations known, {} send errors, {} frames for a tunnel no flow protects, \
             {} packets protected under this host's address, {} opened for a bridged station",
            self.names.join(" "),
            self.switch.table.len(),
            self.send_errors,
            self.tunnels.unprotected,
            self.routed,
            self.to_stations
        );
        for reason in FrameDrop::ALL {
            let n = self.drops[reason as usize];
            if n > 0 {
                s.push_str(&format!("; dropped {}: {n}", reason.name()));
            }
        }
        s
    }
}

/// What sending frames into EtherIP tunnels needs.
#[derive(Debug)]
struct TunnelSender {
    /// An EtherIP packet being built and protected.
    buf: PacketBuf,
    ident: u16,
    /// Frames for a tunnel that no flow protects: not sent.
    unprotected: u64,
    /// Each tunnel's source address, as the flows gave it when the
    /// engine's tables last changed (`Engine::changes`): finding it walks
    /// the SPD, which is not for every frame.
    sources: Vec<(IpAddr, Option<IpAddr>)>,
    sources_at: Option<u64>,
}

impl TunnelSender {
    /// Sends `frame` through the EtherIP tunnel to `peer`: in IP from the
    /// source of the flow that protects the tunnel, protected by it, to
    /// the peer's socket. Never in the clear: with no such flow, or a
    /// flow that would let it go clear, the frame is not sent.
    fn send(
        &mut self,
        frame: &[u8],
        peer: IpAddr,
        engine: &mut Engine,
        peers: &Peers,
        events: &mut Events,
        now: u64,
    ) {
        let TunnelSender {
            buf,
            ident,
            unprotected,
            sources,
            sources_at,
        } = self;
        if *sources_at != Some(engine.changes) {
            sources.clear();
            *sources_at = Some(engine.changes);
        }
        let local = match sources.iter().find(|(p, _)| *p == peer) {
            Some(&(_, local)) => local,
            None => {
                let local = engine.etherip_source(peer);
                sources.push((peer, local));
                local
            }
        };
        let Some(local) = local else {
            *unprotected += 1;
            return;
        };
        let payload_len = etherip::HEADER_LEN + frame.len();
        let space = buf.space();
        let header_len = match (local, peer) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                *ident = ident.wrapping_add(1);
                let repr = ipv4::Repr {
                    src,
                    dst,
                    protocol: proto::ETHERIP,
                    payload_len,
                    tos: 0,
                    ttl: 64,
                    ident: *ident,
                    dont_fragment: false,
                };
                if space.len() < repr.buffer_len()
                    || repr
                        .emit(&mut ipv4::Packet::new_unchecked(&mut space[..]))
                        .is_err()
                {
                    return;
                }
                ipv4::HEADER_LEN
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let repr = ipv6::Repr {
                    src,
                    dst,
                    next_header: proto::ETHERIP,
                    payload_len,
                    traffic_class: 0,
                    hop_limit: 64,
                };
                if space.len() < repr.buffer_len()
                    || repr
                        .emit(&mut ipv6::Packet::new_unchecked(&mut space[..]))
                        .is_err()
                {
                    return;
                }
                ipv6::HEADER_LEN
            }
            _ => return,
        };
        space[header_len..header_len + etherip::HEADER_LEN].copy_from_slice(&etherip::HEADER);
        space[header_len + etherip::HEADER_LEN..header_len + payload_len].copy_from_slice(frame);
        buf.filled(header_len + payload_len);
        if engine.outbound(buf, now, events) != Verdict::Wire {
            return;
        }
        let protected = Layout::of(buf.as_slice()).is_ok_and(|l| l.protocol != proto::ETHERIP);
        if !protected {
            *unprotected += 1;
            return;
        }
        if let Err(e) = peers.send(buf.as_slice()) {
            log::debug(format_args!("EtherIP to {peer}: {e}"));
        }
    }
}

/// The ports of `to` whose filter rules let `packet` out.
fn let_out(
    engine: &mut Engine,
    names: &[String],
    packet: &[u8],
    to: PortSet,
    events: &mut Events,
) -> PortSet {
    to.iter()
        .filter(|p| engine.filter_allows(packet, &names[usize::from(p.0)], Way::Out, events))
        .fold(PortSet::default(), PortSet::with)
}

/// The far end of the tunnel at `port`.
fn peer_of(members: &[Member], port: PortId) -> Option<IpAddr> {
    match members.get(usize::from(port.0)) {
        Some(Member::EtherIp(peer)) => Some(*peer),
        _ => None,
    }
}

/// An IP packet in an Ethernet frame between two stations, typed by its
/// version (tunnel mode may have changed it).
fn frame_ip(out: &mut Vec<u8>, dst: ethernet::Address, src: ethernet::Address, packet: &[u8]) {
    let kind = if packet.first().map(|b| b >> 4) == Some(6) {
        ethertype::IPV6
    } else {
        ethertype::IPV4
    };
    out.clear();
    out.resize(ethernet::HEADER_LEN, 0);
    ethernet::Repr {
        dst,
        src,
        ethertype: kind,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
    out.extend_from_slice(packet);
}
