//! IKE on the NAT traversal port: the runtime owns UDP port 4500, where
//! ESP in UDP and IKE arrive together, told apart by RFC 3948's non-ESP
//! marker. IKE that arrives there is handed to the key managers as an
//! `X_DATAGRAM` message (this runtime's own); a key manager's
//! `X_DATAGRAM` becomes an IP packet, from the port it names, with the
//! marker, for the shell to send as it sends any packet to a peer.

use super::*;
use crate::wire::{checksum, proto};
use std::net::SocketAddr;

/// RFC 3948's non-ESP marker: four zero bytes where an SPI would be.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// An IP header's length without options, by family, and UDP's.
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;

fn flow_end(msg: &Message, t: ExtType) -> Option<SocketAddr> {
    match msg.get(t) {
        Some(Body::Address(a)) => Some(SocketAddr::new(a.addr.addr()?, a.addr.port())),
        _ => None,
    }
}

impl Engine {
    /// A key manager's datagram: queued for the shell as a whole packet.
    pub(super) fn relay_out(&mut self, msg: &Message) -> Handled {
        let (Some(src), Some(dst), Some(Body::Data(data))) = (
            flow_end(msg, ExtType::X_SRC_FLOW),
            flow_end(msg, ExtType::X_DST_FLOW),
            msg.get(ExtType::X_DATA),
        ) else {
            return Err(Errno::EINVAL);
        };
        let payload = data.bytes().ok_or(Errno::EINVAL)?;
        let packet = udp_packet(src, dst, payload).ok_or(Errno::EINVAL)?;
        if self.relayed.len() >= MAX_RELAYED {
            return Err(Errno::ENOBUFS);
        }
        self.relayed.push(packet);
        Ok(Outcome::Done(Vec::new()))
    }

    /// An IKE message that came to `dst` from `src` on the NAT traversal
    /// port, after the marker: for every registered key manager.
    pub fn relay_in(&self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<Delivery> {
        let mut m = Message::new(pfkey::Header::new(
            MsgType::X_DATAGRAM,
            SaType::UNSPEC,
            0,
            0,
        ));
        let at = |a: SocketAddr| {
            Body::Address(pfkey::Address {
                reserved: 0,
                addr: SockAddr::ip(a.ip(), a.port()),
            })
        };
        push(&mut m, ExtType::X_SRC_FLOW, at(src));
        push(&mut m, ExtType::X_DST_FLOW, at(dst));
        push(
            &mut m,
            ExtType::X_DATA,
            Body::Data(pfkey::Data::new(payload)),
        );
        self.deliver(0, &m.encode(), Mode::Registered(SaType::UNSPEC))
    }

    /// The packets the key managers asked to send, oldest first.
    pub fn take_relayed(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.relayed)
    }
}

/// Packets waiting for the shell at most: a key manager that floods
/// gets `ENOBUFS`.
const MAX_RELAYED: usize = 256;

/// An IP packet with a UDP datagram from `src` to `dst` carrying the
/// marker and `payload`, its checksums right; `None` for two families or
/// a payload too long.
fn udp_packet(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let udp_len = UDP_HEADER + NON_ESP_MARKER.len() + payload.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&u16::try_from(udp_len).ok()?.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&NON_ESP_MARKER);
    udp.extend_from_slice(payload);
    let sum = checksum::pseudo_header(src.ip(), dst.ip(), proto::UDP, udp_len as u32);
    let mut sum = checksum::finish(checksum::accumulate(sum, &udp));
    if sum == 0 {
        sum = 0xffff;
    }
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    let mut packet = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(IPV4_HEADER + udp_len).ok()?;
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto::UDP, 0, 0];
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let sum = checksum::of(&h);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&u16::try_from(udp_len).ok()?.to_be_bytes());
            h.extend_from_slice(&[proto::UDP, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            debug_assert_eq!(h.len(), IPV6_HEADER);
            h
        }
        _ => return None,
    };
    packet.extend_from_slice(&udp);
    Some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_managers_datagram_becomes_a_packet_and_an_arrival_a_message() {
        let mut e = Engine::new([1; 32]);
        e.connect(1);
        e.connect(2);
        // Client 1 is a key manager; client 2 is not.
        let register = Message::new(pfkey::Header::new(MsgType::REGISTER, SaType::ESP, 1, 7));
        e.handle(1, 7, &register.encode(), 0);
        let (src, dst): (SocketAddr, SocketAddr) = (
            "192.0.2.1:4500".parse().unwrap(),
            "198.51.100.2:4500".parse().unwrap(),
        );
        let mut ask = Message::new(pfkey::Header::new(
            MsgType::X_DATAGRAM,
            SaType::UNSPEC,
            2,
            7,
        ));
        let at = |a: SocketAddr| {
            Body::Address(pfkey::Address {
                reserved: 0,
                addr: SockAddr::ip(a.ip(), a.port()),
            })
        };
        push(&mut ask, ExtType::X_SRC_FLOW, at(src));
        push(&mut ask, ExtType::X_DST_FLOW, at(dst));
        push(
            &mut ask,
            ExtType::X_DATA,
            Body::Data(pfkey::Data::new(b"IKE")),
        );
        let out = e.handle(1, 7, &ask.encode(), 0);
        assert!(out.is_empty(), "no reply: {out:?}");
        let packets = e.take_relayed();
        assert_eq!(packets.len(), 1);
        let p = &packets[0];
        let layout = crate::wire::layout::Layout::of(p).unwrap();
        assert_eq!(
            (layout.src, layout.dst, layout.protocol),
            (src.ip(), dst.ip(), proto::UDP)
        );
        assert_eq!(&p[20..24], &[0x11, 0x94, 0x11, 0x94], "4500 to 4500");
        assert_eq!(&p[28..], b"\0\0\0\0IKE");
        assert_eq!(checksum::of(&p[..20]), 0, "IPv4 header checksum");
        let sum = checksum::pseudo_header(src.ip(), dst.ip(), 17, (p.len() - 20) as u32);
        assert_eq!(
            checksum::finish(checksum::accumulate(sum, &p[20..])),
            0,
            "UDP checksum"
        );
        // Back: the key manager alone gets it.
        let arrived = e.relay_in(dst, src, b"answer");
        assert_eq!(arrived.len(), 1);
        assert_eq!(arrived[0].to, 1);
        let m = Message::decode(&arrived[0].bytes).unwrap();
        assert_eq!(m.header.msg_type, MsgType::X_DATAGRAM);
        let Some(Body::Data(d)) = m.get(ExtType::X_DATA) else {
            panic!()
        };
        assert_eq!(d.bytes(), Some(&b"answer"[..]));
        assert_eq!(flow_end(&m, ExtType::X_SRC_FLOW), Some(dst));
    }
}
