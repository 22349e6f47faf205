//! IP packets crossing bridge mode's ports, between hosts that know
//! nothing of IPsec. ESP, AH or IPComp for an SA the bridge holds is
//! opened, whoever it is addressed to (the SA may use the protected
//! host's own address), and admitted by the inbound flows. Anything else
//! may cross in the clear only if no inbound flow requires it protected;
//! then the outbound flows decide, as for a packet from `enc0`, except
//! that a bridge does not route: what goes on clear keeps its TTL. What
//! an SA protects under an address other than its sender's (the
//! bridge's own, in tunnel mode) is the bridge host's to route.

use super::datapath::{Blame, Out, spi_of};
use super::*;
use crate::packet::PacketBuf;
use crate::sa::{SaId, State};
use crate::wire::layout::Layout;
use crate::wire::{ipv4, proto};
use std::net::IpAddr;

/// What became of an IP packet crossing the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// Protected by an outbound flow's SA under its sender's address:
    /// the buffer holds the packet to send on, between the same stations.
    Protected,
    /// Protected by an outbound flow's SA under another address, the
    /// bridge's own: the buffer holds the packet, for the host's stack to
    /// route to the SA's peer.
    Routed,
    /// Opened: the buffer holds what the SA carried.
    Opened,
    /// Goes on as it came.
    Clear,
    /// Dropped and counted.
    Dropped(DropReason),
    /// Dropped and counted, too big to cross once protected: the buffer
    /// holds the ICMP error for the sender, to go back the way the
    /// packet came.
    TooBig,
}

impl Engine {
    /// Decides the fate of the IP packet in `buf`, which is crossing the
    /// bridge, and protects or opens it in place.
    pub fn cross(&mut self, buf: &mut PacketBuf, now: u64, events: &mut Events) -> Crossing {
        // Nothing the host stack would refuse crosses: an IPv4 header
        // must hold its checksum, as a router checks it.
        if let Ok(v4) = ipv4::Packet::new_checked(buf.as_slice())
            && !v4.verify_checksum()
        {
            return self.refuse(DropReason::BadChecksum, true, &Blame::default());
        }
        if self.holds_sa_for(buf.as_slice()) {
            return match self.inbound(buf, None, now, events) {
                Verdict::Enc => Crossing::Opened,
                Verdict::Dropped { reason, .. } => Crossing::Dropped(reason),
                Verdict::Wire => Crossing::Clear,
            };
        }
        let mut blame = Blame::default();
        let layout = match Layout::of(buf.as_slice()) {
            Ok(layout) => layout,
            Err(e) => return self.refuse(e.into(), true, &blame),
        };
        blame.src = Some(layout.src);
        // What an inbound flow wants protected may not cross in the clear.
        if let Err(reason) = self.admit(buf.as_slice(), &layout, &[], false, now) {
            return self.refuse(reason, true, &blame);
        }
        match self.try_outbound(buf, self.bridge_mtu, now, events, &mut blame) {
            Ok(Out::Protected) => {
                let sender = Layout::of(buf.as_slice()).is_ok_and(|outer| outer.src == layout.src);
                if sender {
                    Crossing::Protected
                } else {
                    Crossing::Routed
                }
            }
            Ok(Out::Clear { .. }) => {
                self.counters.clear_out += 1;
                Crossing::Clear
            }
            Err(reason) => {
                let reply = blame.reply;
                match self.refuse(reason, false, &blame) {
                    Crossing::Dropped(DropReason::TooBig) if reply => Crossing::TooBig,
                    crossing => crossing,
                }
            }
        }
    }

    /// The address this host sends EtherIP to `peer` from: the source of
    /// an outbound flow for EtherIP (IP protocol 97) between two single
    /// addresses, to `peer`. `None` when no flow protects such a tunnel,
    /// which must then carry nothing.
    pub fn etherip_source(&self, peer: IpAddr) -> Option<IpAddr> {
        let host = |a: IpAddr| if a.is_ipv4() { 32 } else { 128 };
        self.spd.iter().find_map(|(sel, _)| {
            let single = sel.src_mask == crate::spd::prefix_mask(sel.src, host(sel.src))
                && sel.dst_mask == crate::spd::prefix_mask(sel.dst, host(sel.dst));
            (sel.direction == crate::spd::Direction::Out
                && sel.proto == proto::ETHERIP
                && sel.dst == peer
                && single)
                .then_some(sel.src)
        })
    }

    fn refuse(&mut self, reason: DropReason, inbound: bool, blame: &Blame) -> Crossing {
        self.dropped(reason, inbound, blame);
        Crossing::Dropped(reason)
    }

    /// Whether `packet` is ESP, AH or IPComp under a mature SA this host
    /// holds. Others of those protocols cross like any packet: they are
    /// someone else's.
    fn holds_sa_for(&self, packet: &[u8]) -> bool {
        let Ok(layout) = Layout::of(packet) else {
            return false;
        };
        let satype = match layout.protocol {
            proto::ESP => SaType::ESP,
            proto::AH => SaType::AH,
            proto::IPCOMP => SaType::X_IPCOMP,
            _ => return false,
        };
        let Some(spi) = spi_of(satype, layout.payload(packet)) else {
            return false;
        };
        let id = SaId {
            dst: layout.dst,
            spi,
            satype,
        };
        self.sad
            .get(&id)
            .is_some_and(|sa| sa.state == State::Mature)
    }
}
