//! Judging messages as OpenBSD's kernel does: what a process may send
//! (`pfkeyv2_parsemessage`), which extensions each message type allows and
//! needs in each direction, and the `errno` each failure earns.

use crate::consts::*;
use crate::ext::Body;
use crate::msg::Message;
use crate::sockaddr::{SIN_LEN, SIN6_LEN, SockAddr};
use std::fmt;

/// An error number as OpenBSD numbers it: the value a reply carries in
/// `sadb_msg_errno`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub u8);

impl Errno {
    /// A reply did not fit its message type, or a sysctl write was tried.
    pub const EPERM: Errno = Errno(1);
    /// No such entry: what an empty dump answers.
    pub const ENOENT: Errno = Errno(2);
    /// No such SA, flow or pending acquire.
    pub const ESRCH: Errno = Errno(3);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Opening a PF_KEY socket without privilege.
    pub const EACCES: Errno = Errno(13);
    /// The SA already exists, or no free SPI is left in the range.
    pub const EEXIST: Errno = Errno(17);
    /// A malformed or inconsistent message; every parse failure.
    pub const EINVAL: Errno = Errno(22);
    /// A message longer than 4096 bytes.
    pub const EMSGSIZE: Errno = Errno(40);
    /// An SA type that is unsupported or turned off.
    pub const EOPNOTSUPP: Errno = Errno(45);
    /// Out of buffer space.
    pub const ENOBUFS: Errno = Errno(55);

    /// The symbolic name, such as `EINVAL`.
    pub fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::ESRCH => "ESRCH",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EEXIST => "EEXIST",
            Errno::EINVAL => "EINVAL",
            Errno::EMSGSIZE => "EMSGSIZE",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::ENOBUFS => "ENOBUFS",
            _ => "unknown error",
        }
    }

    /// What the error means, worded as `strerror` words it.
    pub fn description(self) -> &'static str {
        match self {
            Errno::EPERM => "Operation not permitted",
            Errno::ENOENT => "No such file or directory",
            Errno::ESRCH => "No such process",
            Errno::ENOMEM => "Cannot allocate memory",
            Errno::EACCES => "Permission denied",
            Errno::EEXIST => "File exists",
            Errno::EINVAL => "Invalid argument",
            Errno::EMSGSIZE => "Message too long",
            Errno::EOPNOTSUPP => "Operation not supported",
            Errno::ENOBUFS => "No buffer space available",
            _ => "Unknown error",
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A set of extension types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtSet(u64);

impl ExtSet {
    /// The set with no types.
    pub const EMPTY: ExtSet = ExtSet(0);

    const fn of(types: &[ExtType]) -> ExtSet {
        let mut bits = 0u64;
        let mut i = 0;
        while i < types.len() {
            bits |= 1 << types[i].0;
            i += 1;
        }
        ExtSet(bits)
    }

    const fn with(self, other: ExtSet) -> ExtSet {
        ExtSet(self.0 | other.0)
    }

    /// Whether the set holds `t`.
    pub fn contains(self, t: ExtType) -> bool {
        t.0 < 64 && self.0 & (1 << t.0) != 0
    }

    /// The types in this set, in numeric order.
    pub fn types(self) -> impl Iterator<Item = ExtType> {
        (1..64u16).map(ExtType).filter(move |&t| self.contains(t))
    }
}

use ExtType as E;

const SA: ExtSet = ExtSet::of(&[E::SA]);
const SRC_DST: ExtSet = ExtSet::of(&[E::ADDRESS_SRC, E::ADDRESS_DST]);
const LT: ExtSet = ExtSet::of(&[E::LIFETIME_CURRENT, E::LIFETIME_HARD, E::LIFETIME_SOFT]);
const KEYS: ExtSet = ExtSet::of(&[E::KEY_AUTH, E::KEY_ENCRYPT]);
const IDS: ExtSet = ExtSet::of(&[E::IDENTITY_SRC, E::IDENTITY_DST]);
const FLOW_NEEDED: ExtSet = ExtSet::of(&[
    E::X_SRC_MASK,
    E::X_DST_MASK,
    E::X_SRC_FLOW,
    E::X_DST_FLOW,
    E::X_FLOW_TYPE,
]);
const FLOW: ExtSet = FLOW_NEEDED.with(ExtSet::of(&[E::X_PROTOCOL]));
const PACKET: ExtSet = ExtSet::of(&[E::X_FLOW_TYPE, E::X_PROTOCOL, E::X_SRC_FLOW, E::X_DST_FLOW]);
const SA_OPTIONS: ExtSet =
    ExtSet::of(&[E::X_UDPENCAP, E::X_TAG, E::X_TAP, E::X_RDOMAIN, E::X_IFACE]);
const SA_DST: ExtSet = ExtSet::of(&[E::SA, E::ADDRESS_DST]);
const GROUP: ExtSet = ExtSet::of(&[E::SA, E::X_SA2, E::X_DST2, E::ADDRESS_DST, E::X_SATYPE2]);
const RDOMAIN: ExtSet = ExtSet::of(&[E::X_RDOMAIN]);
const DATAGRAM: ExtSet = ExtSet::of(&[E::X_SRC_FLOW, E::X_DST_FLOW, E::X_DATA]);
const SUPPORTED: ExtSet =
    ExtSet::of(&[E::SUPPORTED_AUTH, E::SUPPORTED_ENCRYPT, E::X_SUPPORTED_COMP]);

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A process, to the kernel.
    ToKernel,
    /// The kernel, in reply or on its own.
    FromKernel,
}

/// The extensions a message type allows, and those it needs.
pub fn rules(msg_type: MsgType, dir: Direction) -> (ExtSet, ExtSet) {
    use Direction::*;
    let addrs_keys = SA
        .with(LT)
        .with(SRC_DST)
        .with(IDS)
        .with(FLOW)
        .with(SA_OPTIONS);
    match (msg_type, dir) {
        (MsgType::GETSPI, ToKernel) => {
            let all = SRC_DST.with(ExtSet::of(&[E::SPIRANGE]));
            (all, all)
        }
        (MsgType::GETSPI, FromKernel) => (SA.with(SRC_DST), SA_DST),
        (MsgType::UPDATE, ToKernel) => (
            addrs_keys
                .with(KEYS)
                .with(ExtSet::of(&[E::ADDRESS_PROXY, E::X_COUNTER, E::X_REPLAY])),
            SA.with(SRC_DST),
        ),
        (MsgType::UPDATE, FromKernel) => (addrs_keys.with(ExtSet::of(&[E::ADDRESS_PROXY])), SA_DST),
        (MsgType::ADD, ToKernel) => (
            addrs_keys.with(KEYS).with(ExtSet::of(&[
                E::X_LIFETIME_LASTUSE,
                E::X_COUNTER,
                E::X_REPLAY,
            ])),
            SA_DST,
        ),
        (MsgType::ADD, FromKernel) => (addrs_keys, SA_DST),
        (MsgType::DELETE | MsgType::GET, ToKernel) | (MsgType::DELETE, FromKernel) => {
            (SA.with(SRC_DST).with(RDOMAIN), SA_DST)
        }
        (MsgType::GET, FromKernel) => (
            addrs_keys.with(KEYS).with(ExtSet::of(&[
                E::X_LIFETIME_LASTUSE,
                E::X_COUNTER,
                E::X_MTU,
                E::X_REPLAY,
            ])),
            SA_DST.with(ExtSet::of(&[E::LIFETIME_CURRENT])),
        ),
        (MsgType::ACQUIRE, _) => (
            SRC_DST.with(IDS).with(ExtSet::of(&[E::PROPOSAL])),
            ExtSet::EMPTY,
        ),
        (MsgType::REGISTER, ToKernel) => (ExtSet::EMPTY, ExtSet::EMPTY),
        (MsgType::REGISTER, FromKernel) => (SUPPORTED, SUPPORTED),
        (MsgType::EXPIRE, ToKernel) => (SA.with(SRC_DST), SA.with(SRC_DST)),
        (MsgType::EXPIRE, FromKernel) => (SA.with(LT).with(SRC_DST), SA_DST),
        (MsgType::DUMP, FromKernel) => (
            addrs_keys.with(KEYS).with(ExtSet::of(&[
                E::X_LIFETIME_LASTUSE,
                E::X_COUNTER,
                E::X_MTU,
                E::X_REPLAY,
                E::X_SA2,
                E::X_DST2,
                E::X_SATYPE2,
            ])),
            ExtSet::EMPTY,
        ),
        (MsgType::X_ADDFLOW, _) => (SRC_DST.with(IDS).with(FLOW).with(RDOMAIN), FLOW_NEEDED),
        (MsgType::X_DELFLOW, _) => (FLOW.with(RDOMAIN), FLOW_NEEDED),
        (MsgType::X_GRPSPIS, _) => (GROUP.with(RDOMAIN), GROUP),
        (MsgType::X_ASKPOLICY, ToKernel) => {
            (ExtSet::of(&[E::X_POLICY]), ExtSet::of(&[E::X_POLICY]))
        }
        (MsgType::X_ASKPOLICY, FromKernel) => {
            (FLOW_NEEDED.with(ExtSet::of(&[E::X_POLICY])), FLOW_NEEDED)
        }
        // A flow dump may name a packet (direction, protocol, addresses and
        // ports): then only the flow that selects it is reported, with
        // the SA it would take. An ipsecd extension; OpenBSD has no dump.
        (MsgType::X_SPDDUMP, ToKernel) => (PACKET, ExtSet::EMPTY),
        (MsgType::X_SPDDUMP, FromKernel) => (SRC_DST.with(IDS).with(FLOW).with(SA), FLOW_NEEDED),
        // The filter rules of ipsecd -p, each with its counters; also an
        // ipsecd extension.
        (MsgType::X_FILTERDUMP, ToKernel) => (ExtSet::EMPTY, ExtSet::EMPTY),
        // An IKE datagram relayed on the NAT traversal port: its addresses
        // and ports, and its bytes.
        (MsgType::X_DATAGRAM, _) => (DATAGRAM, DATAGRAM),
        (MsgType::X_FILTERDUMP, FromKernel) => (
            ExtSet::of(&[E::X_FILTER_RULE, E::X_COUNTER]),
            ExtSet::of(&[E::X_FILTER_RULE]),
        ),
        _ => (ExtSet::EMPTY, ExtSet::EMPTY),
    }
}

/// Reads and checks a message a process wrote, as the kernel does before
/// acting on it: too long is `EMSGSIZE`, anything malformed `EINVAL`.
pub fn parse_request(bytes: &[u8], pid: u32) -> Result<Message, Errno> {
    if bytes.len() > MAX_MESSAGE {
        return Err(Errno::EMSGSIZE);
    }
    let msg = Message::decode(bytes).map_err(|_| Errno::EINVAL)?;
    check_request(&msg, pid)?;
    Ok(msg)
}

/// Checks a message a process sent, as the kernel's parser does; `pid` is
/// the sender's. Every failure is `EINVAL`, as in OpenBSD.
pub fn check_request(msg: &Message, pid: u32) -> Result<(), Errno> {
    let h = &msg.header;
    let in_range = (1..=MsgType::X_DATAGRAM.0).contains(&h.msg_type.0);
    // OpenBSD does not look at the version; RFC 2367 asks for PF_KEY_V2.
    if h.version != PF_KEY_V2 || h.reserved != 0 || !in_range || h.pid != pid || h.errno != 0 {
        return Err(Errno::EINVAL);
    }
    let (allowed, required) = rules(h.msg_type, Direction::ToKernel);
    let mut seen = ExtSet::EMPTY;
    for ext in &msg.extensions {
        let t = ext.ext_type;
        // The allowed sets name OpenBSD's types, and this runtime's own
        // only for its own messages.
        if t.0 == 0 || !allowed.contains(t) || seen.contains(t) {
            return Err(Errno::EINVAL);
        }
        seen = seen.with(ExtSet::of(&[t]));
        check_body(t, &ext.body, h.satype)?;
    }
    if required.0 & !seen.0 != 0 {
        return Err(Errno::EINVAL);
    }
    if matches!(h.msg_type, MsgType::ADD | MsgType::UPDATE)
        && !matches!(msg.get(ExtType::SA), Some(Body::Sa(sa)) if sa.state == SaState::MATURE)
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Checks the extensions of a reply against what its type may carry; the
/// kernel answers `EPERM` (and sends nothing) when they do not fit.
pub fn check_reply(msg: &Message) -> Result<(), Errno> {
    let (allowed, required) = rules(msg.header.msg_type, Direction::FromKernel);
    let mut seen = ExtSet::EMPTY;
    for ext in &msg.extensions {
        if !allowed.contains(ext.ext_type) {
            return Err(Errno::EPERM);
        }
        seen = seen.with(ExtSet::of(&[ext.ext_type]));
    }
    if required.0 & !seen.0 != 0 {
        return Err(Errno::EPERM);
    }
    Ok(())
}

fn check_body(t: ExtType, body: &Body, satype: SaType) -> Result<(), Errno> {
    let ok = match body {
        Body::Sa(sa) => {
            sa.state.0 <= SaState::DEAD.0
                && sa.state != SaState::DEAD
                && sa.encrypt <= EncAlg::MAX
                && sa.auth.0 <= AuthAlg::MAX
                && sa.replay <= 64
        }
        Body::Address(a) => a.reserved == 0 && address_ok(t, &a.addr, satype),
        Body::Key(k) => {
            k.bits != 0
                && k.reserved == 0
                && k.padded().len() == usize::from(k.bits).div_ceil(64) * 8
        }
        Body::Identity(i) => {
            let data = i.padded();
            let text_ok = match data.iter().position(|&b| b == 0) {
                None => data.is_empty(),
                Some(nul) => data.len() == crate::codec::pad_up(nul + 1),
            };
            i.ident_type.0 <= IdentType::ASN1_DN.0 && i.reserved == 0 && text_ok
        }
        Body::Proposal(p) => {
            p.reserved == 0
                && p.combs.iter().all(|c| {
                    c.auth.0 <= AuthAlg::MAX && c.encrypt <= EncAlg::MAX && c.reserved == 0
                })
        }
        Body::Supported(s) => {
            let max = match t {
                ExtType::SUPPORTED_AUTH => AuthAlg::MAX,
                ExtType::SUPPORTED_ENCRYPT => EncAlg::MAX,
                _ => CompAlg::DEFLATE.0,
            };
            s.reserved == 0 && s.algs.iter().all(|a| a.id <= max && a.reserved == 0)
        }
        Body::SpiRange(r) => r.min <= r.max,
        Body::Tag(tag) => tag.name().len() < 64,
        Body::Data(d) => d.bytes().is_some(),
        Body::Raw(_) => false,
        _ => true,
    };
    if ok { Ok(()) } else { Err(Errno::EINVAL) }
}

/// Address rules: real IPv4 or IPv6 sockaddrs of the right size, ports
/// only in flows and masks, and an empty address only for TCP-MD5.
fn address_ok(t: ExtType, addr: &SockAddr, satype: SaType) -> bool {
    let may_have_port = matches!(
        t,
        E::X_SRC_MASK | E::X_DST_MASK | E::X_SRC_FLOW | E::X_DST_FLOW
    );
    match addr {
        SockAddr::V4 { port, .. } => may_have_port || *port == 0,
        SockAddr::V6 { port, flowinfo, .. } => *flowinfo == 0 && (may_have_port || *port == 0),
        SockAddr::Raw(bytes) => {
            // Only an all-zero address of TCP-MD5 gets through.
            let len = bytes.first().copied().unwrap_or(0);
            satype == SaType::X_TCPSIGNATURE
                && bytes.len() >= usize::from(SIN_LEN)
                && bytes.iter().all(|&b| b == 0)
                && len != SIN6_LEN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext::{Address, Key, Protocol, Sa};
    use crate::msg::{Header, Message};
    use std::net::Ipv4Addr;

    const PID: u32 = 4242;

    fn addr(port: u16) -> Body {
        Body::Address(Address {
            reserved: 0,
            addr: SockAddr::V4 {
                addr: Ipv4Addr::new(192, 0, 2, 1),
                port,
            },
        })
    }

    fn sa(state: SaState, replay: u8) -> Body {
        Body::Sa(Sa {
            spi: 0x1000,
            replay,
            state,
            auth: AuthAlg::X_SHA2_256,
            encrypt: EncAlg::X_AES.0,
            flags: 0,
        })
    }

    fn add() -> Message {
        let mut m = Message::new(Header::new(MsgType::ADD, SaType::ESP, 1, PID));
        m.push(ExtType::SA, sa(SaState::MATURE, 0)).unwrap();
        m.push(ExtType::ADDRESS_SRC, addr(0)).unwrap();
        m.push(ExtType::ADDRESS_DST, addr(0)).unwrap();
        m.push(ExtType::KEY_AUTH, Body::Key(Key::new(&[7; 32])))
            .unwrap();
        m
    }

    #[test]
    fn a_good_add_passes() {
        assert_eq!(check_request(&add(), PID), Ok(()));
        assert_eq!(parse_request(&add().encode(), PID), Ok(add()));
    }

    #[test]
    fn raw_requests() {
        let bytes = add().encode();
        assert_eq!(
            parse_request(&bytes[..bytes.len() - 8], PID),
            Err(Errno::EINVAL)
        );
        assert_eq!(parse_request(&[0; 8], PID), Err(Errno::EINVAL));
        let mut big = add();
        big.push(ExtType::KEY_ENCRYPT, Body::Key(Key::new(&[1; 4096])))
            .unwrap();
        assert_eq!(parse_request(&big.encode(), PID), Err(Errno::EMSGSIZE));
    }

    #[test]
    fn header_problems() {
        assert_eq!(check_request(&add(), PID + 1), Err(Errno::EINVAL));
        let mut m = add();
        m.header.errno = 1;
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        let mut m = add();
        m.header.msg_type = MsgType(19);
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        let mut m = add();
        m.header.reserved = 1;
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        let mut m = add();
        m.header.version = 1;
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
    }

    #[test]
    fn extension_problems() {
        // Twice the same extension.
        let mut m = add();
        m.push(ExtType::ADDRESS_DST, addr(0)).unwrap();
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        // Not allowed in ADD.
        let mut m = add();
        m.push(ExtType::SPIRANGE, Body::SpiRange(Default::default()))
            .unwrap();
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        // Missing the destination.
        let mut m = add();
        m.extensions.retain(|e| e.ext_type != ExtType::ADDRESS_DST);
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        // A port where none may be.
        let mut m = add();
        m.extensions[1] = crate::ext::Extension::new(ExtType::ADDRESS_SRC, addr(500)).unwrap();
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        // A replay window beyond 64, a larval SA.
        for body in [sa(SaState::MATURE, 65), sa(SaState::LARVAL, 0)] {
            let mut m = add();
            m.extensions[0] = crate::ext::Extension::new(ExtType::SA, body).unwrap();
            assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        }
        // Obsolete credentials.
        let mut m = add();
        m.push(ExtType::X_LOCAL_CREDENTIALS, Body::Raw(vec![0; 4]))
            .unwrap();
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
    }

    #[test]
    fn flows_need_all_five_parts() {
        let mut m = Message::new(Header::new(MsgType::X_ADDFLOW, SaType::ESP, 1, PID));
        let flow_type = Protocol {
            proto: FlowType::REQUIRE.0,
            direction: FlowDirection::OUT.0,
            ..Protocol::default()
        };
        m.push(ExtType::X_FLOW_TYPE, Body::Protocol(flow_type))
            .unwrap();
        for t in [
            ExtType::X_SRC_FLOW,
            ExtType::X_SRC_MASK,
            ExtType::X_DST_FLOW,
        ] {
            m.push(t, addr(80)).unwrap();
        }
        assert_eq!(check_request(&m, PID), Err(Errno::EINVAL));
        m.push(ExtType::X_DST_MASK, addr(0)).unwrap();
        assert_eq!(check_request(&m, PID), Ok(()));
    }

    #[test]
    fn replies_that_carry_too_much() {
        // A reply to ADD may not carry the keys back.
        assert_eq!(check_reply(&add()), Err(Errno::EPERM));
        let mut m = add();
        m.extensions.retain(|e| e.ext_type != ExtType::KEY_AUTH);
        assert_eq!(check_reply(&m), Ok(()));
    }
}
