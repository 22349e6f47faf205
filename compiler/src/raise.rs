//! The way back: flows and SAs read from the runtime (its flow dump, and
//! `SADB_DUMP` or `SADB_GET` messages) as rules, printed as `ipsecctl -s`
//! prints them.

use crate::addr::Address;
use crate::print::sa_line;
use crate::rule::*;
use crate::xform::{Auth, Comp, Enc};
use pfkey::{AuthAlg, Body, CompAlg, EncAlg, ExtType, Message, sa_flags};
use std::fmt::Write as _;

fn address(msg: &Message, t: ExtType) -> Address {
    let ip = match msg.get(t) {
        Some(Body::Address(a)) => a.addr.addr(),
        _ => None,
    };
    let ip = ip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    Address::host(ip, ip.to_string())
}

fn key(msg: &Message, t: ExtType) -> Option<Key> {
    match msg.get(t) {
        Some(Body::Key(k)) => Some(Key::new(k.material().to_vec())),
        _ => None,
    }
}

fn auth(a: AuthAlg) -> Option<Auth> {
    Some(match a {
        AuthAlg::MD5HMAC => Auth::HmacMd5,
        AuthAlg::X_RIPEMD160HMAC => Auth::HmacRipemd160,
        AuthAlg::SHA1HMAC => Auth::HmacSha1,
        AuthAlg::X_SHA2_256 => Auth::HmacSha2_256,
        AuthAlg::X_SHA2_384 => Auth::HmacSha2_384,
        AuthAlg::X_SHA2_512 => Auth::HmacSha2_512,
        _ => return None,
    })
}

/// The cipher, told apart by key length where one number covers several.
fn enc(e: EncAlg, key_len: usize) -> Option<Enc> {
    let by_len = |k192, k256, other| match key_len {
        28 => k192,
        36 => k256,
        _ => other,
    };
    Some(match e {
        EncAlg::TRIPLE_DES_CBC => Enc::TripleDesCbc,
        EncAlg::X_AES => match key_len {
            24 => Enc::Aes192,
            32 => Enc::Aes256,
            _ => Enc::Aes,
        },
        EncAlg::X_AESCTR => by_len(Enc::Aes192Ctr, Enc::Aes256Ctr, Enc::AesCtr),
        EncAlg::X_AESGCM16 => by_len(Enc::Aes192Gcm, Enc::Aes256Gcm, Enc::Aes128Gcm),
        EncAlg::X_AESGMAC => by_len(Enc::Aes192Gmac, Enc::Aes256Gmac, Enc::Aes128Gmac),
        EncAlg::X_BLF => Enc::Blowfish,
        EncAlg::X_CAST => Enc::Cast128,
        EncAlg::X_CHACHA20POLY1305 => Enc::Chacha20Poly1305,
        EncAlg::NULL => Enc::Null,
        _ => return None,
    })
}

/// The SA a dump message describes; `None` for a message without an SA
/// extension or of an SA type rules cannot name.
pub fn sa(msg: &Message) -> Option<Sa> {
    let Some(Body::Sa(ext)) = msg.get(ExtType::SA) else {
        return None;
    };
    let satype = match msg.header.satype {
        pfkey::SaType::AH => SaType::Ah,
        pfkey::SaType::ESP => SaType::Esp,
        pfkey::SaType::X_IPCOMP => SaType::Ipcomp,
        pfkey::SaType::X_TCPSIGNATURE => SaType::Tcpmd5,
        pfkey::SaType::X_IPIP => SaType::Ipip,
        _ => return None,
    };
    let tunnel = satype != SaType::Tcpmd5 && ext.flags & sa_flags::TUNNEL != 0;
    let mut transforms = Transforms::default();
    let (mut authkey, mut enckey) = (None, None);
    match satype {
        SaType::Ipcomp => {
            if CompAlg(ext.encrypt) == CompAlg::DEFLATE {
                transforms.comp = Some(Comp::Deflate);
            }
        }
        SaType::Tcpmd5 => authkey = key(msg, ExtType::KEY_AUTH),
        _ => {
            if ext.encrypt != 0 {
                enckey = key(msg, ExtType::KEY_ENCRYPT);
                let len = enckey.as_ref().map_or(0, Key::len);
                transforms.enc = enc(EncAlg(ext.encrypt), len);
            }
            if ext.auth != AuthAlg::NONE {
                authkey = key(msg, ExtType::KEY_AUTH);
                transforms.auth = auth(ext.auth);
            }
        }
    }
    let udpencap = match msg.get(ExtType::X_UDPENCAP) {
        Some(Body::UdpEncap(u)) => Some(u.port),
        _ if ext.flags & sa_flags::UDPENCAP != 0 => Some(0),
        _ => None,
    };
    Some(Sa {
        satype,
        mode: if tunnel {
            Mode::Tunnel
        } else {
            Mode::Transport
        },
        src: address(msg, ExtType::ADDRESS_SRC),
        dst: address(msg, ExtType::ADDRESS_DST),
        spi: ext.spi,
        transforms,
        authkey,
        enckey,
        udpencap,
    })
}

/// One SA as `ipsecctl -s sa` shows it: the rule, and with `verbose`
/// every extension on a line of its own. Keys appear only with `keys`.
pub fn sa_text(msg: &Message, keys: bool, verbose: bool) -> Option<String> {
    let mut text = sa_line(&sa(msg)?, keys);
    text.push('\n');
    if verbose {
        let mut ordered: Vec<&pfkey::Extension> = msg
            .extensions
            .iter()
            .filter(|e| keys || !matches!(e.body, Body::Key(_)))
            .collect();
        ordered.sort_by_key(|e| e.ext_type);
        for ext in ordered {
            let name = ext.ext_type.name().unwrap_or("unknown");
            let body = pfkey::display::extension_text(msg, ext, keys);
            // A body of several lines starts on the next one.
            let gap = if body.starts_with('\n') { "" } else { " " };
            let _ = writeln!(text, "\t{name}:{gap}{body}");
        }
    }
    Some(text)
}

/// The address and prefix of a flow and its mask.
fn flow_address(msg: &Message, flow: ExtType, mask: ExtType) -> Option<(Address, u16)> {
    let (Some(Body::Address(a)), Some(Body::Address(m))) = (msg.get(flow), msg.get(mask)) else {
        return None;
    };
    let ip = a.addr.addr()?;
    let bits = match m.addr.addr()? {
        std::net::IpAddr::V4(v4) => u32::from(v4).leading_ones() as u8,
        std::net::IpAddr::V6(v6) => u128::from(v6).leading_ones() as u8,
    };
    let mut address = Address::host(ip, ip.to_string());
    address.bits = bits;
    address.network = bits < crate::addr::max_bits(ip);
    Some((address, a.addr.port()))
}

/// A flow from the runtime's flow dump, as a rule; `None` for a record
/// that does not describe one.
pub fn flow(msg: &Message) -> Option<Flow> {
    let Some(Body::Protocol(kind)) = msg.get(ExtType::X_FLOW_TYPE) else {
        return None;
    };
    let satype = match msg.header.satype {
        pfkey::SaType::AH => SaType::Ah,
        pfkey::SaType::ESP | pfkey::SaType::UNSPEC => SaType::Esp,
        pfkey::SaType::X_IPCOMP => SaType::Ipcomp,
        pfkey::SaType::X_TCPSIGNATURE => SaType::Tcpmd5,
        pfkey::SaType::X_IPIP => SaType::Ipip,
        _ => return None,
    };
    let direction = match pfkey::FlowDirection(kind.direction) {
        pfkey::FlowDirection::IN => Direction::In,
        pfkey::FlowDirection::OUT => Direction::Out,
        _ => return None,
    };
    let flow_type = match pfkey::FlowType(kind.proto) {
        pfkey::FlowType::USE => FlowType::Use,
        pfkey::FlowType::ACQUIRE => FlowType::Acquire,
        pfkey::FlowType::REQUIRE => FlowType::Require,
        pfkey::FlowType::BYPASS => FlowType::Bypass,
        pfkey::FlowType::DENY => FlowType::Deny,
        pfkey::FlowType::DONTACQ => FlowType::Dontacq,
        _ => return None,
    };
    let (src, sport) = flow_address(msg, ExtType::X_SRC_FLOW, ExtType::X_SRC_MASK)?;
    let (dst, dport) = flow_address(msg, ExtType::X_DST_FLOW, ExtType::X_DST_MASK)?;
    let proto = match msg.get(ExtType::X_PROTOCOL) {
        Some(Body::Protocol(p)) => p.proto,
        _ => 0,
    };
    let host = |t| match msg.get(t) {
        Some(Body::Address(a)) => a.addr.addr().map(|ip| Address::host(ip, ip.to_string())),
        _ => None,
    };
    let id = |t| match msg.get(t) {
        Some(Body::Identity(i)) => Some(Identity::new(i.text())),
        _ => None,
    };
    Some(Flow {
        satype,
        direction,
        proto,
        src,
        sport,
        dst,
        dport,
        local: host(ExtType::ADDRESS_SRC),
        peer: host(ExtType::ADDRESS_DST),
        srcid: id(ExtType::IDENTITY_SRC),
        dstid: id(ExtType::IDENTITY_DST),
        flow_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::{Action, Sequencer, lower};
    use crate::{RuleKind, rules_of};

    #[test]
    fn dumped_sas_print_as_they_were_written() {
        let k = |n: usize, b: &str| format!("0x{}", b.repeat(n));
        let text = format!(
            "esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000 auth hmac-sha1 enc aes-256 authkey {} enckey {}\n\
             esp transport from 2001:db8::1 to 2001:db8::2 spi 0x1001 enc 3des-cbc authkey {} enckey {}\n\
             ah transport from 192.0.2.1 to 192.0.2.2 spi 0x1002 auth hmac-sha2-512 authkey {}\n\
             ipcomp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1003\n\
             ipip from 192.0.2.1 to 192.0.2.2 spi 0x1004\n\
             tcpmd5 from 192.0.2.1 to 192.0.2.2 spi 0x1005 authkey 0xdeadbeef\n",
            k(20, "aa"),
            k(32, "bb"),
            k(32, "cc"),
            k(24, "dd"),
            k(64, "ee")
        );
        let mut seq = Sequencer::new(1);
        for rule in &rules_of(&text) {
            let RuleKind::Sa(written) = &rule.kind else {
                continue;
            };
            let mut msg = lower(rule, Action::Add, &mut seq).unwrap().remove(0);
            msg.header.msg_type = pfkey::MsgType::DUMP;
            let back = sa(&msg).expect("an SA");
            assert_eq!(sa_line(&back, true), sa_line(written, true));
            let shown = sa_text(&msg, false, true).unwrap();
            assert!(!shown.contains("key_"), "keys hidden without -k: {shown}");
            assert!(
                shown.contains("\tsa: spi 0x") || shown.contains("\tsa: cpi 0x"),
                "{shown}"
            );
        }
    }

    #[test]
    fn dumped_flows_print_as_they_were_written() {
        let text = "flow esp from 10.1.0.0/16 to 10.2.0.0/24 local 192.0.2.1 peer 192.0.2.2 srcid a@example.org dstid b.example.org\n\
                    flow ah in proto tcp from 2001:db8::/32 port 22 to 2001:db8:1::1 peer 2001:db8:1::1 type acquire\n\
                    flow ipip out from 0.0.0.0/0 to 198.51.100.0/24 peer any type use\n";
        let resolver = crate::Fixed::standard();
        let mut seq = Sequencer::new(1);
        for rule in &rules_of(text) {
            let RuleKind::Flow(written) = &rule.kind else {
                continue;
            };
            let mut msg = lower(rule, Action::Add, &mut seq).unwrap().remove(0);
            msg.header.msg_type = pfkey::MsgType::X_SPDDUMP;
            let back = flow(&msg).expect("a flow");
            assert_eq!(
                crate::print::flow_line(&back, &resolver),
                crate::print::flow_line(written, &resolver)
            );
        }
    }
}
