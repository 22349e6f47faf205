//! `--explain 'out proto tcp from A port P to B port Q'`: asks the running
//! ipsecd what it would do with such a packet, and why. The packet is
//! written as the selector of a flow rule (direction, `proto`, `from`,
//! `port`, `to`), read by the same grammar as ipsec.conf; the daemon
//! answers a flow dump that names the packet with the one flow that
//! selects it and, outbound, the SA it would take.

use crate::client::Client;
use crate::system::{self, strerror};
use ipsec_compiler::print::flow_line;
use ipsec_compiler::rule::{Direction, Flow, FlowType};
use ipsec_compiler::{Options, Resolver, RuleKind, raise};
use pfkey::{
    Address, Body, ExtType, Extension, Header, Message, MsgType, Protocol, SaType, SockAddr,
};
use std::net::IpAddr;

/// The packet the words describe, as a flow whose addresses are hosts.
pub fn parse(words: &str) -> Result<Flow, String> {
    let text = format!("flow {words} type bypass\n");
    let resolver = system::System::default();
    let out = ipsec_compiler::compile_text("--explain", &text, &resolver, &Options::default());
    if let Some(d) = out.diagnostics.iter().find(|d| d.is_error()) {
        return Err(format!("--explain '{words}': {}", d.message));
    }
    // Without a direction the rule makes both; the first is outbound.
    let flow = out
        .rules
        .into_iter()
        .find_map(|r| match r.kind {
            RuleKind::Flow(f) => Some(f),
            _ => None,
        })
        .ok_or_else(|| format!("--explain '{words}': not a packet"))?;
    if flow.src.network || flow.dst.network {
        return Err(format!(
            "--explain '{words}': a packet has addresses, not networks"
        ));
    }
    Ok(flow)
}

fn ext(ext_type: ExtType, body: Body) -> Extension {
    Extension { ext_type, body }
}

fn flow_address(ip: IpAddr, port: u16) -> Body {
    Body::Address(Address {
        reserved: 0,
        addr: SockAddr::ip(ip, port),
    })
}

/// The request: a flow dump naming the packet.
fn request(packet: &Flow, seq: u32, pid: u32) -> Message {
    let mut msg = Message::new(Header::new(MsgType::X_SPDDUMP, SaType::UNSPEC, seq, pid));
    let direction = match packet.direction {
        Direction::In => pfkey::FlowDirection::IN,
        Direction::Out => pfkey::FlowDirection::OUT,
    };
    msg.extensions = vec![
        ext(
            ExtType::X_FLOW_TYPE,
            Body::Protocol(Protocol {
                direction: direction.0,
                ..Protocol::default()
            }),
        ),
        ext(
            ExtType::X_PROTOCOL,
            Body::Protocol(Protocol {
                proto: packet.proto,
                ..Protocol::default()
            }),
        ),
        ext(
            ExtType::X_SRC_FLOW,
            flow_address(packet.src.ip, packet.sport),
        ),
        ext(
            ExtType::X_DST_FLOW,
            flow_address(packet.dst.ip, packet.dport),
        ),
    ];
    msg
}

/// What happens to the packet, given the flow that selects it (if any)
/// and, outbound, the SA it would take.
pub fn verdict(inbound: bool, flow: Option<&Flow>, sa: Option<(u32, Option<IpAddr>)>) -> String {
    let Some(flow) = flow else {
        return if inbound {
            "no flow selects it: accepted as it comes, protected or not".into()
        } else {
            "no flow selects it: sent in the clear".into()
        };
    };
    let protocol = flow.satype.as_str();
    match (flow.flow_type, inbound, sa) {
        (FlowType::Bypass, false, _) => "sent in the clear: the flow is of type bypass".into(),
        (FlowType::Bypass, true, _) => "accepted in the clear: the flow is of type bypass".into(),
        (FlowType::Deny, _, _) => "dropped: the flow is of type deny".into(),
        (FlowType::Require | FlowType::Dontacq, true, _) => format!(
            "accepted only through {protocol} from its peer; in clear text it is \
             dropped (the nftables table inet ipsecd)"
        ),
        (_, true, _) => format!(
            "accepted through {protocol} or in the clear (type {})",
            name(flow)
        ),
        (_, false, Some((spi, dst))) => {
            let to = dst.map(|d| format!(" to {d}")).unwrap_or_default();
            format!("protected by {protocol} SA spi {spi:#010x}{to}")
        }
        (FlowType::Require, false, None) => format!(
            "dropped: no {protocol} SA to its peer; registered key managers are sent \
             SADB_ACQUIRE"
        ),
        (FlowType::Dontacq, false, None) => {
            format!("dropped: no {protocol} SA to its peer (type dontacq asks for none)")
        }
        (FlowType::Acquire, false, None) => format!(
            "sent in the clear while there is no {protocol} SA to its peer; key managers \
             are sent SADB_ACQUIRE"
        ),
        (_, false, None) => format!("sent in the clear: no {protocol} SA to its peer (type use)"),
    }
}

fn name(flow: &Flow) -> &'static str {
    ipsec_compiler::rule::flow_type_str(flow.flow_type)
}

/// Asks the daemon and prints the answer; false when it cannot be asked.
pub fn explain(client: &mut Client, words: &str) -> bool {
    let packet = match parse(words) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("ipsecctl: {why}");
            return false;
        }
    };
    let seq = client.next_seq();
    let msg = request(&packet, seq, client.pid());
    let records = match client.dump(&msg) {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => {
            eprintln!("ipsecctl: cannot ask ipsecd: {}", e.description());
            return false;
        }
        Err(e) => {
            eprintln!("ipsecctl: cannot ask ipsecd: {}", strerror(&e));
            return false;
        }
    };
    let resolver = system::System::default();
    let record = records.first();
    let flow = record.and_then(raise::flow);
    let sa = record.and_then(|r| match r.get(ExtType::SA) {
        Some(Body::Sa(sa)) => {
            let dst = match r.get(ExtType::ADDRESS_DST) {
                Some(Body::Address(a)) => a.addr.addr(),
                _ => None,
            };
            Some((sa.spi, dst))
        }
        _ => None,
    });
    let inbound = packet.direction == Direction::In;
    let mut text = format!("packet: {}\n", packet_line(&packet, &resolver));
    if let Some(flow) = &flow {
        text.push_str(&format!("flow: {}\n", flow_line(flow, &resolver)));
    }
    text.push_str(&format!(
        "verdict: {}\n",
        verdict(inbound, flow.as_ref(), sa)
    ));
    print!("{text}");
    true
}

/// The packet as the words gave it, normalised.
fn packet_line(p: &Flow, resolver: &dyn Resolver) -> String {
    let mut s = String::from(if p.direction == Direction::In {
        "in"
    } else {
        "out"
    });
    if p.proto != 0 {
        let name = resolver.protocol_name(p.proto);
        s.push_str(&format!(
            " proto {}",
            name.unwrap_or_else(|| p.proto.to_string())
        ));
    }
    s.push_str(&format!(" from {}", p.src.ip));
    if p.sport != 0 {
        s.push_str(&format!(" port {}", p.sport));
    }
    s.push_str(&format!(" to {}", p.dst.ip));
    if p.dport != 0 {
        s.push_str(&format!(" port {}", p.dport));
    }
    s
}
