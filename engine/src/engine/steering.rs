//! What the host must install for the data path, derived from the
//! tables: routes into the enc interface, cleartext to refuse, and room
//! in the enc interface's MTU for the largest SA overhead.

use super::*;
use crate::sad::SaId;
use crate::spd::{self, Direction};
use crate::wire::{ipv4, ipv6, udp};
use crate::xform::natt;
use pfkey::{FlowType, sa_flags};
use std::collections::{BTreeMap, BTreeSet};

/// A destination the host must route into the enc interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncRoute {
    pub dst: IpAddr,
    pub len: u8,
    /// The single-address sources of the flows to it: the host should
    /// pick one of its own among them, so that its packets match a flow.
    pub sources: BTreeSet<IpAddr>,
    /// Whether a flow to it must never let clear text out (`require`,
    /// `dontacq`, `deny`): its route must outlive the daemon and the
    /// enc interface.
    pub guard: bool,
}

impl Engine {
    /// Where the host must route into the enc interface: one route per
    /// destination prefix of the outbound flows that protect or deny,
    /// whatever their sources (two flows to one prefix share one kernel
    /// route, so the route must not belong to either).
    pub fn enc_routes(&self) -> Vec<EncRoute> {
        let mut routes: BTreeMap<(IpAddr, u8), EncRoute> = BTreeMap::new();
        let outbound = self.spd.iter().filter(|(sel, p)| {
            sel.direction == Direction::Out && (p.wants_sa() || p.flow_type == FlowType::DENY)
        });
        for (sel, policy) in outbound {
            let len = spd::prefix_len(sel.dst_mask);
            let dst = spd::masked(sel.dst, spd::prefix_mask(sel.dst, len));
            let route = routes.entry((dst, len)).or_insert_with(|| EncRoute {
                dst,
                len,
                sources: BTreeSet::new(),
                guard: false,
            });
            let host = if sel.src.is_ipv6() { 128 } else { 32 };
            if spd::prefix_len(sel.src_mask) == host {
                route.sources.insert(sel.src);
            }
            route.guard |= policy.fails_closed();
        }
        routes.into_values().collect()
    }

    /// The inbound flows that refuse unprotected packets: cleartext they
    /// select must be dropped before the host sees it.
    pub fn cleartext_refused(&self) -> Vec<Selector> {
        self.spd
            .iter()
            .filter(|(sel, p)| {
                sel.direction == Direction::In
                    && matches!(p.flow_type, FlowType::REQUIRE | FlowType::DONTACQ)
            })
            .map(|(sel, _)| *sel)
            .collect()
    }

    /// The largest number of bytes protection adds to a packet, over
    /// every outbound SA and its bundle: what `enc0`'s MTU leaves room for.
    pub fn overhead(&self) -> usize {
        self.sad
            .iter()
            .filter(|sa| sa.prev.is_none())
            .map(|sa| self.bundle_overhead(sa.id))
            .max()
            .unwrap_or(0)
    }

    /// The most bytes an SA and the rest of its bundle add, tunnel
    /// headers counted.
    pub fn bundle_overhead(&self, first: SaId) -> usize {
        let mut total = 0;
        let mut cursor = Some(first);
        while let Some(id) = cursor {
            let Some(sa) = self.sad.get(&id) else { break };
            total += if sa.id.dst.is_ipv6() {
                ipv6::HEADER_LEN
            } else {
                ipv4::HEADER_LEN
            };
            total += crate::xform::overhead_of(sa);
            if sa.flags & sa_flags::UDPENCAP != 0 {
                total += udp::HEADER_LEN;
            }
            cursor = sa.next;
        }
        total
    }

    /// NAT-keepalives for the SAs carried in UDP that this host has sent
    /// on: only a host behind a NAT needs them, and it is the one that
    /// talks first. A peer that sent one before the NAT had a mapping
    /// would make the NAT pick another port for the real traffic.
    pub fn keepalives(&self) -> Vec<Vec<u8>> {
        self.sad
            .iter()
            .filter(|sa| sa.flags & sa_flags::UDPENCAP != 0 && sa.usage.packets_out > 0)
            .filter_map(|sa| {
                let port = sa.udpencap_port.filter(|&p| p != 0).unwrap_or(natt::PORT);
                natt::keepalive(sa.src, sa.id.dst, port)
            })
            .collect()
    }
}
