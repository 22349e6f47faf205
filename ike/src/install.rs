//! What a negotiated Child SA becomes in PF_KEY, for `ipsecd`, as
//! isakmpd does it: `GETSPI` reserves the inbound SPI before the
//! exchange, `UPDATE` keys that SA once it is agreed, `ADD` installs the
//! outbound one, and `X_ADDFLOW` sends the selected traffic through them.
//! Messages only: sending them and reading the replies is the daemon's.

use crate::exchange::handshake::ChildSa;
use crate::exchange::suite::ChildSuite;
use crate::wire::{EncrId, IntegId, ProtocolId, TrafficSelector};
use pfkey::{
    Address, AuthAlg, Body, EncAlg, ExtType, FlowDirection, FlowType, Header, Key, Lifetime,
    Message, MsgType, Protocol, Sa, SaState, SaType, SockAddr, SpiRange, UdpEncap, sa_flags,
};
use std::net::{IpAddr, SocketAddr};

/// The smallest SPI asked for: below 256 is reserved (RFC 4303).
const MIN_SPI: u32 = 0x100;

/// This end's address and the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends {
    pub local: IpAddr,
    pub remote: IpAddr,
}

/// Why a Child SA cannot be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// An algorithm PF_KEY in OpenBSD's dialect has no number for.
    Algorithm,
    /// A protocol other than ESP or AH.
    Protocol,
}

/// How long a Child SA lives: a warning (soft) and an end (hard), in
/// seconds and bytes; 0 for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetimes {
    pub soft_seconds: u64,
    pub hard_seconds: u64,
    pub soft_bytes: u64,
    pub hard_bytes: u64,
}

fn satype(p: ProtocolId) -> Result<SaType, Unsupported> {
    match p {
        ProtocolId::ESP => Ok(SaType::ESP),
        ProtocolId::AH => Ok(SaType::AH),
        _ => Err(Unsupported::Protocol),
    }
}

fn address(ip: IpAddr) -> Body {
    Body::Address(Address {
        reserved: 0,
        addr: SockAddr::ip(ip, 0),
    })
}

fn push(m: &mut Message, t: ExtType, body: Body) {
    m.extensions.push(pfkey::Extension { ext_type: t, body });
}

/// GETSPI for the SA that will carry the peer's traffic to this end.
pub fn getspi(
    protocol: ProtocolId,
    ends: Ends,
    seq: u32,
    pid: u32,
) -> Result<Message, Unsupported> {
    let mut m = Message::new(Header::new(MsgType::GETSPI, satype(protocol)?, seq, pid));
    push(&mut m, ExtType::ADDRESS_SRC, address(ends.remote));
    push(&mut m, ExtType::ADDRESS_DST, address(ends.local));
    push(
        &mut m,
        ExtType::SPIRANGE,
        Body::SpiRange(SpiRange {
            min: MIN_SPI,
            max: u32::MAX,
            reserved: 0,
        }),
    );
    Ok(m)
}

/// The SPI a GETSPI reply reserved.
pub fn reserved_spi(reply: &Message) -> Option<u32> {
    match (
        reply.header.msg_type,
        reply.header.errno,
        reply.get(ExtType::SA),
    ) {
        (MsgType::GETSPI, 0, Some(Body::Sa(sa))) => Some(sa.spi),
        _ => None,
    }
}

/// PF_KEY's numbers for a Child SA's cipher and integrity algorithm.
pub fn algorithms(suite: &ChildSuite) -> Result<(EncAlg, AuthAlg), Unsupported> {
    let enc = match suite.encr {
        None => EncAlg::NONE,
        Some((EncrId::AES_CBC, _)) => EncAlg::X_AES,
        Some((EncrId::AES_CTR, _)) => EncAlg::X_AESCTR,
        Some((EncrId::AES_GCM_16, _)) => EncAlg::X_AESGCM16,
        Some((EncrId::AES_GCM_12, _)) => EncAlg::X_AESGCM12,
        Some((EncrId::AES_GCM_8, _)) => EncAlg::X_AESGCM8,
        Some((EncrId::CHACHA20_POLY1305, _)) => EncAlg::X_CHACHA20POLY1305,
        Some((EncrId::DES3, _)) => EncAlg::TRIPLE_DES_CBC,
        Some(_) => return Err(Unsupported::Algorithm),
    };
    let auth = match suite.integ {
        IntegId::NONE => AuthAlg::NONE,
        IntegId::HMAC_SHA1_96 => AuthAlg::SHA1HMAC,
        IntegId::HMAC_SHA2_256_128 => AuthAlg::X_SHA2_256,
        IntegId::HMAC_SHA2_384_192 => AuthAlg::X_SHA2_384,
        IntegId::HMAC_SHA2_512_256 => AuthAlg::X_SHA2_512,
        _ => return Err(Unsupported::Algorithm),
    };
    Ok((enc, auth))
}

/// The two SAs of `child` between `ends`: UPDATE for the inbound one
/// (reserved with GETSPI), ADD for the outbound one. `udp_port` is the
/// peer's port when ESP goes in UDP (a NAT between the ends).
pub fn sa_messages(
    child: &ChildSa,
    ends: Ends,
    lifetimes: Lifetimes,
    udp_port: Option<u16>,
    seq: u32,
    pid: u32,
) -> Result<[Message; 2], Unsupported> {
    let satype = satype(child.suite.protocol)?;
    let (enc, auth) = algorithms(&child.suite)?;
    let mut flags = 0;
    if !child.transport {
        flags |= sa_flags::TUNNEL;
    }
    if udp_port.is_some() {
        flags |= sa_flags::UDPENCAP;
    }
    if child.suite.esn {
        flags |= sa_flags::ESN;
    }
    let one = |msg_type,
               spi,
               src,
               dst,
               keys: &(crate::crypto::prf::Secret, crate::crypto::prf::Secret)| {
        let mut m = Message::new(Header::new(msg_type, satype, seq, pid));
        push(
            &mut m,
            ExtType::SA,
            Body::Sa(Sa {
                spi,
                replay: 64,
                state: SaState::MATURE,
                auth,
                encrypt: enc.0,
                flags,
            }),
        );
        push(&mut m, ExtType::ADDRESS_SRC, address(src));
        push(&mut m, ExtType::ADDRESS_DST, address(dst));
        if !keys.1.is_empty() {
            push(&mut m, ExtType::KEY_AUTH, Body::Key(Key::new(&keys.1)));
        }
        if !keys.0.is_empty() {
            push(&mut m, ExtType::KEY_ENCRYPT, Body::Key(Key::new(&keys.0)));
        }
        for (t, bytes, seconds) in [
            (
                ExtType::LIFETIME_SOFT,
                lifetimes.soft_bytes,
                lifetimes.soft_seconds,
            ),
            (
                ExtType::LIFETIME_HARD,
                lifetimes.hard_bytes,
                lifetimes.hard_seconds,
            ),
        ] {
            if bytes != 0 || seconds != 0 {
                let lifetime = Lifetime {
                    allocations: 0,
                    bytes,
                    addtime: seconds,
                    usetime: 0,
                };
                push(&mut m, t, Body::Lifetime(lifetime));
            }
        }
        if let Some(port) = udp_port {
            push(
                &mut m,
                ExtType::X_UDPENCAP,
                Body::UdpEncap(UdpEncap { port, reserved: 0 }),
            );
        }
        m
    };
    Ok([
        one(
            MsgType::UPDATE,
            child.spi_in,
            ends.remote,
            ends.local,
            &child.in_keys,
        ),
        one(
            MsgType::ADD,
            child.spi_out,
            ends.local,
            ends.remote,
            &child.out_keys,
        ),
    ])
}

/// Makes the SA that `add` adds serve the one flow of the X_ADDFLOW
/// message `flow` (OpenBSD's SA filter): its flow extensions, copied.
pub fn serve_flow(add: &mut Message, flow: &Message) {
    for t in [
        ExtType::X_FLOW_TYPE,
        ExtType::X_PROTOCOL,
        ExtType::X_SRC_FLOW,
        ExtType::X_DST_FLOW,
        ExtType::X_SRC_MASK,
        ExtType::X_DST_MASK,
    ] {
        if let Some(body) = flow.get(t) {
            push(add, t, body.clone());
        }
    }
}

/// The networks (address and prefix length) that make up an address
/// range exactly, at most `limit` of them.
pub fn prefixes(start: IpAddr, end: IpAddr, limit: usize) -> Option<Vec<(IpAddr, u8)>> {
    let (bits, lo, hi) = match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (32, u128::from(u32::from(a)), u128::from(u32::from(b))),
        (IpAddr::V6(a), IpAddr::V6(b)) => (128, u128::from(a), u128::from(b)),
        _ => return None,
    };
    if lo > hi {
        return None;
    }
    let to_ip = |v: u128| -> IpAddr {
        if bits == 32 {
            IpAddr::from((v as u32).to_be_bytes())
        } else {
            IpAddr::from(v.to_be_bytes())
        }
    };
    // The host bits of a block of 2^n addresses.
    let ones = |n: u32| {
        if n >= 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        }
    };
    let mut out = Vec::new();
    let mut at = lo;
    loop {
        // The largest aligned block that starts at `at` and ends by `hi`.
        let mut size = if at == 0 {
            bits
        } else {
            at.trailing_zeros().min(bits)
        };
        while size > 0 && at | ones(size) > hi {
            size -= 1;
        }
        if out.len() == limit {
            return None;
        }
        out.push((to_ip(at), (bits - size) as u8));
        let last = at | ones(size);
        if last >= hi {
            return Some(out);
        }
        at = last + 1;
    }
}

/// One direction of a Child SA's traffic, as flows see it.
#[derive(Debug, Clone, Copy)]
pub struct FlowSpec<'a> {
    pub protocol: ProtocolId,
    pub direction: FlowDirection,
    pub flow_type: FlowType,
    pub from: &'a TrafficSelector,
    pub to: &'a TrafficSelector,
}

/// X_ADDFLOW messages for `spec`'s traffic through SAs between `ends`:
/// one per network pair its ranges make up.
pub fn flows(
    spec: &FlowSpec<'_>,
    ends: Ends,
    seq: u32,
    pid: u32,
) -> Result<Vec<Message>, Unsupported> {
    let FlowSpec {
        protocol,
        direction,
        flow_type,
        from,
        to,
    } = *spec;
    let satype = satype(protocol)?;
    let (
        TrafficSelector::Range {
            protocol: proto,
            start_port: sport,
            end_port: sport_end,
            start: s0,
            end: s1,
        },
        TrafficSelector::Range {
            start_port: dport,
            end_port: dport_end,
            start: d0,
            end: d1,
            ..
        },
    ) = (from, to)
    else {
        return Err(Unsupported::Protocol);
    };
    // One port, or any; a flow has no port ranges.
    let port = |start: u16, end: u16| if start == end { start } else { 0 };
    let (sport, dport) = (port(*sport, *sport_end), port(*dport, *dport_end));
    let nets = |a, b| prefixes(a, b, 64).ok_or(Unsupported::Protocol);
    let mut out = Vec::new();
    for (src, slen) in nets(*s0, *s1)? {
        for (dst, dlen) in nets(*d0, *d1)? {
            let mut m = Message::new(Header::new(MsgType::X_ADDFLOW, satype, seq, pid));
            push(
                &mut m,
                ExtType::X_FLOW_TYPE,
                Body::Protocol(Protocol {
                    proto: flow_type.0,
                    direction: direction.0,
                    ..Protocol::default()
                }),
            );
            push(&mut m, ExtType::ADDRESS_SRC, address(ends.local));
            push(&mut m, ExtType::ADDRESS_DST, address(ends.remote));
            let mask = |ip: IpAddr, len: u8, port: u16| {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                let m = u128::MAX.checked_shl(u32::from(bits - len)).unwrap_or(0);
                let ip = if ip.is_ipv4() {
                    IpAddr::from((m as u32).to_be_bytes())
                } else {
                    IpAddr::from(m.to_be_bytes())
                };
                Body::Address(Address {
                    reserved: 0,
                    addr: SockAddr::ip(ip, if port != 0 { 0xffff } else { 0 }),
                })
            };
            let at = |ip, port| {
                Body::Address(Address {
                    reserved: 0,
                    addr: SockAddr::ip(ip, port),
                })
            };
            push(&mut m, ExtType::X_SRC_FLOW, at(src, sport));
            push(&mut m, ExtType::X_SRC_MASK, mask(src, slen, sport));
            push(&mut m, ExtType::X_DST_FLOW, at(dst, dport));
            push(&mut m, ExtType::X_DST_MASK, mask(dst, dlen, dport));
            push(
                &mut m,
                ExtType::X_PROTOCOL,
                Body::Protocol(Protocol {
                    proto: *proto,
                    ..Protocol::default()
                }),
            );
            out.push(m);
        }
    }
    Ok(out)
}

/// X_DELFLOW messages that remove what [`flows`] added for `spec`.
pub fn delflows(
    spec: &FlowSpec<'_>,
    ends: Ends,
    seq: u32,
    pid: u32,
) -> Result<Vec<Message>, Unsupported> {
    let mut out = flows(spec, ends, seq, pid)?;
    for m in &mut out {
        m.header.msg_type = MsgType::X_DELFLOW;
        m.extensions
            .retain(|e| !matches!(e.ext_type, ExtType::ADDRESS_SRC | ExtType::ADDRESS_DST));
    }
    Ok(out)
}

/// An `X_DATAGRAM` asking `ipsecd` to send `message` from its NAT
/// traversal port at `local` to `remote`.
pub fn datagram(
    local: SocketAddr,
    remote: SocketAddr,
    message: &[u8],
    seq: u32,
    pid: u32,
) -> Message {
    let mut m = Message::new(Header::new(MsgType::X_DATAGRAM, SaType::UNSPEC, seq, pid));
    let at = |a: SocketAddr| {
        Body::Address(Address {
            reserved: 0,
            addr: SockAddr::ip(a.ip(), a.port()),
        })
    };
    push(&mut m, ExtType::X_SRC_FLOW, at(local));
    push(&mut m, ExtType::X_DST_FLOW, at(remote));
    push(
        &mut m,
        ExtType::X_DATA,
        Body::Data(pfkey::Data::new(message)),
    );
    m
}

/// What an `X_DATAGRAM` from `ipsecd` brings: who sent it, to which of
/// this host's addresses and ports, and the IKE message.
pub fn relayed(m: &Message) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
    let end = |t| match m.get(t) {
        Some(Body::Address(a)) => Some(SocketAddr::new(a.addr.addr()?, a.addr.port())),
        _ => None,
    };
    let Some(Body::Data(d)) = m.get(ExtType::X_DATA) else {
        return None;
    };
    Some((
        end(ExtType::X_SRC_FLOW)?,
        end(ExtType::X_DST_FLOW)?,
        d.bytes()?.to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_range_is_the_networks_that_make_it_up() {
        assert_eq!(
            prefixes(ip("10.1.0.0"), ip("10.1.255.255"), 8),
            Some(vec![(ip("10.1.0.0"), 16)])
        );
        assert_eq!(
            prefixes(ip("10.0.0.1"), ip("10.0.0.6"), 8),
            Some(vec![
                (ip("10.0.0.1"), 32),
                (ip("10.0.0.2"), 31),
                (ip("10.0.0.4"), 31),
                (ip("10.0.0.6"), 32),
            ])
        );
        assert_eq!(
            prefixes(ip("0.0.0.0"), ip("255.255.255.255"), 1),
            Some(vec![(ip("0.0.0.0"), 0)])
        );
        assert_eq!(
            prefixes(ip("::"), ip("ffff::"), 200).map(|v| v.len()),
            Some(17)
        );
        assert_eq!(
            prefixes(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 1),
            Some(vec![(ip("::"), 0)])
        );
        assert_eq!(prefixes(ip("10.0.0.1"), ip("10.0.0.6"), 3), None, "bounded");
        assert_eq!(prefixes(ip("10.0.0.2"), ip("10.0.0.1"), 3), None);
        assert_eq!(prefixes(ip("10.0.0.2"), ip("::1"), 3), None);
    }
}
