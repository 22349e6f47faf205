//! Extensions: the typed parts of a PF_KEY message.
//!
//! Each [`Extension`] is its type number and a body whose layout that type
//! determines. Bodies keep every byte a frame can carry (reserved fields,
//! the padding of keys and strings), so encoding a decoded frame gives the
//! same bytes back.

use crate::DecodeError;
use crate::codec::{Reader, UNIT, Writer, pad_up};
use crate::consts::*;
use crate::sockaddr::SockAddr;
use std::fmt;
use zeroize::Zeroizing;

/// `sadb_sa` (also `X_SA2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sa {
    /// In host order here; network order on the wire.
    pub spi: u32,
    /// Replay window size in packets; 0 turns replay protection off.
    pub replay: u8,
    /// The SA's state; ADD and UPDATE accept only MATURE.
    pub state: SaState,
    /// The authentication algorithm; NONE (0) for none.
    pub auth: AuthAlg,
    /// The cipher, or for IPComp the compression algorithm.
    pub encrypt: u8,
    /// A set of `sa_flags` bits; host order on the wire.
    pub flags: u32,
}

/// `sadb_lifetime` (current, hard, soft, last use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lifetime {
    /// Allocations: the count so far (CURRENT) or the limit (SOFT/HARD; 0 = none).
    pub allocations: u32,
    /// Bytes processed: so far (CURRENT) or the limit (SOFT/HARD; 0 = none).
    pub bytes: u64,
    /// Seconds: time added (CURRENT) or lifetime after adding (SOFT/HARD; 0 = none).
    pub addtime: u64,
    /// Seconds: first use (CURRENT), last use (LASTUSE) or lifetime after first use (SOFT/HARD; 0 = none).
    pub usetime: u64,
}

/// `sadb_address`: a socket address (source, destination, proxy, flow,
/// mask or second destination).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Reserved, 0 (OpenBSD has no protocol or prefix-length bytes here).
    pub reserved: u32,
    /// The socket address, padded to whole 8-byte units on the wire.
    pub addr: SockAddr,
}

/// `sadb_key`: key material, wiped from memory when dropped. Debug output
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// The key length in bits; the data is padded to whole 64-bit units.
    pub bits: u16,
    /// Reserved, 0.
    pub reserved: u16,
    /// The key padded to whole units, as on the wire.
    data: Zeroizing<Vec<u8>>,
}

impl Key {
    /// A key of `material.len() * 8` bits.
    pub fn new(material: &[u8]) -> Key {
        let mut data = Zeroizing::new(vec![0u8; pad_up(material.len())]);
        data[..material.len()].copy_from_slice(material);
        Key {
            bits: (material.len() * 8) as u16,
            reserved: 0,
            data,
        }
    }

    /// The key itself: as many bytes as its bits need.
    pub fn material(&self) -> &[u8] {
        let n = (usize::from(self.bits).div_ceil(8)).min(self.data.len());
        &self.data[..n]
    }

    /// The key with its padding, as on the wire.
    pub fn padded(&self) -> &[u8] {
        &self.data
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bits)", self.bits)
    }
}

/// `sadb_ident`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// How to read the string: prefix, FQDN, user FQDN or ASN.1 DN.
    pub ident_type: IdentType,
    /// Reserved, 0.
    pub reserved: u16,
    /// A numeric identity; ipsecctl leaves it 0.
    pub id: u64,
    /// The NUL-terminated string with its padding, as on the wire.
    data: Vec<u8>,
}

impl Identity {
    /// An identity with id 0 whose `text` is NUL-terminated and padded to whole 8-byte units.
    pub fn new(ident_type: IdentType, text: &str) -> Identity {
        let mut data = text.as_bytes().to_vec();
        data.push(0);
        data.resize(pad_up(data.len()), 0);
        Identity {
            ident_type,
            reserved: 0,
            id: 0,
            data,
        }
    }

    /// The identity's text, up to its terminating NUL.
    pub fn text(&self) -> String {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        String::from_utf8_lossy(&self.data[..end]).into_owned()
    }

    /// The string with its NUL and padding, as on the wire.
    pub fn padded(&self) -> &[u8] {
        &self.data
    }
}

/// `sadb_sens`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Sensitivity {
    /// The domain of protection the levels belong to.
    pub dpd: u32,
    /// The sensitivity level.
    pub sens_level: u8,
    /// The integrity level.
    pub integ_level: u8,
    /// Reserved, 0.
    pub reserved: u32,
    /// `sens_len` bitmap words.
    pub sens_bitmap: Vec<u64>,
    /// `integ_len` bitmap words.
    pub integ_bitmap: Vec<u64>,
}

/// `sadb_comb`: one acceptable combination in a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Comb {
    /// The authentication algorithm.
    pub auth: AuthAlg,
    /// The cipher, or for IPComp the compression algorithm.
    pub encrypt: u8,
    /// The `sa_flags` bits asked for, such as PFS.
    pub flags: u16,
    /// The shortest acceptable authentication key, in bits.
    pub auth_minbits: u16,
    /// The longest acceptable authentication key, in bits.
    pub auth_maxbits: u16,
    /// The shortest acceptable encryption key, in bits.
    pub encrypt_minbits: u16,
    /// The longest acceptable encryption key, in bits.
    pub encrypt_maxbits: u16,
    /// Reserved, 0.
    pub reserved: u32,
    /// The soft limit on allocations (0 = no limit).
    pub soft_allocations: u32,
    /// The hard limit on allocations (0 = no limit).
    pub hard_allocations: u32,
    /// The soft limit on bytes processed (0 = no limit).
    pub soft_bytes: u64,
    /// The hard limit on bytes processed (0 = no limit).
    pub hard_bytes: u64,
    /// The soft lifetime in seconds after the SA is added (0 = no limit).
    pub soft_addtime: u64,
    /// The hard lifetime in seconds after the SA is added (0 = no limit).
    pub hard_addtime: u64,
    /// The soft lifetime in seconds after first use (0 = no limit).
    pub soft_usetime: u64,
    /// The hard lifetime in seconds after first use (0 = no limit).
    pub hard_usetime: u64,
}

/// `sadb_prop`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Proposal {
    /// The proposal's number.
    pub num: u8,
    /// The replay window asked for, in packets (0 = no replay protection).
    pub replay: u8,
    /// Reserved, 0.
    pub reserved: u16,
    /// The acceptable combinations, 72 bytes each on the wire.
    pub combs: Vec<Comb>,
}

/// `sadb_alg`: one algorithm in a supported list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Alg {
    /// The algorithm number, read as auth, cipher or compression by the extension type.
    pub id: u8,
    /// IV length in bits.
    pub ivlen: u8,
    /// The shortest key, in bits.
    pub minbits: u16,
    /// The longest key, in bits.
    pub maxbits: u16,
    /// Reserved, 0.
    pub reserved: u16,
}

/// `sadb_supported`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Supported {
    /// Reserved, 0.
    pub reserved: u32,
    /// The algorithms, 8 bytes each on the wire.
    pub algs: Vec<Alg>,
}

/// `sadb_spirange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpiRange {
    /// The lowest SPI GETSPI may pick; host order on the wire.
    pub min: u32,
    /// The highest SPI GETSPI may pick (at least `min`); host order on the wire.
    pub max: u32,
    /// Reserved, 0.
    pub reserved: u32,
}

/// `sadb_protocol`, which OpenBSD uses three ways: `X_PROTOCOL` (the
/// transport protocol of a flow), `X_FLOW_TYPE` (flow type, direction and
/// flags) and `X_SATYPE2` (the type of a bundle's second SA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Protocol {
    /// Transport protocol (X_PROTOCOL, 0 = any), flow type (X_FLOW_TYPE) or SA type (X_SATYPE2).
    pub proto: u8,
    /// In X_FLOW_TYPE, the flow's direction (1 = in, 2 = out); 0 otherwise.
    pub direction: u8,
    /// In X_FLOW_TYPE, `POLICY_FLAG_STATIC` marks a static policy; 0 otherwise.
    pub flags: u8,
    /// Reserved, 0.
    pub reserved: u8,
}

/// `sadb_x_udpencap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UdpEncap {
    /// In host order here; network order on the wire.
    pub port: u16,
    /// Reserved, 0.
    pub reserved: u16,
}

/// `sadb_x_tag`: a pf tag name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The name's length in bytes, its NUL included.
    pub taglen: u32,
    /// The NUL-terminated name with its padding.
    data: Vec<u8>,
}

impl Tag {
    /// A tag whose `name` is NUL-terminated and padded to whole 8-byte units.
    pub fn new(name: &str) -> Tag {
        let mut data = name.as_bytes().to_vec();
        data.push(0);
        let taglen = data.len() as u32;
        data.resize(pad_up(data.len()), 0);
        Tag { taglen, data }
    }

    /// The tag name, up to its terminating NUL.
    pub fn name(&self) -> String {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        String::from_utf8_lossy(&self.data[..end]).into_owned()
    }
}

/// `sadb_x_counter`: an SA's traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counter {
    /// Padding, 0.
    pub pad: u32,
    /// Packets received on the SA.
    pub ipackets: u64,
    /// Packets sent on the SA.
    pub opackets: u64,
    /// Bytes received on the SA.
    pub ibytes: u64,
    /// Bytes sent on the SA.
    pub obytes: u64,
    /// Inbound packets dropped.
    pub idrops: u64,
    /// Outbound packets dropped.
    pub odrops: u64,
    /// Inbound bytes after decompression.
    pub idecompbytes: u64,
    /// Outbound bytes before compression.
    pub ouncompbytes: u64,
}

/// `sadb_x_iface`: the sec(4) interface an SA belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Iface {
    /// The sec(4) unit number, as in `secN`.
    pub unit: u32,
    /// The direction the SA serves (1 = in, 2 = out).
    pub direction: u8,
    /// Reserved, 0.
    pub reserved: [u8; 7],
}

/// `X_FILTER_RULE`, this runtime's own: a filter rule as written, and
/// where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilterRule {
    /// The rule's place among the rules, from 0.
    pub number: u32,
    /// The line of the rules file it starts on.
    pub line: u32,
    /// Reserved, 0.
    pub reserved: u32,
    /// The NUL-terminated text with its padding.
    data: Vec<u8>,
}

impl FilterRule {
    /// Rule `number` from `line`, whose `text` is NUL-terminated and
    /// padded to whole 8-byte units.
    pub fn new(number: u32, line: u32, text: &str) -> FilterRule {
        let mut data = text.as_bytes().to_vec();
        data.push(0);
        data.resize(pad_up(data.len()), 0);
        FilterRule {
            number,
            line,
            reserved: 0,
            data,
        }
    }

    /// The rule's text, up to its terminating NUL.
    pub fn text(&self) -> String {
        let end = self
            .data
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.data.len());
        String::from_utf8_lossy(&self.data[..end]).into_owned()
    }
}

/// `X_DATA`, this runtime's own: bytes, with their length.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Data {
    /// The length in bytes; the data is padded to whole 8-byte units.
    pub len: u32,
    /// The bytes with their padding, as on the wire.
    padded: Vec<u8>,
}

impl Data {
    /// `bytes`, padded.
    pub fn new(bytes: &[u8]) -> Data {
        let mut padded = bytes.to_vec();
        padded.resize(pad_up(bytes.len()), 0);
        Data {
            len: bytes.len() as u32,
            padded,
        }
    }

    /// The bytes, without the padding; `None` when the length says more
    /// than there is.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.padded.get(..usize::try_from(self.len).ok()?)
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data({} bytes)", self.len)
    }
}

/// The body of an extension; which one is decided by its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `SA` or `X_SA2`.
    Sa(Sa),
    /// `LIFETIME_CURRENT`, `LIFETIME_HARD`, `LIFETIME_SOFT` or `X_LIFETIME_LASTUSE`.
    Lifetime(Lifetime),
    /// Any of the eight address extensions.
    Address(Address),
    /// `KEY_AUTH` or `KEY_ENCRYPT`.
    Key(Key),
    /// `IDENTITY_SRC` or `IDENTITY_DST`.
    Identity(Identity),
    // Large and rare: boxed, so every other extension stays small.
    /// `SENSITIVITY`.
    Sensitivity(Box<Sensitivity>),
    /// `PROPOSAL`.
    Proposal(Proposal),
    /// `SUPPORTED_AUTH`, `SUPPORTED_ENCRYPT` or `X_SUPPORTED_COMP`.
    Supported(Supported),
    /// `SPIRANGE`.
    SpiRange(SpiRange),
    /// `X_PROTOCOL`, `X_FLOW_TYPE` or `X_SATYPE2`.
    Protocol(Protocol),
    /// `sadb_x_policy`: the sequence number of a pending acquire.
    Policy {
        /// The acquire's sequence number, as its ACQUIRE message carried it.
        seq: u32,
    },
    /// `X_UDPENCAP`.
    UdpEncap(UdpEncap),
    /// `X_TAG`.
    Tag(Tag),
    /// `sadb_x_tap`: the enc(4) unit.
    Tap {
        /// The enc(4) unit number, as in `encN`.
        unit: u32,
    },
    /// `X_COUNTER`.
    Counter(Box<Counter>),
    /// `sadb_x_rdomain`: where the SA lives and where its traffic goes.
    Rdomain {
        /// The routing domain the SA lives in.
        dom1: u16,
        /// The routing domain of the inner traffic, after decapsulation or before encapsulation.
        dom2: u16,
    },
    /// `sadb_x_mtu`: the path MTU known for the SA.
    Mtu {
        /// The path MTU in bytes.
        mtu: u32,
    },
    /// `sadb_x_replay`: the current replay counter.
    Replay {
        /// Reserved, 0.
        reserved: u32,
        /// The SA's current 64-bit replay counter.
        count: u64,
    },
    /// `X_IFACE`.
    Iface(Iface),
    /// `X_FILTER_RULE`.
    FilterRule(FilterRule),
    /// `X_DATA`.
    Data(Data),
    /// An extension type this crate does not know (or an obsolete one):
    /// the bytes after its length and type, kept as they are.
    Raw(Vec<u8>),
}

/// The layout each extension type has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Sa,
    Lifetime,
    Address,
    Key,
    Identity,
    Sensitivity,
    Proposal,
    Supported,
    SpiRange,
    Protocol,
    Policy,
    UdpEncap,
    Tag,
    Tap,
    Counter,
    Rdomain,
    Mtu,
    Replay,
    Iface,
    FilterRule,
    Data,
    Raw,
}

fn layout(t: ExtType) -> Layout {
    match t {
        ExtType::SA | ExtType::X_SA2 => Layout::Sa,
        ExtType::LIFETIME_CURRENT
        | ExtType::LIFETIME_HARD
        | ExtType::LIFETIME_SOFT
        | ExtType::X_LIFETIME_LASTUSE => Layout::Lifetime,
        ExtType::ADDRESS_SRC
        | ExtType::ADDRESS_DST
        | ExtType::ADDRESS_PROXY
        | ExtType::X_SRC_MASK
        | ExtType::X_DST_MASK
        | ExtType::X_SRC_FLOW
        | ExtType::X_DST_FLOW
        | ExtType::X_DST2 => Layout::Address,
        ExtType::KEY_AUTH | ExtType::KEY_ENCRYPT => Layout::Key,
        ExtType::IDENTITY_SRC | ExtType::IDENTITY_DST => Layout::Identity,
        ExtType::SENSITIVITY => Layout::Sensitivity,
        ExtType::PROPOSAL => Layout::Proposal,
        ExtType::SUPPORTED_AUTH | ExtType::SUPPORTED_ENCRYPT | ExtType::X_SUPPORTED_COMP => {
            Layout::Supported
        }
        ExtType::SPIRANGE => Layout::SpiRange,
        ExtType::X_PROTOCOL | ExtType::X_FLOW_TYPE | ExtType::X_SATYPE2 => Layout::Protocol,
        ExtType::X_POLICY => Layout::Policy,
        ExtType::X_UDPENCAP => Layout::UdpEncap,
        ExtType::X_TAG => Layout::Tag,
        ExtType::X_TAP => Layout::Tap,
        ExtType::X_COUNTER => Layout::Counter,
        ExtType::X_RDOMAIN => Layout::Rdomain,
        ExtType::X_MTU => Layout::Mtu,
        ExtType::X_REPLAY => Layout::Replay,
        ExtType::X_IFACE => Layout::Iface,
        ExtType::X_FILTER_RULE => Layout::FilterRule,
        ExtType::X_DATA => Layout::Data,
        _ => Layout::Raw,
    }
}

impl Body {
    fn layout(&self) -> Layout {
        match self {
            Body::Sa(_) => Layout::Sa,
            Body::Lifetime(_) => Layout::Lifetime,
            Body::Address(_) => Layout::Address,
            Body::Key(_) => Layout::Key,
            Body::Identity(_) => Layout::Identity,
            Body::Sensitivity(_) => Layout::Sensitivity,
            Body::Proposal(_) => Layout::Proposal,
            Body::Supported(_) => Layout::Supported,
            Body::SpiRange(_) => Layout::SpiRange,
            Body::Protocol(_) => Layout::Protocol,
            Body::Policy { .. } => Layout::Policy,
            Body::UdpEncap(_) => Layout::UdpEncap,
            Body::Tag(_) => Layout::Tag,
            Body::Tap { .. } => Layout::Tap,
            Body::Counter(_) => Layout::Counter,
            Body::Rdomain { .. } => Layout::Rdomain,
            Body::Mtu { .. } => Layout::Mtu,
            Body::Replay { .. } => Layout::Replay,
            Body::Iface(_) => Layout::Iface,
            Body::FilterRule(_) => Layout::FilterRule,
            Body::Data(_) => Layout::Data,
            Body::Raw(_) => Layout::Raw,
        }
    }
}

/// One extension of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension type, which fixes the body's layout.
    pub ext_type: ExtType,
    /// What follows the length and type fields.
    pub body: Body,
}

impl Extension {
    /// Pairs a body with a type. The body must have the layout the type
    /// calls for, or be raw.
    pub fn new(ext_type: ExtType, body: Body) -> Result<Extension, DecodeError> {
        if body.layout() != layout(ext_type) && body.layout() != Layout::Raw {
            return Err(DecodeError::WrongBody(ext_type));
        }
        Ok(Extension { ext_type, body })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        let mark = w.begin();
        w.u16(self.ext_type.0);
        match &self.body {
            Body::Sa(sa) => {
                w.be32(sa.spi);
                w.u8(sa.replay);
                w.u8(sa.state.0);
                w.u8(sa.auth.0);
                w.u8(sa.encrypt);
                w.u32(sa.flags);
            }
            Body::Lifetime(l) => {
                w.u32(l.allocations);
                w.u64(l.bytes);
                w.u64(l.addtime);
                w.u64(l.usetime);
            }
            Body::Address(a) => {
                w.u32(a.reserved);
                a.addr.encode(w);
            }
            Body::Key(k) => {
                w.u16(k.bits);
                w.u16(k.reserved);
                w.bytes(&k.data);
            }
            Body::Identity(i) => {
                w.u16(i.ident_type.0);
                w.u16(i.reserved);
                w.u64(i.id);
                w.bytes(&i.data);
            }
            Body::Sensitivity(s) => {
                w.u32(s.dpd);
                w.u8(s.sens_level);
                w.u8(s.sens_bitmap.len() as u8);
                w.u8(s.integ_level);
                w.u8(s.integ_bitmap.len() as u8);
                w.u32(s.reserved);
                for word in s.sens_bitmap.iter().chain(&s.integ_bitmap) {
                    w.u64(*word);
                }
            }
            Body::Proposal(p) => {
                w.u8(p.num);
                w.u8(p.replay);
                w.u16(p.reserved);
                for c in &p.combs {
                    encode_comb(w, c);
                }
            }
            Body::Supported(s) => {
                w.u32(s.reserved);
                for a in &s.algs {
                    w.u8(a.id);
                    w.u8(a.ivlen);
                    w.u16(a.minbits);
                    w.u16(a.maxbits);
                    w.u16(a.reserved);
                }
            }
            Body::SpiRange(s) => {
                w.u32(s.min);
                w.u32(s.max);
                w.u32(s.reserved);
            }
            Body::Protocol(p) => {
                w.u8(p.proto);
                w.u8(p.direction);
                w.u8(p.flags);
                w.u8(p.reserved);
            }
            Body::Policy { seq } => w.u32(*seq),
            Body::UdpEncap(u) => {
                w.be16(u.port);
                w.u16(u.reserved);
            }
            Body::Tag(t) => {
                w.u32(t.taglen);
                w.bytes(&t.data);
            }
            Body::Tap { unit } => w.u32(*unit),
            Body::Counter(c) => {
                w.u32(c.pad);
                for v in [
                    c.ipackets,
                    c.opackets,
                    c.ibytes,
                    c.obytes,
                    c.idrops,
                    c.odrops,
                    c.idecompbytes,
                    c.ouncompbytes,
                ] {
                    w.u64(v);
                }
            }
            Body::Rdomain { dom1, dom2 } => {
                w.u16(*dom1);
                w.u16(*dom2);
            }
            Body::Mtu { mtu } => w.u32(*mtu),
            Body::Replay { reserved, count } => {
                w.u32(*reserved);
                w.u64(*count);
            }
            Body::Iface(i) => {
                w.u32(i.unit);
                w.u8(i.direction);
                w.bytes(&i.reserved);
            }
            Body::Data(d) => {
                w.u32(d.len);
                w.bytes(&d.padded);
            }
            Body::FilterRule(f) => {
                w.u32(f.number);
                w.u32(f.line);
                w.u32(f.reserved);
                w.bytes(&f.data);
            }
            Body::Raw(bytes) => w.bytes(bytes),
        }
        w.end(mark);
    }

    /// Decodes one extension whose bytes (length and type included) are
    /// exactly `bytes`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Extension, DecodeError> {
        let mut r = Reader::new(bytes);
        let _len = r.u16()?;
        let ext_type = ExtType(r.u16()?);
        let fixed = |size: usize| {
            if bytes.len() == size {
                Ok(())
            } else {
                Err(DecodeError::ExtLength(ext_type))
            }
        };
        let body = match layout(ext_type) {
            Layout::Sa => {
                fixed(16)?;
                Body::Sa(Sa {
                    spi: r.be32()?,
                    replay: r.u8()?,
                    state: SaState(r.u8()?),
                    auth: AuthAlg(r.u8()?),
                    encrypt: r.u8()?,
                    flags: r.u32()?,
                })
            }
            Layout::Lifetime => {
                fixed(32)?;
                Body::Lifetime(Lifetime {
                    allocations: r.u32()?,
                    bytes: r.u64()?,
                    addtime: r.u64()?,
                    usetime: r.u64()?,
                })
            }
            Layout::Address => Body::Address(Address {
                reserved: r.u32()?,
                addr: SockAddr::decode(&mut r)?,
            }),
            Layout::Key => {
                let bits = r.u16()?;
                let reserved = r.u16()?;
                let data = Zeroizing::new(r.bytes(r.remaining())?.to_vec());
                if data.len() < usize::from(bits).div_ceil(8) {
                    return Err(DecodeError::ExtLength(ext_type));
                }
                Body::Key(Key {
                    bits,
                    reserved,
                    data,
                })
            }
            Layout::Identity => Body::Identity(Identity {
                ident_type: IdentType(r.u16()?),
                reserved: r.u16()?,
                id: r.u64()?,
                data: r.bytes(r.remaining())?.to_vec(),
            }),
            Layout::Sensitivity => {
                let dpd = r.u32()?;
                let sens_level = r.u8()?;
                let sens_len = r.u8()?;
                let integ_level = r.u8()?;
                let integ_len = r.u8()?;
                let reserved = r.u32()?;
                fixed(16 + (usize::from(sens_len) + usize::from(integ_len)) * UNIT)?;
                let mut words = |n: u8| (0..n).map(|_| r.u64()).collect::<Result<Vec<u64>, _>>();
                let sens_bitmap = words(sens_len)?;
                let integ_bitmap = words(integ_len)?;
                Body::Sensitivity(Box::new(Sensitivity {
                    dpd,
                    sens_level,
                    integ_level,
                    reserved,
                    sens_bitmap,
                    integ_bitmap,
                }))
            }
            Layout::Proposal => {
                let num = r.u8()?;
                let replay = r.u8()?;
                let reserved = r.u16()?;
                if !r.remaining().is_multiple_of(72) {
                    return Err(DecodeError::ExtLength(ext_type));
                }
                let mut combs = Vec::with_capacity(r.remaining() / 72);
                while !r.is_empty() {
                    combs.push(decode_comb(&mut r)?);
                }
                Body::Proposal(Proposal {
                    num,
                    replay,
                    reserved,
                    combs,
                })
            }
            Layout::Supported => {
                let reserved = r.u32()?;
                let mut algs = Vec::with_capacity(r.remaining() / 8);
                while !r.is_empty() {
                    algs.push(Alg {
                        id: r.u8()?,
                        ivlen: r.u8()?,
                        minbits: r.u16()?,
                        maxbits: r.u16()?,
                        reserved: r.u16()?,
                    });
                }
                Body::Supported(Supported { reserved, algs })
            }
            Layout::SpiRange => {
                fixed(16)?;
                Body::SpiRange(SpiRange {
                    min: r.u32()?,
                    max: r.u32()?,
                    reserved: r.u32()?,
                })
            }
            Layout::Protocol => {
                fixed(8)?;
                Body::Protocol(Protocol {
                    proto: r.u8()?,
                    direction: r.u8()?,
                    flags: r.u8()?,
                    reserved: r.u8()?,
                })
            }
            Layout::Policy => {
                fixed(8)?;
                Body::Policy { seq: r.u32()? }
            }
            Layout::UdpEncap => {
                fixed(8)?;
                Body::UdpEncap(UdpEncap {
                    port: r.be16()?,
                    reserved: r.u16()?,
                })
            }
            Layout::Tag => Body::Tag(Tag {
                taglen: r.u32()?,
                data: r.bytes(r.remaining())?.to_vec(),
            }),
            Layout::Tap => {
                fixed(8)?;
                Body::Tap { unit: r.u32()? }
            }
            Layout::Counter => {
                fixed(72)?;
                Body::Counter(Box::new(Counter {
                    pad: r.u32()?,
                    ipackets: r.u64()?,
                    opackets: r.u64()?,
                    ibytes: r.u64()?,
                    obytes: r.u64()?,
                    idrops: r.u64()?,
                    odrops: r.u64()?,
                    idecompbytes: r.u64()?,
                    ouncompbytes: r.u64()?,
                }))
            }
            Layout::Rdomain => {
                fixed(8)?;
                Body::Rdomain {
                    dom1: r.u16()?,
                    dom2: r.u16()?,
                }
            }
            Layout::Mtu => {
                fixed(8)?;
                Body::Mtu { mtu: r.u32()? }
            }
            Layout::Replay => {
                fixed(16)?;
                Body::Replay {
                    reserved: r.u32()?,
                    count: r.u64()?,
                }
            }
            Layout::Iface => {
                fixed(16)?;
                let unit = r.u32()?;
                let direction = r.u8()?;
                let reserved = r.bytes(7)?.try_into().map_err(|_| DecodeError::Truncated)?;
                Body::Iface(Iface {
                    unit,
                    direction,
                    reserved,
                })
            }
            Layout::Data => Body::Data(Data {
                len: r.u32()?,
                padded: r.bytes(r.remaining())?.to_vec(),
            }),
            Layout::FilterRule => Body::FilterRule(FilterRule {
                number: r.u32()?,
                line: r.u32()?,
                reserved: r.u32()?,
                data: r.bytes(r.remaining())?.to_vec(),
            }),
            Layout::Raw => Body::Raw(r.bytes(r.remaining())?.to_vec()),
        };
        Ok(Extension { ext_type, body })
    }
}

fn encode_comb(w: &mut Writer, c: &Comb) {
    w.u8(c.auth.0);
    w.u8(c.encrypt);
    w.u16(c.flags);
    w.u16(c.auth_minbits);
    w.u16(c.auth_maxbits);
    w.u16(c.encrypt_minbits);
    w.u16(c.encrypt_maxbits);
    w.u32(c.reserved);
    w.u32(c.soft_allocations);
    w.u32(c.hard_allocations);
    for v in [
        c.soft_bytes,
        c.hard_bytes,
        c.soft_addtime,
        c.hard_addtime,
        c.soft_usetime,
        c.hard_usetime,
    ] {
        w.u64(v);
    }
}

fn decode_comb(r: &mut Reader<'_>) -> Result<Comb, DecodeError> {
    Ok(Comb {
        auth: AuthAlg(r.u8()?),
        encrypt: r.u8()?,
        flags: r.u16()?,
        auth_minbits: r.u16()?,
        auth_maxbits: r.u16()?,
        encrypt_minbits: r.u16()?,
        encrypt_maxbits: r.u16()?,
        reserved: r.u32()?,
        soft_allocations: r.u32()?,
        hard_allocations: r.u32()?,
        soft_bytes: r.u64()?,
        hard_bytes: r.u64()?,
        soft_addtime: r.u64()?,
        hard_addtime: r.u64()?,
        soft_usetime: r.u64()?,
        hard_usetime: r.u64()?,
    })
}
