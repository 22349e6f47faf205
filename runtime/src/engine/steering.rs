//! What the host must install for the data path, derived from the
//! tables: routes into the enc interface, cleartext to refuse, and room
//! in the enc interface's MTU for the largest SA overhead.

use super::*;
use crate::spd::{self, Direction};
use crate::wire::{ipv4, ipv6, udp};
use crate::xform::natt;
use pfkey::{FlowType, sa_flags};
use std::collections::BTreeSet;

impl Engine {
    /// Where the host must route into the enc interface: the destination
    /// of every outbound flow that protects or denies, as (prefix,
    /// length, source). A flow from a single address names it as the
    /// source for the host to pick, if the address is the host's, so that
    /// the host's own packets match the flow.
    pub fn enc_routes(&self) -> BTreeSet<(IpAddr, u8, Option<IpAddr>)> {
        self.spd
            .iter()
            .filter(|(sel, p)| {
                sel.direction == Direction::Out && (p.wants_sa() || p.flow_type == FlowType::DENY)
            })
            .map(|(sel, _)| {
                let len = spd::prefix_len(sel.dst_mask);
                let host = if sel.src.is_ipv6() { 128 } else { 32 };
                let src = (spd::prefix_len(sel.src_mask) == host).then_some(sel.src);
                (
                    spd::masked(sel.dst, spd::prefix_mask(sel.dst, len)),
                    len,
                    src,
                )
            })
            .collect()
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
        let mut worst = 0;
        for sa in self.sad.iter() {
            if sa.prev.is_some() {
                continue;
            }
            let mut total = 0;
            let mut cursor = Some(sa.id);
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
            worst = worst.max(total);
        }
        worst
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
