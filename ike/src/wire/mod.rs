//! IKEv2 messages as bytes and values (RFC 7296 §3).
//!
//! A [`Message`] is a [`Header`] and a chain of [`Payload`]s. Decoding
//! checks every length and substructure and keeps numbers it does not
//! know; the protocol decides what they mean (an unknown critical payload
//! is an error it answers, an unknown notification one it ignores). An
//! encrypted payload (`SK`) ends the chain and is kept as it came, for the
//! keys to open; its plaintext is a chain of its own ([`decode_chain`]).

pub mod codec;
pub mod numbers;
pub mod sa;
pub mod ts;

use codec::{EncodeError, Reader, Writer};
pub use numbers::*;
pub use sa::{Attribute, AttributeValue, Proposal, Transform};
use std::fmt;
pub use ts::TrafficSelector;

/// The header's length: two SPIs, five one-byte fields and two words.
pub const HEADER_LEN: usize = 28;

/// Major version 2, minor 0.
pub const VERSION: u8 = 0x20;

/// The flags of a message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// Sent by the original initiator of the IKE SA.
    pub const INITIATOR: Flags = Flags(0x08);
    /// The sender could speak a higher major version.
    pub const VERSION: Flags = Flags(0x10);
    /// A response.
    pub const RESPONSE: Flags = Flags(0x20);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags and `other`'s.
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// The IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The IKE SA initiator's SPI.
    pub spi_i: u64,
    /// The responder's SPI; 0 in the first IKE_SA_INIT request.
    pub spi_r: u64,
    /// The first payload's type.
    pub next: PayloadType,
    /// Major version in the high nibble, minor in the low.
    pub version: u8,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// The whole message's length, header included.
    pub length: u32,
}

impl Header {
    /// Reads the header at the start of `bytes`, whatever follows: enough
    /// to find the IKE SA and answer, even when the rest is malformed.
    pub fn peek(bytes: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(bytes);
        Ok(Header {
            spi_i: r.u64("initiator SPI")?,
            spi_r: r.u64("responder SPI")?,
            next: PayloadType(r.u8("next payload")?),
            version: r.u8("version")?,
            exchange: ExchangeType(r.u8("exchange type")?),
            flags: Flags(r.u8("flags")?),
            message_id: r.u32("message ID")?,
            length: r.u32("message length")?,
        })
    }

    /// The major version (2 for IKEv2).
    pub fn major_version(&self) -> u8 {
        self.version >> 4
    }

    fn encode(&self, w: &mut Writer) {
        w.u64(self.spi_i);
        w.u64(self.spi_r);
        w.u8(self.next.0);
        w.u8(self.version);
        w.u8(self.exchange.0);
        w.u8(self.flags.0);
        w.u32(self.message_id);
        w.u32(self.length);
    }
}

/// A payload: its body, and whether a receiver that does not know its
/// type must refuse the message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Payload {
    pub critical: bool,
    pub body: Body,
}

impl Payload {
    /// A payload of a type every IKEv2 implementation knows; the
    /// critical bit is then meaningless and left clear.
    pub fn new(body: Body) -> Payload {
        Payload {
            critical: false,
            body,
        }
    }

    /// The payload's type.
    pub fn kind(&self) -> PayloadType {
        self.body.kind()
    }
}

/// An identification payload's body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identification {
    pub id_type: IdType,
    /// The identity: an address's bytes, a name, a DER DN.
    pub data: Vec<u8>,
}

/// A notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notify {
    /// The protocol of the SA the notification is about; NONE (0) when
    /// it is about the message or the IKE SA.
    pub protocol: ProtocolId,
    /// That SA's SPI; empty when there is none.
    pub spi: Vec<u8>,
    pub kind: NotifyType,
    pub data: Vec<u8>,
}

impl Notify {
    /// A notification about no SA in particular.
    pub fn new(kind: NotifyType, data: Vec<u8>) -> Notify {
        Notify {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            kind,
            data,
        }
    }
}

/// A Delete payload: SAs of one protocol, by SPI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delete {
    pub protocol: ProtocolId,
    /// Each SPI's size: 0 for the IKE SA (the header names it), 4 for ESP
    /// and AH.
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

/// A configuration payload's attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CfgAttribute {
    /// The attribute type (15 bits).
    pub kind: u16,
    pub value: Vec<u8>,
}

/// What a payload holds, by its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    Sa(Vec<Proposal>),
    Ke {
        group: DhGroup,
        data: Vec<u8>,
    },
    IdI(Identification),
    IdR(Identification),
    Cert {
        encoding: CertEncoding,
        data: Vec<u8>,
    },
    CertReq {
        encoding: CertEncoding,
        data: Vec<u8>,
    },
    Auth {
        method: AuthMethod,
        data: Vec<u8>,
    },
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete(Delete),
    Vendor(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    /// Encrypted payloads, as they came: IV, ciphertext, ICV. `first` is
    /// the type of the first payload inside.
    Sk {
        first: PayloadType,
        data: Vec<u8>,
    },
    /// One fragment of an encrypted message (RFC 7383); `first` is set
    /// in fragment 1 only.
    Skf {
        first: PayloadType,
        number: u16,
        total: u16,
        data: Vec<u8>,
    },
    Cp {
        kind: CfgType,
        attributes: Vec<CfgAttribute>,
    },
    /// A payload of a type this daemon does not read (EAP among them).
    Unknown {
        kind: PayloadType,
        data: Vec<u8>,
    },
}

impl Body {
    /// The payload type that carries this body.
    pub fn kind(&self) -> PayloadType {
        match self {
            Body::Sa(_) => PayloadType::SA,
            Body::Ke { .. } => PayloadType::KE,
            Body::IdI(_) => PayloadType::IDI,
            Body::IdR(_) => PayloadType::IDR,
            Body::Cert { .. } => PayloadType::CERT,
            Body::CertReq { .. } => PayloadType::CERTREQ,
            Body::Auth { .. } => PayloadType::AUTH,
            Body::Nonce(_) => PayloadType::NONCE,
            Body::Notify(_) => PayloadType::NOTIFY,
            Body::Delete(_) => PayloadType::DELETE,
            Body::Vendor(_) => PayloadType::VENDOR,
            Body::TsI(_) => PayloadType::TSI,
            Body::TsR(_) => PayloadType::TSR,
            Body::Sk { .. } => PayloadType::SK,
            Body::Skf { .. } => PayloadType::SKF,
            Body::Cp { .. } => PayloadType::CP,
            Body::Unknown { kind, .. } => *kind,
        }
    }
}

/// An IKE message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// As decoded; when encoding, `next` and `length` are worked out from
    /// the payloads.
    pub header: Header,
    pub payloads: Vec<Payload>,
}

/// Payloads in a message, at most: more is not a message but an attack.
pub const MAX_PAYLOADS: usize = 256;

impl Message {
    /// Reads a whole message, which must be exactly `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let header = Header::peek(bytes)?;
        if header.major_version() != 2 {
            return Err(DecodeError::Version(header.version));
        }
        if usize::try_from(header.length).ok() != Some(bytes.len()) {
            return Err(DecodeError::Length("message"));
        }
        let payloads = decode_chain(header.next, &bytes[HEADER_LEN..])?;
        Ok(Message { header, payloads })
    }

    /// Writes the message, its header's next payload and length worked
    /// out from the payloads.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new();
        let header = Header {
            next: self
                .payloads
                .first()
                .map_or(PayloadType::NONE, Payload::kind),
            ..self.header
        };
        header.encode(&mut w);
        encode_payloads(&mut w, &self.payloads)?;
        let length = u32::try_from(w.len()).map_err(|_| EncodeError::TooLong)?;
        let mut bytes = w.into_bytes();
        bytes[24..28].copy_from_slice(&length.to_be_bytes());
        Ok(bytes)
    }

    /// The first payload of type `kind`.
    pub fn find(&self, kind: PayloadType) -> Option<&Payload> {
        self.payloads.iter().find(|p| p.kind() == kind)
    }

    /// The notifications of type `kind`.
    pub fn notifications(&self, kind: NotifyType) -> impl Iterator<Item = &Notify> {
        self.payloads.iter().filter_map(move |p| match &p.body {
            Body::Notify(n) if n.kind == kind => Some(n),
            _ => None,
        })
    }
}

/// Reads a chain of payloads, the first of type `first`: a message's
/// after its header, or the plaintext of an SK payload. An SK or SKF
/// payload ends the chain: what it holds is its to the end.
pub fn decode_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut payloads = Vec::new();
    let mut next = first;
    while next != PayloadType::NONE {
        if payloads.len() == MAX_PAYLOADS {
            return Err(DecodeError::TooMany);
        }
        let kind = next;
        next = PayloadType(r.u8("next payload")?);
        let critical = r.u8("critical bit")? & 0x80 != 0;
        let len = usize::from(r.u16("payload length")?);
        let body = r.take(
            len.checked_sub(4).ok_or(DecodeError::Length("payload"))?,
            "payload",
        )?;
        let body = match kind {
            PayloadType::SK => {
                if !r.is_empty() {
                    return Err(DecodeError::SkNotLast);
                }
                payloads.push(Payload {
                    critical,
                    body: Body::Sk {
                        first: next,
                        data: body.to_vec(),
                    },
                });
                return Ok(payloads);
            }
            PayloadType::SKF => {
                if !r.is_empty() {
                    return Err(DecodeError::SkNotLast);
                }
                let mut b = Reader::new(body);
                let number = b.u16("fragment number")?;
                let total = b.u16("total fragments")?;
                payloads.push(Payload {
                    critical,
                    body: Body::Skf {
                        first: next,
                        number,
                        total,
                        data: b.rest().to_vec(),
                    },
                });
                return Ok(payloads);
            }
            kind => decode_body(kind, body)?,
        };
        payloads.push(Payload { critical, body });
    }
    if !r.is_empty() {
        return Err(DecodeError::Length("payload chain"));
    }
    Ok(payloads)
}

fn decode_body(kind: PayloadType, body: &[u8]) -> Result<Body, DecodeError> {
    let mut r = Reader::new(body);
    let id = |r: &mut Reader<'_>| -> Result<Identification, DecodeError> {
        let id_type = IdType(r.u8("ID type")?);
        r.take(3, "ID payload")?;
        Ok(Identification {
            id_type,
            data: r.rest().to_vec(),
        })
    };
    Ok(match kind {
        PayloadType::SA => Body::Sa(sa::decode_proposals(body)?),
        PayloadType::KE => {
            let group = DhGroup(r.u16("DH group")?);
            r.take(2, "KE payload")?;
            Body::Ke {
                group,
                data: r.rest().to_vec(),
            }
        }
        PayloadType::IDI => Body::IdI(id(&mut r)?),
        PayloadType::IDR => Body::IdR(id(&mut r)?),
        PayloadType::CERT => Body::Cert {
            encoding: CertEncoding(r.u8("certificate encoding")?),
            data: r.rest().to_vec(),
        },
        PayloadType::CERTREQ => Body::CertReq {
            encoding: CertEncoding(r.u8("certificate encoding")?),
            data: r.rest().to_vec(),
        },
        PayloadType::AUTH => {
            let method = AuthMethod(r.u8("auth method")?);
            r.take(3, "AUTH payload")?;
            Body::Auth {
                method,
                data: r.rest().to_vec(),
            }
        }
        PayloadType::NONCE => Body::Nonce(body.to_vec()),
        PayloadType::NOTIFY => {
            let protocol = ProtocolId(r.u8("protocol ID")?);
            let spi_size = usize::from(r.u8("SPI size")?);
            let kind = NotifyType(r.u16("notify type")?);
            let spi = r.take(spi_size, "SPI")?.to_vec();
            Body::Notify(Notify {
                protocol,
                spi,
                kind,
                data: r.rest().to_vec(),
            })
        }
        PayloadType::DELETE => {
            let protocol = ProtocolId(r.u8("protocol ID")?);
            let spi_size = r.u8("SPI size")?;
            let count = r.u16("SPI count")?;
            let mut spis = Vec::new();
            for _ in 0..count {
                spis.push(r.take(usize::from(spi_size), "SPI")?.to_vec());
            }
            if !r.is_empty() {
                return Err(DecodeError::Length("delete payload"));
            }
            Body::Delete(Delete {
                protocol,
                spi_size,
                spis,
            })
        }
        PayloadType::VENDOR => Body::Vendor(body.to_vec()),
        PayloadType::TSI => Body::TsI(ts::decode_selectors(body)?),
        PayloadType::TSR => Body::TsR(ts::decode_selectors(body)?),
        PayloadType::CP => {
            let kind = CfgType(r.u8("CFG type")?);
            r.take(3, "CP payload")?;
            let mut attributes = Vec::new();
            while !r.is_empty() {
                let kind = r.u16("attribute type")? & 0x7fff;
                let len = usize::from(r.u16("attribute length")?);
                attributes.push(CfgAttribute {
                    kind,
                    value: r.take(len, "attribute value")?.to_vec(),
                });
            }
            Body::Cp { kind, attributes }
        }
        kind => Body::Unknown {
            kind,
            data: body.to_vec(),
        },
    })
}

/// Writes a chain of payloads; returns the first one's type (what the
/// header, or the SK payload around them, must name).
pub fn encode_chain(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), EncodeError> {
    let mut w = Writer::new();
    encode_payloads(&mut w, payloads)?;
    let first = payloads.first().map_or(PayloadType::NONE, Payload::kind);
    Ok((first, w.into_bytes()))
}

fn encode_payloads(w: &mut Writer, payloads: &[Payload]) -> Result<(), EncodeError> {
    if payloads.len() > MAX_PAYLOADS {
        return Err(EncodeError::TooMany);
    }
    for (i, p) in payloads.iter().enumerate() {
        let next = match &p.body {
            Body::Sk { first, .. } | Body::Skf { first, .. } => {
                if i + 1 != payloads.len() {
                    return Err(EncodeError::Inconsistent);
                }
                *first
            }
            _ => payloads.get(i + 1).map_or(PayloadType::NONE, Payload::kind),
        };
        let start = w.len();
        w.u8(next.0);
        w.u8(if p.critical { 0x80 } else { 0 });
        let len = w.length16(start);
        encode_body(w, &p.body)?;
        w.patch16(len)?;
    }
    Ok(())
}

fn encode_body(w: &mut Writer, body: &Body) -> Result<(), EncodeError> {
    let id = |w: &mut Writer, id: &Identification| {
        w.u8(id.id_type.0);
        w.bytes(&[0; 3]);
        w.bytes(&id.data);
    };
    match body {
        Body::Sa(proposals) => sa::encode_proposals(w, proposals)?,
        Body::Ke { group, data } => {
            w.u16(group.0);
            w.u16(0);
            w.bytes(data);
        }
        Body::IdI(i) | Body::IdR(i) => id(w, i),
        Body::Cert { encoding, data } | Body::CertReq { encoding, data } => {
            w.u8(encoding.0);
            w.bytes(data);
        }
        Body::Auth { method, data } => {
            w.u8(method.0);
            w.bytes(&[0; 3]);
            w.bytes(data);
        }
        Body::Nonce(data) | Body::Vendor(data) => w.bytes(data),
        Body::Notify(n) => {
            w.u8(n.protocol.0);
            w.u8(u8::try_from(n.spi.len()).map_err(|_| EncodeError::TooLong)?);
            w.u16(n.kind.0);
            w.bytes(&n.spi);
            w.bytes(&n.data);
        }
        Body::Delete(d) => {
            w.u8(d.protocol.0);
            w.u8(d.spi_size);
            w.u16(u16::try_from(d.spis.len()).map_err(|_| EncodeError::TooMany)?);
            for spi in &d.spis {
                if spi.len() != usize::from(d.spi_size) {
                    return Err(EncodeError::Inconsistent);
                }
                w.bytes(spi);
            }
        }
        Body::TsI(s) | Body::TsR(s) => ts::encode_selectors(w, s)?,
        Body::Sk { data, .. } => w.bytes(data),
        Body::Skf {
            number,
            total,
            data,
            ..
        } => {
            w.u16(*number);
            w.u16(*total);
            w.bytes(data);
        }
        Body::Cp { kind, attributes } => {
            w.u8(kind.0);
            w.bytes(&[0; 3]);
            for a in attributes {
                w.u16(a.kind & 0x7fff);
                w.u16(u16::try_from(a.value.len()).map_err(|_| EncodeError::TooLong)?);
                w.bytes(&a.value);
            }
        }
        Body::Unknown { data, .. } => w.bytes(data),
    }
    Ok(())
}

/// Why bytes are not an IKE message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside the named field.
    Truncated(&'static str),
    /// The named structure's length disagrees with what it holds.
    Length(&'static str),
    /// A "Last Substruc" byte that contradicts the count or the length.
    Substructure(&'static str),
    /// A major version other than 2 (the byte as it came).
    Version(u8),
    /// An SK or SKF payload that is not the last.
    SkNotLast,
    /// More payloads than [`MAX_PAYLOADS`].
    TooMany,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated(what) => write!(f, "message ends inside the {what}"),
            DecodeError::Length(what) => write!(f, "the {what} length does not fit"),
            DecodeError::Substructure(what) => write!(f, "bad {what} substructure"),
            DecodeError::Version(v) => write!(f, "IKE version {}.{}", v >> 4, v & 15),
            DecodeError::SkNotLast => f.write_str("payloads after the encrypted payload"),
            DecodeError::TooMany => write!(f, "more than {MAX_PAYLOADS} payloads"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests;
