//! Messages: the 16-byte header and the extensions after it.

use crate::DecodeError;
use crate::codec::{Reader, UNIT, Writer};
use crate::consts::*;
use crate::ext::{Body, Extension};

/// `sadb_msg`, without its length (which encoding computes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The protocol version, `PF_KEY_V2`; the kernel does not check it.
    pub version: u8,
    /// What the message asks for or reports.
    pub msg_type: MsgType,
    /// Set in replies that report an error; 0 otherwise.
    pub errno: u8,
    /// The SA type the message concerns; UNSPEC (0) for all or none.
    pub satype: SaType,
    /// Reserved, 0.
    pub reserved: u16,
    /// A sequence number, echoed in the reply; the last DUMP record has 0.
    pub seq: u32,
    /// The sender's process id, echoed in the reply; the kernel requires the sender's own.
    pub pid: u32,
}

impl Header {
    /// A header with version 2, errno 0 and reserved 0.
    pub fn new(msg_type: MsgType, satype: SaType, seq: u32, pid: u32) -> Header {
        Header {
            version: PF_KEY_V2,
            msg_type,
            errno: 0,
            satype,
            reserved: 0,
            seq,
            pid,
        }
    }
}

/// A PF_KEY message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The 16-byte `sadb_msg` header.
    pub header: Header,
    /// The extensions, in the order they appear on the wire.
    pub extensions: Vec<Extension>,
}

impl Message {
    /// A message with no extensions.
    pub fn new(header: Header) -> Message {
        Message {
            header,
            extensions: Vec::new(),
        }
    }

    /// Appends an extension; the body must suit the type.
    pub fn push(&mut self, ext_type: ExtType, body: Body) -> Result<&mut Message, DecodeError> {
        self.extensions.push(Extension::new(ext_type, body)?);
        Ok(self)
    }

    /// The first extension of a type.
    pub fn get(&self, ext_type: ExtType) -> Option<&Body> {
        self.extensions
            .iter()
            .find(|e| e.ext_type == ext_type)
            .map(|e| &e.body)
    }

    /// The message as bytes, its length fields filled in (in 8-byte units).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        self.encode_into(&mut w);
        w.into_bytes()
    }

    /// Appends the message to `w`, as in a stream of messages.
    pub fn encode_into(&self, w: &mut Writer) {
        let start = w.len();
        let h = &self.header;
        w.u8(h.version);
        w.u8(h.msg_type.0);
        w.u8(h.errno);
        w.u8(h.satype.0);
        w.u16(0);
        w.u16(h.reserved);
        w.u32(h.seq);
        w.u32(h.pid);
        for ext in &self.extensions {
            ext.encode(w);
        }
        let units = ((w.len() - start) / UNIT) as u16;
        w.patch_u16(start + 4, units);
    }

    /// Decodes exactly one message: its length field must match `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = Header {
            version: r.u8()?,
            msg_type: MsgType(r.u8()?),
            errno: r.u8()?,
            satype: SaType(r.u8()?),
            reserved: 0,
            seq: 0,
            pid: 0,
        };
        let len = usize::from(r.u16()?) * UNIT;
        let header = Header {
            reserved: r.u16()?,
            seq: r.u32()?,
            pid: r.u32()?,
            ..header
        };
        if len != bytes.len() {
            return Err(DecodeError::MessageLength);
        }
        // Most extensions are 8 to 40 bytes long.
        let mut extensions = Vec::with_capacity((len / 24).min(16));
        while !r.is_empty() {
            let mut peek = r.clone();
            let ext_len = usize::from(peek.u16()?) * UNIT;
            if ext_len < UNIT {
                return Err(DecodeError::ExtTooShort);
            }
            let ext_bytes = r.bytes(ext_len).map_err(|_| DecodeError::ExtOverrun)?;
            extensions.push(Extension::decode(ext_bytes)?);
        }
        Ok(Message { header, extensions })
    }

    /// The length of the message at the start of `bytes`, from its header.
    pub fn peek_len(bytes: &[u8]) -> Option<usize> {
        let len = u16::from_ne_bytes([*bytes.get(4)?, *bytes.get(5)?]);
        Some(usize::from(len) * UNIT)
    }
}

/// Decodes a stream of messages written one after another.
pub fn decode_stream(mut bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = Message::peek_len(bytes).ok_or(DecodeError::Truncated)?;
        if len == 0 || len > bytes.len() {
            return Err(DecodeError::MessageLength);
        }
        out.push(Message::decode(&bytes[..len])?);
        bytes = &bytes[len..];
    }
    Ok(out)
}

/// Encodes messages one after another, as `ipsecctl -w` writes them.
pub fn encode_stream<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Vec<u8> {
    let mut w = Writer::new();
    for m in messages {
        m.encode_into(&mut w);
    }
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext::{Address, Key, Protocol, Sa};
    use crate::sockaddr::SockAddr;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn v4(a: [u8; 4], port: u16) -> Body {
        Body::Address(Address {
            reserved: 0,
            addr: SockAddr::V4 {
                addr: Ipv4Addr::from(a),
                port,
            },
        })
    }

    /// `flow esp out from 10.0.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 type
    /// require`, assembled by hand from the layouts (little-endian host).
    const ADDFLOW: &str = "
        02 0c 00 02 13 00 00 00  01 00 00 00 39 30 00 00
        01 00 14 00 03 02 00 00
        03 00 06 00 00 00 00 00  10 02 00 00 c0 00 02 02  00 00 00 00 00 00 00 00
        03 00 15 00 00 00 00 00  10 02 00 00 0a 00 00 00  00 00 00 00 00 00 00 00
        03 00 11 00 00 00 00 00  10 02 00 00 ff ff ff 00  00 00 00 00 00 00 00 00
        03 00 16 00 00 00 00 00  10 02 00 00 0a 01 00 00  00 00 00 00 00 00 00 00
        03 00 12 00 00 00 00 00  10 02 00 00 ff ff ff 00  00 00 00 00 00 00 00 00
        01 00 13 00 00 00 00 00";

    #[test]
    #[cfg(target_endian = "little")]
    fn known_addflow_frame() {
        let bytes = hex(ADDFLOW);
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(
            m.header,
            Header::new(MsgType::X_ADDFLOW, SaType::ESP, 1, 12345)
        );
        let types: Vec<ExtType> = m.extensions.iter().map(|e| e.ext_type).collect();
        assert_eq!(
            types,
            [
                ExtType::X_FLOW_TYPE,
                ExtType::ADDRESS_DST,
                ExtType::X_SRC_FLOW,
                ExtType::X_SRC_MASK,
                ExtType::X_DST_FLOW,
                ExtType::X_DST_MASK,
                ExtType::X_PROTOCOL
            ]
        );
        let Some(Body::Protocol(flow)) = m.get(ExtType::X_FLOW_TYPE) else {
            panic!()
        };
        assert_eq!(
            (FlowType(flow.proto), FlowDirection(flow.direction)),
            (FlowType::REQUIRE, FlowDirection::OUT)
        );
        let Some(Body::Address(peer)) = m.get(ExtType::ADDRESS_DST) else {
            panic!()
        };
        assert_eq!(
            peer.addr.addr(),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)))
        );

        // The same message built from values encodes to the same bytes.
        let mut built = Message::new(Header::new(MsgType::X_ADDFLOW, SaType::ESP, 1, 12345));
        let flow_type = Protocol {
            proto: FlowType::REQUIRE.0,
            direction: FlowDirection::OUT.0,
            ..Protocol::default()
        };
        built
            .push(ExtType::X_FLOW_TYPE, Body::Protocol(flow_type))
            .unwrap();
        built
            .push(ExtType::ADDRESS_DST, v4([192, 0, 2, 2], 0))
            .unwrap();
        built
            .push(ExtType::X_SRC_FLOW, v4([10, 0, 0, 0], 0))
            .unwrap();
        built
            .push(ExtType::X_SRC_MASK, v4([255, 255, 255, 0], 0))
            .unwrap();
        built
            .push(ExtType::X_DST_FLOW, v4([10, 1, 0, 0], 0))
            .unwrap();
        built
            .push(ExtType::X_DST_MASK, v4([255, 255, 255, 0], 0))
            .unwrap();
        built
            .push(ExtType::X_PROTOCOL, Body::Protocol(Protocol::default()))
            .unwrap();
        assert_eq!(built.encode(), bytes);
        assert_eq!(crate::validate::check_request(&m, 12345), Ok(()));
    }

    /// An ESP SA to an IPv6 peer with a 256-bit authentication key.
    const ADD_V6: &str = "
        02 03 00 02 0e 00 00 00  07 00 00 00 01 00 00 00
        02 00 01 00 00 00 10 00  00 01 05 0c 04 00 00 00
        05 00 06 00 00 00 00 00  1c 18 00 00 00 00 00 00
        20 01 0d b8 00 00 00 00  00 00 00 00 00 00 00 01  00 00 00 00 00 00 00 00
        05 00 08 00 00 01 00 00
        00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f
        10 11 12 13 14 15 16 17  18 19 1a 1b 1c 1d 1e 1f";

    #[test]
    #[cfg(target_endian = "little")]
    fn known_add_frame_with_ipv6_and_key() {
        let bytes = hex(ADD_V6);
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.header.msg_type, MsgType::ADD);
        let Some(Body::Sa(sa)) = m.get(ExtType::SA) else {
            panic!()
        };
        assert_eq!(
            *sa,
            Sa {
                spi: 0x1000,
                replay: 0,
                state: SaState::MATURE,
                auth: AuthAlg::X_SHA2_256,
                encrypt: EncAlg::X_AES.0,
                flags: sa_flags::TUNNEL,
            }
        );
        let Some(Body::Address(dst)) = m.get(ExtType::ADDRESS_DST) else {
            panic!()
        };
        assert_eq!(
            dst.addr.addr(),
            Some(IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()))
        );
        let Some(Body::Key(key)) = m.get(ExtType::KEY_AUTH) else {
            panic!()
        };
        assert_eq!(key.bits, 256);
        assert_eq!(key.material(), (0u8..32).collect::<Vec<_>>());
        assert_eq!(*key, Key::new(&(0u8..32).collect::<Vec<_>>()));
        assert_eq!(m.encode(), bytes);
        assert_eq!(crate::validate::check_request(&m, 1), Ok(()));
        assert_eq!(
            crate::validate::check_request(&m, 2),
            Err(crate::validate::Errno::EINVAL)
        );
    }

    /// A filter-dump record: rule 2, from line 7, with its counters
    /// (3 packets and 252 bytes in, 1 packet and 84 bytes out).
    const FILTER_RECORD: &str = "
        02 11 00 00 11 00 00 00  00 00 00 00 2a 00 00 00
        06 00 29 00 02 00 00 00  07 00 00 00 00 00 00 00
        70 61 73 73 20 6f 75 74  20 6f 6e 20 65 6e 63 30
        20 70 72 6f 74 6f 20 69  63 6d 70 00 00 00 00 00
        09 00 24 00 00 00 00 00
        03 00 00 00 00 00 00 00  01 00 00 00 00 00 00 00
        fc 00 00 00 00 00 00 00  54 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00";

    #[test]
    #[cfg(target_endian = "little")]
    fn known_filter_dump_record() {
        let mut m = Message::new(Header::new(MsgType::X_FILTERDUMP, SaType::UNSPEC, 0, 42));
        let rule = crate::ext::FilterRule::new(2, 7, "pass out on enc0 proto icmp");
        m.push(ExtType::X_FILTER_RULE, Body::FilterRule(rule.clone()))
            .unwrap();
        let counter = crate::ext::Counter {
            ipackets: 3,
            opackets: 1,
            ibytes: 252,
            obytes: 84,
            ..Default::default()
        };
        m.push(ExtType::X_COUNTER, Body::Counter(Box::new(counter)))
            .unwrap();
        let bytes = hex(FILTER_RECORD);
        assert_eq!(m.encode(), bytes);
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back, m);
        let Some(Body::FilterRule(r)) = back.get(ExtType::X_FILTER_RULE) else {
            panic!()
        };
        assert_eq!((r.number, r.line), (2, 7));
        assert_eq!(r.text(), "pass out on enc0 proto icmp");
        assert_eq!(crate::validate::check_reply(&back), Ok(()));
        // The record needs its rule; a request for the dump carries nothing.
        let bare = Message::new(back.header);
        assert_eq!(
            crate::validate::check_reply(&bare),
            Err(crate::validate::Errno::EPERM)
        );
        let mut ask = Message::new(Header::new(MsgType::X_FILTERDUMP, SaType::UNSPEC, 1, 42));
        assert_eq!(crate::validate::check_request(&ask, 42), Ok(()));
        ask.push(ExtType::X_FILTER_RULE, Body::FilterRule(rule))
            .unwrap();
        assert_eq!(
            crate::validate::check_request(&ask, 42),
            Err(crate::validate::Errno::EINVAL)
        );
        // Too short to hold the number, line and reserved word.
        let mut short = bytes.clone();
        short[16] = 1;
        assert!(Message::decode(&short).is_err());
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn a_relayed_datagram_carries_its_ends_and_bytes() {
        let at = |a: [u8; 4], port| {
            Body::Address(Address {
                reserved: 0,
                addr: SockAddr::V4 {
                    addr: a.into(),
                    port,
                },
            })
        };
        let mut m = Message::new(Header::new(MsgType::X_DATAGRAM, SaType::UNSPEC, 3, 9));
        m.push(ExtType::X_SRC_FLOW, at([192, 0, 2, 1], 4500))
            .unwrap();
        m.push(ExtType::X_DST_FLOW, at([192, 0, 2, 2], 4500))
            .unwrap();
        m.push(
            ExtType::X_DATA,
            Body::Data(crate::ext::Data::new(b"an IKE message")),
        )
        .unwrap();
        let bytes = m.encode();
        assert_eq!(bytes.len() % 8, 0);
        let back = Message::decode(&bytes).unwrap();
        let Some(Body::Data(d)) = back.get(ExtType::X_DATA) else {
            panic!()
        };
        assert_eq!(d.bytes(), Some(&b"an IKE message"[..]));
        assert_eq!(crate::validate::check_request(&back, 9), Ok(()));
        // Ports are at home in the flow extensions; the data is needed.
        let mut bare = Message::new(back.header);
        bare.push(ExtType::X_SRC_FLOW, at([192, 0, 2, 1], 4500))
            .unwrap();
        bare.push(ExtType::X_DST_FLOW, at([192, 0, 2, 2], 4500))
            .unwrap();
        assert_eq!(
            crate::validate::check_request(&bare, 9),
            Err(crate::validate::Errno::EINVAL)
        );
        // A length beyond the bytes is refused.
        let mut long = bytes.clone();
        let at_len = long.len() - 20;
        long[at_len] = 200;
        let odd = Message::decode(&long).unwrap();
        assert_eq!(
            crate::validate::check_request(&odd, 9),
            Err(crate::validate::Errno::EINVAL)
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert_eq!(Message::decode(&[]), Err(crate::DecodeError::Truncated));
        let mut bytes = hex(ADD_V6);
        // Length one unit too long.
        bytes[4] += 1;
        assert_eq!(
            Message::decode(&bytes),
            Err(crate::DecodeError::MessageLength)
        );
        bytes[4] -= 1;
        // The SA extension claims to run past the end.
        bytes[16] = 0x40;
        assert_eq!(Message::decode(&bytes), Err(crate::DecodeError::ExtOverrun));
        // An extension of length zero.
        bytes[16] = 0;
        assert_eq!(
            Message::decode(&bytes),
            Err(crate::DecodeError::ExtTooShort)
        );
    }

    #[test]
    fn streams() {
        let a = Message::decode(&hex(ADD_V6)).unwrap();
        let b = Message::new(Header::new(MsgType::FLUSH, SaType::UNSPEC, 2, 1));
        let bytes = encode_stream([&a, &b]);
        assert_eq!(decode_stream(&bytes).unwrap(), vec![a, b]);
        assert!(decode_stream(&bytes[..bytes.len() - 1]).is_err());
    }
}
