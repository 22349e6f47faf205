//! Traffic selectors (RFC 7296 §3.13): ranges of addresses, ports and
//! one IP protocol.

use super::DecodeError;
use super::codec::{EncodeError, Reader, Writer};
use super::numbers::TsType;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One traffic selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrafficSelector {
    /// An address range, with a port range and a protocol (0: any).
    Range {
        protocol: u8,
        start_port: u16,
        end_port: u16,
        /// Both of one family, which gives the selector's type.
        start: IpAddr,
        end: IpAddr,
    },
    /// A selector of a type this daemon does not know, as it came:
    /// `data` is its protocol byte and what follows the length.
    Other { kind: TsType, data: Vec<u8> },
}

/// Reads a TSi or TSr payload's body.
pub fn decode_selectors(body: &[u8]) -> Result<Vec<TrafficSelector>, DecodeError> {
    let mut r = Reader::new(body);
    let count = r.u8("selector count")?;
    r.take(3, "selector payload")?;
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let kind = TsType(r.u8("selector type")?);
        let protocol = r.u8("selector protocol")?;
        let len = usize::from(r.u16("selector length")?);
        let mut s = r.sub(
            len.checked_sub(4)
                .ok_or(DecodeError::Length("traffic selector"))?,
            "traffic selector",
        )?;
        let selector = match kind {
            TsType::IPV4_ADDR_RANGE | TsType::IPV6_ADDR_RANGE => {
                let start_port = s.u16("start port")?;
                let end_port = s.u16("end port")?;
                let (start, end) = if kind == TsType::IPV4_ADDR_RANGE {
                    (v4(&mut s)?, v4(&mut s)?)
                } else {
                    (v6(&mut s)?, v6(&mut s)?)
                };
                if !s.is_empty() {
                    return Err(DecodeError::Length("traffic selector"));
                }
                TrafficSelector::Range {
                    protocol,
                    start_port,
                    end_port,
                    start,
                    end,
                }
            }
            _ => {
                let mut data = vec![protocol];
                data.extend_from_slice(s.rest());
                TrafficSelector::Other { kind, data }
            }
        };
        out.push(selector);
    }
    if !r.is_empty() {
        return Err(DecodeError::Length("traffic selectors"));
    }
    Ok(out)
}

fn v4(r: &mut Reader<'_>) -> Result<IpAddr, DecodeError> {
    let b: [u8; 4] = r.take(4, "IPv4 address")?.try_into().unwrap_or_default();
    Ok(IpAddr::V4(Ipv4Addr::from(b)))
}

fn v6(r: &mut Reader<'_>) -> Result<IpAddr, DecodeError> {
    let b: [u8; 16] = r.take(16, "IPv6 address")?.try_into().unwrap_or_default();
    Ok(IpAddr::V6(Ipv6Addr::from(b)))
}

/// Writes a TSi or TSr payload's body.
pub fn encode_selectors(w: &mut Writer, selectors: &[TrafficSelector]) -> Result<(), EncodeError> {
    w.u8(u8::try_from(selectors.len()).map_err(|_| EncodeError::TooMany)?);
    w.bytes(&[0; 3]);
    for s in selectors {
        let start = w.len();
        match s {
            TrafficSelector::Range {
                protocol,
                start_port,
                end_port,
                start: first,
                end: last,
            } => {
                let kind = match (first, last) {
                    (IpAddr::V4(_), IpAddr::V4(_)) => TsType::IPV4_ADDR_RANGE,
                    (IpAddr::V6(_), IpAddr::V6(_)) => TsType::IPV6_ADDR_RANGE,
                    _ => return Err(EncodeError::Inconsistent),
                };
                w.u8(kind.0);
                w.u8(*protocol);
                let len = w.length16(start);
                w.u16(*start_port);
                w.u16(*end_port);
                for a in [first, last] {
                    match a {
                        IpAddr::V4(a) => w.bytes(&a.octets()),
                        IpAddr::V6(a) => w.bytes(&a.octets()),
                    }
                }
                w.patch16(len)?;
            }
            TrafficSelector::Other { kind, data } => {
                w.u8(kind.0);
                w.u8(data.first().copied().unwrap_or(0));
                let len = w.length16(start);
                w.bytes(data.get(1..).unwrap_or_default());
                w.patch16(len)?;
            }
        }
    }
    Ok(())
}
