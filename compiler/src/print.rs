//! The canonical text of rules, as `ipsecctl -v` prints them.

use crate::resolve::{Resolver, Transport};
use crate::rule::*;
use std::fmt::Write as _;

/// What to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintOptions {
    /// `-k`: show keys.
    pub keys: bool,
    /// `-vv`: prefix each rule with `@nr`.
    pub numbers: bool,
    /// `-d`: IKE rules print their delete script.
    pub delete: bool,
}

/// A rule's text (with a final newline), and for an IKE rule that isakmpd
/// cannot express, OpenBSD's message about it.
pub fn rule_text(
    rule: &Rule,
    opts: PrintOptions,
    resolver: &dyn Resolver,
    host_name: &str,
) -> (String, Option<String>) {
    let mut out = String::new();
    if opts.numbers {
        let _ = write!(out, "@{} ", rule.nr);
    }
    let mut problem = None;
    match &rule.kind {
        RuleKind::Flow(f) => flow(&mut out, f, resolver),
        RuleKind::Sa(sa) => sa_text(&mut out, sa, opts.keys),
        RuleKind::Bundle(b) => {
            let _ = write!(
                out,
                "[bundle {} to {} spi 0x{:08x} with {} to {} spi 0x{:08x}]",
                b.satype.as_str(),
                b.dst,
                b.spi,
                b.satype2.as_str(),
                b.dst2,
                b.spi2
            );
        }
        RuleKind::Ike(ike) => {
            let script = if opts.delete {
                Ok(crate::ike::delete_script(ike))
            } else {
                let secret = if opts.keys {
                    crate::ike::Secret::Show
                } else {
                    crate::ike::Secret::Hide
                };
                crate::ike::add_script(ike, host_name, secret)
            };
            let text = match script {
                Ok(text) => text,
                Err((partial, message)) => {
                    problem = Some(message);
                    partial
                }
            };
            // The rule's own newline ends the script's last line.
            out.push_str(text.strip_suffix('\n').unwrap_or(&text));
        }
    }
    out.push('\n');
    (out, problem)
}

fn port_name(port: u16, proto: u8, resolver: &dyn Resolver) -> String {
    let transport = if proto == 6 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    resolver
        .service_name(port, transport)
        .unwrap_or_else(|| port.to_string())
}

/// One flow as ipsecctl prints it, without a newline.
pub fn flow_line(f: &Flow, resolver: &dyn Resolver) -> String {
    let mut out = String::new();
    flow(&mut out, f, resolver);
    out
}

/// Flows that differ only in their addresses, as one line with the
/// addresses in braces (`ipsecctl -c`).
pub fn collapsed_flow_line(
    f: &Flow,
    srcs: &[String],
    dsts: &[String],
    resolver: &dyn Resolver,
) -> String {
    let list = |items: &[String]| format!("{{ {} }}", items.join(", "));
    let mut out = String::new();
    flow_with(&mut out, f, &list(srcs), &list(dsts), resolver);
    out
}

fn flow(out: &mut String, f: &Flow, resolver: &dyn Resolver) {
    flow_with(out, f, &f.src.to_string(), &f.dst.to_string(), resolver);
}

fn flow_with(out: &mut String, f: &Flow, src: &str, dst: &str, resolver: &dyn Resolver) {
    let _ = write!(
        out,
        "flow {} {}",
        f.satype.as_str(),
        direction_str(f.direction)
    );
    if f.proto != 0 {
        let name = resolver
            .protocol_name(f.proto)
            .unwrap_or_else(|| f.proto.to_string());
        let _ = write!(out, " proto {name}");
    }
    let _ = write!(out, " from {src}");
    if f.sport != 0 {
        let _ = write!(out, " port {}", port_name(f.sport, f.proto, resolver));
    }
    let _ = write!(out, " to {dst}");
    if f.dport != 0 {
        let _ = write!(out, " port {}", port_name(f.dport, f.proto, resolver));
    }
    if let Some(local) = &f.local {
        let _ = write!(out, " local {local}");
    }
    if let Some(peer) = &f.peer {
        let _ = write!(out, " peer {peer}");
    }
    if let Some(id) = &f.srcid {
        let _ = write!(out, " srcid {}", id.id);
    }
    if let Some(id) = &f.dstid {
        let _ = write!(out, " dstid {}", id.id);
    }
    let _ = write!(out, " type {}", flow_type_str(f.flow_type));
}

/// One SA as ipsecctl prints it, without a newline.
pub fn sa_line(sa: &Sa, keys: bool) -> String {
    let mut out = String::new();
    sa_text(&mut out, sa, keys);
    out
}

fn sa_text(out: &mut String, sa: &Sa, keys: bool) {
    let _ = write!(out, "{} ", sa.satype.as_str());
    if !matches!(sa.satype, SaType::Tcpmd5 | SaType::Ipip) {
        let _ = write!(out, "{} ", mode_str(sa.mode));
    }
    let _ = write!(out, "from {} to {} spi 0x{:08x}", sa.src, sa.dst, sa.spi);
    if sa.satype != SaType::Tcpmd5 {
        if let Some(auth) = sa.transforms.auth {
            let _ = write!(out, " auth {}", auth.info().name);
        }
        if let Some(enc) = sa.transforms.enc {
            let _ = write!(out, " enc {}", enc.info().name);
        }
        if let Some(comp) = sa.transforms.comp {
            let _ = write!(out, " comp {}", comp.name());
        }
    }
    if !keys {
        return;
    }
    let separator = if sa.satype == SaType::Tcpmd5 {
        " "
    } else {
        " \\\n\t"
    };
    if let Some(key) = &sa.authkey {
        let _ = write!(out, "{separator}authkey {}", key.hex());
    }
    if let Some(key) = &sa.enckey {
        let _ = write!(out, "{separator}enckey {}", key.hex());
    }
}

/// An `ike` rule as one `ipsec.conf` statement that compiles back to the
/// same rule: how `ipsecctl` hands rules to `iked`. With `keys` false the
/// pre-shared key is left out. `Err` when the key cannot be written as an
/// `ipsec.conf` string (a newline in it, or a backslash the lexer would
/// take for an escape).
pub fn ike_statement(ike: &Ike, keys: bool) -> Result<String, String> {
    let mut out = String::from("ike");
    let mode = match ike.mode {
        IkeMode::Active => "active",
        IkeMode::Passive => "passive",
        IkeMode::Dynamic => "dynamic",
    };
    let _ = write!(out, " {mode}");
    match ike.iface {
        Some(unit) => {
            let _ = write!(out, " interface sec{unit}");
        }
        None => {
            let _ = write!(out, " {} {}", ike.satype.as_str(), mode_str(ike.tmode));
            if ike.proto != 0 {
                let _ = write!(out, " proto {}", ike.proto);
            }
            let _ = write!(out, " from {}", net(&ike.src));
            if let Some(nat) = &ike.src.nat {
                let _ = write!(out, " ({})", net(nat));
            }
            if ike.sport != 0 {
                let _ = write!(out, " port {}", ike.sport);
            }
            let _ = write!(out, " to {}", net(&ike.dst));
            if ike.dport != 0 {
                let _ = write!(out, " port {}", ike.dport);
            }
        }
    }
    if let Some(local) = &ike.local {
        let _ = write!(out, " local {}", net(local));
    }
    // No peer is written `peer any`: left out, the compiler would take
    // the destination for the peer.
    match &ike.peer {
        Some(peer) => {
            let _ = write!(out, " peer {}", net(peer));
        }
        None => out.push_str(" peer any"),
    }
    for (phase, keyword) in [
        (
            &ike.phase1,
            if ike.phase1.exchange == ExchangeMode::Aggressive {
                "aggressive"
            } else {
                "main"
            },
        ),
        (&ike.phase2, "quick"),
    ] {
        let t = &phase.transforms;
        let mut words = String::new();
        if let Some(auth) = t.auth {
            let _ = write!(words, " auth {}", auth.info().name);
        }
        if let Some(enc) = t.enc {
            let _ = write!(words, " enc {}", enc.info().name);
        }
        if let Some(comp) = t.comp {
            let _ = write!(words, " comp {}", comp.name());
        }
        if let Some(group) = t.group {
            let _ = write!(words, " group {}", group.info().name);
        }
        if let Some(seconds) = phase.lifetime {
            let _ = write!(words, " lifetime {seconds}");
        }
        if !words.is_empty() || (keyword == "aggressive") {
            let _ = write!(out, " {keyword}{words}");
        }
    }
    for (keyword, id) in [("srcid", &ike.srcid), ("dstid", &ike.dstid)] {
        if let Some(id) = id {
            let _ = write!(out, " {keyword} {}", quoted(&id.id)?);
        }
    }
    if let (IkeAuth::Psk(secret), true) = (&ike.auth, keys) {
        let _ = write!(out, " psk {}", quoted(secret)?);
    }
    if let Some(tag) = &ike.tag {
        let _ = write!(out, " tag {}", quoted(tag)?);
    }
    out.push('\n');
    Ok(out)
}

/// An address with its prefix when it is a network, numerically.
fn net(a: &crate::addr::Address) -> String {
    let max = crate::addr::max_bits(a.ip);
    if a.network || a.bits < max {
        let ip = match a.ip {
            std::net::IpAddr::V4(v) => v.to_string(),
            std::net::IpAddr::V6(v) => v.to_string(),
        };
        format!("{ip}/{}", a.bits.min(max))
    } else {
        a.ip.to_string()
    }
}

/// A string as the lexer reads it back: in double quotes, with `"`
/// escaped. A newline, or a backslash before a blank, a quote or the end,
/// cannot be written.
fn quoted(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        if b == b'\n'
            || (b == b'\\' && matches!(next, None | Some(b' ' | b'\t' | b'"' | b'\'' | b'\n')))
        {
            return Err("a string ipsec.conf cannot hold".into());
        }
    }
    Ok(format!("\"{}\"", s.replace('"', "\\\"")))
}
