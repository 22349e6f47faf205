//! Flow messages: X_ADDFLOW, X_DELFLOW, X_ASKPOLICY, the flow dump, and
//! the ACQUIRE a flow without an SA causes.

use super::*;
use crate::spd::{Direction, PacketKey};
use pfkey::{FlowDirection, FlowType, Protocol};

/// What a flow does with the packets it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub flow_type: FlowType,
    /// The SA type its packets need.
    pub satype: SaType,
    /// This host's address for the SAs (`local`), if given.
    pub local: Option<IpAddr>,
    /// The peer to send protected packets to; none means the packet's own
    /// destination.
    pub peer: Option<IpAddr>,
    pub src_id: Option<Identity>,
    pub dst_id: Option<Identity>,
    pub flags: u8,
    /// What the flow has carried.
    pub usage: super::FlowUsage,
    /// The SA its packets last went out on. The flow keeps to it while it
    /// lasts, as OpenBSD's flows keep their TDB: a newer SA to the same
    /// peer takes over only when this one goes, which is what lets a
    /// reload add the next SAs before the old ones are retired.
    pub bound: Option<crate::sad::SaId>,
}

impl Policy {
    /// Whether the flow asks for an SA (as opposed to passing or dropping
    /// packets as they are).
    pub fn wants_sa(&self) -> bool {
        matches!(
            self.flow_type,
            FlowType::USE | FlowType::ACQUIRE | FlowType::REQUIRE | FlowType::DONTACQ
        )
    }

    /// Whether the flow never lets its packets go in clear text, SA or
    /// not: the flow types under which OpenBSD would drop rather than
    /// send them unprotected.
    pub fn fails_closed(&self) -> bool {
        matches!(
            self.flow_type,
            FlowType::REQUIRE | FlowType::DONTACQ | FlowType::DENY
        )
    }
}

/// The direction and type of a flow message; `EINVAL` for a direction
/// other than in or out.
fn flow_type(msg: &Message) -> Result<(Direction, Protocol), Errno> {
    let Some(Body::Protocol(kind)) = msg.get(ExtType::X_FLOW_TYPE) else {
        return Err(Errno::EINVAL);
    };
    let direction = match FlowDirection(kind.direction) {
        FlowDirection::IN => Direction::In,
        FlowDirection::OUT => Direction::Out,
        _ => return Err(Errno::EINVAL),
    };
    Ok((direction, *kind))
}

/// The selector of a flow message; `EINVAL` for a direction other than
/// in or out, or addresses of mixed families.
pub(super) fn selector(msg: &Message) -> Result<(Selector, Protocol), Errno> {
    let (direction, kind) = flow_type(msg)?;
    let part = |t| {
        address(msg, t)
            .filter(|a| a.addr().is_some())
            .ok_or(Errno::EINVAL)
    };
    let (src, src_mask) = (part(ExtType::X_SRC_FLOW)?, part(ExtType::X_SRC_MASK)?);
    let (dst, dst_mask) = (part(ExtType::X_DST_FLOW)?, part(ExtType::X_DST_MASK)?);
    let v6 = src.addr().is_some_and(|a| a.is_ipv6());
    if [src_mask, dst, dst_mask]
        .iter()
        .any(|a| a.addr().is_some_and(|a| a.is_ipv6()) != v6)
    {
        return Err(Errno::EINVAL);
    }
    let proto = match msg.get(ExtType::X_PROTOCOL) {
        Some(Body::Protocol(p)) => p.proto,
        _ => 0,
    };
    let unwrap = |a: &SockAddr| {
        a.addr()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    };
    let sel = Selector {
        direction,
        src: unwrap(src),
        src_mask: unwrap(src_mask),
        dst: unwrap(dst),
        dst_mask: unwrap(dst_mask),
        proto,
        sport: src.port(),
        sport_mask: src_mask.port(),
        dport: dst.port(),
        dport_mask: dst_mask.port(),
    };
    Ok((sel, kind))
}

fn flow_sockaddr(ip: IpAddr, port: u16) -> Body {
    Body::Address(pfkey::Address {
        reserved: 0,
        addr: SockAddr::ip(ip, port),
    })
}

/// A flow as the flow dump and ASKPOLICY describe it.
pub(super) fn describe(msg: &mut Message, sel: &Selector, policy: Option<&Policy>) {
    if let Some(p) = policy {
        if let Some(local) = p.local {
            push(msg, ExtType::ADDRESS_SRC, sockaddr(local));
        }
        if let Some(peer) = p.peer {
            push(msg, ExtType::ADDRESS_DST, sockaddr(peer));
        }
    }
    let kind = Protocol {
        proto: policy.map_or(0, |p| p.flow_type.0),
        direction: match sel.direction {
            Direction::In => FlowDirection::IN.0,
            Direction::Out => FlowDirection::OUT.0,
        },
        flags: policy.map_or(0, |p| p.flags),
        reserved: 0,
    };
    push(msg, ExtType::X_FLOW_TYPE, Body::Protocol(kind));
    let proto = Protocol {
        proto: sel.proto,
        ..Protocol::default()
    };
    push(msg, ExtType::X_PROTOCOL, Body::Protocol(proto));
    push(msg, ExtType::X_SRC_FLOW, flow_sockaddr(sel.src, sel.sport));
    push(
        msg,
        ExtType::X_SRC_MASK,
        flow_sockaddr(sel.src_mask, sel.sport_mask),
    );
    push(msg, ExtType::X_DST_FLOW, flow_sockaddr(sel.dst, sel.dport));
    push(
        msg,
        ExtType::X_DST_MASK,
        flow_sockaddr(sel.dst_mask, sel.dport_mask),
    );
    if let Some(p) = policy {
        if let Some(id) = &p.src_id {
            push(msg, ExtType::IDENTITY_SRC, Body::Identity(id.clone()));
        }
        if let Some(id) = &p.dst_id {
            push(msg, ExtType::IDENTITY_DST, Body::Identity(id.clone()));
        }
    }
}

/// The ACQUIRE for a flow that has no SA toward `gateway`.
pub(super) fn acquire_message(seq: u32, policy: Option<&Policy>, gateway: IpAddr) -> Message {
    let satype = policy.map_or(SaType::ESP, |p| p.satype);
    let mut msg = Message::new(Header::new(MsgType::ACQUIRE, satype, seq, 0));
    if let Some(local) = policy.and_then(|p| p.local) {
        push(&mut msg, ExtType::ADDRESS_SRC, sockaddr(local));
    }
    push(&mut msg, ExtType::ADDRESS_DST, sockaddr(gateway));
    if let Some(p) = policy {
        if let Some(id) = &p.src_id {
            push(&mut msg, ExtType::IDENTITY_SRC, Body::Identity(id.clone()));
        }
        if let Some(id) = &p.dst_id {
            push(&mut msg, ExtType::IDENTITY_DST, Body::Identity(id.clone()));
        }
    }
    // One combination: OpenBSD's defaults, PFS asked for.
    let (encrypt, enc_bits) = if satype == SaType::X_IPCOMP {
        (pfkey::CompAlg::DEFLATE.0, (0, 0))
    } else if satype == SaType::ESP {
        (pfkey::EncAlg::X_AES.0, (128, 256))
    } else {
        (0, (0, 0))
    };
    let comb = pfkey::Comb {
        auth: if satype == SaType::X_IPCOMP {
            pfkey::AuthAlg::NONE
        } else {
            pfkey::AuthAlg::SHA1HMAC
        },
        encrypt,
        flags: pfkey::sa_flags::PFS as u16,
        auth_minbits: 160,
        auth_maxbits: 160,
        encrypt_minbits: enc_bits.0,
        encrypt_maxbits: enc_bits.1,
        soft_addtime: 80_000,
        hard_addtime: 86_400,
        soft_usetime: 3_600,
        hard_usetime: 7_200,
        ..pfkey::Comb::default()
    };
    let prop = pfkey::Proposal {
        num: 0,
        replay: 0,
        reserved: 0,
        combs: vec![comb],
    };
    push(&mut msg, ExtType::PROPOSAL, Body::Proposal(prop));
    msg
}

/// The packet a filtered flow dump names: its direction, protocol,
/// addresses and ports; `EINVAL` when one is missing or the families mix.
fn packet(msg: &Message) -> Result<PacketKey, Errno> {
    let (direction, _) = flow_type(msg)?;
    let src = address(msg, ExtType::X_SRC_FLOW).ok_or(Errno::EINVAL)?;
    let dst = address(msg, ExtType::X_DST_FLOW).ok_or(Errno::EINVAL)?;
    let (Some(s), Some(d)) = (src.addr(), dst.addr()) else {
        return Err(Errno::EINVAL);
    };
    if s.is_ipv6() != d.is_ipv6() {
        return Err(Errno::EINVAL);
    }
    let proto = match msg.get(ExtType::X_PROTOCOL) {
        Some(Body::Protocol(p)) => p.proto,
        _ => 0,
    };
    Ok(PacketKey {
        direction,
        src: s,
        dst: d,
        proto,
        sport: src.port(),
        dport: dst.port(),
    })
}

/// The checks X_ADDFLOW makes before it changes anything.
pub(super) fn check(msg: &Message) -> Result<(), Errno> {
    let (_, kind) = selector(msg)?;
    if FlowType::KNOWN.contains(&FlowType(kind.proto)) {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

impl Engine {
    pub(super) fn addflow(&mut self, msg: &Message) -> Handled {
        let (sel, kind) = selector(msg)?;
        let flow_type = FlowType(kind.proto);
        if !FlowType::KNOWN.contains(&flow_type) {
            self.spd.remove(&sel);
            return Err(Errno::EINVAL);
        }
        let satype = match msg.header.satype {
            SaType::UNSPEC => SaType::ESP,
            t => t,
        };
        let (src_id, dst_id) = match (
            identity(msg, ExtType::IDENTITY_SRC),
            identity(msg, ExtType::IDENTITY_DST),
        ) {
            (Some(s), Some(d)) => (Some(s), Some(d)),
            _ => (None, None),
        };
        let policy = Policy {
            flow_type,
            satype,
            local: ip(msg, ExtType::ADDRESS_SRC),
            peer: ip(msg, ExtType::ADDRESS_DST),
            src_id,
            dst_id,
            flags: kind.flags,
            usage: super::FlowUsage::default(),
            bound: None,
        };
        if self.refuse_ipv6_flows && sel.dst.is_ipv6() {
            return Err(Errno::EOPNOTSUPP);
        }
        if self.spd.len() >= self.limits.flows && self.spd.get(&sel).is_none() {
            return Err(Errno::ENOBUFS);
        }
        // A static flow stays unless the request is static too.
        if let Some(existing) = self.spd.get(&sel)
            && existing.flags & pfkey::POLICY_FLAG_STATIC != 0
            && policy.flags & pfkey::POLICY_FLAG_STATIC == 0
        {
            return Ok(Outcome::Reply(msg.clone(), Mode::Broadcast));
        }
        self.spd.insert(sel, policy);
        Ok(Outcome::Reply(msg.clone(), Mode::Broadcast))
    }

    pub(super) fn delflow(&mut self, msg: &Message) -> Handled {
        let (sel, _) = selector(msg)?;
        self.spd.remove(&sel).ok_or(Errno::ESRCH)?;
        Ok(Outcome::Reply(msg.clone(), Mode::Broadcast))
    }

    pub(super) fn askpolicy(&mut self, msg: &Message) -> Handled {
        let Some(Body::Policy { seq }) = msg.get(ExtType::X_POLICY) else {
            return Err(Errno::EINVAL);
        };
        let pending = self
            .acquires
            .iter()
            .find(|a| a.seq == *seq)
            .ok_or(Errno::ESRCH)?;
        let sel = pending.selector;
        let mut reply = Message::new(msg.header);
        describe(&mut reply, &sel, self.spd.get(&sel));
        reply.extensions.retain(|e| {
            !matches!(
                e.ext_type,
                ExtType::ADDRESS_SRC | ExtType::ADDRESS_DST | ExtType::X_PROTOCOL
            ) && !matches!(e.body, Body::Identity(_))
        });
        push(&mut reply, ExtType::X_POLICY, Body::Policy { seq: *seq });
        Ok(Outcome::Reply(reply, Mode::Unicast))
    }

    /// Every flow, in the order they were added, as X_SPDDUMP records; or,
    /// when the request names a packet, the one flow that selects it.
    pub(super) fn spddump(&mut self, from: ClientId, msg: &Message) -> Handled {
        if msg.get(ExtType::X_SRC_FLOW).is_some() {
            return self.explain(from, msg);
        }
        let records = self
            .spd
            .iter()
            .map(|(sel, policy)| {
                let mut record = Message::new(Header {
                    satype: policy.satype,
                    ..msg.header
                });
                describe(&mut record, sel, Some(policy));
                // What the flow carried, on the side of its direction.
                let u = policy.usage;
                let counter = match sel.direction {
                    Direction::In => pfkey::Counter {
                        ipackets: u.packets,
                        ibytes: u.bytes,
                        ..pfkey::Counter::default()
                    },
                    Direction::Out => pfkey::Counter {
                        opackets: u.packets,
                        obytes: u.bytes,
                        ..pfkey::Counter::default()
                    },
                };
                push(
                    &mut record,
                    ExtType::X_COUNTER,
                    Body::Counter(Box::new(counter)),
                );
                record
            })
            .collect();
        self.records(from, msg, records)
    }

    /// What would become of a packet: the flow that selects it and, going
    /// out under a flow that wants one, the SA it would take (the one
    /// the flow is using, else the oldest to its peer). No flow is
    /// `ENOENT`, as an empty dump.
    fn explain(&mut self, from: ClientId, msg: &Message) -> Handled {
        let key = packet(msg)?;
        let Some((sel, policy)) = self.spd.lookup(&key) else {
            return self.records(from, msg, Vec::new());
        };
        let mut record = Message::new(Header {
            satype: policy.satype,
            ..msg.header
        });
        describe(&mut record, sel, Some(policy));
        if key.direction == Direction::Out && policy.wants_sa() {
            let gateway = policy.peer.unwrap_or(key.dst);
            let bound = policy.bound.filter(|id| {
                id.dst == gateway
                    && self
                        .sad
                        .by_dst(gateway, policy.satype)
                        .any(|sa| sa.id == *id)
            });
            let chosen = bound.or_else(|| self.sad.oldest_to(gateway, policy.satype, sel));
            if let Some(sa) = chosen.and_then(|id| self.sad.get(&id)) {
                push(
                    &mut record,
                    ExtType::SA,
                    Body::Sa(pfkey::Sa {
                        spi: sa.id.spi,
                        replay: sa.replay,
                        state: pfkey::SaState::MATURE,
                        auth: sa.auth,
                        encrypt: sa.encrypt,
                        flags: sa.flags,
                    }),
                );
                if policy.peer.is_none() {
                    push(&mut record, ExtType::ADDRESS_DST, sockaddr(gateway));
                }
            }
        }
        self.records(from, msg, vec![record])
    }
}
