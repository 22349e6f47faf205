//! Commands that work on the running tables: flush (`-F`), load and
//! delete (`-f`, `-d -f`), show (`-s`) and monitor (`-m`).

use crate::cli::{Args, Show};
use crate::client::{Answer, Client};
use crate::system::strerror;
use ipsec_compiler::lower::{self, Action, LowerError, Sequencer};
use ipsec_compiler::print::{collapsed_flow_line, flow_line};
use ipsec_compiler::raise;
use ipsec_compiler::rule::{Flow, Sa};
use ipsec_compiler::{Resolver, Rule};
use pfkey::validate::Errno;
use pfkey::{Header, Message, MsgType, SaType};
use std::fmt::Write as _;
use std::io::Write as _;

/// Connects to ipsecd, or says on one line why not.
pub fn connect(socket: &str, what: &str) -> Option<Client> {
    match Client::connect(socket) {
        Ok(client) => Some(client),
        Err(e) => {
            eprintln!(
                "ipsecctl: cannot {what}: ipsecd is not reachable at {socket}: {}",
                strerror(&e)
            );
            None
        }
    }
}

fn request(client: &mut Client, msg: &Message) -> Result<Message, String> {
    match client.request(msg) {
        Ok(Answer::Done(reply)) => Ok(reply),
        Ok(Answer::Refused(e)) => Err(e.description().to_owned()),
        Err(e) => Err(strerror(&e)),
    }
}

/// `-F`: every flow and SA goes.
pub fn flush(client: &mut Client) -> bool {
    let seq = client.next_seq();
    let msg = Message::new(Header::new(
        MsgType::FLUSH,
        SaType::UNSPEC,
        seq,
        client.pid(),
    ));
    match request(client, &msg) {
        Ok(_) => true,
        Err(why) => {
            eprintln!("ipsecctl: ipsecctl_flush: failed to flush: {why}");
            false
        }
    }
}

/// Sends one rule's messages, waiting for each answer; the reason it
/// failed otherwise.
pub fn send_rule(
    client: &mut Client,
    rule: &Rule,
    seq: &mut Sequencer,
    delete: bool,
) -> Result<(), String> {
    let action = if delete { Action::Delete } else { Action::Add };
    let messages = lower::lower(rule, action, seq).map_err(|e| match e {
        LowerError::MissingKey => "an SA needs a key".to_owned(),
    })?;
    for msg in messages {
        match client.request(&msg) {
            // OpenBSD's ipsecctl lets what is already there be.
            Ok(Answer::Done(_)) | Ok(Answer::Refused(Errno::EEXIST)) => {}
            Ok(Answer::Refused(e)) => return Err(e.description().to_owned()),
            Err(e) => return Err(strerror(&e)),
        }
    }
    Ok(())
}

/// After a failure: how many rules went in before it, if any did.
pub fn report_progress(done: usize, total: usize, delete: bool) {
    if done > 0 {
        let what = if delete { "deleted" } else { "loaded" };
        eprintln!("ipsecctl: {done} of {total} rules were {what} before that");
    }
}

/// Every record of a dump (`X_SPDDUMP` for flows, `DUMP` for SAs).
pub fn dump(client: &mut Client, msg_type: MsgType) -> Result<Vec<Message>, String> {
    let seq = client.next_seq();
    let msg = Message::new(Header::new(msg_type, SaType::UNSPEC, seq, client.pid()));
    match client.dump(&msg) {
        Ok(Ok(records)) => Ok(records),
        Ok(Err(e)) => Err(e.description().to_owned()),
        Err(e) => Err(strerror(&e)),
    }
}

/// The flows and SAs ipsecd holds, and its filter rules.
struct Tables {
    /// Each flow with what it carried (packets, bytes), when told.
    flows: Vec<(Flow, Option<(u64, u64)>)>,
    sas: Vec<Message>,
    filter: Vec<FilterRule>,
}

/// A rule of `ipsecd -p`, as written, with what it decided each way.
struct FilterRule {
    number: u32,
    line: u32,
    text: String,
    /// (packets, bytes) in, then out.
    inbound: (u64, u64),
    outbound: (u64, u64),
}

impl FilterRule {
    fn of(msg: &Message) -> Option<FilterRule> {
        let Some(pfkey::Body::FilterRule(rule)) = msg.get(pfkey::ExtType::X_FILTER_RULE) else {
            return None;
        };
        let c = match msg.get(pfkey::ExtType::X_COUNTER) {
            Some(pfkey::Body::Counter(c)) => **c,
            _ => pfkey::Counter::default(),
        };
        Some(FilterRule {
            number: rule.number,
            line: rule.line,
            text: rule.text(),
            inbound: (c.ipackets, c.ibytes),
            outbound: (c.opackets, c.obytes),
        })
    }
}

fn fetch(client: &mut Client, show: Show) -> Result<Tables, String> {
    let mut tables = Tables {
        flows: Vec::new(),
        sas: Vec::new(),
        filter: Vec::new(),
    };
    let mut dump = |msg_type| dump(client, msg_type);
    if show != Show::Sa {
        tables.flows = dump(MsgType::X_SPDDUMP)?
            .iter()
            .filter_map(|m| Some((raise::flow(m)?, flow_usage(m))))
            .collect();
    }
    if show != Show::Flow {
        tables.sas = dump(MsgType::DUMP)?;
    }
    if show == Show::All {
        tables.filter = dump(MsgType::X_FILTERDUMP)?
            .iter()
            .filter_map(FilterRule::of)
            .collect();
    }
    Ok(tables)
}

/// The packets and bytes a flow-dump record says its flow carried.
fn flow_usage(msg: &Message) -> Option<(u64, u64)> {
    match msg.get(pfkey::ExtType::X_COUNTER) {
        Some(pfkey::Body::Counter(c)) => Some((c.ipackets + c.opackets, c.ibytes + c.obytes)),
        _ => None,
    }
}

/// `-c`: flows that differ only in one address are shown as one, with
/// the addresses in braces, as OpenBSD does (each against the last kept).
fn collapse(flows: &[Flow]) -> Vec<Collapsed<'_>> {
    let mut kept: Vec<Collapsed<'_>> = Vec::new();
    for (nr, f) in flows.iter().enumerate() {
        let (src, dst) = (f.src.to_string(), f.dst.to_string());
        if let Some(Collapsed {
            srcs,
            dsts,
            flow: last,
            numbers,
        }) = kept.last_mut()
        {
            let alike = last.satype == f.satype
                && last.direction == f.direction
                && last.sport == f.sport
                && last.dport == f.dport
                && last.proto == f.proto
                && last.local == f.local
                && last.peer == f.peer
                && last.srcid == f.srcid
                && last.dstid == f.dstid;
            if alike && srcs.contains(&src) {
                if !dsts.contains(&dst) {
                    dsts.push(dst);
                }
                numbers.push(nr);
                continue;
            }
            if alike && dsts.contains(&dst) {
                srcs.push(src);
                numbers.push(nr);
                continue;
            }
        }
        kept.push(Collapsed {
            srcs: vec![src],
            dsts: vec![dst],
            flow: f,
            numbers: vec![nr],
        });
    }
    kept
}

/// Flows shown as one by `-c`: their addresses and their numbers.
#[derive(Debug)]
struct Collapsed<'a> {
    srcs: Vec<String>,
    dsts: Vec<String>,
    flow: &'a Flow,
    numbers: Vec<usize>,
}

fn flows_text(
    flows: &[(Flow, Option<(u64, u64)>)],
    args: &Args,
    resolver: &dyn Resolver,
) -> String {
    let mut out = String::new();
    if args.collapse {
        let plain: Vec<Flow> = flows.iter().map(|(f, _)| f.clone()).collect();
        for c in collapse(&plain) {
            let line = collapsed_flow_line(c.flow, &c.srcs, &c.dsts, resolver);
            // OpenBSD numbers a collapsed line with every flow in it.
            let prefix = if args.verbose > 1 {
                let numbers: Vec<String> = c.numbers.iter().map(ToString::to_string).collect();
                format!("@{} ", numbers.join(","))
            } else {
                String::new()
            };
            let _ = writeln!(out, "{prefix}{line}");
        }
    } else {
        for (i, (f, usage)) in flows.iter().enumerate() {
            let prefix = if args.verbose > 1 {
                format!("@{i} ")
            } else {
                String::new()
            };
            let _ = writeln!(out, "{prefix}{}", flow_line(f, resolver));
            // Beyond OpenBSD: with -v, what each flow carried.
            if args.verbose > 0
                && let Some((packets, bytes)) = usage
            {
                let _ = writeln!(out, "\t{packets} packets, {bytes} bytes");
            }
        }
    }
    out
}

/// The filter rules as written, numbered as `-vv` numbers flows; with
/// `-v`, what each decided.
fn filter_text(rules: &[FilterRule], args: &Args) -> String {
    let mut out = String::new();
    for r in rules {
        if args.verbose > 1 {
            let _ = write!(out, "@{} ", r.number);
        }
        let _ = writeln!(out, "{}", r.text);
        if args.verbose > 0 {
            let _ = writeln!(
                out,
                "\tline {}: in {} packets, {} bytes; out {} packets, {} bytes",
                r.line, r.inbound.0, r.inbound.1, r.outbound.0, r.outbound.1
            );
        }
    }
    out
}

/// `-s`: the tables, as OpenBSD prints them (or as JSON).
pub fn show(client: &mut Client, args: &Args, show: Show, resolver: &dyn Resolver) -> bool {
    let tables = match fetch(client, show) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("ipsecctl: cannot read the tables of ipsecd: {why}");
            return false;
        }
    };
    let text = if args.json {
        json(&tables, args.keys)
    } else {
        let mut out = String::new();
        if show == Show::All {
            out.push_str("FLOWS:\n");
        }
        if show != Show::Sa {
            if tables.flows.is_empty() && show == Show::All {
                out.push_str("No flows\n");
            }
            out.push_str(&flows_text(&tables.flows, args, resolver));
        }
        if show == Show::All {
            out.push_str("\nSAD:\n");
        }
        if show != Show::Flow {
            if tables.sas.is_empty() && show == Show::All {
                out.push_str("No entries\n");
            }
            for msg in &tables.sas {
                if let Some(text) = raise::sa_text(msg, args.keys, args.verbose > 0) {
                    out.push_str(&text);
                }
            }
        }
        // Beyond OpenBSD, and only when ipsecd filters: its rules.
        if !tables.filter.is_empty() {
            out.push_str("\nFILTER:\n");
            out.push_str(&filter_text(&tables.filter, args));
        }
        out
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    true
}

/// A JSON string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt(s: Option<String>) -> String {
    s.map_or_else(|| "null".to_owned(), |s| quote(&s))
}

fn flow_json((f, usage): &(Flow, Option<(u64, u64)>)) -> String {
    let (packets, bytes) = usage.unwrap_or_default();
    format!(
        "{{\"satype\":{},\"direction\":{},\"proto\":{},\"src\":{},\"sport\":{},\"dst\":{},\"dport\":{},\
         \"local\":{},\"peer\":{},\"srcid\":{},\"dstid\":{},\"type\":{},\"packets\":{},\"bytes\":{}}}",
        quote(f.satype.as_str()),
        quote(ipsec_compiler::rule::direction_str(f.direction)),
        f.proto,
        quote(&f.src.to_string()),
        f.sport,
        quote(&f.dst.to_string()),
        f.dport,
        opt(f.local.as_ref().map(ToString::to_string)),
        opt(f.peer.as_ref().map(ToString::to_string)),
        opt(f.srcid.as_ref().map(|i| i.id.clone())),
        opt(f.dstid.as_ref().map(|i| i.id.clone())),
        quote(ipsec_compiler::rule::flow_type_str(f.flow_type)),
        packets,
        bytes,
    )
}

fn sa_json(sa: &Sa, msg: &Message, keys: bool) -> String {
    let x = &sa.transforms;
    let counters = match msg.get(pfkey::ExtType::X_COUNTER) {
        Some(pfkey::Body::Counter(c)) => format!(
            ",\"packets_in\":{},\"packets_out\":{},\"bytes_in\":{},\"bytes_out\":{},\
             \"drops_in\":{},\"drops_out\":{}",
            c.ipackets, c.opackets, c.ibytes, c.obytes, c.idrops, c.odrops
        ),
        _ => String::new(),
    };
    let key =
        |k: &Option<ipsec_compiler::rule::Key>| opt(k.as_ref().filter(|_| keys).map(|k| k.hex()));
    format!(
        "{{\"satype\":{},\"mode\":{},\"src\":{},\"dst\":{},\"spi\":{},\"auth\":{},\"enc\":{},\"comp\":{},\
         \"udpencap\":{}{}{}}}",
        quote(sa.satype.as_str()),
        quote(ipsec_compiler::rule::mode_str(sa.mode)),
        quote(&sa.src.to_string()),
        quote(&sa.dst.to_string()),
        quote(&format!("0x{:08x}", sa.spi)),
        opt(x.auth.map(|a| a.info().name.to_owned())),
        opt(x.enc.map(|e| e.info().name.to_owned())),
        opt(x.comp.map(|c| c.name().to_owned())),
        sa.udpencap
            .map_or_else(|| "null".to_owned(), |p| p.to_string()),
        counters,
        if keys {
            format!(
                ",\"authkey\":{},\"enckey\":{}",
                key(&sa.authkey),
                key(&sa.enckey)
            )
        } else {
            String::new()
        },
    )
}

fn filter_json(r: &FilterRule) -> String {
    format!(
        "{{\"number\":{},\"line\":{},\"rule\":{},\"packets_in\":{},\"bytes_in\":{},\
         \"packets_out\":{},\"bytes_out\":{}}}",
        r.number,
        r.line,
        quote(&r.text),
        r.inbound.0,
        r.inbound.1,
        r.outbound.0,
        r.outbound.1
    )
}

fn json(tables: &Tables, keys: bool) -> String {
    let flows: Vec<String> = tables.flows.iter().map(flow_json).collect();
    let sas: Vec<String> = tables
        .sas
        .iter()
        .filter_map(|m| raise::sa(m).map(|sa| sa_json(&sa, m, keys)))
        .collect();
    let filter: Vec<String> = tables.filter.iter().map(filter_json).collect();
    format!(
        "{{\"flows\":[{}],\"sas\":[{}],\"filter\":[{}]}}\n",
        flows.join(","),
        sas.join(","),
        filter.join(",")
    )
}

/// `-m`: every PF_KEY message ipsecd sends or sees, until interrupted.
pub fn monitor(client: &mut Client, keys: bool) -> bool {
    let seq = client.next_seq();
    let msg = Message::new(Header::new(
        MsgType::X_PROMISC,
        SaType::AH,
        seq,
        client.pid(),
    ));
    if let Err(e) = client.send_bytes(&msg.encode()) {
        eprintln!("ipsecctl: monitor: {}", strerror(&e));
        return false;
    }
    loop {
        let bytes = match client.recv() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => {
                eprintln!("ipsecctl: monitor: {}", strerror(&e));
                return false;
            }
        };
        // A copy of another client's message comes wrapped.
        let inner = if bytes.get(1) == Some(&MsgType::X_PROMISC.0) && bytes.len() > 16 {
            &bytes[16..]
        } else {
            &bytes[..]
        };
        let text = match Message::decode(inner) {
            Ok(message) => pfkey::Monitor {
                message: &message,
                show_keys: keys,
            }
            .to_string(),
            Err(e) => format!("undecodable message of {} bytes: {e}\n", inner.len()),
        };
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsec_compiler::Fixed;
    use ipsec_compiler::addr::Address;
    use ipsec_compiler::rule::{Direction, FlowType, SaType};

    fn flow(src: &str, dst: &str) -> Flow {
        let net = |s: &str| {
            let (ip, bits) = s.split_once('/').unwrap();
            let mut a = Address::host(ip.parse().unwrap(), s);
            a.bits = bits.parse().unwrap();
            a.network = true;
            a
        };
        Flow {
            satype: SaType::Esp,
            direction: Direction::Out,
            proto: 0,
            src: net(src),
            sport: 0,
            dst: net(dst),
            dport: 0,
            local: None,
            peer: Some(Address::host("192.0.2.2".parse().unwrap(), "192.0.2.2")),
            srcid: None,
            dstid: None,
            flow_type: FlowType::Require,
        }
    }

    #[test]
    fn collapsing_merges_one_address_at_a_time() {
        let flows = [
            flow("10.1.0.0/16", "10.2.0.0/16"),
            flow("10.1.0.0/16", "10.3.0.0/16"),
            flow("10.4.0.0/16", "10.3.0.0/16"),
            flow("10.5.0.0/16", "10.6.0.0/16"),
        ];
        let collapsed = collapse(&flows);
        let numbers: Vec<&[usize]> = collapsed.iter().map(|c| &c.numbers[..]).collect();
        assert_eq!(numbers, [&[0, 1, 2][..], &[3][..]]);
        let lines: Vec<String> = collapsed
            .iter()
            .map(|c| collapsed_flow_line(c.flow, &c.srcs, &c.dsts, &Fixed::standard()))
            .collect();
        assert_eq!(
            lines,
            [
                "flow esp out from { 10.1.0.0/16, 10.4.0.0/16 } to { 10.2.0.0/16, 10.3.0.0/16 } peer 192.0.2.2 type require",
                "flow esp out from { 10.5.0.0/16 } to { 10.6.0.0/16 } peer 192.0.2.2 type require",
            ]
        );
    }
}
