//! BSD socket addresses as they sit inside address extensions: byte 0 is
//! the length, byte 1 the family (OpenBSD's numbers), then the port and the
//! address in network order.

use crate::DecodeError;
use crate::codec::{Reader, Writer, pad_up};
use crate::consts::family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `sizeof(struct sockaddr_in)`: 16 bytes.
pub const SIN_LEN: u8 = 16;
/// `sizeof(struct sockaddr_in6)`: 28 bytes, padded to 32 on the wire.
pub const SIN6_LEN: u8 = 28;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// A socket address, read as IPv4 or IPv6 when it is exactly one of them.
pub enum SockAddr {
    /// A `sockaddr_in`: 16 bytes.
    V4 {
        /// The IPv4 address; network order on the wire.
        addr: Ipv4Addr,
        /// The port, host order here and network order on the wire; 0 = any.
        port: u16,
    },
    /// A `sockaddr_in6`: 28 bytes, padded to 32.
    V6 {
        /// The IPv6 address; network order on the wire.
        addr: Ipv6Addr,
        /// The port, host order here and network order on the wire; 0 = any.
        port: u16,
        /// The flow label, host order here and network order on the wire; the kernel requires 0.
        flowinfo: u32,
        /// The scope (interface) id; host order on the wire.
        scope_id: u32,
    },
    /// Anything else, kept byte for byte (padding included): another
    /// family, the empty address TCP-MD5 tolerates, or bytes a strict
    /// reading would not keep.
    Raw(Vec<u8>),
}

impl SockAddr {
    /// The sockaddr for an IP address and a port in host order; flowinfo and scope 0.
    pub fn ip(addr: IpAddr, port: u16) -> SockAddr {
        match addr {
            IpAddr::V4(addr) => SockAddr::V4 { addr, port },
            IpAddr::V6(addr) => SockAddr::V6 {
                addr,
                port,
                flowinfo: 0,
                scope_id: 0,
            },
        }
    }

    /// The IP address, or `None` for a raw sockaddr.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            SockAddr::V4 { addr, .. } => Some(IpAddr::V4(*addr)),
            SockAddr::V6 { addr, .. } => Some(IpAddr::V6(*addr)),
            SockAddr::Raw(_) => None,
        }
    }

    /// The port in host order; 0 for a raw sockaddr.
    pub fn port(&self) -> u16 {
        match self {
            SockAddr::V4 { port, .. } | SockAddr::V6 { port, .. } => *port,
            SockAddr::Raw(_) => 0,
        }
    }

    /// OpenBSD's family number.
    pub fn family(&self) -> u8 {
        match self {
            SockAddr::V4 { .. } => family::INET,
            SockAddr::V6 { .. } => family::INET6,
            SockAddr::Raw(bytes) => bytes.get(1).copied().unwrap_or(family::UNSPEC),
        }
    }

    /// The `sa_len` byte.
    pub fn sa_len(&self) -> u8 {
        match self {
            SockAddr::V4 { .. } => SIN_LEN,
            SockAddr::V6 { .. } => SIN6_LEN,
            SockAddr::Raw(bytes) => bytes.first().copied().unwrap_or(0),
        }
    }

    /// Bytes on the wire, padding included.
    pub fn wire_len(&self) -> usize {
        match self {
            SockAddr::Raw(bytes) => bytes.len(),
            other => pad_up(usize::from(other.sa_len())),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            SockAddr::V4 { addr, port } => {
                w.u8(SIN_LEN);
                w.u8(family::INET);
                w.be16(*port);
                w.bytes(&addr.octets());
                w.zeros(8);
            }
            SockAddr::V6 {
                addr,
                port,
                flowinfo,
                scope_id,
            } => {
                w.u8(SIN6_LEN);
                w.u8(family::INET6);
                w.be16(*port);
                w.be32(*flowinfo);
                w.bytes(&addr.octets());
                w.u32(*scope_id);
                w.zeros(4);
            }
            SockAddr::Raw(bytes) => w.bytes(bytes),
        }
    }

    /// Reads the rest of an address extension.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<SockAddr, DecodeError> {
        let all = r.bytes(r.remaining())?;
        let strict = || -> Option<SockAddr> {
            let (len, fam) = (*all.first()?, *all.get(1)?);
            // Only the two sizes below are read as addresses; anything
            // shorter than its own header stays raw.
            if len < 2
                || all.len() != pad_up(usize::from(len))
                || all[usize::from(len)..].iter().any(|&b| b != 0)
            {
                return None;
            }
            let mut s = Reader::new(&all[2..usize::from(len)]);
            match (fam, len) {
                (family::INET, SIN_LEN) => {
                    let port = s.be16().ok()?;
                    let addr = Ipv4Addr::from(s.be32().ok()?);
                    // sin_zero must be zero to be read as an address.
                    s.padding().ok()?;
                    Some(SockAddr::V4 { addr, port })
                }
                (family::INET6, SIN6_LEN) => {
                    let port = s.be16().ok()?;
                    let flowinfo = s.be32().ok()?;
                    let octets: [u8; 16] = s.bytes(16).ok()?.try_into().ok()?;
                    let scope_id = s.u32().ok()?;
                    Some(SockAddr::V6 {
                        addr: Ipv6Addr::from(octets),
                        port,
                        flowinfo,
                        scope_id,
                    })
                }
                _ => None,
            }
        };
        Ok(strict().unwrap_or_else(|| SockAddr::Raw(all.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> SockAddr {
        SockAddr::decode(&mut Reader::new(bytes)).unwrap()
    }

    #[test]
    fn odd_lengths_stay_raw() {
        // Found by fuzzing: an sa_len shorter than the sockaddr header.
        let short = [1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&short), SockAddr::Raw(short.to_vec()));
        let empty = [0u8; 16];
        assert_eq!(decode(&empty), SockAddr::Raw(empty.to_vec()));
        let v4 = [16, 2, 0, 80, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode(&v4),
            SockAddr::V4 {
                addr: Ipv4Addr::new(192, 0, 2, 1),
                port: 80
            }
        );
        // sin_zero that is not zero is kept as it is.
        let mut dirty = v4;
        dirty[15] = 1;
        assert_eq!(decode(&dirty), SockAddr::Raw(dirty.to_vec()));
    }
}
