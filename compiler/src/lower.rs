//! Rules as the PF_KEY messages OpenBSD's ipsecctl sends for them: one
//! message per flow, SA or bundle link, extensions in ipsecctl's order.
//! `ike` rules go to isakmpd instead and lower to nothing.

use crate::addr::{Address, max_bits};
use crate::rule::*;
use crate::xform::{Auth, Comp, Enc};
use pfkey::{
    AuthAlg, Body, CompAlg, EncAlg, ExtType, FlowDirection, Header, IdentType, Message, MsgType,
    Protocol, SaState, SockAddr, UdpEncap, sa_flags,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Load or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Delete,
}

/// Numbers messages as one socket would: `seq` from 1, the sender's pid.
#[derive(Debug, Clone)]
pub struct Sequencer {
    next: u32,
    pid: u32,
}

impl Sequencer {
    pub fn new(pid: u32) -> Sequencer {
        Sequencer { next: 1, pid }
    }

    fn header(&mut self, msg_type: MsgType, satype: pfkey::SaType) -> Header {
        let seq = self.next;
        self.next = self.next.wrapping_add(1);
        Header::new(msg_type, satype, seq, self.pid)
    }
}

/// Why a rule cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LowerError {
    /// ipsecctl refuses to add an SA that needs keys and has none.
    MissingKey,
}

pub fn satype(t: SaType) -> pfkey::SaType {
    match t {
        SaType::Esp => pfkey::SaType::ESP,
        SaType::Ah => pfkey::SaType::AH,
        SaType::Ipcomp => pfkey::SaType::X_IPCOMP,
        SaType::Tcpmd5 => pfkey::SaType::X_TCPSIGNATURE,
        SaType::Ipip => pfkey::SaType::X_IPIP,
    }
}

pub fn auth_alg(a: Auth) -> AuthAlg {
    match a {
        Auth::Unknown | Auth::None => AuthAlg::NONE,
        Auth::HmacMd5 => AuthAlg::MD5HMAC,
        Auth::HmacRipemd160 => AuthAlg::X_RIPEMD160HMAC,
        Auth::HmacSha1 => AuthAlg::SHA1HMAC,
        Auth::HmacSha2_256 => AuthAlg::X_SHA2_256,
        Auth::HmacSha2_384 => AuthAlg::X_SHA2_384,
        Auth::HmacSha2_512 => AuthAlg::X_SHA2_512,
    }
}

pub fn enc_alg(e: Enc) -> EncAlg {
    match e {
        Enc::Unknown | Enc::None => EncAlg::NONE,
        Enc::TripleDesCbc => EncAlg::TRIPLE_DES_CBC,
        Enc::Aes | Enc::Aes128 | Enc::Aes192 | Enc::Aes256 => EncAlg::X_AES,
        Enc::AesCtr | Enc::Aes128Ctr | Enc::Aes192Ctr | Enc::Aes256Ctr => EncAlg::X_AESCTR,
        Enc::Aes128Gcm | Enc::Aes192Gcm | Enc::Aes256Gcm => EncAlg::X_AESGCM16,
        Enc::Aes128Gmac | Enc::Aes192Gmac | Enc::Aes256Gmac => EncAlg::X_AESGMAC,
        Enc::Blowfish => EncAlg::X_BLF,
        Enc::Cast128 => EncAlg::X_CAST,
        Enc::Chacha20Poly1305 => EncAlg::X_CHACHA20POLY1305,
        Enc::Null => EncAlg::NULL,
    }
}

fn flow_type(t: FlowType) -> pfkey::FlowType {
    match t {
        FlowType::Use => pfkey::FlowType::USE,
        FlowType::Acquire => pfkey::FlowType::ACQUIRE,
        FlowType::Require => pfkey::FlowType::REQUIRE,
        FlowType::Bypass => pfkey::FlowType::BYPASS,
        FlowType::Deny => pfkey::FlowType::DENY,
        FlowType::Dontacq => pfkey::FlowType::DONTACQ,
    }
}

fn ident_type(t: IdType) -> IdentType {
    match t {
        IdType::Ipv4 | IdType::Ipv6 => IdentType::PREFIX,
        IdType::Fqdn => IdentType::FQDN,
        IdType::UserFqdn => IdentType::USERFQDN,
    }
}

fn sockaddr(ip: IpAddr, port: u16) -> Body {
    Body::Address(pfkey::Address {
        reserved: 0,
        addr: SockAddr::ip(ip, port),
    })
}

/// The netmask of an address, as an address.
fn mask(a: &Address) -> IpAddr {
    let bits = u32::from(a.bits.min(max_bits(a.ip)));
    match a.ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(
            u128::MAX.checked_shl(128 - bits).unwrap_or(0),
        )),
    }
}

/// Pushes an extension whose body is known to suit its type.
fn push(m: &mut Message, t: ExtType, body: Body) {
    m.extensions.push(pfkey::Extension { ext_type: t, body });
}

/// The messages that add or delete one rule.
pub fn lower(rule: &Rule, action: Action, seq: &mut Sequencer) -> Result<Vec<Message>, LowerError> {
    Ok(match &rule.kind {
        RuleKind::Flow(f) => vec![flow(f, action, seq)],
        RuleKind::Sa(sa) => vec![sa_message(sa, action, seq)?],
        RuleKind::Bundle(b) if action == Action::Add => vec![bundle(b, seq)],
        RuleKind::Bundle(_) | RuleKind::Ike(_) => Vec::new(),
    })
}

fn flow(f: &Flow, action: Action, seq: &mut Sequencer) -> Message {
    let msg_type = match action {
        Action::Add => MsgType::X_ADDFLOW,
        Action::Delete => MsgType::X_DELFLOW,
    };
    let mut m = Message::new(seq.header(msg_type, satype(f.satype)));
    let direction = match f.direction {
        Direction::In => FlowDirection::IN,
        Direction::Out => FlowDirection::OUT,
    };
    let kind = Protocol {
        proto: flow_type(f.flow_type).0,
        direction: direction.0,
        ..Protocol::default()
    };
    push(&mut m, ExtType::X_FLOW_TYPE, Body::Protocol(kind));
    if action == Action::Add {
        if let Some(local) = &f.local {
            push(&mut m, ExtType::ADDRESS_SRC, sockaddr(local.ip, 0));
        }
        if let Some(peer) = &f.peer {
            push(&mut m, ExtType::ADDRESS_DST, sockaddr(peer.ip, 0));
        }
    }
    let port_mask = |port: u16| if port != 0 { 0xffff } else { 0 };
    push(&mut m, ExtType::X_SRC_FLOW, sockaddr(f.src.ip, f.sport));
    push(
        &mut m,
        ExtType::X_SRC_MASK,
        sockaddr(mask(&f.src), port_mask(f.sport)),
    );
    push(&mut m, ExtType::X_DST_FLOW, sockaddr(f.dst.ip, f.dport));
    push(
        &mut m,
        ExtType::X_DST_MASK,
        sockaddr(mask(&f.dst), port_mask(f.dport)),
    );
    let proto = Protocol {
        proto: f.proto,
        ..Protocol::default()
    };
    push(&mut m, ExtType::X_PROTOCOL, Body::Protocol(proto));
    if action == Action::Add {
        for (t, id) in [
            (ExtType::IDENTITY_SRC, &f.srcid),
            (ExtType::IDENTITY_DST, &f.dstid),
        ] {
            if let Some(id) = id {
                let ident = pfkey::Identity::new(ident_type(id.kind), &id.id);
                push(&mut m, t, Body::Identity(ident));
            }
        }
    }
    m
}

fn sa_message(sa: &Sa, action: Action, seq: &mut Sequencer) -> Result<Message, LowerError> {
    let needs_keys = !matches!(sa.satype, SaType::Ipcomp | SaType::Ipip);
    if action == Action::Add && needs_keys && sa.authkey.is_none() && sa.enckey.is_none() {
        return Err(LowerError::MissingKey);
    }
    let msg_type = match action {
        Action::Add => MsgType::ADD,
        Action::Delete => MsgType::DELETE,
    };
    let mut m = Message::new(seq.header(msg_type, satype(sa.satype)));
    let mut flags = 0;
    if sa.mode == Mode::Tunnel && !matches!(sa.satype, SaType::Ipip | SaType::Tcpmd5) {
        flags |= sa_flags::TUNNEL;
    }
    if sa.udpencap.is_some() {
        flags |= sa_flags::UDPENCAP;
    }
    let encrypt = match sa.satype {
        SaType::Ipcomp => match sa.transforms.comp {
            Some(Comp::Deflate) => CompAlg::DEFLATE.0,
            _ => CompAlg::NONE.0,
        },
        _ => sa.transforms.enc.map_or(EncAlg::NONE, enc_alg).0,
    };
    let body = pfkey::Sa {
        spi: sa.spi,
        replay: 0,
        state: SaState::MATURE,
        auth: sa.transforms.auth.map_or(AuthAlg::NONE, auth_alg),
        encrypt,
        flags,
    };
    push(&mut m, ExtType::SA, Body::Sa(body));
    push(&mut m, ExtType::ADDRESS_SRC, sockaddr(sa.src.ip, 0));
    push(&mut m, ExtType::ADDRESS_DST, sockaddr(sa.dst.ip, 0));
    if action == Action::Add {
        if let Some(port) = sa.udpencap {
            let encap = UdpEncap { port, reserved: 0 };
            push(&mut m, ExtType::X_UDPENCAP, Body::UdpEncap(encap));
        }
        if let Some(key) = &sa.authkey {
            push(
                &mut m,
                ExtType::KEY_AUTH,
                Body::Key(pfkey::Key::new(key.bytes())),
            );
        }
        if let Some(key) = &sa.enckey {
            push(
                &mut m,
                ExtType::KEY_ENCRYPT,
                Body::Key(pfkey::Key::new(key.bytes())),
            );
        }
    }
    Ok(m)
}

fn bundle(b: &Bundle, seq: &mut Sequencer) -> Message {
    let mut m = Message::new(seq.header(MsgType::X_GRPSPIS, satype(b.satype)));
    let sa = |spi| {
        Body::Sa(pfkey::Sa {
            spi,
            state: SaState::MATURE,
            ..pfkey::Sa::default()
        })
    };
    push(&mut m, ExtType::SA, sa(b.spi));
    push(&mut m, ExtType::ADDRESS_DST, sockaddr(b.dst.ip, 0));
    push(&mut m, ExtType::X_SA2, sa(b.spi2));
    push(&mut m, ExtType::X_DST2, sockaddr(b.dst2.ip, 0));
    let satype2 = Protocol {
        proto: satype(b.satype2).0,
        ..Protocol::default()
    };
    push(&mut m, ExtType::X_SATYPE2, Body::Protocol(satype2));
    m
}

/// `ipsecctl -F`: remove every flow and SA.
pub fn flush(seq: &mut Sequencer) -> Message {
    Message::new(seq.header(MsgType::FLUSH, pfkey::SaType::UNSPEC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules_of as rules;
    use pfkey::validate::check_request;

    const PID: u32 = 12345;

    fn messages(text: &str, action: Action) -> Vec<Message> {
        let mut seq = Sequencer::new(PID);
        let all: Vec<Message> = rules(text)
            .iter()
            .flat_map(|r| lower(r, action, &mut seq).unwrap())
            .collect();
        for m in &all {
            assert_eq!(check_request(m, PID), Ok(()), "{m:?}");
        }
        all
    }

    fn types(m: &Message) -> Vec<ExtType> {
        m.extensions.iter().map(|e| e.ext_type).collect()
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn a_flow_is_the_frame_openbsd_sends() {
        // The same bytes the pfkey crate's hand-assembled fixture holds.
        let m = messages(
            "flow esp out from 10.0.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 type require\n",
            Action::Add,
        );
        let expected: Vec<u8> = [
            "020c00021300000001000000393000000100140003020000",
            "030006000000000010020000c00002020000000000000000",
            "0300150000000000100200000a0000000000000000000000",
            "030011000000000010020000ffffff000000000000000000",
            "0300160000000000100200000a0100000000000000000000",
            "030012000000000010020000ffffff000000000000000000",
            "0100130000000000",
        ]
        .concat()
        .as_bytes()
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect();
        assert_eq!(m[0].encode(), expected);
    }

    #[test]
    fn flows_in_both_directions_and_their_deletion() {
        let text = "flow ah proto tcp from 192.0.2.1 port ssh to 198.51.100.0/24 local 192.0.2.1 peer 198.51.100.1 \
                    srcid me@example.org dstid 198.51.100.1\n";
        let add = messages(text, Action::Add);
        assert_eq!(add.len(), 2);
        assert_eq!(add[0].header.satype, pfkey::SaType::AH);
        assert_eq!(add[1].header.seq, 2);
        assert_eq!(
            types(&add[0]),
            [
                ExtType::X_FLOW_TYPE,
                ExtType::ADDRESS_SRC,
                ExtType::ADDRESS_DST,
                ExtType::X_SRC_FLOW,
                ExtType::X_SRC_MASK,
                ExtType::X_DST_FLOW,
                ExtType::X_DST_MASK,
                ExtType::X_PROTOCOL,
                ExtType::IDENTITY_SRC,
                ExtType::IDENTITY_DST,
            ]
        );
        let Some(Body::Address(src)) = add[0].get(ExtType::X_SRC_FLOW) else {
            panic!()
        };
        assert_eq!(src.addr.port(), 22);
        let Some(Body::Address(mask)) = add[0].get(ExtType::X_SRC_MASK) else {
            panic!()
        };
        assert_eq!(
            mask.addr,
            SockAddr::ip("255.255.255.255".parse().unwrap(), 0xffff)
        );
        let Some(Body::Identity(id)) = add[0].get(ExtType::IDENTITY_SRC) else {
            panic!()
        };
        assert_eq!(
            (id.ident_type, id.text()),
            (IdentType::USERFQDN, "me@example.org".to_owned())
        );
        let Some(Body::Identity(id)) = add[0].get(ExtType::IDENTITY_DST) else {
            panic!()
        };
        assert_eq!(id.ident_type, IdentType::PREFIX);
        // The reverse flow carries the port on the other side.
        let Some(Body::Address(dst)) = add[1].get(ExtType::X_DST_FLOW) else {
            panic!()
        };
        assert_eq!(dst.addr.port(), 22);
        let Some(Body::Protocol(kind)) = add[1].get(ExtType::X_FLOW_TYPE) else {
            panic!()
        };
        assert_eq!(FlowDirection(kind.direction), FlowDirection::IN);

        let delete = messages(text, Action::Delete);
        assert_eq!(delete[0].header.msg_type, MsgType::X_DELFLOW);
        assert_eq!(
            types(&delete[0]),
            [
                ExtType::X_FLOW_TYPE,
                ExtType::X_SRC_FLOW,
                ExtType::X_SRC_MASK,
                ExtType::X_DST_FLOW,
                ExtType::X_DST_MASK,
                ExtType::X_PROTOCOL,
            ]
        );
    }

    #[test]
    fn ipv6_flow_masks() {
        let m = messages(
            "flow esp out from 2001:db8::/32 to ::/0 peer 2001:db8::9\n",
            Action::Add,
        );
        let Some(Body::Address(mask)) = m[0].get(ExtType::X_SRC_MASK) else {
            panic!()
        };
        assert_eq!(mask.addr, SockAddr::ip("ffff:ffff::".parse().unwrap(), 0));
        let Some(Body::Address(mask)) = m[0].get(ExtType::X_DST_MASK) else {
            panic!()
        };
        assert_eq!(mask.addr, SockAddr::ip("::".parse().unwrap(), 0));
    }

    #[test]
    fn manual_sas() {
        let auth = format!("0x{}", "11".repeat(32));
        let enc = format!("0x{}", "22".repeat(16));
        let text = format!(
            "esp from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 udpencap port 4500 \
             authkey {auth}:{auth} enckey {enc}:{enc}\n\
             ipcomp transport from 192.0.2.1 to 192.0.2.2 spi 0x2000\n"
        );
        let add = messages(&text, Action::Add);
        assert_eq!(add.len(), 3);
        assert_eq!(
            types(&add[0]),
            [
                ExtType::SA,
                ExtType::ADDRESS_SRC,
                ExtType::ADDRESS_DST,
                ExtType::X_UDPENCAP,
                ExtType::KEY_AUTH,
                ExtType::KEY_ENCRYPT,
            ]
        );
        let Some(Body::Sa(sa)) = add[0].get(ExtType::SA) else {
            panic!()
        };
        assert_eq!(sa.spi, 0x1000);
        assert_eq!(sa.flags, sa_flags::TUNNEL | sa_flags::UDPENCAP);
        assert_eq!(
            (sa.auth, EncAlg(sa.encrypt), sa.replay),
            (AuthAlg::X_SHA2_256, EncAlg::X_AES, 0)
        );
        let Some(Body::Key(key)) = add[0].get(ExtType::KEY_ENCRYPT) else {
            panic!()
        };
        assert_eq!(key.material(), [0x22; 16]);
        let Some(Body::UdpEncap(encap)) = add[0].get(ExtType::X_UDPENCAP) else {
            panic!()
        };
        assert_eq!(encap.port, 4500);
        let Some(Body::Sa(comp)) = add[2].get(ExtType::SA) else {
            panic!()
        };
        assert_eq!(
            (add[2].header.satype, comp.encrypt, comp.flags),
            (pfkey::SaType::X_IPCOMP, 2, 0)
        );

        let delete = messages(&text, Action::Delete);
        assert_eq!(
            types(&delete[0]),
            [ExtType::SA, ExtType::ADDRESS_SRC, ExtType::ADDRESS_DST]
        );
    }

    #[test]
    fn bundles_and_tcpmd5() {
        let key = format!("0x{}", "33".repeat(32));
        let enc = format!("0x{}", "44".repeat(16));
        let text = format!(
            "ipcomp transport from 192.0.2.1 to 192.0.2.2 spi 0x2000 bundle b\n\
             esp transport from 192.0.2.1 to 192.0.2.2 spi 0x3000 authkey {key} enckey {enc} bundle b\n"
        );
        let add = messages(&text, Action::Add);
        assert_eq!(add.len(), 3);
        assert_eq!(add[2].header.msg_type, MsgType::X_GRPSPIS);
        assert_eq!(add[2].header.satype, pfkey::SaType::X_IPCOMP);
        let Some(Body::Protocol(second)) = add[2].get(ExtType::X_SATYPE2) else {
            panic!()
        };
        assert_eq!(pfkey::SaType(second.proto), pfkey::SaType::ESP);
        // Deleting a bundle sends nothing for the link itself.
        assert_eq!(messages(&text, Action::Delete).len(), 2);

        let md5 = rules("tcpmd5 from 192.0.2.1 to 192.0.2.2 spi 0x5000\n");
        let mut seq = Sequencer::new(PID);
        assert_eq!(
            lower(&md5[0], Action::Add, &mut seq),
            Err(LowerError::MissingKey)
        );
        assert!(lower(&md5[0], Action::Delete, &mut seq).is_ok());
    }
}
