//! What the parser keeps: one [`Statement`] per line, every value with the
//! span it was read from. Nothing here is checked beyond syntax; the
//! compiler resolves names and judges meaning.

use crate::secret::Secret;
use crate::source::Span;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Spanned<T> {
        Spanned { node, span }
    }
}

/// One statement and its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub stmt: Stmt,
    /// From the first token to the last, without the newline.
    pub span: Span,
    /// The newline that ends it; OpenBSD reports rule errors on its line.
    pub end: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `include "file"`; the parser follows it itself.
    Include(Spanned<String>),
    /// `name = value`; the parser records it itself.
    Macro {
        name: Spanned<String>,
        /// It may hold a key.
        value: Spanned<Secret>,
    },
    Flow(Box<FlowRule>),
    Sa(Box<SaRule>),
    Tcpmd5(Box<Tcpmd5Rule>),
    Ike(Box<IkeRule>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaType {
    Esp,
    Ah,
    Ipcomp,
    Ipip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tunnel,
    Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowType {
    Use,
    Acquire,
    Require,
    Deny,
    Bypass,
    Dontacq,
}

/// A protocol or port: by name (looked up later) or by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameOrNumber {
    Name(String),
    Number(i64),
}

/// One `host` of the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An address, network, interface or host name; `a/N` is kept as text.
    Spec(Spanned<String>),
    /// `address (real address)`: source NAT for IKE.
    Nat(Spanned<String>, Spanned<String>),
    Any(Span),
    List(Vec<Host>, Span),
}

impl Host {
    pub fn span(&self) -> Span {
        match self {
            Host::Spec(s) => s.span,
            Host::Nat(a, b) => a.span.to(b.span),
            Host::Any(span) | Host::List(_, span) => *span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    pub src: Host,
    pub sport: Option<Spanned<NameOrNumber>>,
    pub dst: Host,
    pub dport: Option<Spanned<NameOrNumber>>,
}

/// The argument of `peer` or `local`, which may be left out entirely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSpec {
    Empty,
    Any,
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peers {
    pub peer: Option<Spanned<PeerSpec>>,
    pub local: Option<Spanned<PeerSpec>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ids {
    pub srcid: Option<Spanned<String>>,
    pub dstid: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRule {
    pub satype: Option<Spanned<SaType>>,
    pub direction: Option<Spanned<Direction>>,
    pub proto: Option<Spanned<NameOrNumber>>,
    pub hosts: Hosts,
    pub peers: Peers,
    pub ids: Ids,
    pub flow_type: Option<Spanned<FlowType>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformKind {
    Auth,
    Enc,
    Comp,
    Group,
}

impl TransformKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransformKind::Auth => "auth",
            TransformKind::Enc => "enc",
            TransformKind::Comp => "comp",
            TransformKind::Group => "group",
        }
    }
}

/// `auth NAME`, `enc NAME`, `comp NAME` or `group NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub kind: TransformKind,
    pub name: Spanned<String>,
}

/// `spi N` or `spi "out:in"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiSpec {
    Number(i64),
    Text(String),
}

/// A key in hex (`out[:in]`) or the files holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySpec {
    Hex(Secret),
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaRule {
    pub satype: Option<Spanned<SaType>>,
    pub mode: Option<Spanned<Mode>>,
    pub hosts: Hosts,
    pub spi: Spanned<SpiSpec>,
    /// `udpencap [port N]`: `Some(None)` without a port.
    pub udpencap: Option<Spanned<Option<i64>>>,
    pub transforms: Vec<Transform>,
    pub authkey: Option<Spanned<KeySpec>>,
    pub enckey: Option<Spanned<KeySpec>>,
    pub bundle: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcpmd5Rule {
    pub hosts: Hosts,
    pub spi: Spanned<SpiSpec>,
    pub authkey: Option<Spanned<KeySpec>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeMode {
    Active,
    Passive,
    Dynamic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeMode {
    Main,
    Aggressive,
    Quick,
}

/// A `main`, `aggressive` or `quick` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub mode: Spanned<ExchangeMode>,
    pub transforms: Vec<Transform>,
    pub lifetime: Option<Spanned<NameOrNumber>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkeAuth {
    Rsa,
    Psk(Secret),
    /// `psk file "path"`: the secret is the file's content.
    PskFile(String),
}

/// What an `ike` rule protects: addresses, or a sec(4) interface.
// Always inside a boxed `IkeRule`, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkeTarget {
    Hosts {
        satype: Option<Spanned<SaType>>,
        mode: Option<Spanned<Mode>>,
        proto: Option<Spanned<NameOrNumber>>,
        hosts: Hosts,
    },
    Interface(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeRule {
    pub mode: Option<Spanned<IkeMode>>,
    pub target: IkeTarget,
    pub peers: Peers,
    pub phase1: Option<Phase>,
    pub phase2: Option<Phase>,
    pub ids: Ids,
    pub auth: Option<Spanned<IkeAuth>>,
    pub tag: Option<Spanned<String>>,
}
