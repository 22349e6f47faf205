//! From statements to rules: names resolved, lists expanded into every
//! same-family pair, defaults filled in, reverse flows and SAs added, and
//! bundles linked, with OpenBSD's checks in OpenBSD's order.

use crate::addr::Address;
use crate::hosts::{self, Entry, HostError};
use crate::resolve::{Resolver, Transport};
use crate::rule::*;
use crate::sa;
use crate::xform;
use ipsec_grammar::ast::{
    self, Host, NameOrNumber, PeerSpec, Spanned, SpiSpec, Statement, Stmt, TransformKind,
};
use ipsec_grammar::{Diagnostic, FileId, Severity, Shown, SourceMap, Span};
use std::collections::HashMap;

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

/// Where the parts of an SA rule were written, to point at problems.
#[derive(Debug, Default)]
struct SaSpans {
    spi: Option<Span>,
    auth: Option<Span>,
    enc: Option<Span>,
    comp: Option<Span>,
    authkey: Option<Span>,
    enckey: Option<Span>,
}

impl SaSpans {
    fn new(
        spi: Span,
        transforms: &[ast::Transform],
        authkey: Option<Span>,
        enckey: Option<Span>,
    ) -> SaSpans {
        let find = |kind: TransformKind| {
            transforms
                .iter()
                .find(|t| t.kind == kind)
                .map(|t| t.name.span)
        };
        SaSpans {
            spi: Some(spi),
            auth: find(TransformKind::Auth),
            enc: find(TransformKind::Enc),
            comp: find(TransformKind::Comp),
            authkey,
            enckey,
        }
    }

    fn of(&self, culprit: sa::Culprit) -> Option<Span> {
        use sa::Culprit::*;
        match culprit {
            Spi => self.spi,
            Auth => self.auth,
            Enc => self.enc,
            Comp => self.comp,
            AuthKey => self.authkey,
            EncKey => self.enckey,
            Rule => None,
        }
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

    // ---- SAs -----------------------------------------------------------

    fn sa(&mut self, r: &ast::SaRule, cx: &mut Cx<'_>) -> Step<()> {
        let satype: SaType = r.satype.as_ref().map_or(SaType::Esp, |s| s.node.into());
        let mode = r.mode.as_ref().map_or(Mode::Tunnel, |m| m.node);
        let (src, _, dst, _) = self.hosts(&r.hosts, cx)?;
        let spi = self.spi(&r.spi, cx)?;
        let udpencap = r.udpencap.as_ref().map(|u| u.node.unwrap_or(0) as u16);
        let transforms = self.transforms(&r.transforms, cx)?;
        let authkey = self.key_pair(r.authkey.as_ref(), cx)?;
        let enckey = self.key_pair(r.enckey.as_ref(), cx)?;
        let sa = Sa {
            satype,
            mode,
            src: Address::any(false),
            dst: Address::any(false),
            spi: spi.out,
            transforms,
            authkey: authkey.out,
            enckey: enckey.out,
            udpencap,
        };
        let bundle = r.bundle.as_ref().map(|b| b.node.as_str());
        let spans = SaSpans::new(
            r.spi.span,
            &r.transforms,
            r.authkey.as_ref().map(|k| k.span),
            r.enckey.as_ref().map(|k| k.span),
        );
        let inbound = (spi.inbound, authkey.inbound, enckey.inbound);
        self.sa_rules(sa, &src, &dst, inbound, bundle, &spans, cx, "sarule")
    }

    fn tcpmd5(&mut self, r: &ast::Tcpmd5Rule, cx: &mut Cx<'_>) -> Step<()> {
        let (src, _, dst, _) = self.hosts(&r.hosts, cx)?;
        let spi = self.spi(&r.spi, cx)?;
        let authkey = self.key_pair(r.authkey.as_ref(), cx)?;
        let sa = Sa {
            satype: SaType::Tcpmd5,
            mode: Mode::Transport,
            src: Address::any(false),
            dst: Address::any(false),
            spi: spi.out,
            transforms: Transforms::default(),
            authkey: authkey.out,
            enckey: None,
            udpencap: None,
        };
        let spans = SaSpans::new(r.spi.span, &[], r.authkey.as_ref().map(|k| k.span), None);
        let inbound = (spi.inbound, authkey.inbound, None);
        self.sa_rules(sa, &src, &dst, inbound, None, &spans, cx, "tcpmd5rule")
    }

    /// Validates the SA, then adds it (and its reverse, when inbound values
    /// were given) for every address pair.
    #[allow(clippy::too_many_arguments)]
    fn sa_rules(
        &mut self,
        mut sa: Sa,
        src: &[Entry],
        dst: &[Entry],
        (spi_in, authkey_in, enckey_in): (u32, Option<Key>, Option<Key>),
        bundle: Option<&str>,
        spans: &SaSpans,
        cx: &mut Cx<'_>,
        what: &str,
    ) -> Step<()> {
        check_sa(&mut sa, spans, cx)?;
        let two_way = spi_in != 0 || authkey_in.is_some() || enckey_in.is_some();
        for (s, d) in expand(src, dst, cx)? {
            let forward = Sa {
                src: s,
                dst: d,
                ..sa.clone()
            };
            let reverse = two_way.then(|| Sa {
                src: forward.dst.clone(),
                dst: forward.src.clone(),
                spi: spi_in,
                authkey: authkey_in.clone(),
                enckey: enckey_in.clone(),
                ..forward.clone()
            });
            self.add_sa(forward, bundle, cx);
            let Some(mut reverse) = reverse else { continue };
            if check_sa(&mut reverse, spans, cx).is_err() {
                let stop = cx.fatal(None, format!("{what}: expand_rule"));
                if let Some(d) = cx.diags.last_mut() {
                    d.notes
                        .push("the reverse SA (the values after `:`) is not valid".into());
                }
                return Err(stop);
            }
            self.add_sa(reverse, bundle, cx);
        }
        Ok(())
    }

    fn add_sa(&mut self, sa: Sa, bundle: Option<&str>, cx: &Cx<'_>) {
        let link = bundle.map(|b| (sa.src.name.clone(), sa.dst.name.clone(), b.to_owned()));
        let tail = BundleTail {
            dst: sa.dst.clone(),
            satype: sa.satype,
            spi: sa.spi,
        };
        self.add(RuleKind::Sa(sa), cx);
        let Some(key) = link else { return };
        match self.bundles.insert(key, tail) {
            None => {}
            Some(previous) => {
                let last = self.rules.last().map(|r| &r.kind);
                let Some(RuleKind::Sa(sa)) = last else { return };
                let link = Bundle {
                    satype: previous.satype,
                    dst: previous.dst,
                    spi: previous.spi,
                    satype2: sa.satype,
                    dst2: sa.dst.clone(),
                    spi2: sa.spi,
                };
                self.add(RuleKind::Bundle(link), cx);
            }
        }
    }

    // ---- IKE -----------------------------------------------------------

    fn ike(&mut self, r: &ast::IkeRule, cx: &mut Cx<'_>) -> Step<()> {
        let mode = r.mode.as_ref().map_or(IkeMode::Active, |m| m.node);
        let (satype, tmode, proto, src, sport, dst, dport, iface) = match &r.target {
            ast::IkeTarget::Hosts {
                satype,
                mode,
                proto,
                hosts,
            } => {
                let satype = satype.as_ref().map_or(SaType::Esp, |s| s.node.into());
                let tmode = mode.as_ref().map_or(Mode::Tunnel, |m| m.node);
                let proto = self.proto(proto.as_ref(), cx)?;
                let (src, sport, dst, dport) = self.hosts(hosts, cx)?;
                (satype, tmode, proto, src, sport, dst, dport, None)
            }
            ast::IkeTarget::Interface(name) => {
                let unit = sec_unit(name, cx)?;
                let mut any = Address::any(false);
                any.name = "0.0.0.0/0".into();
                let all = vec![Entry::Addr(any)];
                (
                    SaType::Esp,
                    Mode::Tunnel,
                    0,
                    all.clone(),
                    0,
                    all,
                    0,
                    Some(unit),
                )
            }
        };
        let (local, peer) = self.peers(&r.peers, cx)?;
        let phase1 = self.phase(r.phase1.as_ref(), ExchangeMode::Main, cx)?;
        let phase2 = self.phase(r.phase2.as_ref(), ExchangeMode::Quick, cx)?;
        let srcid = r.ids.srcid.as_ref().map(|s| Identity::new(s.node.clone()));
        let dstid = r.ids.dstid.as_ref().map(|s| Identity::new(s.node.clone()));
        let auth = match r.auth.as_ref().map(|a| &a.node) {
            Some(ast::IkeAuth::Psk(secret)) => {
                self.mark_secret(cx.statement.span.file);
                IkeAuth::Psk(secret.clone())
            }
            _ => IkeAuth::Rsa,
        };
        if (sport != 0 || dport != 0)
            && proto != 6
            && proto != 17
            && let ast::IkeTarget::Hosts { hosts, .. } = &r.target
        {
            return Err(ports_without_proto(hosts, cx));
        }
        if let (Some(enc), Some(_)) = (phase2.transforms.enc, phase2.transforms.auth) {
            let info = enc.info();
            if info.noauth {
                let auth = r.phase2.as_ref().and_then(|p| {
                    p.transforms
                        .iter()
                        .find(|t| t.kind == TransformKind::Auth)
                        .map(|t| t.name.span)
                });
                return Err(cx.rule(
                    auth,
                    format!("authentication is implicit for {}", info.name),
                ));
            }
        }
        let tag = r.tag.as_ref().map(|t| t.node.clone());
        for (src, dst) in expand(&src, &dst, cx)? {
            let mut ike = Ike {
                mode,
                satype,
                tmode,
                proto,
                src,
                sport,
                dst,
                dport,
                local: local.clone(),
                peer: None,
                phase1: phase1.clone(),
                phase2: phase2.clone(),
                srcid: srcid.clone(),
                dstid: dstid.clone(),
                auth: auth.clone(),
                tag: tag.clone(),
                iface,
            };
            ike.peer = default_peer(peer.as_ref(), Direction::Out, &ike.src, &ike.dst);
            if ike.peer.is_none() {
                self.check_default_peer(&ike, cx);
            }
            self.add(RuleKind::Ike(Box::new(ike)), cx);
        }
        Ok(())
    }

    fn phase(
        &self,
        phase: Option<&ast::Phase>,
        default: ExchangeMode,
        cx: &mut Cx<'_>,
    ) -> Step<IkePhase> {
        let Some(p) = phase else {
            return Ok(IkePhase {
                exchange: default,
                transforms: Transforms::default(),
                lifetime: None,
            });
        };
        let transforms = self.transforms(&p.transforms, cx)?;
        let lifetime = match &p.lifetime {
            None => None,
            Some(l) => match &l.node {
                NameOrNumber::Number(-1) => None,
                NameOrNumber::Number(n) => Some(*n),
                NameOrNumber::Name(text) => {
                    Some(parse_lifetime(text).map_err(|msg| cx.fatal(Some(l.span), msg))?)
                }
            },
        };
        Ok(IkePhase {
            exchange: p.mode.node,
            transforms,
            lifetime,
        })
    }

    /// Rules without a peer share isakmpd's default peer, so they must
    /// agree on how to reach it. OpenBSD only warns.
    fn check_default_peer(&mut self, ike: &Ike, cx: &mut Cx<'_>) {
        let this = DefaultPeer {
            local: ike.local.as_ref().map(|a| a.name.clone()),
            auth: ike.auth.clone(),
            exchange: ike.phase1.exchange,
            srcid: ike.srcid.as_ref().map(|i| i.id.clone()),
            dstid: ike.dstid.as_ref().map(|i| i.id.clone()),
        };
        let Some(first) = &self.default_peer else {
            self.default_peer = Some(this);
            return;
        };
        let mut first_warning = true;
        let mut warn = |what: &str| {
            let mut d = Diagnostic::warning(cx.end_line(), format!("default peer {what} mismatch"))
                .with_span(cx.statement.span)
                .with_label(format!(
                    "its {what} differs from the first rule without a peer"
                ));
            if std::mem::take(&mut first_warning) {
                d = d.with_note(
                    "rules without a peer all configure isakmpd's one default peer, \
                     so the rule loaded last decides its settings",
                );
            }
            cx.push(d);
        };
        if first.local != this.local {
            warn("local");
        }
        let psk = |a: &IkeAuth| matches!(a, IkeAuth::Psk(_));
        if psk(&first.auth) != psk(&this.auth) {
            warn("phase 1 auth");
        }
        if let (IkeAuth::Psk(a), IkeAuth::Psk(b)) = (&first.auth, &this.auth)
            && a != b
        {
            warn("psk");
        }
        if first.exchange != this.exchange {
            warn("phase 1 mode");
        }
        if first.srcid != this.srcid {
            warn("srcid");
        }
        if first.dstid != this.dstid {
            warn("dstid");
        }
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

/// Fills in an SA's defaults and checks it, reporting the first problem.
fn check_sa(sa: &mut Sa, spans: &SaSpans, cx: &mut Cx<'_>) -> Step<()> {
    let Err(p) = sa::validate(
        sa.satype,
        sa.spi,
        &mut sa.transforms,
        sa.authkey.as_ref(),
        sa.enckey.as_ref(),
    ) else {
        return Ok(());
    };
    let stop = cx.rule(spans.of(p.culprit), p.message);
    if let (Some(d), Some(note)) = (cx.diags.last_mut(), key_hint(&sa.transforms, p.culprit)) {
        d.notes.push(note);
    }
    Err(stop)
}

/// What key the rule's algorithms need, for problems with keys.
fn key_hint(xfs: &Transforms, culprit: sa::Culprit) -> Option<String> {
    match culprit {
        sa::Culprit::AuthKey | sa::Culprit::Rule
            if xfs.auth.is_some_and(|a| a.info().key_len > 0) =>
        {
            let info = xfs.auth?.info();
            Some(format!(
                "auth {} takes an authkey of exactly {} bits ({} hex digits)",
                info.name,
                info.key_len * 8,
                info.key_len * 2
            ))
        }
        sa::Culprit::EncKey => {
            let info = xfs.enc?.info();
            if info.key_max == 0 {
                return Some(format!("enc {} takes no enckey", info.name));
            }
            let bits = if info.key_min == info.key_max {
                format!("{} bits", info.key_min * 8)
            } else {
                format!("{} to {} bits", info.key_min * 8, info.key_max * 8)
            };
            Some(format!("enc {} takes an enckey of {bits}", info.name))
        }
        _ => None,
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

fn sec_unit(name: &Spanned<String>, cx: &mut Cx<'_>) -> Step<u32> {
    let Some(unit) = name.node.strip_prefix("sec").filter(|u| !u.is_empty()) else {
        return Err(cx.at(name.span, "invalid sec interface name"));
    };
    match unit.parse::<i64>() {
        Ok(n) if n < 0 => Err(cx.at(name.span, "invalid sec interface unit: too small")),
        Ok(n) => {
            u32::try_from(n).map_err(|_| cx.at(name.span, "invalid sec interface unit: too large"))
        }
        Err(_) => Err(cx.at(name.span, "invalid sec interface unit: invalid")),
    }
}

/// `strtoul(s, .., 0)` that must consume the whole string; like C, a minus
/// sign wraps around.
fn parse_ulong(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let value = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }?;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Hex digits, optionally after `0x`; an odd last digit is ignored, as
/// OpenBSD does. `None` if a pair is not hex.
fn parse_hex_key(text: &str) -> Option<Key> {
    let hex = text.strip_prefix("0x").unwrap_or(text).as_bytes();
    let mut bytes = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        let digit = |c: u8| (c as char).to_digit(16);
        bytes.push((digit(pair[0])? * 16 + digit(pair[1])?) as u8);
    }
    Some(Key::new(bytes))
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

/// A lifetime read as OpenBSD reads it, with `sscanf("%d%c")`: a number of
/// seconds, or a number and a unit `m` or `h`; anything after the unit is
/// ignored.
fn parse_lifetime(text: &str) -> Result<i64, String> {
    let trimmed = text.trim_start();
    let sign = usize::from(trimmed.starts_with(['-', '+']));
    let digits = trimmed[sign..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let value: i64 = trimmed[..sign + digits]
        .parse()
        .map_err(|_| format!("invalid time specification: {text}"))?;
    match trimmed[sign + digits..].chars().next() {
        None => Ok(value),
        Some('m' | 'M') => Ok(value.saturating_mul(60)),
        Some('h' | 'H') => Ok(value.saturating_mul(3600)),
        Some(_) => Err("invalid time unit".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_parsers() {
        assert_eq!(parse_ulong("0x1000"), Some(0x1000));
        assert_eq!(parse_ulong("010"), Some(8));
        assert_eq!(parse_ulong("12"), Some(12));
        assert_eq!(parse_ulong(""), None);
        assert_eq!(parse_ulong("x"), None);
        assert_eq!(parse_ulong("-1"), Some(u64::MAX));
        assert_eq!(
            parse_hex_key("0xdeadbee").unwrap().bytes(),
            &[0xde, 0xad, 0xbe]
        );
        assert!(parse_hex_key("0xzz").is_none());
        assert_eq!(parse_lifetime("30m"), Ok(1800));
        assert_eq!(parse_lifetime("2H"), Ok(7200));
        assert_eq!(parse_lifetime("5s"), Err("invalid time unit".into()));
        assert_eq!(
            parse_lifetime("abc"),
            Err("invalid time specification: abc".into())
        );
    }
}
