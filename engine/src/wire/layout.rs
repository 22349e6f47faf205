//! Where things are in an IP packet: the header a security header goes
//! after, the protocol that follows, the addresses, and the length by the
//! packet's own header.

use super::{Error, Result, ipv4, ipv6, proto};
use std::net::IpAddr;

/// Where things are in an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub v6: bool,
    /// Where a security header goes: after the IPv4 header with its
    /// options, or after the IPv6 header and a hop-by-hop header.
    pub header_len: usize,
    /// The protocol of what follows `header_len`.
    pub protocol: u8,
    /// The byte that names `protocol`.
    pub protocol_at: usize,
    /// The packet's length by its own header; bytes past it are link
    /// padding.
    pub len: usize,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// A later fragment: no transport header to read ports from.
    pub later_fragment: bool,
}

impl Layout {
    /// Reads the layout of a packet from the wire or from `enc0`.
    pub fn of(packet: &[u8]) -> Result<Layout> {
        match packet.first().map(|b| b >> 4) {
            Some(4) => {
                let ip = ipv4::Packet::new_checked(packet)?;
                Ok(Layout {
                    v6: false,
                    header_len: ip.header_len(),
                    protocol: ip.protocol(),
                    protocol_at: 9,
                    len: usize::from(ip.total_len()),
                    src: ip.src_addr().into(),
                    dst: ip.dst_addr().into(),
                    later_fragment: ip.fragment_offset() != 0,
                })
            }
            Some(6) => {
                let ip = ipv6::Packet::new_checked(packet)?;
                let len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
                let mut layout = Layout {
                    v6: true,
                    header_len: ipv6::HEADER_LEN,
                    protocol: ip.next_header(),
                    protocol_at: 6,
                    len,
                    src: ip.src_addr().into(),
                    dst: ip.dst_addr().into(),
                    later_fragment: false,
                };
                // A hop-by-hop header must stay first (RFC 8200 §4.1).
                if layout.protocol == proto::HOP_BY_HOP {
                    let ext = &packet[ipv6::HEADER_LEN..len];
                    let [next, units, ..] = *ext else {
                        return Err(Error::Truncated);
                    };
                    let ext_len = (usize::from(units) + 1) * 8;
                    if ext.len() < ext_len {
                        return Err(Error::Truncated);
                    }
                    layout.protocol_at = ipv6::HEADER_LEN;
                    layout.header_len += ext_len;
                    layout.protocol = next;
                }
                Ok(layout)
            }
            Some(_) => Err(Error::BadVersion),
            None => Err(Error::Truncated),
        }
    }

    /// The payload after the header (and before any link padding).
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        &packet[self.header_len..self.len]
    }
}
