//! The compiled rules: what `ipsecctl` installs or prints, one entry per
//! flow, SA, bundle link or IKE connection, after expansion and defaults.

use crate::addr::Address;
use crate::xform::{Auth, Comp, Enc, Group};
use ipsec_grammar::Span;
use std::fmt;
use zeroize::Zeroizing;

pub use ipsec_grammar::ast::{Direction, ExchangeMode, FlowType, IkeMode, Mode};

/// The protocol an SA (or the SAs a flow asks for) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaType {
    Esp,
    Ah,
    Ipcomp,
    Tcpmd5,
    Ipip,
}

impl SaType {
    pub fn as_str(self) -> &'static str {
        match self {
            SaType::Esp => "esp",
            SaType::Ah => "ah",
            SaType::Ipcomp => "ipcomp",
            SaType::Tcpmd5 => "tcpmd5",
            SaType::Ipip => "ipip",
        }
    }
}

impl From<ipsec_grammar::ast::SaType> for SaType {
    fn from(t: ipsec_grammar::ast::SaType) -> SaType {
        use ipsec_grammar::ast::SaType as A;
        match t {
            A::Esp => SaType::Esp,
            A::Ah => SaType::Ah,
            A::Ipcomp => SaType::Ipcomp,
            A::Ipip => SaType::Ipip,
        }
    }
}

pub fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
    }
}

pub fn mode_str(m: Mode) -> &'static str {
    match m {
        Mode::Tunnel => "tunnel",
        Mode::Transport => "transport",
    }
}

pub fn flow_type_str(t: FlowType) -> &'static str {
    match t {
        FlowType::Use => "use",
        FlowType::Acquire => "acquire",
        FlowType::Require => "require",
        FlowType::Deny => "deny",
        FlowType::Bypass => "bypass",
        FlowType::Dontacq => "dontacq",
    }
}

/// Key material; wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Zeroizing<Vec<u8>>);

impl Key {
    pub fn new(bytes: Vec<u8>) -> Key {
        Key(Zeroizing::new(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `0x` and two lowercase hex digits per byte: only for `-k`.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(2 + 2 * self.len());
        s.push_str("0x");
        for b in self.bytes() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// Never prints the key itself.
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.len())
    }
}

/// The kind of identity in `srcid`/`dstid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    Ipv4,
    Ipv6,
    Fqdn,
    UserFqdn,
}

impl IdType {
    pub fn of(id: &str) -> IdType {
        if crate::addr::parse_v4(id).is_some() {
            IdType::Ipv4
        } else if crate::addr::parse_v6(id).is_some() {
            IdType::Ipv6
        } else if id.contains('@') {
            IdType::UserFqdn
        } else {
            IdType::Fqdn
        }
    }

    pub fn isakmpd_name(self) -> &'static str {
        match self {
            IdType::Ipv4 => "IPV4_ADDR",
            IdType::Ipv6 => "IPV6_ADDR",
            IdType::Fqdn => "FQDN",
            IdType::UserFqdn => "USER_FQDN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub kind: IdType,
}

impl Identity {
    pub fn new(id: String) -> Identity {
        let kind = IdType::of(&id);
        Identity { id, kind }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub satype: SaType,
    pub direction: Direction,
    /// 0 means any protocol.
    pub proto: u8,
    pub src: Address,
    pub sport: u16,
    pub dst: Address,
    pub dport: u16,
    pub local: Option<Address>,
    pub peer: Option<Address>,
    pub srcid: Option<Identity>,
    pub dstid: Option<Identity>,
    pub flow_type: FlowType,
}

/// The transforms of an SA, after defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transforms {
    pub auth: Option<Auth>,
    pub enc: Option<Enc>,
    pub comp: Option<Comp>,
    pub group: Option<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sa {
    pub satype: SaType,
    pub mode: Mode,
    pub src: Address,
    pub dst: Address,
    pub spi: u32,
    pub transforms: Transforms,
    pub authkey: Option<Key>,
    pub enckey: Option<Key>,
    /// UDP encapsulation (NAT-T) and the peer's port (0: the default).
    pub udpencap: Option<u16>,
}

/// Two SAs applied together: the first, then the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub satype: SaType,
    pub dst: Address,
    pub spi: u32,
    pub satype2: SaType,
    pub dst2: Address,
    pub spi2: u32,
}

#[derive(Clone, PartialEq, Eq)]
pub enum IkeAuth {
    Rsa,
    /// The pre-shared key, wiped from memory when dropped.
    Psk(Zeroizing<String>),
}

/// Never prints the pre-shared key itself.
impl fmt::Debug for IkeAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IkeAuth::Rsa => f.write_str("Rsa"),
            IkeAuth::Psk(k) => write!(f, "Psk({} bytes)", k.len()),
        }
    }
}

/// Lifetime in seconds of an IKE phase; `None` leaves it to isakmpd.
pub type Lifetime = Option<i64>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkePhase {
    pub exchange: ExchangeMode,
    pub transforms: Transforms,
    pub lifetime: Lifetime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ike {
    pub mode: IkeMode,
    pub satype: SaType,
    pub tmode: Mode,
    pub proto: u8,
    pub src: Address,
    pub sport: u16,
    pub dst: Address,
    pub dport: u16,
    pub local: Option<Address>,
    pub peer: Option<Address>,
    pub phase1: IkePhase,
    pub phase2: IkePhase,
    pub srcid: Option<Identity>,
    pub dstid: Option<Identity>,
    pub auth: IkeAuth,
    pub tag: Option<String>,
    /// The sec(4) interface unit of an `ike ... interface secN` rule.
    pub iface: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    Flow(Flow),
    Sa(Sa),
    Bundle(Bundle),
    Ike(Box<Ike>),
}

/// One compiled rule, numbered in the order rules were produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub nr: u32,
    pub kind: RuleKind,
    /// The statement it came from.
    pub span: Span,
    /// The line OpenBSD would name for it.
    pub line: u32,
}
