//! Segmentation offload at the enc interface, as virtio-net describes it
//! (the header a TUN device with `IFF_VNET_HDR` puts before each packet).
//!
//! Outbound, the host hands over TCP in runs of up to 64 KiB with one
//! header ("TSO"), and [`segment`] cuts them into the segments that go
//! through the SAs one by one. Inbound, [`Coalescer`] joins consecutive
//! segments of one TCP connection that arrive together back into one
//! such run, so that the host's TCP receives one packet instead of dozens
//! ("GRO"), and consecutive equal datagrams of one UDP flow into a run the
//! host cuts up again ("USO", Linux 6.2 and later). Either way the host
//! does per run what it would otherwise do per packet, which is where
//! most of a userspace tunnel's time goes.

use crate::packet::Batch;
use crate::wire::{checksum, ipv4, tcp, udp};
use crate::xform::ip::{Layout, fix_lengths, proto};
use std::net::IpAddr;

/// The virtio-net header's length (without `num_buffers`).
pub const HEADER_LEN: usize = 10;

/// `flags`: the checksum at `csum_start + csum_offset` still needs the sum
/// of everything from `csum_start` on.
pub const NEEDS_CSUM: u8 = 1;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
/// A bit on top of the type: the run carries ECN's CWR.
pub const GSO_ECN: u8 = 0x80;

/// The virtio-net header (host byte order, as TUN uses it by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHeader {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHeader {
    pub fn parse(bytes: &[u8]) -> Option<VnetHeader> {
        let b = bytes.get(..HEADER_LEN)?;
        let word = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: word(2),
            gso_size: word(4),
            csum_start: word(6),
            csum_offset: word(8),
        })
    }

    pub fn write(&self, out: &mut [u8]) {
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }
}

/// Why a run could not be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsegmentable;

/// The packets a run from the host stands for, each whole with its
/// checksums, in buffers added to `out`. When the run cannot be cut,
/// `out` is left as it was: no part of the run is in it.
pub fn segment(header: &VnetHeader, packet: &[u8], out: &mut Batch) -> Result<(), Unsegmentable> {
    let before = out.len();
    let cut = cut(header, packet, out);
    if cut.is_err() {
        out.truncate(before);
    }
    cut
}

fn cut(header: &VnetHeader, packet: &[u8], out: &mut Batch) -> Result<(), Unsegmentable> {
    let kind = header.gso_type & !GSO_ECN;
    if kind == GSO_NONE {
        let whole = out.push();
        whole.set(packet).map_err(|_| Unsegmentable)?;
        if header.flags & NEEDS_CSUM != 0 {
            complete_checksum(whole.as_mut_slice(), header)?;
        }
        return Ok(());
    }
    if !matches!(kind, GSO_TCPV4 | GSO_TCPV6) {
        return Err(Unsegmentable);
    }
    let layout = Layout::of(packet).map_err(|_| Unsegmentable)?;
    if layout.protocol != proto::TCP || layout.v6 != (kind == GSO_TCPV6) {
        return Err(Unsegmentable);
    }
    let ip_len = layout.header_len;
    let tcp = packet.get(ip_len..layout.len).ok_or(Unsegmentable)?;
    let tcp = tcp::Packet::new_checked(tcp).map_err(|_| Unsegmentable)?;
    let mss = usize::from(header.gso_size);
    if mss == 0 {
        return Err(Unsegmentable);
    }
    let headers = &packet[..ip_len + tcp.header_len()];
    let payload = tcp.payload();
    let (seq, flags) = (tcp.seq_number(), tcp.flags());
    let ident = ipv4::Packet::new_unchecked(packet).ident();
    let count = payload.len().div_ceil(mss).max(1);
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let buf = out.push();
        let space = buf.space();
        if headers.len() + chunk.len() > space.len() {
            return Err(Unsegmentable);
        }
        space[..headers.len()].copy_from_slice(headers);
        space[headers.len()..headers.len() + chunk.len()].copy_from_slice(chunk);
        buf.filled(headers.len() + chunk.len());
        let seg = buf.as_mut_slice();
        if !layout.v6 {
            ipv4::Packet::new_unchecked(&mut *seg).set_ident(ident.wrapping_add(i as u16));
        }
        fix_lengths(seg, layout.v6).map_err(|_| Unsegmentable)?;
        let mut t = tcp::Packet::new_unchecked(&mut seg[ip_len..]);
        t.set_seq_number(seq.wrapping_add((i * mss) as u32));
        // FIN and PSH end the run; CWR starts it (RFC 3168 §6.1.2).
        let mut f = flags;
        if i + 1 < count {
            f &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            f &= !TCP_CWR;
        }
        t.set_flags(f);
        tcp_checksum(seg, ip_len, layout.src, layout.dst);
    }
    Ok(())
}

const TCP_FIN: u8 = tcp::flags::FIN;
const TCP_PSH: u8 = tcp::flags::PSH;
const TCP_ACK: u8 = tcp::flags::ACK;
const TCP_CWR: u8 = tcp::flags::CWR;

/// Fills the TCP checksum of `seg` from scratch.
fn tcp_checksum(seg: &mut [u8], ip_len: usize, src: IpAddr, dst: IpAddr) {
    let segment = &mut seg[ip_len..];
    tcp::Packet::new_unchecked(&mut *segment).set_checksum(0);
    let sum = checksum::pseudo_header(src, dst, proto::TCP, segment.len() as u32);
    let value = checksum::finish(checksum::accumulate(sum, segment));
    tcp::Packet::new_unchecked(segment).set_checksum(value);
}

/// Completes a checksum the host left partial: the field holds the
/// pseudo-header's sum, and the rest is summed from `csum_start` on.
fn complete_checksum(packet: &mut [u8], header: &VnetHeader) -> Result<(), Unsegmentable> {
    let start = usize::from(header.csum_start);
    let at = start + usize::from(header.csum_offset);
    if at + 2 > packet.len() {
        return Err(Unsegmentable);
    }
    let value = checksum::finish(checksum::accumulate(0, &packet[start..]));
    packet[at..at + 2].copy_from_slice(&value.to_be_bytes());
    Ok(())
}

/// The largest run handed to the host at once.
const MAX_RUN: usize = 65535;

/// The most datagrams in one UDP run (Linux takes 64 or 128, by version).
const MAX_DATAGRAMS: usize = 64;

const UDP_HEADER: usize = udp::HEADER_LEN;

/// Joins consecutive TCP segments of one connection, and consecutive
/// datagrams of one UDP flow, into runs. Packets go
/// in with [`Coalescer::push`]; [`Coalescer::flush`] gives every run and
/// lone packet back, each with the virtio-net header to write it with, in
/// the order they came (per connection).
#[derive(Debug)]
pub struct Coalescer {
    runs: Vec<Run>,
    /// The buffers no run holds. There are [`BUFFERS`] in all, made once,
    /// each with room for the longest run, so that joining never
    /// reallocates and arrivals allocate nothing.
    spare: Vec<Vec<u8>>,
}

/// Runs and lone packets held at once: when all are taken, what is held
/// goes to the host before the next packet is taken in.
const BUFFERS: usize = 16;

/// An empty buffer with room for `capacity` bytes whose first pages,
/// where a lone packet lands, are written now: the memory is taken when
/// the coalescer is made, not at the first burst.
fn resident(capacity: usize) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(capacity);
    buffer.resize(crate::packet::WORKING_SET, 0);
    std::hint::black_box(&mut buffer);
    buffer.clear();
    buffer
}

impl Default for Coalescer {
    fn default() -> Coalescer {
        Coalescer {
            runs: Vec::with_capacity(BUFFERS),
            spare: (0..BUFFERS).map(|_| resident(MAX_RUN)).collect(),
        }
    }
}

#[derive(Debug)]
struct Run {
    packet: Vec<u8>,
    /// TCP or UDP; 0 for a lone packet.
    protocol: u8,
    /// Where the TCP or UDP header starts, and its length.
    ip_len: usize,
    tcp_len: usize,
    /// The segment size; a shorter segment ends the run.
    mss: usize,
    segments: usize,
    next_seq: u32,
    closed: bool,
    v6: bool,
    src: IpAddr,
    dst: IpAddr,
}

impl Coalescer {
    /// Adds a copy of a packet that is on its way to the host. When every
    /// buffer is taken, what is held first goes to `deliver`, as
    /// [`Coalescer::flush`] gives it.
    pub fn push(&mut self, packet: &[u8], deliver: impl FnMut(&VnetHeader, &[u8])) {
        if self.spare.is_empty() {
            self.flush(deliver);
        }
        let Some(mut copy) = self.spare.pop() else {
            return;
        };
        copy.clear();
        copy.extend_from_slice(packet);
        let seg = match Run::start(copy) {
            Ok(seg) => seg,
            Err(packet) => {
                self.runs.push(Run::lone(packet));
                return;
            }
        };
        if let Some(run) = self.runs.iter_mut().rev().find(|r| r.same_flow(&seg)) {
            if run.append(&seg) {
                self.keep(seg.packet);
                return;
            }
            run.closed = true;
        }
        self.runs.push(seg);
    }

    /// Hands every run and lone packet, with its header, to `deliver`,
    /// oldest first.
    pub fn flush(&mut self, mut deliver: impl FnMut(&VnetHeader, &[u8])) {
        let mut runs = std::mem::take(&mut self.runs);
        for run in runs.drain(..) {
            let (header, packet) = run.finish();
            deliver(&header, &packet);
            self.keep(packet);
        }
        // The emptied list keeps its room for the next round.
        self.runs = runs;
    }

    fn keep(&mut self, buffer: Vec<u8>) {
        self.spare.push(buffer);
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

impl Run {
    fn lone(packet: Vec<u8>) -> Run {
        Run {
            packet,
            protocol: 0,
            ip_len: 0,
            tcp_len: 0,
            mss: 0,
            segments: 1,
            next_seq: 0,
            closed: true,
            v6: false,
            src: IpAddr::from([0, 0, 0, 0]),
            dst: IpAddr::from([0, 0, 0, 0]),
        }
    }

    /// A run of one, if the packet may start one: TCP carrying data with
    /// only ACK (and PSH, which then ends it) set, or a UDP datagram
    /// whose length is its packet's; not a fragment, IPv4 without
    /// options. Otherwise the packet back.
    fn start(packet: Vec<u8>) -> Result<Run, Vec<u8>> {
        let Ok(layout) = Layout::of(&packet) else {
            return Err(packet);
        };
        let joinable = matches!(layout.protocol, proto::TCP | proto::UDP)
            && layout.len == packet.len()
            && !layout.later_fragment
            && if layout.v6 {
                layout.header_len == 40
            } else {
                layout.header_len == 20 && !more_fragments(&packet)
            };
        if !joinable {
            return Err(packet);
        }
        let ip_len = layout.header_len;
        if layout.protocol == proto::UDP {
            let data = packet.len() - ip_len;
            let whole = udp::Packet::new_checked(&packet[ip_len..])
                .is_ok_and(|u| usize::from(u.len()) == data && data > UDP_HEADER);
            if !whole {
                return Err(packet);
            }
            return Ok(Run {
                protocol: proto::UDP,
                ip_len,
                tcp_len: UDP_HEADER,
                mss: data - UDP_HEADER,
                segments: 1,
                next_seq: 0,
                closed: false,
                v6: layout.v6,
                src: layout.src,
                dst: layout.dst,
                packet,
            });
        }
        let Ok(tcp) = tcp::Packet::new_checked(&packet[ip_len..]) else {
            return Err(packet);
        };
        let (tcp_len, flags, seq) = (tcp.header_len(), tcp.flags(), tcp.seq_number());
        let data = tcp.payload().len();
        if data == 0 || flags & !TCP_PSH != TCP_ACK {
            return Err(packet);
        }
        Ok(Run {
            protocol: proto::TCP,
            ip_len,
            tcp_len,
            mss: data,
            segments: 1,
            next_seq: seq.wrapping_add(data as u32),
            closed: flags & TCP_PSH != 0,
            v6: layout.v6,
            src: layout.src,
            dst: layout.dst,
            packet,
        })
    }

    fn same_flow(&self, other: &Run) -> bool {
        self.protocol != 0
            && self.protocol == other.protocol
            && self.src == other.src
            && self.dst == other.dst
            && self.packet[self.ip_len..self.ip_len + 4]
                == other.packet[other.ip_len..other.ip_len + 4]
    }

    /// Appends the next segment if it continues this run exactly: the
    /// same headers but for sequence, checksum and PSH, the next bytes,
    /// and no longer than the segments before it.
    fn append(&mut self, seg: &Run) -> bool {
        if self.protocol == proto::UDP {
            return self.append_datagram(seg);
        }
        let segment = tcp::Packet::new_unchecked(&seg.packet[seg.ip_len..]);
        let (data, seq, flags) = (segment.payload(), segment.seq_number(), segment.flags());
        if self.closed
            || seq != self.next_seq
            || seg.tcp_len != self.tcp_len
            || data.len() > self.mss
            || self.packet.len() + data.len() > MAX_RUN
            || !self.headers_match(seg)
        {
            return false;
        }
        self.packet.extend_from_slice(data);
        self.segments += 1;
        self.next_seq = seq.wrapping_add(data.len() as u32);
        if flags & TCP_PSH != 0 || data.len() < self.mss {
            self.closed = true;
            let mut run = tcp::Packet::new_unchecked(&mut self.packet[self.ip_len..]);
            run.set_flags(run.flags() | flags & TCP_PSH);
        }
        true
    }

    /// Appends the next datagram of the flow if it is no longer than those
    /// before it (a shorter one ends the run) and its IP header agrees.
    fn append_datagram(&mut self, seg: &Run) -> bool {
        let data = &seg.packet[seg.ip_len + UDP_HEADER..];
        if self.closed
            || self.segments == MAX_DATAGRAMS
            || data.len() > self.mss
            || self.packet.len() + data.len() > MAX_RUN
            || !self.ip_headers_match(seg)
        {
            return false;
        }
        self.packet.extend_from_slice(data);
        self.segments += 1;
        self.closed = data.len() < self.mss;
        true
    }

    /// IP fields that must agree: TOS, TTL, DF; for IPv6 class, flow
    /// label and hop limit.
    fn ip_headers_match(&self, seg: &Run) -> bool {
        let (a, b) = (&self.packet, &seg.packet);
        if self.v6 {
            a[0..4] == b[0..4] && a[7] == b[7]
        } else {
            a[1] == b[1] && a[6] == b[6] && a[8] == b[8]
        }
    }

    /// The IP fields of [`Run::ip_headers_match`] and the TCP header past
    /// the sequence number, checksum and flags aside (ACK, window, options
    /// such as timestamps).
    fn headers_match(&self, seg: &Run) -> bool {
        let (a, b) = (&self.packet, &seg.packet);
        let (ta, tb) = (&a[self.ip_len..], &b[seg.ip_len..]);
        self.ip_headers_match(seg)
            && ta[8..13] == tb[8..13]
            && ta[14..16] == tb[14..16]
            && ta[18..self.tcp_len] == tb[18..self.tcp_len]
    }

    /// The run as one packet with its header: lone packets as they are;
    /// runs with fixed lengths, the IPv4 checksum made again, and the TCP
    /// or UDP checksum left for the host to complete from the
    /// pseudo-header (which is what a run handed over with TSO or USO
    /// looks like; the host cuts a UDP run into datagrams of `mss` bytes
    /// and fixes each one's length and checksum).
    fn finish(mut self) -> (VnetHeader, Vec<u8>) {
        if self.segments == 1 {
            return (VnetHeader::default(), self.packet);
        }
        if fix_lengths(&mut self.packet, self.v6).is_err() {
            return (VnetHeader::default(), self.packet);
        }
        let len = self.packet.len() - self.ip_len;
        let (gso_type, csum_offset) = match (self.protocol, self.v6) {
            (proto::UDP, _) => {
                udp::Packet::new_unchecked(&mut self.packet[self.ip_len..]).set_len(len as u16);
                (GSO_UDP_L4, udp::CHECKSUM_OFFSET as u16)
            }
            (_, true) => (GSO_TCPV6, tcp::CHECKSUM_OFFSET as u16),
            (_, false) => (GSO_TCPV4, tcp::CHECKSUM_OFFSET as u16),
        };
        let pseudo = checksum::pseudo_header(self.src, self.dst, self.protocol, len as u32);
        // The folded sum, not complemented: the host adds the rest.
        let partial = !checksum::finish(pseudo);
        let at = self.ip_len + usize::from(csum_offset);
        self.packet[at..at + 2].copy_from_slice(&partial.to_be_bytes());
        let header = VnetHeader {
            flags: NEEDS_CSUM,
            gso_type,
            hdr_len: (self.ip_len + self.tcp_len) as u16,
            gso_size: self.mss as u16,
            csum_start: self.ip_len as u16,
            csum_offset,
        };
        (header, self.packet)
    }
}

fn more_fragments(packet: &[u8]) -> bool {
    packet[6] & 0x20 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketBuf;

    /// For pushes that fit: nothing goes to the host before the flush.
    fn early(_: &VnetHeader, _: &[u8]) {
        panic!("delivered before the flush");
    }

    #[test]
    fn when_every_buffer_is_taken_what_is_held_goes_first() {
        let mut c = Coalescer::default();
        let mut delivered = Vec::new();
        for i in 0..BUFFERS + 3 {
            // Lone packets (no data): one buffer each.
            let packet = tcp(false, i as u32, TCP_ACK, &[]);
            c.push(&packet, |_, p| delivered.push(p.to_vec()));
        }
        assert_eq!(delivered.len(), BUFFERS);
        assert_eq!(flushed(&mut c).len(), 3);
        assert_eq!(c.spare.len(), BUFFERS);
        let seqs: Vec<u8> = delivered.iter().map(|p| p[27]).collect();
        assert_eq!(seqs, (0..BUFFERS as u8).collect::<Vec<_>>());
    }

    /// What a flush delivers, copied.
    fn flushed(c: &mut Coalescer) -> Vec<(VnetHeader, Vec<u8>)> {
        let mut out = Vec::new();
        c.flush(|h, p| out.push((*h, p.to_vec())));
        out
    }

    /// A TCP segment from 10.0.0.1:1000 to 10.0.0.2:2000 (or IPv6).
    fn tcp(v6: bool, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let mut p = if v6 {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, proto::TCP, 64];
            h.extend_from_slice(&[0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            h.extend_from_slice(&[0xfd, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            h
        } else {
            vec![
                0x45,
                0,
                0,
                0,
                0x12,
                0x34,
                0x40,
                0,
                64,
                proto::TCP,
                0,
                0,
                10,
                0,
                0,
                1,
                10,
                0,
                0,
                2,
            ]
        };
        let ip_len = p.len();
        let mut t = vec![0u8; 32];
        t[0..2].copy_from_slice(&1000u16.to_be_bytes());
        t[2..4].copy_from_slice(&2000u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&77u32.to_be_bytes());
        t[12] = 8 << 4; // 32 bytes: with a timestamp option
        t[13] = flags;
        t[14..16].copy_from_slice(&500u16.to_be_bytes());
        t[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8]);
        p.extend_from_slice(&t);
        p.extend_from_slice(data);
        fix_lengths(&mut p, v6).unwrap();
        let layout = Layout::of(&p).unwrap();
        tcp_checksum(&mut p, ip_len, layout.src, layout.dst);
        p
    }

    fn valid(p: &[u8]) -> bool {
        let l = Layout::of(p).unwrap();
        let sum = checksum::pseudo_header(l.src, l.dst, proto::TCP, (l.len - l.header_len) as u32);
        checksum::finish(checksum::accumulate(sum, &p[l.header_len..l.len])) == 0
    }

    #[test]
    fn a_run_is_cut_into_its_segments_and_joined_again() {
        for v6 in [false, true] {
            let data: Vec<u8> = (0..3500u32).map(|i| (i * 7) as u8).collect();
            let mut run = tcp(v6, 1000, TCP_ACK | TCP_PSH, &data);
            let ip_len = if v6 { 40 } else { 20 };
            let header = VnetHeader {
                flags: NEEDS_CSUM,
                gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                hdr_len: (ip_len + 32) as u16,
                gso_size: 1400,
                csum_start: ip_len as u16,
                csum_offset: 16,
            };
            // The host leaves the pseudo-header's sum in the field.
            run[ip_len + 16..ip_len + 18].fill(0xaa);
            let mut batch = Batch::default();
            segment(&header, &run, &mut batch).unwrap();
            let segments: Vec<&[u8]> = batch.as_slice().iter().map(PacketBuf::as_slice).collect();
            assert_eq!(segments.len(), 3);
            for (i, s) in segments.iter().enumerate() {
                assert!(valid(s), "segment {i} v6={v6}");
                let want = if i < 2 { 1400 } else { 700 };
                assert_eq!(s.len(), ip_len + 32 + want);
                let seq = u32::from_be_bytes(s[ip_len + 4..ip_len + 8].try_into().unwrap());
                assert_eq!(seq, 1000 + 1400 * i as u32);
                let psh = s[ip_len + 13] & TCP_PSH != 0;
                assert_eq!(psh, i == 2, "only the last keeps PSH");
            }
            // And back: one run, the same bytes, a header for TSO.
            let mut c = Coalescer::default();
            for s in segments {
                c.push(s, early);
            }
            let out = flushed(&mut c);
            assert_eq!(out.len(), 1);
            let (h, joined) = &out[0];
            assert_eq!(
                (h.gso_type, h.gso_size, h.flags),
                (header.gso_type, 1400, NEEDS_CSUM)
            );
            assert_eq!(&joined[ip_len + 32..], &data[..]);
            assert_eq!(joined[ip_len + 13], TCP_ACK | TCP_PSH);
            // Completing the partial checksum gives a valid segment.
            let mut done = joined.clone();
            complete_checksum(&mut done, h).unwrap();
            assert!(valid(&done));
        }
    }

    #[test]
    fn only_consecutive_segments_of_one_connection_join() {
        let mut c = Coalescer::default();
        c.push(&tcp(false, 0, TCP_ACK, &[1; 100]), early);
        c.push(&tcp(false, 100, TCP_ACK, &[2; 100]), early);
        c.push(&tcp(false, 300, TCP_ACK, &[3; 100]), early); // a gap
        c.push(&tcp(false, 400, TCP_ACK | 0x01, &[4; 100]), early); // FIN
        c.push(&tcp(false, 500, TCP_ACK, &[]), early); // a bare ACK
        let mut other = tcp(false, 200, TCP_ACK, &[5; 100]);
        other[20] = 9; // another source port
        let l = Layout::of(&other).unwrap();
        tcp_checksum(&mut other, 20, l.src, l.dst);
        c.push(&other, early);
        let sizes: Vec<usize> = flushed(&mut c).iter().map(|(_, p)| p.len() - 52).collect();
        assert_eq!(sizes, vec![200, 100, 100, 0, 100]);
    }

    #[test]
    fn partial_checksums_are_completed_and_bad_runs_refused() {
        let mut p = tcp(false, 0, TCP_ACK, &[9; 10]);
        let good = p.clone();
        let l = Layout::of(&p).unwrap();
        let pseudo = checksum::pseudo_header(l.src, l.dst, proto::TCP, (p.len() - 20) as u32);
        p[36..38].copy_from_slice(&(!checksum::finish(pseudo)).to_be_bytes());
        let h = VnetHeader {
            flags: NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHeader::default()
        };
        let mut out = Batch::default();
        segment(&h, &p, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out.as_slice()[0].as_slice(), &good[..]);
        let bad = VnetHeader {
            gso_type: GSO_TCPV6,
            gso_size: 100,
            ..VnetHeader::default()
        };
        assert_eq!(segment(&bad, &p, &mut out), Err(Unsegmentable));
        assert_eq!(
            segment(
                &VnetHeader {
                    csum_start: 60,
                    ..h
                },
                &p,
                &mut out
            ),
            Err(Unsegmentable)
        );
        let mut bytes = [0u8; HEADER_LEN];
        h.write(&mut bytes);
        assert_eq!(VnetHeader::parse(&bytes), Some(h));
    }

    /// A UDP datagram from 10.0.0.1:1000 to 10.0.0.2:`port`.
    fn udp(port: u16, data: &[u8]) -> Vec<u8> {
        let mut p = tcp(false, 0, TCP_ACK, &[]);
        p.truncate(20);
        p[9] = proto::UDP;
        p.extend_from_slice(&1000u16.to_be_bytes());
        p.extend_from_slice(&port.to_be_bytes());
        p.extend_from_slice(&(8 + data.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(data);
        fix_lengths(&mut p, false).unwrap();
        p
    }

    #[test]
    fn equal_datagrams_of_one_flow_join_and_a_shorter_one_ends_the_run() {
        let mut c = Coalescer::default();
        for _ in 0..3 {
            c.push(&udp(53, &[1; 100]), early);
        }
        c.push(&udp(53, &[2; 40]), early); // shorter: joins, and ends it
        c.push(&udp(53, &[3; 100]), early); // so this starts another
        c.push(&udp(54, &[4; 100]), early); // another flow
        c.push(&udp(53, &[5; 120]), early); // longer than the run's
        let out = flushed(&mut c);
        let shapes: Vec<(u8, u16, usize)> = out
            .iter()
            .map(|(h, p)| (h.gso_type, h.gso_size, p.len() - 28))
            .collect();
        assert_eq!(
            shapes,
            [
                (GSO_UDP_L4, 100, 340),
                (GSO_NONE, 0, 100),
                (GSO_NONE, 0, 100),
                (GSO_NONE, 0, 120)
            ]
        );
        let (h, run) = &out[0];
        assert_eq!((h.csum_start, h.csum_offset, h.hdr_len), (20, 6, 28));
        assert_eq!(usize::from(u16::from_be_bytes([run[24], run[25]])), 348);
        // The partial checksum completes to a valid one over the run.
        let mut done = run.clone();
        complete_checksum(&mut done, h).unwrap();
        let l = Layout::of(&done).unwrap();
        let sum = checksum::pseudo_header(l.src, l.dst, proto::UDP, 348);
        assert_eq!(checksum::finish(checksum::accumulate(sum, &done[20..])), 0);
        // No run grows past what the host takes in one.
        let mut c = Coalescer::default();
        for _ in 0..MAX_DATAGRAMS + 1 {
            c.push(&udp(53, &[6; 10]), early);
        }
        let counts: Vec<usize> = flushed(&mut c)
            .iter()
            .map(|(_, p)| (p.len() - 28) / 10)
            .collect();
        assert_eq!(counts, [MAX_DATAGRAMS, 1]);
    }

    #[test]
    fn a_run_that_cannot_be_cut_leaves_nothing_behind() {
        // A packet already waiting, then runs too long for the buffers.
        let mut batch = Batch::with_buffers(0, 600);
        segment(
            &VnetHeader::default(),
            &tcp(false, 0, TCP_ACK, &[1; 10]),
            &mut batch,
        )
        .unwrap();
        let run = tcp(false, 0, TCP_ACK, &[2; 3000]);
        let tso = VnetHeader {
            gso_type: GSO_TCPV4,
            gso_size: 1400,
            ..VnetHeader::default()
        };
        assert_eq!(segment(&tso, &run, &mut batch), Err(Unsegmentable));
        assert_eq!(
            segment(&VnetHeader::default(), &run, &mut batch),
            Err(Unsegmentable)
        );
        assert_eq!(batch.len(), 1);
        // What fits is cut as ever.
        let small = VnetHeader {
            gso_size: 500,
            ..tso
        };
        segment(&small, &run, &mut batch).unwrap();
        assert_eq!(batch.len(), 1 + 6);
    }
}
