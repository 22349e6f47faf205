//! `ike` rules: phases, identities and the shared default peer.

use super::*;

impl Compiler<'_> {
    // ---- IKE -----------------------------------------------------------

    pub(super) fn ike(&mut self, r: &ast::IkeRule, cx: &mut Cx<'_>) -> Step<()> {
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
            Some(ast::IkeAuth::PskFile(path)) => {
                let span = r.auth.as_ref().map(|a| a.span);
                IkeAuth::Psk(self.psk_file(path, span, cx)?)
            }
            Some(ast::IkeAuth::Rsa) | None => IkeAuth::Rsa,
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

impl Compiler<'_> {
    /// The secret of `psk file "path"`: the file's text, one final line
    /// break dropped. It is checked as a key file is (see the resolver),
    /// and must be printable text: it is written into isakmpd's
    /// line-based commands as much as handed to iked.
    fn psk_file(
        &self,
        path: &str,
        span: Option<Span>,
        cx: &mut Cx<'_>,
    ) -> Step<zeroize::Zeroizing<String>> {
        const LIMIT: usize = 1024;
        let bytes = self
            .resolver
            .key_file(path)
            .map_err(|why| cx.fatal(span, format!("open {path}: {why}")))?;
        let text = bytes
            .strip_suffix(b"\r\n")
            .or_else(|| bytes.strip_suffix(b"\n"))
            .unwrap_or(&bytes);
        if text.is_empty() || text.len() > LIMIT {
            let what = if text.is_empty() {
                "empty"
            } else {
                "longer than 1024 bytes"
            };
            return Err(cx.fatal(span, format!("{path}: pre-shared key {what}")));
        }
        match std::str::from_utf8(text) {
            Ok(t) if !t.chars().any(char::is_control) => Ok(zeroize::Zeroizing::new(t.to_owned())),
            _ => Err(cx.fatal(
                span,
                format!("{path}: pre-shared key must be one line of printable text"),
            )),
        }
    }
}
