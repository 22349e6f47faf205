//! Manual SA and tcpmd5 rules: checked, expanded, reversed and bundled.

use super::*;

/// Where the parts of an SA rule were written, to point at problems.
#[derive(Debug, Default)]
pub(super) struct SaSpans {
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

impl Compiler<'_> {
    // ---- SAs -----------------------------------------------------------

    pub(super) fn sa(&mut self, r: &ast::SaRule, cx: &mut Cx<'_>) -> Step<()> {
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

    pub(super) fn tcpmd5(&mut self, r: &ast::Tcpmd5Rule, cx: &mut Cx<'_>) -> Step<()> {
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
