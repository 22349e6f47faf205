//! From statements to rules: names resolved, lists expanded into every
//! same-family pair, defaults filled in, reverse flows and SAs added, and
//! bundles linked, with OpenBSD's checks in OpenBSD's order.

use crate::addr::Address;
use crate::hosts::{self, Entry, HostError};
use crate::resolve::{Resolver, Transport};
use crate::rule::*;
use crate::sa;
use crate::values::{parse_hex_key, parse_lifetime, parse_ulong};
use crate::xform;
use ipsec_grammar::ast::{
    self, Host, NameOrNumber, PeerSpec, Spanned, SpiSpec, Statement, Stmt, TransformKind,
};
use ipsec_grammar::{Diagnostic, FileId, Severity, Shown, SourceMap, Span};
use std::collections::HashMap;

mod ike_rules;
mod sa_rules;

/// Processing must stop: OpenBSD would have exited here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fatal;

/// Why a statement was abandoned.
enum Stop {
    /// This statement is dropped; carry on with the next.
    Rule,
    Fatal,
}

type Step<T> = Result<T, Stop>;

/// The last SA of a bundle, which the next member is linked to.
#[derive(Debug)]
struct BundleTail {
    dst: Address,
    satype: SaType,
    spi: u32,
}

/// What the first IKE rule without a peer set up; the others must agree.
#[derive(Debug)]
struct DefaultPeer {
    local: Option<String>,
    auth: IkeAuth,
    exchange: ExchangeMode,
    srcid: Option<String>,
    dstid: Option<String>,
}

/// Compiles statements one at a time, keeping the rules in order.
pub struct Compiler<'r> {
    resolver: &'r dyn Resolver,
    rules: Vec<Rule>,
    bundles: HashMap<(String, String, String), BundleTail>,
    default_peer: Option<DefaultPeer>,
    secret_files: Vec<FileId>,
}

impl std::fmt::Debug for Compiler<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler")
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// The statement being compiled and where its problems go.
struct Cx<'a> {
    sources: &'a SourceMap,
    diags: &'a mut Vec<Diagnostic>,
    statement: &'a Statement,
}

impl Cx<'_> {
    /// OpenBSD names the line of the newline ending the statement.
    fn end_line(&self) -> (FileId, u32) {
        let end = self.statement.end;
        (end.file, self.sources.line(end))
    }

    fn line_of(&self, span: Span) -> (FileId, u32) {
        (span.file, self.sources.line(span))
    }

    /// A problem with one value, reported at the value's line.
    fn at(&mut self, span: Span, message: impl Into<String>) -> Stop {
        let d = Diagnostic::error(self.line_of(span), message).with_span(span);
        self.diags.push(d);
        Stop::Rule
    }

    /// A problem with the statement as a whole.
    fn rule(&mut self, span: Option<Span>, message: impl Into<String>) -> Stop {
        let mut d = Diagnostic::error(self.end_line(), message);
        d.span = Some(span.unwrap_or(self.statement.span));
        self.diags.push(d);
        Stop::Rule
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn fatal(&mut self, span: Option<Span>, message: impl Into<String>) -> Stop {
        let mut d = Diagnostic::fatal(message);
        d.span = span;
        self.diags.push(d);
        Stop::Fatal
    }
}

/// `out` and `in` halves of `spi`, `authkey` and `enckey` values.
struct Pair<T> {
    out: T,
    inbound: T,
}

impl<'r> Compiler<'r> {
    pub fn new(resolver: &'r dyn Resolver) -> Compiler<'r> {
        Compiler {
            resolver,
            rules: Vec::new(),
            bundles: HashMap::new(),
            default_peer: None,
            secret_files: Vec::new(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn into_rules(self) -> Vec<Rule> {
        self.rules
    }

    /// Files that hold keys or pre-shared secrets in clear.
    pub fn secret_files(&self) -> &[FileId] {
        &self.secret_files
    }

    /// Compiles one statement. Problems go to `diags`; `Err` means the
    /// configuration cannot be read any further.
    pub fn statement(
        &mut self,
        statement: &Statement,
        sources: &SourceMap,
        diags: &mut Vec<Diagnostic>,
    ) -> Result<(), Fatal> {
        let mut cx = Cx {
            sources,
            diags,
            statement,
        };
        let result = match &statement.stmt {
            Stmt::Flow(r) => self.flow(r, &mut cx),
            Stmt::Sa(r) => self.sa(r, &mut cx),
            Stmt::Tcpmd5(r) => self.tcpmd5(r, &mut cx),
            Stmt::Ike(r) => self.ike(r, &mut cx),
            Stmt::Include(_) | Stmt::Macro { .. } => Ok(()),
        };
        match result {
            Err(Stop::Fatal) => Err(Fatal),
            _ => Ok(()),
        }
    }

    fn add(&mut self, kind: RuleKind, cx: &Cx<'_>) -> usize {
        let nr = self.rules.len() as u32;
        self.rules.push(Rule {
            nr,
            kind,
            span: cx.statement.span,
            line: cx.end_line().1,
        });
        self.rules.len() - 1
    }

    fn mark_secret(&mut self, file: FileId) {
        if !self.secret_files.contains(&file) {
            self.secret_files.push(file);
        }
    }

    // ---- values --------------------------------------------------------

    fn proto(&self, proto: Option<&Spanned<NameOrNumber>>, cx: &mut Cx<'_>) -> Step<u8> {
        let Some(p) = proto else { return Ok(0) };
        match &p.node {
            NameOrNumber::Name(name) => self.resolver.protocol_number(name).ok_or_else(|| {
                let d = Diagnostic::error(cx.line_of(p.span), format!("unknown protocol: {name}"))
                    .with_span(p.span)
                    .with_label("not in the protocols database");
                cx.push(d);
                Stop::Rule
            }),
            NameOrNumber::Number(n) => {
                u8::try_from(*n).map_err(|_| cx.at(p.span, "protocol outside range"))
            }
        }
    }

    fn port(&self, port: Option<&Spanned<NameOrNumber>>, cx: &mut Cx<'_>) -> Step<u16> {
        let Some(p) = port else { return Ok(0) };
        match &p.node {
            NameOrNumber::Name(name) => self
                .resolver
                .service_port(name, Transport::Tcp)
                .or_else(|| self.resolver.service_port(name, Transport::Udp))
                .ok_or_else(|| cx.at(p.span, format!("unknown port: {name}"))),
            NameOrNumber::Number(n) => {
                u16::try_from(*n).map_err(|_| cx.at(p.span, "port outside range"))
            }
        }
    }

    fn resolve(&self, text: &Spanned<String>, cx: &mut Cx<'_>) -> Step<Vec<Address>> {
        hosts::resolve(&text.node, self.resolver).map_err(|e| match e {
            HostError::BadNetmask(mask) => cx.fatal(Some(text.span), format!("host: invalid netmask '{mask}'")),
            HostError::NotFound => {
                cx.push(
                    Diagnostic::bare(Severity::Warning, format!("no IP address found for {}", text.node))
                        .shown(Shown::OpenbsdOnly),
                );
                let d = Diagnostic::error(cx.line_of(text.span), "could not parse host specification")
                    .with_span(text.span)
                    .with_label("not an address, network, interface or known host name")
                    .with_note("a network is written address/bits, with at most 32 bits for IPv4 and 128 for IPv6");
                cx.push(d);
                Stop::Rule
            }
        })
    }

    fn host(&self, host: &Host, cx: &mut Cx<'_>) -> Step<Vec<Entry>> {
        match host {
            Host::Any(_) => Ok(vec![Entry::Any]),
            Host::Spec(text) => Ok(self
                .resolve(text, cx)?
                .into_iter()
                .map(Entry::Addr)
                .collect()),
            Host::Nat(outer, inner) => {
                let mut outer_addrs = self.resolve(outer, cx)?;
                let inner_addr = self.resolve(inner, cx)?.swap_remove(0);
                let head = &mut outer_addrs[0];
                if head.is_v6() != inner_addr.is_v6() {
                    return Err(cx.at(inner.span, "Flow NAT address family mismatch"));
                }
                head.nat = Some(Box::new(inner_addr));
                Ok(outer_addrs.into_iter().map(Entry::Addr).collect())
            }
            Host::List(items, _) => {
                let mut all = Vec::new();
                for item in items {
                    all.extend(self.host(item, cx)?);
                }
                Ok(all)
            }
        }
    }

    /// Source and destination lists with their ports, read in the order
    /// they were written.
    fn hosts(&self, h: &ast::Hosts, cx: &mut Cx<'_>) -> Step<(Vec<Entry>, u16, Vec<Entry>, u16)> {
        let (src, sport, dst, dport);
        if h.src.span().start <= h.dst.span().start {
            src = self.host(&h.src, cx)?;
            sport = self.port(h.sport.as_ref(), cx)?;
            dst = self.host(&h.dst, cx)?;
            dport = self.port(h.dport.as_ref(), cx)?;
        } else {
            dst = self.host(&h.dst, cx)?;
            dport = self.port(h.dport.as_ref(), cx)?;
            src = self.host(&h.src, cx)?;
            sport = self.port(h.sport.as_ref(), cx)?;
        }
        if let Some(Entry::Addr(a)) = dst
            .iter()
            .find(|e| matches!(e, Entry::Addr(a) if a.nat.is_some()))
        {
            return Err(cx.rule(
                Some(h.dst.span()),
                format!("no flow NAT support for destination network: {}", a.name),
            ));
        }
        Ok((src, sport, dst, dport))
    }

    /// `peer` and `local`: one address each (the first, if a name has
    /// several). `peer any` is kept as `Entry::Any` until expansion.
    fn peers(&self, p: &ast::Peers, cx: &mut Cx<'_>) -> Step<(Option<Address>, Option<Entry>)> {
        let mut local = None;
        let mut peer = None;
        // Resolve in the order written.
        let mut parts: Vec<(bool, &Spanned<PeerSpec>)> = Vec::new();
        if let Some(l) = &p.local {
            parts.push((true, l));
        }
        if let Some(r) = &p.peer {
            parts.push((false, r));
        }
        parts.sort_by_key(|(_, s)| s.span.start);
        for (is_local, spec) in parts {
            let entry = match &spec.node {
                PeerSpec::Empty => None,
                PeerSpec::Any => Some(Entry::Any),
                PeerSpec::Host(text) => {
                    let text = Spanned::new(text.clone(), spec.span);
                    Some(Entry::Addr(self.resolve(&text, cx)?.swap_remove(0)))
                }
            };
            if is_local {
                local = match entry {
                    Some(Entry::Addr(a)) => Some(a),
                    _ => None,
                };
            } else {
                peer = entry;
            }
        }
        Ok((local, peer))
    }

    fn spi(&self, spi: &Spanned<SpiSpec>, cx: &mut Cx<'_>) -> Step<Pair<u32>> {
        let check = |value: u64, cx: &mut Cx<'_>| -> Step<u32> {
            let v = u32::try_from(value)
                .map_err(|_| cx.at(spi.span, format!("{value} not a valid spi")))?;
            if (1..=255).contains(&v) {
                return Err(cx.at(spi.span, format!("{v} within reserved spi range")));
            }
            Ok(v)
        };
        match &spi.node {
            SpiSpec::Number(n) => {
                if *n < 0 || *n > i64::from(u32::MAX) {
                    return Err(cx.at(spi.span, format!("{n} not a valid spi")));
                }
                Ok(Pair {
                    out: check(*n as u64, cx)?,
                    inbound: 0,
                })
            }
            SpiSpec::Text(text) => {
                let (out, inbound) = match text.split_once(':') {
                    Some((o, i)) => (o, Some(i)),
                    None => (text.as_str(), None),
                };
                // OpenBSD rejects a malformed SPI without saying why.
                let parse = |s: &str, cx: &mut Cx<'_>| -> Step<u32> {
                    let value = parse_ulong(s).ok_or_else(|| {
                        let span = spi.span;
                        cx.push(
                            Diagnostic::error(cx.line_of(span), format!("invalid spi \"{s}\""))
                                .with_span(span)
                                .with_label("expected a number, or two numbers as OUT:IN")
                                .shown(Shown::NotOpenbsd),
                        );
                        Stop::Rule
                    })?;
                    check(value, cx)
                };
                let inbound = match inbound {
                    Some(i) => parse(i, cx)?,
                    None => 0,
                };
                Ok(Pair {
                    out: parse(out, cx)?,
                    inbound,
                })
            }
        }
    }

    fn transforms(&self, list: &[ast::Transform], cx: &mut Cx<'_>) -> Step<Transforms> {
        let mut xfs = Transforms::default();
        let mut failed = false;
        for t in list {
            let name = &t.name.node;
            let set = match t.kind {
                TransformKind::Auth => xfs.auth.is_some(),
                TransformKind::Enc => xfs.enc.is_some(),
                TransformKind::Comp => xfs.comp.is_some(),
                TransformKind::Group => xfs.group.is_some(),
            };
            if set {
                cx.at(t.name.span, format!("{} already set", t.kind.as_str()));
                failed = true;
                continue;
            }
            let found = match t.kind {
                TransformKind::Auth => xform::find_auth(name).map(|x| xfs.auth = Some(x.alg)),
                TransformKind::Enc => xform::find_enc(name).map(|x| xfs.enc = Some(x.alg)),
                TransformKind::Comp => xform::find_comp(name).map(|x| xfs.comp = Some(x)),
                TransformKind::Group => xform::find_group(name).map(|x| xfs.group = Some(x.group)),
            };
            if found.is_none() {
                let names = xform::names(t.kind);
                let mut d = Diagnostic::error(
                    cx.line_of(t.name.span),
                    format!("{name} not a valid transform"),
                )
                .with_span(t.name.span)
                .with_label(format!("unknown {} algorithm", t.kind.as_str()));
                d = match ipsec_grammar::closest(name, names.iter().copied()) {
                    Some(best) => d.with_note(format!("did you mean `{best}`?")),
                    None => d.with_note(format!("known: {}", names.join(", "))),
                };
                cx.push(d);
                failed = true;
            }
        }
        if failed { Err(Stop::Rule) } else { Ok(xfs) }
    }

    fn key_pair(
        &mut self,
        spec: Option<&Spanned<ast::KeySpec>>,
        cx: &mut Cx<'_>,
    ) -> Step<Pair<Option<Key>>> {
        let Some(spec) = spec else {
            return Ok(Pair {
                out: None,
                inbound: None,
            });
        };
        match &spec.node {
            ast::KeySpec::Hex(text) => {
                self.mark_secret(spec.span.file);
                let (out, inbound) = match text.split_once(':') {
                    Some((o, i)) => (o, Some(i)),
                    None => (text.as_str(), None),
                };
                let inbound = match inbound {
                    Some(i) => Some(parse_hex_key(i).ok_or_else(|| hex_error(spec.span, cx))?),
                    None => None,
                };
                let out = parse_hex_key(out).ok_or_else(|| hex_error(spec.span, cx))?;
                Ok(Pair {
                    out: Some(out),
                    inbound,
                })
            }
            ast::KeySpec::File(paths) => {
                let (out, inbound) = match paths.split_once(':') {
                    Some((o, i)) => (o, Some(i)),
                    None => (paths.as_str(), None),
                };
                let inbound = match inbound {
                    Some(i) => Some(self.key_file(i, spec.span, cx)?),
                    None => None,
                };
                let out = self.key_file(out, spec.span, cx)?;
                Ok(Pair {
                    out: Some(out),
                    inbound,
                })
            }
        }
    }

    fn key_file(&self, path: &str, span: Span, cx: &mut Cx<'_>) -> Step<Key> {
        const LIMIT: usize = 1024;
        let bytes = self
            .resolver
            .key_file(path)
            .map_err(|why| cx.fatal(Some(span), format!("open {path}: {why}")))?;
        if bytes.is_empty() || bytes.len() > LIMIT {
            let what = if bytes.is_empty() { "small" } else { "large" };
            return Err(cx.fatal(Some(span), format!("{path}: key too {what}")));
        }
        let text = String::from_utf8_lossy(&bytes);
        parse_hex_key(&text).ok_or_else(|| hex_error(span, cx))
    }

    // ---- flows ---------------------------------------------------------

    fn flow(&mut self, r: &ast::FlowRule, cx: &mut Cx<'_>) -> Step<()> {
        let satype = r.satype.as_ref().map_or(SaType::Esp, |s| s.node.into());
        let proto = self.proto(r.proto.as_ref(), cx)?;
        let (src, sport, dst, dport) = self.hosts(&r.hosts, cx)?;
        let (local, peer) = self.peers(&r.peers, cx)?;
        if (sport != 0 || dport != 0) && proto != 6 && proto != 17 {
            return Err(ports_without_proto(&r.hosts, cx));
        }
        let flow_type = r.flow_type.as_ref().map_or(
            match satype {
                SaType::Ipcomp | SaType::Ipip => FlowType::Use,
                _ => FlowType::Require,
            },
            |t| t.node,
        );
        let unprotected = matches!(flow_type, FlowType::Deny | FlowType::Bypass);
        let (srcid, dstid) = if unprotected {
            (None, None)
        } else {
            (
                r.ids.srcid.as_ref().map(|s| Identity::new(s.node.clone())),
                r.ids.dstid.as_ref().map(|s| Identity::new(s.node.clone())),
            )
        };
        let direction = r.direction.as_ref().map(|d| d.node);
        for (src, dst) in expand(&src, &dst, cx)? {
            let mut flow = Flow {
                satype,
                direction: direction.unwrap_or(Direction::Out),
                proto,
                src,
                sport,
                dst,
                dport,
                local: None,
                peer: None,
                srcid: srcid.clone(),
                dstid: dstid.clone(),
                flow_type,
            };
            if !unprotected {
                flow.local = local.clone();
                flow.peer = default_peer(peer.as_ref(), flow.direction, &flow.src, &flow.dst);
                if flow.peer.is_none() && !matches!(peer, Some(Entry::Any)) {
                    // OpenBSD names the destination even when the source,
                    // the remote end of an `in` flow, is the network.
                    let message = format!("no peer specified for destination {}", flow.dst.name);
                    let remote = if flow.direction == Direction::In {
                        &r.hosts.src
                    } else {
                        &r.hosts.dst
                    };
                    let stop = cx.rule(Some(remote.span()), message);
                    if let Some(d) = cx.diags.last_mut() {
                        d.label = Some("a network, so it cannot be the peer".into());
                        d.notes.push(
                            "add `peer ADDRESS`, or `peer any` for a flow without a fixed peer"
                                .into(),
                        );
                    }
                    return Err(stop);
                }
            }
            let reverse = direction.is_none().then(|| Flow {
                direction: Direction::In,
                src: flow.dst.clone(),
                dst: flow.src.clone(),
                sport: flow.dport,
                dport: flow.sport,
                ..flow.clone()
            });
            self.add(RuleKind::Flow(flow), cx);
            if let Some(reverse) = reverse {
                self.add(RuleKind::Flow(reverse), cx);
            }
        }
        Ok(())
    }
}

/// Every same-family (source, destination) pair, `any` standing for
/// `0.0.0.0/0` and `::/0`.
fn expand(src: &[Entry], dst: &[Entry], cx: &mut Cx<'_>) -> Step<Vec<(Address, Address)>> {
    let has_any = |l: &[Entry]| l.iter().any(|e| matches!(e, Entry::Any));
    if !has_any(src) && !has_any(dst) {
        let v4 = |l: &[Entry]| l.iter().any(Entry::is_v4);
        let v6 = |l: &[Entry]| l.iter().any(Entry::is_v6);
        if v4(src) != v4(dst) && v6(src) != v6(dst) {
            let family = |l: &[Entry]| if v4(l) { "IPv4" } else { "IPv6" };
            let stop = cx.rule(None, "source/destination address families do not match");
            if let Some(d) = cx.diags.last_mut() {
                d.notes.push(format!(
                    "the source is {} only and the destination {} only",
                    family(src),
                    family(dst)
                ));
            }
            return Err(stop);
        }
    }
    let concrete = |l: &[Entry]| -> Vec<Address> {
        l.iter()
            .flat_map(|e| match e {
                Entry::Any => vec![Address::any(false), Address::any(true)],
                Entry::Addr(a) => vec![a.clone()],
            })
            .collect()
    };
    let (src, dst) = (concrete(src), concrete(dst));
    let mut pairs = Vec::new();
    for s in &src {
        for d in dst.iter().filter(|d| d.is_v6() == s.is_v6()) {
            pairs.push((s.clone(), d.clone()));
        }
    }
    if pairs.is_empty() {
        return Err(cx.rule(None, "rule expands to no valid combination"));
    }
    Ok(pairs)
}

/// The peer a rule talks to: the one given, else the remote end if it is a
/// single host. `peer any` means none.
fn default_peer(
    given: Option<&Entry>,
    direction: Direction,
    src: &Address,
    dst: &Address,
) -> Option<Address> {
    match given {
        Some(Entry::Addr(a)) => Some(a.clone()),
        Some(Entry::Any) => None,
        None => {
            let remote = if direction == Direction::In { src } else { dst };
            (!remote.network).then(|| remote.clone())
        }
    }
}

fn ports_without_proto(hosts: &ast::Hosts, cx: &mut Cx<'_>) -> Stop {
    let port = hosts
        .sport
        .as_ref()
        .or(hosts.dport.as_ref())
        .map(|p| p.span);
    let stop = cx.rule(port, "no protocol supplied with source/destination ports");
    if let Some(d) = cx.diags.last_mut() {
        d.label = Some("ports need a protocol".into());
        d.notes
            .push("add `proto tcp` or `proto udp` before `from`".into());
    }
    stop
}

fn hex_error(span: Span, cx: &mut Cx<'_>) -> Stop {
    let d = Diagnostic::error(cx.line_of(span), "keys need to be specified in hex digits")
        .with_span(span)
        .with_note(
            "write keys as hex digits, optionally after 0x; OUT:IN gives one for each direction",
        );
    cx.push(d);
    Stop::Rule
}
