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
