//! Messages as text, the way `ipsecctl -m` shows what passes on a PF_KEY
//! socket: a line for the header, then a line (or a few) for each
//! extension, in the order of their type numbers.
//!
//! Keys are shown only when asked for.

use crate::consts::*;
use crate::ext::{Body, Comb, Extension};
use crate::msg::Message;
use crate::sockaddr::SockAddr;
use std::fmt::{self, Write as _};

/// A message to print; `show_keys` reveals key material.
#[derive(Debug, Clone, Copy)]
pub struct Monitor<'a> {
    /// The message to print.
    pub message: &'a Message,
    /// Print key material in hex instead of hiding it.
    pub show_keys: bool,
}

/// The message type as pfkdump names it (`sadb_add`, `sadb_addflow`).
pub fn msg_type_name(t: MsgType) -> String {
    match t.name() {
        Some(name) => format!("sadb_{}", name.trim_start_matches("x_")),
        None => "unknown".to_owned(),
    }
}

fn name_or_unknown(name: Option<&'static str>) -> &'static str {
    name.unwrap_or("unknown")
}

/// `%#x<names>`: the flags in hex (plain `0` when none), then the names of
/// the bits that have one.
pub fn sa_flags_text(flags: u32) -> String {
    let names: Vec<&str> = sa_flags::NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    let hex = if flags == 0 {
        "0".to_owned()
    } else {
        format!("{flags:#x}")
    };
    format!("{hex}<{}>", names.join(","))
}

fn address(addr: &SockAddr) -> String {
    match addr {
        SockAddr::V4 { addr, port } => with_port(addr.to_string(), *port),
        SockAddr::V6 { addr, port, .. } => with_port(addr.to_string(), *port),
        SockAddr::Raw(bytes) if bytes.get(1).copied().unwrap_or(0) == family::UNSPEC => {
            "<any>".to_owned()
        }
        SockAddr::Raw(_) => "<could not get numeric hostname>".to_owned(),
    }
}

fn with_port(host: String, port: u16) -> String {
    if port == 0 {
        host
    } else {
        format!("{host} port {port}")
    }
}

fn enc_name(satype: SaType, encrypt: u8) -> &'static str {
    if satype == SaType::X_IPCOMP {
        name_or_unknown(CompAlg(encrypt).name())
    } else {
        name_or_unknown(EncAlg(encrypt).name())
    }
}

fn comb(out: &mut String, c: &Comb) {
    let _ = write!(
        out,
        "\n\t\tauth {} min {} max {}\n\t\tenc {} min {} max {}\n\t\taddtime hard {} soft {}\n\t\tusetime hard {} soft {}",
        name_or_unknown(c.auth.name()),
        c.auth_minbits,
        c.auth_maxbits,
        name_or_unknown(EncAlg(c.encrypt).name()),
        c.encrypt_minbits,
        c.encrypt_maxbits,
        c.hard_addtime,
        c.soft_addtime,
        c.hard_usetime,
        c.soft_usetime
    );
}

/// One extension's text, after its `\tname: ` prefix.
pub fn extension_text(msg: &Message, ext: &Extension, show_keys: bool) -> String {
    let mut out = String::new();
    let satype = msg.header.satype;
    match &ext.body {
        Body::Sa(sa) => {
            if satype == SaType::X_IPCOMP {
                let _ = write!(
                    out,
                    "cpi 0x{:08x} comp {}",
                    sa.spi,
                    enc_name(satype, sa.encrypt)
                );
            } else {
                let _ = write!(
                    out,
                    "spi 0x{:08x} auth {} enc {}",
                    sa.spi,
                    name_or_unknown(sa.auth.name()),
                    enc_name(satype, sa.encrypt)
                );
            }
            let _ = write!(
                out,
                "\n\t\tstate {} replay {} flags {}",
                name_or_unknown(sa.state.name()),
                sa.replay,
                sa_flags_text(sa.flags)
            );
        }
        Body::Lifetime(l) => {
            let _ = write!(
                out,
                "alloc {} bytes {} add {} first {}",
                l.allocations, l.bytes, l.addtime, l.usetime
            );
        }
        Body::Address(a) => out.push_str(&address(&a.addr)),
        Body::Key(k) => {
            let _ = write!(out, "bits {}: ", k.bits);
            if show_keys {
                for b in k.material() {
                    let _ = write!(out, "{b:02x}");
                }
            } else {
                out.push_str("<hidden, -k shows keys>");
            }
        }
        Body::Identity(i) => {
            let _ = write!(
                out,
                "type {} id {}: {}",
                name_or_unknown(i.ident_type.name()),
                i.id,
                i.text()
            );
        }
        Body::Sensitivity(s) => {
            let _ = write!(
                out,
                "dpd {} sens_level {} integ_level {}",
                s.dpd, s.sens_level, s.integ_level
            );
        }
        Body::Proposal(p) => {
            let _ = write!(out, "replay {}", p.replay);
            for c in &p.combs {
                comb(&mut out, c);
            }
        }
        Body::Supported(s) => {
            for a in &s.algs {
                let name = match ext.ext_type {
                    ExtType::SUPPORTED_AUTH => AuthAlg(a.id).name(),
                    ExtType::SUPPORTED_ENCRYPT => EncAlg(a.id).name(),
                    _ => CompAlg(a.id).name(),
                };
                let _ = write!(
                    out,
                    "\n\t\t{} iv {} min {} max {}",
                    name_or_unknown(name),
                    a.ivlen,
                    a.minbits,
                    a.maxbits
                );
            }
        }
        Body::SpiRange(r) => {
            let _ = write!(out, "min 0x{:08x} max 0x{:08x}", r.min, r.max);
        }
        Body::Protocol(p) if ext.ext_type == ExtType::X_FLOW_TYPE => {
            let _ = write!(
                out,
                "type {} direction {}",
                name_or_unknown(FlowType(p.proto).name()),
                name_or_unknown(FlowDirection(p.direction).name())
            );
        }
        Body::Protocol(p)
            if ext.ext_type == ExtType::X_SATYPE2 || msg.header.msg_type == MsgType::X_GRPSPIS =>
        {
            let _ = write!(
                out,
                "satype {} flags {:x}",
                name_or_unknown(SaType(p.proto).name()),
                p.flags
            );
        }
        Body::Protocol(p) => {
            let _ = write!(out, "proto {} flags {:x}", p.proto, p.flags);
        }
        Body::Policy { seq } => {
            let _ = write!(out, "seq {seq}");
        }
        Body::UdpEncap(u) => {
            let _ = write!(out, "udpencap port {}", u.port);
        }
        Body::Tag(t) => out.push_str(&t.name()),
        Body::Tap { unit } => {
            let _ = write!(out, "enc{unit}");
        }
        Body::Counter(c) => {
            let _ = write!(
                out,
                "\n\t\t{} input packets\n\t\t{} output packets\n\t\t{} input bytes\n\t\t{} output bytes\
                 \n\t\t{} packets dropped on input\n\t\t{} packets dropped on output\
                 \n\t\t{} input bytes, decompressed\n\t\t{} output bytes, uncompressed",
                c.ipackets,
                c.opackets,
                c.ibytes,
                c.obytes,
                c.idrops,
                c.odrops,
                c.idecompbytes,
                c.ouncompbytes
            );
        }
        Body::Rdomain { dom1, dom2 } => {
            let _ = write!(out, "{dom1}/{dom2}");
        }
        Body::Mtu { mtu } => {
            let _ = write!(out, "mtu {mtu}");
        }
        Body::Replay { count, .. } => {
            let _ = write!(out, "rpl {count}");
        }
        Body::Iface(i) => {
            let _ = write!(
                out,
                "sec{} direction {}",
                i.unit,
                name_or_unknown(FlowDirection(i.direction).name())
            );
        }
        Body::Data(d) => {
            let _ = write!(out, "{} bytes", d.len);
        }
        Body::FilterRule(r) => {
            let _ = write!(out, "@{} line {}: {}", r.number, r.line, r.text());
        }
        Body::Raw(bytes) => {
            let _ = write!(out, "type {} len {}", ext.ext_type.0, (bytes.len() + 4) / 8);
        }
    }
    out
}

impl fmt::Display for Monitor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.message;
        let h = &m.header;
        let units = m.encode().len() / 8;
        writeln!(
            f,
            "{}: satype {} vers {} len {} seq {} pid {}",
            msg_type_name(h.msg_type),
            name_or_unknown(h.satype.name()),
            h.version,
            units,
            h.seq,
            h.pid
        )?;
        if h.errno != 0 {
            let e = crate::validate::Errno(h.errno);
            writeln!(f, "\terrno {}: {}", h.errno, e.description())?;
        }
        let mut ordered: Vec<&Extension> = m.extensions.iter().collect();
        ordered.sort_by_key(|e| e.ext_type);
        for ext in ordered {
            match ext.ext_type.name() {
                Some(name) if !matches!(ext.body, Body::Raw(_)) => {
                    writeln!(f, "\t{name}: {}", extension_text(m, ext, self.show_keys))?
                }
                _ => writeln!(
                    f,
                    "unknown ext: type {} len {}",
                    ext.ext_type.0,
                    ext_units(m, ext)
                )?,
            }
        }
        Ok(())
    }
}

fn ext_units(m: &Message, ext: &Extension) -> usize {
    let mut probe = Message::new(m.header);
    probe.extensions.push(ext.clone());
    probe.encode().len() / 8 - 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext::{Address, Key, Protocol, Sa};
    use crate::msg::Header;
    use std::net::Ipv4Addr;

    #[test]
    fn a_flow_and_an_sa_as_the_monitor_shows_them() {
        let mut m = Message::new(Header::new(MsgType::X_ADDFLOW, SaType::ESP, 3, 77));
        let kind = Protocol {
            proto: FlowType::REQUIRE.0,
            direction: FlowDirection::OUT.0,
            ..Protocol::default()
        };
        let addr = |a: [u8; 4], port| {
            Body::Address(Address {
                reserved: 0,
                addr: SockAddr::V4 {
                    addr: Ipv4Addr::from(a),
                    port,
                },
            })
        };
        m.push(ExtType::X_PROTOCOL, Body::Protocol(Protocol::default()))
            .unwrap();
        m.push(ExtType::X_FLOW_TYPE, Body::Protocol(kind)).unwrap();
        m.push(ExtType::X_SRC_FLOW, addr([10, 0, 0, 1], 22))
            .unwrap();
        let text = Monitor {
            message: &m,
            show_keys: false,
        }
        .to_string();
        assert_eq!(
            text,
            "sadb_addflow: satype esp vers 2 len 7 seq 3 pid 77\n\
             \tprotocol: proto 0 flags 0\n\
             \tflow_type: type require direction out\n\
             \tsrc_flow: 10.0.0.1 port 22\n"
        );

        let mut rule = Message::new(Header::new(MsgType::X_FILTERDUMP, SaType::UNSPEC, 0, 9));
        rule.push(
            ExtType::X_FILTER_RULE,
            Body::FilterRule(crate::ext::FilterRule::new(0, 3, "block in on enc0 all")),
        )
        .unwrap();
        assert_eq!(
            Monitor {
                message: &rule,
                show_keys: false
            }
            .to_string(),
            "sadb_filterdump: satype unspec vers 2 len 7 seq 0 pid 9\n\
             \tfilter_rule: @0 line 3: block in on enc0 all\n"
        );

        let mut sa = Message::new(Header::new(MsgType::ADD, SaType::ESP, 1, 1));
        let body = Sa {
            spi: 0x1000,
            state: SaState::MATURE,
            auth: AuthAlg::X_SHA2_256,
            encrypt: EncAlg::X_AES.0,
            flags: sa_flags::TUNNEL | sa_flags::UDPENCAP,
            replay: 0,
        };
        sa.push(ExtType::SA, Body::Sa(body)).unwrap();
        sa.push(ExtType::KEY_AUTH, Body::Key(Key::new(&[0xab; 4])))
            .unwrap();
        sa.header.errno = 17;
        let hidden = Monitor {
            message: &sa,
            show_keys: false,
        }
        .to_string();
        assert_eq!(
            hidden,
            "sadb_add: satype esp vers 2 len 6 seq 1 pid 1\n\
             \terrno 17: File exists\n\
             \tsa: spi 0x00001000 auth hmac-sha2-256 enc aes\n\
             \t\tstate mature replay 0 flags 0x204<tunnel,udpencap>\n\
             \tkey_auth: bits 32: <hidden, -k shows keys>\n"
        );
        let shown = Monitor {
            message: &sa,
            show_keys: true,
        }
        .to_string();
        assert!(shown.contains("\tkey_auth: bits 32: abababab\n"));
        assert_eq!(sa_flags_text(0), "0<>");
    }
}
