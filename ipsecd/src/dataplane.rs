//! The data path's I/O: packets from `enc0` and from peers into the
//! engine, and what it produced out to the wire, to `enc0`, to a capture
//! and (PF_KEY messages) back to the caller. Also keeps the routes, the
//! cleartext filter and `enc0`'s MTU in step with the tables.

use crate::bridge::Bridge;
use crate::cleartext::Cleartext;
use crate::log;
use crate::net::{Inbox, Peers};
use crate::pcap::{self, Capture};
use crate::routes::{self, Steering, local_addresses};
use crate::tun::Tun;
use ipsec_engine::engine::datapath::NAT_T_PORT;
use ipsec_engine::engine::{Delivery, Engine, Events, Verdict};
use ipsec_engine::filter::Way;
use ipsec_engine::offload;
use ipsec_engine::packet::{Batch, PacketBuf};
use ipsec_engine::xform::ip::{Layout, proto};
use ipsec_engine::xform::natt;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Packets taken from one descriptor per poll round, so that neither
/// direction starves the other or the control socket.
const BURST: usize = 64;

/// Datagrams read from a peer socket with one system call. Each buffer
/// is resident memory, and sixteen measured within noise of one; with
/// `UDP_GRO` one of them may hold a run of dozens.
const INBOX: usize = 4;

/// Segments protected before they leave in one batch: a read from
/// `enc0` may bring one packet or a run of forty, and small packets
/// gain most from sharing a send. Their buffers are made at once, each
/// with room for a packet of the path's MTU (see [`outbox`]).
const OUTBOX: usize = 64;

/// IPv6 needs links of at least this much (RFC 8200 §5).
const MIN_MTU: usize = 1280;

/// The enc interface, the peers' sockets and what the daemon installed.
#[derive(Debug)]
pub struct Dataplane {
    tun: Tun,
    peers: Peers,
    steering: Steering,
    cleartext: Cleartext,
    /// While set, nothing an earlier run installed is removed: its flows
    /// could not be restored, so what it guarded is not known. The
    /// operator's flush (`ipsecctl -F`) ends it.
    hold: Option<u64>,
    /// A change to routes or filter failed: try again at the next tick.
    retry: bool,
    capture: Option<Capture>,
    /// What the engine produced beside packets: messages, capture taps.
    events: Events,
    /// One read from `enc0`: a virtio-net header and a run.
    buffer: Vec<u8>,
    /// The segments read from `enc0` and not sent yet, each protected in
    /// place (or emptied).
    segments: Batch,
    /// Where arrivals from a peer are read, [`INBOX`] datagrams at a time,
    /// and opened.
    inbox: Inbox,
    /// Opened arrivals waiting to be joined into runs for the host.
    coalescer: offload::Coalescer,
    /// The engine's change count when routes and filter were last synced.
    synced: Option<u64>,
    mtu: usize,
    send_errors: u64,
    /// When NAT-keepalives last went out.
    last_keepalive: u64,
    /// The host's addresses when last looked at: routes name their source
    /// only if it is one of them, so a change means a new sync.
    addresses: Vec<std::net::IpAddr>,
    /// In bridge mode (`-b`), the bridge between its ports.
    bridge: Option<Bridge>,
}

impl Dataplane {
    /// Creates (or takes over) the persistent enc interface `name`, opens
    /// the sockets, and adopts the routes, rules and filter an earlier run
    /// left, removing nothing. `engine` holds the flows restored from that
    /// run, if they could be; if not and the earlier run left a guard, the
    /// guard is held until the SPD is flushed. With `capture`, every
    /// packet through the enc interface is also written there.
    pub fn open(
        name: &str,
        capture: Option<&Path>,
        bridge_ports: &[String],
        engine: &Engine,
        restored: bool,
    ) -> io::Result<Dataplane> {
        let bridge = if bridge_ports.is_empty() {
            None
        } else {
            Some(Bridge::open(bridge_ports)?)
        };
        let tun = Tun::open_offloaded(name).map_err(|e| annotate(e, name))?;
        tun.set_persist(true).map_err(|e| annotate(e, name))?;
        tun.up()?;
        let peers = Peers::open(NAT_T_PORT)?;
        let mut steering = Steering::adopt()?;
        let cleartext = Cleartext::adopt(tun.name());
        let left = !steering.present()?.is_empty() || Cleartext::exists();
        let hold = (!restored && left).then_some(engine.spd_flushes);
        if hold.is_some() {
            log::warn(
                "an earlier run left routes or a filter but no saved flows: \
                 keeping them until the flows are flushed (ipsecctl -F)",
            );
        }
        let capture = capture.map(Capture::create).transpose()?;
        Ok(Dataplane {
            tun,
            peers,
            steering,
            cleartext,
            hold,
            retry: false,
            capture,
            events: Events::default(),
            buffer: vec![0u8; offload::HEADER_LEN + 65536],
            segments: outbox(path_mtu(bridge_ports)),
            inbox: Inbox::new(INBOX),
            coalescer: offload::Coalescer::default(),
            synced: None,
            mtu: 0,
            send_errors: 0,
            last_keepalive: 0,
            addresses: sorted_local_addresses(),
            bridge,
        })
    }

    /// Whether IPv6 can be steered into the enc interface.
    pub fn ipv6(&self) -> bool {
        self.steering.ipv6
    }

    /// Whether packets are being captured (`-w`): the engine keeps copies
    /// only then.
    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// Once a second: NAT-keepalives for the SAs this host sends in UDP,
    /// every [`natt::KEEPALIVE_INTERVAL`] seconds.
    pub fn tick(&mut self, engine: &Engine, now: u64) {
        let addresses = sorted_local_addresses();
        if addresses != self.addresses || self.retry {
            self.addresses = addresses;
            self.synced = None;
        }
        if now < self.last_keepalive + natt::KEEPALIVE_INTERVAL {
            return;
        }
        self.last_keepalive = now;
        let keepalives = engine.keepalives();
        if keepalives.is_empty() {
            return;
        }
        for packet in keepalives {
            let from_here = Layout::of(&packet).is_ok_and(|l| self.addresses.contains(&l.src));
            if from_here && let Err(e) = self.peers.send(&packet) {
                log::debug(format_args!("keepalive: {e}"));
            }
        }
    }

    /// Descriptors to poll for input.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.tun.fd()];
        fds.extend(self.peers.fds());
        fds.extend(self.bridge.iter().flat_map(Bridge::fds));
        fds
    }

    /// Reads what waits on `fd` (one of [`Dataplane::fds`]) through the
    /// engine; returns the PF_KEY messages it produced.
    pub fn ready(&mut self, fd: RawFd, engine: &mut Engine, now: u64) -> Vec<Delivery> {
        if let Some(bridge) = &mut self.bridge
            && bridge.owns(fd)
        {
            return bridge.ready(fd, engine, &self.peers, now);
        }
        if fd == self.tun.fd() {
            for _ in 0..BURST {
                match self.tun.recv(&mut self.buffer) {
                    Ok(Some(n)) => self.outbound(n, engine, now),
                    Ok(None) => break,
                    Err(e) => {
                        log::warn(&format!("{}: {e}", self.tun.name()));
                        break;
                    }
                }
                if self.segments.len() >= OUTBOX {
                    self.send_segments();
                }
            }
            self.send_segments();
        } else {
            for _ in 0..BURST / INBOX {
                match self.peers.recv_many(fd, &mut self.inbox) {
                    Ok(n) => {
                        self.inbound(engine, now);
                        if n < INBOX {
                            break;
                        }
                    }
                    Err(e) => {
                        log::warn(&format!("peer socket: {e}"));
                        break;
                    }
                }
            }
        }
        // IKE on the NAT traversal port is the key managers'.
        for (from, to, message) in self.peers.take_ike() {
            let deliveries = engine.relay_in(from, to, &message);
            self.events.messages.extend(deliveries);
        }
        // What arrived together goes to the host in as few runs as it can.
        let tun = &self.tun;
        self.coalescer
            .flush(|header, packet| to_host(tun, header, packet));
        self.capture_taps();
        std::mem::take(&mut self.events.messages)
    }

    /// Sends the IKE the key managers asked to send on the NAT traversal
    /// port, as packets from that port.
    pub fn send_relayed(&mut self, engine: &mut Engine) {
        for packet in engine.take_relayed() {
            if let Err(e) = self.peers.send(&packet) {
                log::debug(format_args!("IKE for a key manager: {e}"));
            }
        }
    }

    /// One read from the enc interface (`n` bytes in the buffer): with
    /// offload a virtio-net header and perhaps a run of TCP segments.
    fn outbound(&mut self, n: usize, engine: &mut Engine, now: u64) {
        let read = &self.buffer[..n];
        let header = offload::VnetHeader::parse(read);
        let (Some(header), Some(packet)) = (header, read.get(offload::HEADER_LEN..)) else {
            return;
        };
        let first = self.segments.len();
        if offload::segment(&header, packet, &mut self.segments).is_err() {
            log::debug(format_args!(
                "dropped: a run the host handed over that cannot be cut"
            ));
            return;
        }
        // Each segment is protected in place; those for the wire wait for
        // the batch to leave, and the rest are emptied.
        for buf in &mut self.segments.as_mut_slice()[first..] {
            if !engine.filter_allows(buf.as_slice(), self.tun.name(), Way::Out, &mut self.events) {
                buf.filled(0);
                continue;
            }
            match engine.outbound(buf, now, &mut self.events) {
                Verdict::Wire => {}
                Verdict::Dropped { reply: true, .. } => {
                    if let Err(e) = self
                        .tun
                        .send_parts(&[&[0; offload::HEADER_LEN], buf.as_slice()])
                    {
                        log::debug(format_args!("{}: {e}", self.tun.name()));
                    }
                    buf.filled(0);
                }
                Verdict::Enc | Verdict::Dropped { .. } => buf.filled(0),
            }
        }
    }

    /// Sends the protected segments waiting in the batch, and empties it.
    fn send_segments(&mut self) {
        let wire = self.segments.as_slice().iter().filter(|b| !b.is_empty());
        self.send_errors += self.peers.send_many(wire.map(PacketBuf::as_slice)) as u64;
        self.segments.clear();
    }

    /// The arrivals just read into the inbox: each opened for the host, or
    /// dropped.
    fn inbound(&mut self, engine: &mut Engine, now: u64) {
        let tun = &self.tun;
        while let Some((buf, arrival)) = self.peers.next_arrival(&mut self.inbox) {
            if engine.inbound(buf, arrival.udp_port, now, &mut self.events) != Verdict::Enc {
                continue;
            }
            // EtherIP from a bridge this one tunnels to: its frame goes
            // into the bridge, not to the host.
            if let Some(bridge) = &mut self.bridge
                && let Ok(layout) = Layout::of(buf.as_slice())
                && layout.protocol == proto::ETHERIP
                && bridge.tunnels_to(layout.src)
            {
                let payload = layout.payload(buf.as_slice());
                let messages = bridge.from_tunnel(layout.src, payload, engine, &self.peers, now);
                self.events.messages.extend(messages);
                continue;
            }
            // Opened under the bridge's own address, for a bridged station.
            if let Some(bridge) = &mut self.bridge
                && bridge.to_station(buf.as_slice(), engine)
            {
                continue;
            }
            if !engine.filter_allows(buf.as_slice(), tun.name(), Way::In, &mut self.events) {
                continue;
            }
            self.coalescer.push(buf.as_slice(), |header, packet| {
                to_host(tun, header, packet)
            });
        }
        if let Some(bridge) = &mut self.bridge {
            let messages = bridge.finish();
            self.events.messages.extend(messages);
        }
    }

    /// Writes what the engine copied for an enc capture, if one is on.
    fn capture_taps(&mut self) {
        let Some(capture) = &mut self.capture else {
            self.events.taps.clear();
            return;
        };
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for tap in self.events.taps.drain(..) {
            let af = match tap.packet.first().map(|b| b >> 4) {
                Some(6) => pcap::ENC_AF_INET6,
                _ => pcap::ENC_AF_INET,
            };
            if let Err(e) = capture.write(time, af, tap.spi, tap.flags, &tap.packet) {
                log::warn(&format!("capture: {e}"));
            }
        }
    }

    /// Brings routes, the cleartext filter and the MTU in step with the
    /// tables, when they changed; flushes the capture.
    pub fn sync(&mut self, engine: &mut Engine) {
        if let Some(capture) = &mut self.capture
            && let Err(e) = capture.flush()
        {
            log::warn(&format!("capture: {e}"));
        }
        if self.synced == Some(engine.changes) {
            return;
        }
        self.synced = Some(engine.changes);
        if self.hold.is_some_and(|at| engine.spd_flushes != at) {
            log::info("the flows were flushed: what an earlier run left may go");
            self.hold = None;
        }
        let keep = self.hold.is_some();
        self.retry = false;
        if let Err(e) = self.steer(engine, keep) {
            self.retry = true;
            log::warn(&format!("routes: {e}; trying again"));
        }
        if let Err(e) = self.cleartext.sync(engine.cleartext_refused(), keep) {
            self.retry = true;
            log::warn(&format!("cleartext filter: {e}; trying again"));
        }
        let ports = self
            .bridge
            .as_ref()
            .map(Bridge::port_names)
            .unwrap_or_default();
        let path = path_mtu(&ports);
        engine.path_mtu = path;
        engine.bridge_mtu = ports
            .iter()
            .filter_map(|port| interface_mtu(port))
            .min()
            .unwrap_or(1500);
        if outbox_room(path) != self.segments.room() {
            self.send_segments();
            self.segments = outbox(path);
        }
        let mtu = path.saturating_sub(engine.overhead()).max(MIN_MTU);
        if mtu != self.mtu {
            match self.tun.set_mtu(mtu as u32) {
                Ok(()) => self.mtu = mtu,
                Err(e) => log::warn(&format!("{}: mtu {mtu}: {e}", self.tun.name())),
            }
        }
    }

    /// Brings the daemon's routing table in step with the flows: routes
    /// added before any is removed, so a destination is never left
    /// unrouted in between.
    fn steer(&mut self, engine: &Engine, keep: bool) -> io::Result<()> {
        let index = self.tun.index()?;
        let wanted = routes::wanted(&engine.enc_routes(), index, &self.addresses);
        let present = self.steering.present()?;
        let (add, remove) = routes::plan(&present, &wanted, keep);
        self.steering
            .apply(&add, &remove)
            .map_err(|(n, e)| io::Error::new(e.kind(), format!("{n} changes failed, first {e}")))
    }

    /// The daemon stops cleanly. With flows left, everything stays, so
    /// that what they guard stays guarded until the daemon is back; with
    /// none, interface, rules, routes and filter go. Returns whether it
    /// tore down.
    pub fn stop(&mut self, engine: &Engine) -> bool {
        if !engine.spd.is_empty() || self.hold.is_some() {
            return false;
        }
        let mut clean = true;
        if let Err(e) = self.steering.teardown() {
            log::warn(&format!("routes: {e}"));
            clean = false;
        }
        if let Err(e) = self.cleartext.teardown() {
            log::warn(&format!("cleartext filter: {e}"));
            clean = false;
        }
        if let Err(e) = self.tun.set_persist(false) {
            log::warn(&format!("{}: {e}", self.tun.name()));
            clean = false;
        }
        clean
    }

    /// The summaries for the log when the daemon stops (or is asked):
    /// the packets' fates and drops, then the bridge's, in bridge mode.
    pub fn summaries(&self, engine: &Engine) -> Vec<String> {
        let mut lines = vec![self.summary(engine)];
        lines.extend(self.bridge.as_ref().map(Bridge::summary));
        lines.extend(crate::filter::summary(&engine.filter));
        lines
    }

    /// The packets' fates and drops by reason.
    fn summary(&self, engine: &Engine) -> String {
        let c = &engine.counters;
        let mut s = format!(
            "{} protected out, {} protected in, {} clear out, {} send errors, \
             {} NAT-T keepalives, {} non-ESP datagrams, {} too long",
            c.protected_out,
            c.protected_in,
            c.clear_out,
            self.send_errors,
            self.peers.keepalives(),
            self.peers.non_esp(),
            self.peers.too_long()
        );
        for (reason, inbound, outbound) in c.drops() {
            s.push_str(&format!("; dropped {reason}: {inbound} in, {outbound} out"));
        }
        s
    }
}

/// Writes a packet or run for the host to the enc interface.
fn to_host(tun: &Tun, header: &offload::VnetHeader, packet: &[u8]) {
    let mut bytes = [0u8; offload::HEADER_LEN];
    header.write(&mut bytes);
    if let Err(e) = tun.send_parts(&[&bytes, packet]) {
        log::debug(format_args!("{}: {e}", tun.name()));
    }
}

/// Buffers for [`OUTBOX`] segments on their way out to a path of MTU
/// `path`.
fn outbox(path: usize) -> Batch {
    Batch::with_buffers(OUTBOX, outbox_room(path))
}

/// A segment is at most `enc0`'s MTU, which the daemon keeps at the
/// path's less the SAs' overhead, or [`MIN_MTU`]: the path's MTU, and at
/// least Ethernet's, is room for any. Protecting a segment grows it into
/// the buffer's headroom and tailroom. A longer read (an MTU someone else
/// raised) cannot be cut into the buffers and is dropped.
fn outbox_room(path: usize) -> usize {
    path.max(1500)
}

/// The MTU of the path to peers: the smallest MTU of the host's other
/// interfaces that are up, or Ethernet's.
/// Bridge ports lead to the bridged segments, not to peers: they are
/// left out.
fn path_mtu(bridge_ports: &[String]) -> usize {
    let mut smallest = None::<usize>;
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        for entry in dir.flatten() {
            let path = entry.path();
            let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
            let up = read("operstate").trim() == "up";
            let tun = path.join("tun_flags").exists();
            let name = entry.file_name();
            let bridged = bridge_ports.iter().any(|p| name == p.as_str());
            if !up || tun || bridged || name == "lo" {
                continue;
            }
            if let Ok(mtu) = read("mtu").trim().parse::<usize>() {
                smallest = Some(smallest.map_or(mtu, |s| s.min(mtu)));
            }
        }
    }
    smallest.unwrap_or(1500)
}

/// The MTU of the interface `name`.
fn interface_mtu(name: &str) -> Option<usize> {
    let path = std::path::Path::new("/sys/class/net")
        .join(name)
        .join("mtu");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The host's addresses, in order, so that two lists compare equal when
/// the addresses are the same.
fn sorted_local_addresses() -> Vec<std::net::IpAddr> {
    let mut addresses = local_addresses();
    addresses.sort();
    addresses
}

fn annotate(e: io::Error, name: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{name}: {e}"))
}
