//! The packet path: plaintext from `enc0` out to peers as ESP, AH,
//! IPComp or IP-in-IP; protected packets from peers in, opened, checked
//! against the inbound flows and handed to `enc0`. OpenBSD's flow-type
//! semantics decide what happens without an SA (`use` and `acquire` send
//! in the clear, `require` and `dontacq` drop, `bypass` passes, `deny`
//! drops).

use super::complaints::Subject;
use super::counters::DropReason;
use super::*;
use crate::packet::PacketBuf;
use crate::sad::{Expiry, SaId, State};
use crate::spd::{Direction, PacketKey};
use crate::too_big;
use crate::wire::{self, ipv4};
use crate::xform::ip::{self as ipx, Layout, proto};
use crate::xform::{Refusal, Transform, natt};
use pfkey::{FlowType, sa_flags};

/// The UDP port of ESP in UDP (RFC 3948).
pub const NAT_T_PORT: u16 = natt::PORT;

/// What an enc capture shows of a packet (OpenBSD's `enchdr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    pub inbound: bool,
    /// The SPI as a number (written big-endian in the capture).
    pub spi: u32,
    /// [`ENC_CONF`] and [`ENC_AUTH`].
    pub flags: u32,
    pub packet: Vec<u8>,
}

/// The packet was encrypted.
pub const ENC_CONF: u32 = 0x0400;
/// The packet was authenticated.
pub const ENC_AUTH: u32 = 0x0800;

/// What became of a packet. The packet itself is in the caller's buffer,
/// changed in place: protected or opened, or replaced by a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the buffer's packet to the wire: protected, or deliberately
    /// clear.
    Wire,
    /// Hand the buffer's packet to the host on `enc0`: an opened arrival.
    Enc,
    /// Dropped, and counted. With `reply`, the buffer now holds an ICMP
    /// error for the sender, for `enc0`.
    Dropped { reason: DropReason, reply: bool },
}

/// What else handling packets produced, beside the packets themselves:
/// kept by the caller and drained when it likes, so that the vectors
/// keep their room and a packet that makes neither costs no allocation.
#[derive(Debug, Default)]
pub struct Events {
    /// Copies for an enc capture, when one is on.
    pub taps: Vec<Tap>,
    /// PF_KEY messages: ACQUIREs and EXPIREs.
    pub messages: Vec<Delivery>,
}

/// How a packet went wrong, as the path unwinds.
type Fate<T> = Result<T, DropReason>;

impl From<Refusal> for DropReason {
    fn from(r: Refusal) -> DropReason {
        match r {
            Refusal::Malformed => DropReason::Malformed,
            Refusal::Authentication => DropReason::Authentication,
            Refusal::Padding => DropReason::Padding,
        }
    }
}

impl From<wire::Error> for DropReason {
    fn from(e: wire::Error) -> DropReason {
        match e {
            wire::Error::Truncated => DropReason::Truncated,
            wire::Error::BadLength => DropReason::BadLength,
            wire::Error::BadVersion => DropReason::BadVersion,
            wire::Error::BadChecksum => DropReason::BadChecksum,
            wire::Error::BadPadding => DropReason::Padding,
        }
    }
}

impl From<ipx::CannotBuild> for DropReason {
    fn from(_: ipx::CannotBuild) -> DropReason {
        DropReason::TooBig
    }
}

/// What the outbound flows made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Out {
    Protected,
    /// To go on unprotected; `flow` when a flow said so, not for want of
    /// one.
    Clear {
        flow: bool,
    },
}

/// Where a drop happened, as far as the path got: the SA (or, with SPI
/// 0, the peer an SA was wanted for) and the outer source of an arrival.
#[derive(Debug, Default)]
pub(super) struct Blame {
    sa: Option<SaId>,
    pub(super) src: Option<IpAddr>,
    /// The buffer holds an ICMP error for the sender now.
    pub(super) reply: bool,
}

impl Engine {
    /// Counts a drop, on its SA too, and keeps it for the rate-limited
    /// complaints when it concerns a peer (not the host's own chatter on
    /// the enc interface, and not what a deny flow is there to drop).
    pub(super) fn dropped(&mut self, reason: DropReason, inbound: bool, blame: &Blame) {
        self.counters.drop(reason, inbound);
        if let Some(id) = &blame.sa {
            self.sad.count_drop(id, inbound);
        }
        if (inbound || blame.sa.is_some()) && reason != DropReason::Denied {
            self.complaints.note(Subject {
                reason,
                inbound,
                satype: blame.sa.map_or(SaType::ESP, |id| id.satype),
                spi: blame.sa.map_or(0, |id| id.spi),
                src: blame.src,
                dst: blame.sa.map(|id| id.dst),
            });
        }
    }

    /// A packet the host routed into `enc0`, in `buf`: protected in place
    /// for the wire, passed on clear, or dropped.
    pub fn outbound(&mut self, buf: &mut PacketBuf, now: u64, events: &mut Events) -> Verdict {
        let mut blame = Blame::default();
        let sent = self
            .try_outbound(buf, self.path_mtu, now, events, &mut blame)
            .and_then(|out| match out {
                Out::Protected => Ok(()),
                // The host's own chatter on enc0 (IPv6 router
                // solicitations, MLD) has no business on another link.
                Out::Clear { flow: false } if !routable(Layout::of(buf.as_slice())?.dst) => {
                    Err(DropReason::NoPolicy)
                }
                Out::Clear { .. } => self.send_clear(buf),
            });
        match sent {
            Ok(()) => Verdict::Wire,
            Err(reason) => {
                self.dropped(reason, false, &blame);
                Verdict::Dropped {
                    reason,
                    reply: blame.reply,
                }
            }
        }
    }

    /// The outbound flows' decision for a packet, and its protection
    /// when an SA applies, to leave on a path of `mtu`; a clear packet is
    /// left as it is.
    pub(super) fn try_outbound(
        &mut self,
        buf: &mut PacketBuf,
        mtu: usize,
        now: u64,
        events: &mut Events,
        blame: &mut Blame,
    ) -> Fate<Out> {
        let layout = Layout::of(buf.as_slice())?;
        buf.keep(0..layout.len);
        let key = PacketKey::of(&layout, buf.as_slice(), Direction::Out);
        let Some((sel, policy)) = self.spd.lookup_mut(&key) else {
            // No flow: no IPsec, as on OpenBSD.
            return Ok(Out::Clear { flow: false });
        };
        let sel = *sel;
        policy.usage.count(layout.len, now);
        let (flow_type, satype, peer) = (policy.flow_type, policy.satype, policy.peer);
        match flow_type {
            FlowType::BYPASS => return Ok(Out::Clear { flow: true }),
            FlowType::DENY => return Err(DropReason::Denied),
            _ => {}
        }
        let gateway = peer.unwrap_or(layout.dst);
        let usable = |id: &SaId| {
            id.dst == gateway
                && id.satype == satype
                && self.sad.get(id).is_some_and(|sa| sa.state == State::Mature)
        };
        let sa = match policy.bound.filter(usable) {
            Some(id) => Some(id),
            None => self.sad.oldest_to(gateway, satype, &sel),
        };
        policy.bound = sa;
        let Some(sa) = sa else {
            blame.sa = Some(SaId {
                dst: gateway,
                spi: 0,
                satype,
            });
            if matches!(flow_type, FlowType::ACQUIRE | FlowType::REQUIRE) {
                events.messages.extend(self.acquire(&key, now));
            }
            return match flow_type {
                FlowType::USE | FlowType::ACQUIRE => Ok(Out::Clear { flow: true }),
                _ => Err(DropReason::NoSa),
            };
        };
        blame.sa = Some(sa);
        // Protection happens in place; if the result may not fit the
        // path, keep the original for the ICMP error that quotes it.
        let may_not_fit = layout.len + self.bundle_overhead(sa) > mtu;
        if may_not_fit {
            self.original.clear();
            self.original.extend_from_slice(buf.as_slice());
        }
        self.protect(buf, sa, now, events)?;
        if buf.len() > mtu {
            // enc0's MTU leaves room for the worst SA, so only a packet
            // that came in larger gets here. Tell its sender, as a router
            // on the path would (RFC 1191, RFC 8201).
            let room = mtu.saturating_sub(buf.len() - layout.len);
            let room = u16::try_from(room).unwrap_or(u16::MAX);
            let original = &self.original[..];
            let dont_fragment = layout.v6 || ipv4::Packet::new_unchecked(original).dont_fragment();
            if may_not_fit
                && dont_fragment
                && let Some(reply) = too_big::reply(original, room, layout.dst)
                && buf.set(&reply).is_ok()
            {
                blame.reply = true;
            }
            return Err(DropReason::TooBig);
        }
        self.counters.protected_out += 1;
        Ok(Out::Protected)
    }

    /// Sends a packet on unprotected, as a router would: one hop less.
    /// That also ends the loop a route of the host's own can make, into
    /// enc0 from the main table, which the daemon's marked packets use.
    fn send_clear(&mut self, buf: &mut PacketBuf) -> Fate<()> {
        let packet = buf.as_mut_slice();
        let ttl_at = if packet[0] >> 4 == 6 { 7 } else { 8 };
        if packet[ttl_at] <= 1 {
            return Err(DropReason::HopLimit);
        }
        packet[ttl_at] -= 1;
        if ttl_at == 8 {
            ipv4::Packet::new_unchecked(&mut packet[..]).fill_checksum();
        }
        self.counters.clear_out += 1;
        Ok(())
    }

    /// Applies an SA and the rest of its bundle to the packet in `buf`.
    fn protect(
        &mut self,
        buf: &mut PacketBuf,
        first: SaId,
        now: u64,
        events: &mut Events,
    ) -> Fate<()> {
        let mut next = Some(first);
        while let Some(id) = next {
            let (sa, live) = self
                .sad
                .live_mut(&id)
                .ok_or(DropReason::NoSa)?
                .map_err(|_| DropReason::Unkeyed)?;
            next = sa.next;
            let layout = Layout::of(buf.as_slice())?;
            // Tunnel mode when the SA says so or when it cannot be
            // transport mode: another family, or another destination.
            let tunnel = sa.flags & sa_flags::TUNNEL != 0
                || matches!(live.transform, Transform::Ipip)
                || sa.id.dst.is_ipv6() != layout.v6
                || sa.id.dst != layout.dst;
            if tunnel {
                self.ident = self.ident.wrapping_add(1);
                ipx::encapsulate(buf, sa.src, sa.id.dst, self.ident)?;
            }
            let layout = Layout::of(buf.as_slice())?;
            let bytes = layout.len - layout.header_len;
            if self.capture {
                events.taps.push(Tap {
                    inbound: false,
                    spi: sa.id.spi,
                    flags: enc_flags(&live.transform),
                    packet: buf.as_slice().to_vec(),
                });
            }
            let spi = sa.id.spi;
            let udp_port = (sa.flags & sa_flags::UDPENCAP != 0)
                .then(|| sa.udpencap_port.filter(|&p| p != 0).unwrap_or(NAT_T_PORT));
            let sequenced = matches!(live.transform, Transform::Esp(_) | Transform::Ah(_));
            let Some(seq) = (if sequenced {
                live.sequence.take()
            } else {
                Some(0)
            }) else {
                // Every sequence number is used: the SA expires, as at a
                // hard limit, so that a key manager makes a new one.
                if let Some(sa) = self.sad.delete(&id) {
                    events.messages.extend(self.expired(&sa, Expiry::Hard));
                }
                return Err(DropReason::Expired);
            };
            match &live.transform {
                Transform::Ipip => {}
                Transform::Esp(esp) => {
                    esp.seal(buf, &layout, spi, seq, live.esn, &mut self.ivs)?;
                    if let Some(port) = udp_port {
                        natt::encapsulate(buf, &layout, port)?;
                    }
                }
                Transform::Ah(ah) => ah.seal(buf, &layout, spi, seq, live.esn)?,
                Transform::IpComp(ipcomp) => {
                    let payload = layout.payload(buf.as_slice());
                    if let Some(packed) = ipcomp.compress(spi as u16, layout.protocol, payload) {
                        replace_payload(buf, &layout, proto::IPCOMP, &packed)?;
                    }
                }
            }
            if let Some((sa, expiry)) = self.sad.account(&id, bytes as u64, false, now) {
                events.messages.extend(self.expired(&sa, expiry));
                if expiry == Expiry::Hard {
                    return Err(DropReason::Expired);
                }
            }
        }
        Ok(())
    }

    /// An ESP or AH packet from a peer (with `udp_port` when it came in
    /// UDP), as a whole IP packet in `buf`: opened in place for `enc0`,
    /// or dropped.
    pub fn inbound(
        &mut self,
        buf: &mut PacketBuf,
        udp_port: Option<u16>,
        now: u64,
        events: &mut Events,
    ) -> Verdict {
        let mut blame = Blame::default();
        match self.try_inbound(buf, udp_port, now, events, &mut blame) {
            Ok(()) => Verdict::Enc,
            Err(reason) => {
                self.dropped(reason, true, &blame);
                Verdict::Dropped {
                    reason,
                    reply: false,
                }
            }
        }
    }

    fn try_inbound(
        &mut self,
        buf: &mut PacketBuf,
        udp_port: Option<u16>,
        now: u64,
        events: &mut Events,
        blame: &mut Blame,
    ) -> Fate<()> {
        let mut layout = Layout::of(buf.as_slice())?;
        blame.src = Some(layout.src);
        buf.keep(0..layout.len);
        // A bundle is at most a few SAs deep; each may appear once.
        let mut used: [Option<SaId>; MAX_BUNDLE] = [None; MAX_BUNDLE];
        let mut depth = 0;
        let mut tunneled = false;
        let mut encapsulated = udp_port.is_some();
        loop {
            let satype = match layout.protocol {
                proto::ESP => SaType::ESP,
                proto::AH => SaType::AH,
                proto::IPCOMP => SaType::X_IPCOMP,
                proto::IPV4 | proto::IPV6 if depth > 0 => {
                    // The tunnel's inner packet; it must be what the
                    // outer header says it is.
                    buf.keep(layout.header_len..layout.len);
                    let inner = Layout::of(buf.as_slice())?;
                    if inner.v6 != (layout.protocol == proto::IPV6) {
                        return Err(DropReason::Malformed);
                    }
                    buf.keep(0..inner.len);
                    layout = inner;
                    tunneled = true;
                    continue;
                }
                _ => break,
            };
            let spi =
                spi_of(satype, layout.payload(buf.as_slice())).ok_or(DropReason::Truncated)?;
            let id = SaId {
                dst: layout.dst,
                spi,
                satype,
            };
            let seen = &used[..depth];
            if depth == MAX_BUNDLE
                || seen.contains(&Some(id))
                || (satype == SaType::X_IPCOMP && seen.iter().flatten().any(|u| u.satype == satype))
            {
                return Err(DropReason::Malformed);
            }
            blame.sa = Some(id);
            let (sa, live) = self
                .sad
                .live_mut(&id)
                .ok_or(DropReason::NoSa)?
                .map_err(|_| DropReason::Unkeyed)?;
            if (sa.flags & sa_flags::UDPENCAP != 0) != encapsulated {
                return Err(DropReason::EncapMismatch);
            }
            // The SA is the peer's: a packet from elsewhere under its SPI
            // is not the peer's, whatever its ICV (ESP does not cover the
            // outer source).
            if sa.src != layout.src && !sa.src.is_unspecified() {
                return Err(DropReason::PolicyMismatch);
            }
            let esn = live.esn;
            let at = layout.header_len;
            let bytes = (layout.len - at) as u64;
            let next_header = match &live.transform {
                Transform::Esp(esp) => {
                    let packet = buf.as_mut_slice();
                    let low = wire::esp::Packet::new_checked(&packet[at..])?.sequence_number();
                    let seq = check_replay(live.replay.as_ref(), low)?;
                    let (range, next) = esp.open(&mut packet[at..], seq, esn)?;
                    commit_replay(live.replay.as_mut(), seq)?;
                    buf.keep(0..at + range.end);
                    buf.remove(at, range.start);
                    next
                }
                Transform::Ah(ah) => {
                    let packet = buf.as_slice();
                    let low = wire::ah::Packet::new_checked(&packet[at..])?.sequence_number();
                    let seq = check_replay(live.replay.as_ref(), low)?;
                    let (next, ah_len) = ah.open(packet, &layout, seq, esn)?;
                    commit_replay(live.replay.as_mut(), seq)?;
                    buf.remove(at, ah_len);
                    next
                }
                Transform::IpComp(ipcomp) => {
                    let (payload, next) = ipcomp.decompress(layout.payload(buf.as_slice()))?;
                    replace_payload(buf, &layout, next, &payload)?;
                    next
                }
                Transform::Ipip => return Err(DropReason::Malformed),
            };
            let flags = enc_flags(&live.transform);
            ipx::reframe(buf.as_mut_slice(), &layout, next_header)?;
            layout = Layout::of(buf.as_slice())?;
            if encapsulated && matches!(next_header, proto::TCP | proto::UDP) {
                // Transport mode through a NAT: the sender's checksum
                // covered addresses the NAT rewrote (RFC 3948 §3.1.2).
                natt::fix_transport_checksum(buf.as_mut_slice(), &layout);
            }
            encapsulated = false;
            if self.capture && satype != SaType::X_IPCOMP {
                events.taps.push(Tap {
                    inbound: true,
                    spi,
                    flags,
                    packet: buf.as_slice().to_vec(),
                });
            }
            used[depth] = Some(id);
            depth += 1;
            if let Some((sa, expiry)) = self.sad.account(&id, bytes, true, now) {
                events.messages.extend(self.expired(&sa, expiry));
            }
        }
        self.admit(buf.as_slice(), &layout, &used[..depth], tunneled, now)?;
        self.counters.protected_in += 1;
        Ok(())
    }

    /// The inbound policy check of an opened packet, as OpenBSD makes it
    /// once a packet is opened: flows that require protection accept it
    /// only through an SA of the flow's protocol from the flow's peer.
    pub(super) fn admit(
        &mut self,
        packet: &[u8],
        layout: &Layout,
        used: &[Option<SaId>],
        tunneled: bool,
        now: u64,
    ) -> Fate<()> {
        let key = PacketKey::of(layout, packet, Direction::In);
        let Some((_, policy)) = self.spd.lookup_mut(&key) else {
            // Like Linux, and unlike OpenBSD, a tunnel may carry only what
            // some flow asks for.
            return if tunneled {
                Err(DropReason::NoPolicy)
            } else {
                Ok(())
            };
        };
        policy.usage.count(packet.len(), now);
        let (flow_type, satype, peer) = (policy.flow_type, policy.satype, policy.peer);
        match flow_type {
            FlowType::DENY => Err(DropReason::Denied),
            FlowType::REQUIRE | FlowType::DONTACQ => {
                let from = peer.unwrap_or(layout.src);
                let through = used.iter().flatten().any(|id| {
                    id.satype == satype && self.sad.get(id).is_some_and(|sa| sa.src == from)
                });
                if through {
                    Ok(())
                } else {
                    Err(DropReason::PolicyMismatch)
                }
            }
            _ => Ok(()),
        }
    }
}

/// The SPI in the ESP, AH or IPComp header at the start of `payload`
/// (IPComp's CPI is 16 bits); `None` when the header is cut short.
pub(super) fn spi_of(satype: SaType, payload: &[u8]) -> Option<u32> {
    match (satype, payload) {
        (SaType::ESP, [a, b, c, d, ..]) => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        (SaType::AH, [_, _, _, _, a, b, c, d, ..]) => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        (SaType::X_IPCOMP, [_, _, a, b, ..]) => Some(u32::from(u16::from_be_bytes([*a, *b]))),
        _ => None,
    }
}

/// The deepest bundle an arrival may open: OpenBSD's own bundles are two
/// SAs deep; this leaves room for IPComp and a tunnel.
const MAX_BUNDLE: usize = 4;

/// Replaces what follows the header of the packet in `buf` with
/// `payload`, which a transform made elsewhere (IPComp's compressor).
fn replace_payload(buf: &mut PacketBuf, layout: &Layout, protocol: u8, payload: &[u8]) -> Fate<()> {
    let at = layout.header_len;
    buf.keep(0..at);
    buf.push_back(payload.len())?[at..].copy_from_slice(payload);
    ipx::reframe(buf.as_mut_slice(), layout, protocol)?;
    Ok(())
}

/// Whether a destination is beyond the link: not multicast, broadcast or
/// link-local.
fn routable(dst: IpAddr) -> bool {
    match dst {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_link_local()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unicast_link_local()),
    }
}

/// OpenBSD's enc header flags for packets through a transform.
fn enc_flags(t: &Transform) -> u32 {
    match t {
        Transform::Esp(esp) => ENC_CONF | if esp.authenticates() { ENC_AUTH } else { 0 },
        Transform::Ah(_) => ENC_AUTH,
        _ => 0,
    }
}

fn check_replay(window: Option<&crate::replay::ReplayWindow>, low: u32) -> Fate<u64> {
    match window {
        Some(w) => w.check(low).map_err(|_| DropReason::Replay),
        None => Ok(u64::from(low)),
    }
}

fn commit_replay(window: Option<&mut crate::replay::ReplayWindow>, seq: u64) -> Fate<()> {
    match window {
        Some(w) => w.commit(seq).map_err(|_| DropReason::Replay),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
