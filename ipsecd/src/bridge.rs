//! Bridge mode's shell (`ipsecd -b A -b B`): frames read from the ports,
//! switched by the engine's learning bridge, their IP packets protected,
//! opened or passed by the engine (`Engine::cross`), and written out on
//! the ports the switch chose, with the Ethernet header they came with.
//! Nothing crosses while the daemon is not running: the kernel does not
//! bridge the ports by itself, so a bridge that stops fails closed.

use crate::log;
use crate::net::Port;
use ipsec_engine::bridge::{Carries, FrameDrop, MacTable, PortConfig, PortId, PortSet, Switch};
use ipsec_engine::engine::{Crossing, Delivery, Engine, Events};
use ipsec_engine::offload::{self, VnetHeader};
use ipsec_engine::packet::{Batch, PacketBuf};
use ipsec_engine::wire::ethernet::{self, ethertype};
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

/// Frames taken from one port per poll round, so that neither port
/// starves the other or the rest of the daemon.
const BURST: usize = 64;

/// The bridge between its ports.
#[derive(Debug)]
pub struct Bridge {
    ports: Vec<Port>,
    switch: Switch,
    /// One read: a virtio-net header and a frame, or a run of them.
    buffer: Vec<u8>,
    /// The IP packets of one read: one, or the segments of a run.
    segments: Batch,
    /// The frame being sent.
    out: Vec<u8>,
    events: Events,
    drops: [u64; FrameDrop::ALL.len()],
    send_errors: u64,
    /// Frames the switch sees are timed in milliseconds from here.
    start: Instant,
}

impl Bridge {
    /// Opens the named Ethernet interfaces as the bridge's ports.
    pub fn open(names: &[String]) -> io::Result<Bridge> {
        let ports = names
            .iter()
            .map(|name| {
                Port::open(name)
                    .map_err(|e| io::Error::new(e.kind(), format!("bridge port {name}: {e}")))
            })
            .collect::<io::Result<Vec<Port>>>()?;
        let switch = Switch::new(
            vec![PortConfig::default(); ports.len()],
            MacTable::default(),
        );
        Ok(Bridge {
            ports,
            switch,
            buffer: vec![0u8; offload::HEADER_LEN + 65536],
            segments: Batch::default(),
            out: Vec::with_capacity(ethernet::HEADER_LEN + 65536),
            events: Events::default(),
            drops: [0; FrameDrop::ALL.len()],
            send_errors: 0,
            start: Instant::now(),
        })
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.ports.iter().map(Port::fd).collect()
    }

    /// Bridges what waits on `fd` (one of [`Bridge::fds`]); returns the
    /// PF_KEY messages the engine produced (ACQUIREs, EXPIREs).
    pub fn ready(&mut self, fd: RawFd, engine: &mut Engine, now: u64) -> Vec<Delivery> {
        let Some(index) = self.ports.iter().position(|p| p.fd() == fd) else {
            return Vec::new();
        };
        let port = PortId(index as u8);
        for _ in 0..BURST {
            match self.ports[index].recv(&mut self.buffer) {
                Ok(Some(n)) => self.frame(n, port, engine, now),
                Ok(None) => break,
                Err(e) => {
                    log::warn(&format!("{}: {e}", self.ports[index].name()));
                    break;
                }
            }
        }
        self.events.taps.clear();
        std::mem::take(&mut self.events.messages)
    }

    /// One read from `port`, `n` bytes in the buffer.
    fn frame(&mut self, n: usize, port: PortId, engine: &mut Engine, now: u64) {
        let now_ms = self.start.elapsed().as_millis() as u64;
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
        let link = ethernet::Frame::new_unchecked(frame);
        let (dst, src) = (link.dst_addr(), link.src_addr());
        if !matches!(switched.carries, Carries::Ipv4 | Carries::Ipv6) {
            // ARP, RARP and what else the ports let through, as it came.
            self.out.clear();
            self.out.extend_from_slice(frame);
            self.send(switched.to, now_ms);
            return;
        }
        // The IP packet, or the packets of a run the sender's stack
        // handed over whole: the header's offsets count from the frame.
        let ip = &frame[ethernet::HEADER_LEN..];
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
            let buf = &mut self.segments.as_mut_slice()[i];
            let (to, dst, src) = match engine.cross(buf, now, &mut self.events) {
                Crossing::Protected | Crossing::Opened | Crossing::Clear => (switched.to, dst, src),
                // The ICMP error goes back to the sender, from the station
                // it wrote to, as a router between them would answer.
                Crossing::TooBig => (PortSet::one(port), src, dst),
                // Counted by the engine, by reason.
                Crossing::Dropped(_) => continue,
            };
            frame_ip(&mut self.out, dst, src, &self.segments.as_slice()[i]);
            self.send(to, now_ms);
        }
    }

    /// Sends the frame in `out` on each port of `to`.
    fn send(&mut self, to: PortSet, now_ms: u64) {
        for port in to.iter() {
            let Some(p) = self.ports.get(usize::from(port.0)) else {
                continue;
            };
            self.switch.sent(&self.out, now_ms);
            if let Err(e) = p.send(&self.out) {
                self.send_errors += 1;
                log::debug(format_args!("{}: {e}", p.name()));
            }
        }
    }

    /// A summary for the log when the daemon stops.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "bridge {}: {} stations known, {} send errors",
            self.ports
                .iter()
                .map(Port::name)
                .collect::<Vec<_>>()
                .join(" "),
            self.switch.table.len(),
            self.send_errors
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

/// An IP packet in an Ethernet frame between the stations it came
/// between, typed by its version (tunnel mode may have changed it).
fn frame_ip(out: &mut Vec<u8>, dst: ethernet::Address, src: ethernet::Address, buf: &PacketBuf) {
    let packet = buf.as_slice();
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
