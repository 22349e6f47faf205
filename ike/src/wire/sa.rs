//! The Security Association payload's proposals, their transforms and
//! the transforms' attributes (RFC 7296 §3.3).

use super::DecodeError;
use super::codec::{EncodeError, Reader, Writer};
use super::numbers::{DhGroup, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType};

/// The "Last Substruc" values: another proposal follows, another
/// transform follows, or this was the last.
const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;

/// The attribute that gives a cipher's key length in bits.
pub const KEY_LENGTH: u16 = 14;

/// The attribute format bit: a two-byte value in place of a length.
const TV: u16 = 0x8000;

/// One proposal: a protocol, its SPI, and the transforms offered for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// 1 for the first proposal, and one more for each after it.
    pub number: u8,
    pub protocol: ProtocolId,
    /// Empty in IKE_SA_INIT; the IKE SPI (8 bytes) when rekeying an IKE
    /// SA; the inbound SPI (4 bytes) of an ESP or AH Child SA.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// One transform: an algorithm of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transform {
    pub kind: TransformType,
    pub id: u16,
    pub attributes: Vec<Attribute>,
}

/// A transform attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The attribute type, without the format bit.
    pub kind: u16,
    pub value: AttributeValue,
}

/// An attribute's value, in one of its two formats.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    /// Type/value: two bytes in the header itself.
    Short(u16),
    /// Type/length/value.
    Long(Vec<u8>),
}

impl Transform {
    /// A transform without attributes.
    pub fn new(kind: TransformType, id: u16) -> Transform {
        Transform {
            kind,
            id,
            attributes: Vec::new(),
        }
    }

    /// An encryption transform, with its key length when the cipher has
    /// several.
    pub fn encr(id: EncrId, key_bits: Option<u16>) -> Transform {
        let mut t = Transform::new(TransformType::ENCR, id.0);
        if let Some(bits) = key_bits {
            t.attributes.push(Attribute {
                kind: KEY_LENGTH,
                value: AttributeValue::Short(bits),
            });
        }
        t
    }

    /// A pseudorandom function.
    pub fn prf(id: PrfId) -> Transform {
        Transform::new(TransformType::PRF, id.0)
    }

    /// An integrity algorithm.
    pub fn integ(id: IntegId) -> Transform {
        Transform::new(TransformType::INTEG, id.0)
    }

    /// A Diffie-Hellman group.
    pub fn dh(id: DhGroup) -> Transform {
        Transform::new(TransformType::DH, id.0)
    }

    /// Extended sequence numbers, or not.
    pub fn esn(id: EsnId) -> Transform {
        Transform::new(TransformType::ESN, id.0)
    }

    /// The key length attribute, if the transform has one.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes
            .iter()
            .find_map(|a| match (a.kind, &a.value) {
                (KEY_LENGTH, AttributeValue::Short(bits)) => Some(*bits),
                _ => None,
            })
    }
}

/// Reads the proposals of an SA payload's body.
pub fn decode_proposals(body: &[u8]) -> Result<Vec<Proposal>, DecodeError> {
    let mut r = Reader::new(body);
    let mut proposals = Vec::new();
    loop {
        let last = r.u8("proposal substructure")?;
        let _reserved = r.u8("proposal")?;
        let len = usize::from(r.u16("proposal length")?);
        let mut p = r.sub(
            len.checked_sub(4).ok_or(DecodeError::Length("proposal"))?,
            "proposal",
        )?;
        let number = p.u8("proposal number")?;
        let protocol = ProtocolId(p.u8("protocol ID")?);
        let spi_size = usize::from(p.u8("SPI size")?);
        let count = p.u8("transform count")?;
        let spi = p.take(spi_size, "SPI")?.to_vec();
        let mut transforms = Vec::with_capacity(usize::from(count));
        for i in 0..count {
            let (last, transform) = decode_transform(&mut p)?;
            let final_one = i + 1 == count;
            let fits = (last == LAST && final_one) || (last == MORE_TRANSFORMS && !final_one);
            if !fits {
                return Err(DecodeError::Substructure("transform"));
            }
            transforms.push(transform);
        }
        if !p.is_empty() {
            return Err(DecodeError::Length("proposal"));
        }
        proposals.push(Proposal {
            number,
            protocol,
            spi,
            transforms,
        });
        match last {
            LAST if r.is_empty() => return Ok(proposals),
            MORE_PROPOSALS if !r.is_empty() => {}
            _ => return Err(DecodeError::Substructure("proposal")),
        }
    }
}

/// One transform, and its "Last Substruc" byte.
fn decode_transform(r: &mut Reader<'_>) -> Result<(u8, Transform), DecodeError> {
    let last = r.u8("transform substructure")?;
    let _reserved = r.u8("transform")?;
    let len = usize::from(r.u16("transform length")?);
    let mut t = r.sub(
        len.checked_sub(4).ok_or(DecodeError::Length("transform"))?,
        "transform",
    )?;
    let kind = TransformType(t.u8("transform type")?);
    let _reserved = t.u8("transform")?;
    let id = t.u16("transform ID")?;
    let mut attributes = Vec::new();
    while !t.is_empty() {
        let word = t.u16("attribute type")?;
        let value = if word & TV != 0 {
            AttributeValue::Short(t.u16("attribute value")?)
        } else {
            let len = usize::from(t.u16("attribute length")?);
            AttributeValue::Long(t.take(len, "attribute value")?.to_vec())
        };
        attributes.push(Attribute {
            kind: word & !TV,
            value,
        });
    }
    Ok((
        last,
        Transform {
            kind,
            id,
            attributes,
        },
    ))
}

/// Writes the proposals of an SA payload's body.
pub fn encode_proposals(w: &mut Writer, proposals: &[Proposal]) -> Result<(), EncodeError> {
    for (i, p) in proposals.iter().enumerate() {
        let start = w.len();
        w.u8(if i + 1 == proposals.len() {
            LAST
        } else {
            MORE_PROPOSALS
        });
        w.u8(0);
        let len = w.length16(start);
        w.u8(p.number);
        w.u8(p.protocol.0);
        w.u8(u8::try_from(p.spi.len()).map_err(|_| EncodeError::TooLong)?);
        w.u8(u8::try_from(p.transforms.len()).map_err(|_| EncodeError::TooMany)?);
        w.bytes(&p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            let start = w.len();
            w.u8(if j + 1 == p.transforms.len() {
                LAST
            } else {
                MORE_TRANSFORMS
            });
            w.u8(0);
            let tlen = w.length16(start);
            w.u8(t.kind.0);
            w.u8(0);
            w.u16(t.id);
            for a in &t.attributes {
                match &a.value {
                    AttributeValue::Short(v) => {
                        w.u16(a.kind | TV);
                        w.u16(*v);
                    }
                    AttributeValue::Long(v) => {
                        w.u16(a.kind & !TV);
                        w.u16(u16::try_from(v.len()).map_err(|_| EncodeError::TooLong)?);
                        w.bytes(v);
                    }
                }
            }
            w.patch16(tlen)?;
        }
        w.patch16(len)?;
    }
    Ok(())
}
