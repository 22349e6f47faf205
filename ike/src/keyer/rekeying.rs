//! Rekeying Child SAs before they expire: `ipsecd`'s soft `SADB_EXPIRE`
//! for either SA of a Child SA starts a CREATE_CHILD_SA exchange (after
//! GETSPI for the new inbound SPI); once the new SAs are in, this end
//! deletes the old ones with an INFORMATIONAL exchange, and removes them
//! from `ipsecd` when the peer has answered. A peer's rekey request is
//! answered once GETSPI has reserved this end's new SPI; the old SAs stay
//! until the peer deletes them. A peer may also ask for a new Child SA:
//! in place of one it deleted, or for another rule of the same peer
//! (several Child SAs under one IKE SA); it is answered the same way.
//! This end asks for a new Child SA for a rule that shares the IKE SA
//! (see [`super::children`]) the same way, without the REKEY_SA
//! notification. One such exchange runs at a time on an IKE SA.

use super::children::Extra;
use super::*;
use crate::exchange::rekey::{self, Pending, Template};

/// The Child SA an exchange is for: a current one, by its inbound SPI,
/// or a new one for a rule, or a new one asked for a rule since removed
/// or taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    Current(u32),
    New(usize),
    Withdrawn,
}

/// Where a rekey stands.
#[derive(Debug)]
pub(super) enum Step {
    /// GETSPI sent; with the peer's request when it is the peer's.
    Reserving(
        Which,
        Option<(SocketAddr, SocketAddr, Header, Vec<Payload>)>,
    ),
    /// This end's CREATE_CHILD_SA request sent, with this message ID.
    Sent(Which, Pending, u32),
    /// The old Child SA's delete sent, with this message ID.
    Deleting(ChildSa, u32),
}

impl IkeSa {
    /// Rule `index` is gone: a new Child SA for it is not set up (the SPI
    /// reserved for it lapses in `ipsecd`), and one for a later rule
    /// follows its number down.
    pub(super) fn rekey_for_removed_rule(&mut self, index: usize) {
        match &mut self.rekey {
            Some(Step::Reserving(Which::New(p), _)) if *p == index => self.rekey = None,
            // Asked for: what the peer made of it is deleted.
            Some(Step::Sent(which @ Which::New(_), _, _)) if *which == Which::New(index) => {
                *which = Which::Withdrawn;
            }
            Some(Step::Reserving(Which::New(p), _) | Step::Sent(Which::New(p), _, _))
                if *p > index =>
            {
                *p -= 1;
            }
            _ => {}
        }
    }
}

impl Keyer {
    /// `SADB_EXPIRE`: a soft one for an SA of a Child SA starts its rekey.
    pub(super) fn expired(&mut self, m: &pfkey::Message, out: &mut Vec<Action>) {
        let soft = m.get(pfkey::ExtType::LIFETIME_SOFT).is_some();
        let Some(pfkey::Body::Sa(sa)) = m.get(pfkey::ExtType::SA) else {
            return;
        };
        let found = self.sas.iter().enumerate().find_map(|(at, s)| {
            if s.superseded {
                return None;
            }
            s.children()
                .into_iter()
                .find(|(_, c)| c.spi_in == sa.spi || c.spi_out == sa.spi)
                .map(|(policy, c)| (at, policy, c.spi_in))
        });
        let Some((at, policy, spi_in)) = found else {
            return;
        };
        if !soft {
            let name = &self.policies[policy].name;
            out.push(Action::Log(format!(
                "{name}: SA {:#010x} reached its hard lifetime before a rekey",
                sa.spi
            )));
            return;
        }
        self.start_rekey(at, spi_in, out);
    }

    /// Starts this end's rekey of the Child SA receiving on `spi_in`, or,
    /// while another exchange of the kind runs, a second later.
    pub(super) fn start_rekey(&mut self, at: usize, spi_in: u32, out: &mut Vec<Action>) {
        let sa = &mut self.sas[at];
        if sa.child(spi_in).is_none() {
            return;
        }
        if sa.rekey.is_some() {
            sa.rekey_again = Some((self.now + 1, spi_in));
            return;
        }
        sa.rekey = Some(Step::Reserving(Which::Current(spi_in), None));
        self.reserve_for(at, out);
    }

    /// The rule a Child SA of the SA at `at` belongs to.
    fn rule_of(&self, at: usize, which: Which) -> Option<usize> {
        match which {
            Which::Current(spi_in) => self.sas[at].child(spi_in).map(|(policy, _)| policy),
            Which::New(policy) => (policy < self.policies.len()).then_some(policy),
            Which::Withdrawn => None,
        }
    }

    /// GETSPI for the new Child SA of the SA at `at`.
    pub(super) fn reserve_for(&mut self, at: usize, out: &mut Vec<Action>) {
        let which = match &self.sas[at].rekey {
            Some(Step::Reserving(which, _)) => *which,
            _ => return,
        };
        let Some(policy) = self.rule_of(at, which) else {
            return;
        };
        let (spi, path) = (self.sas[at].spi, self.sas[at].path);
        let protocol = self.policies[policy].config.child.protocol;
        let ends = Ends {
            local: path.local.ip(),
            remote: path.remote.ip(),
        };
        self.reserve(spi, protocol, ends, out);
    }

    /// The rule a peer's request for a new Child SA on the SA at `at` is
    /// for: the SA's own, in place of a Child SA the peer deleted, or
    /// another for the same peer that has none here yet; the first whose
    /// selectors and mode the request fits.
    fn rule_for_new(&self, at: usize, payloads: &[Payload]) -> Option<usize> {
        let sa = &self.sas[at];
        let protocol = self.policies[sa.policy].config.child.protocol;
        let present =
            |i: usize| (i == sa.policy && !sa.child_gone) || sa.extra.iter().any(|e| e.policy == i);
        self.answering(sa.path.local.ip(), sa.path.remote.ip())
            .into_iter()
            .find(|&i| {
                let p = &self.policies[i];
                !present(i) && p.config.child.protocol == protocol && template_of(p).fits(payloads)
            })
    }

    /// A peer's CREATE_CHILD_SA request: a rekey of a current Child SA,
    /// or a new one, answered once this end's new SPI is reserved.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn peer_rekey(
        &mut self,
        at: usize,
        local: SocketAddr,
        remote: SocketAddr,
        h: Header,
        payloads: Vec<Payload>,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        use crate::wire::NotifyType;
        let busy = self.sas[at].rekey.is_some() || self.sas[at].ike_rekey.is_some();
        let wanted = match rekey::rekeyed_spi(&payloads) {
            Some(spi_out) => self.sas[at]
                .child_sending(spi_out)
                .map(Which::Current)
                .ok_or(NotifyType::CHILD_SA_NOT_FOUND),
            None => self
                .rule_for_new(at, &payloads)
                .map(Which::New)
                .ok_or(NotifyType::TS_UNACCEPTABLE),
        };
        let refuse = match wanted {
            // Both ends at it at once: this end's goes on.
            Ok(_) if busy => Some(NotifyType::TEMPORARY_FAILURE),
            Ok(_) => None,
            Err(kind) => Some(kind),
        };
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        if let Some(kind) = refuse {
            let note = [Payload::new(Body::Notify(crate::wire::Notify::new(
                kind,
                Vec::new(),
            )))];
            if let Ok(response) = session.respond(&h, &note, rng) {
                out.push(Action::Send {
                    local,
                    remote,
                    bytes: response,
                });
            }
            return;
        }
        let Ok(which) = wanted else { return };
        self.sas[at].rekey = Some(Step::Reserving(which, Some((local, remote, h, payloads))));
        self.reserve_for(at, out);
    }

    /// GETSPI answered for an established SA: send this end's rekey
    /// request, or answer the peer's.
    pub(super) fn rekey_spi(
        &mut self,
        at: usize,
        spi_in: u32,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let Some(Step::Reserving(which, peer)) = self.sas[at].rekey.take() else {
            return;
        };
        let path = self.sas[at].path;
        let Some(policy) = self.rule_of(at, which) else {
            // The Child SA went meanwhile.
            let protocol = self.policies[self.sas[at].policy].config.child.protocol;
            return self.release(protocol, spi_in, path, out);
        };
        let config = self.policies[policy].config.clone();
        let template = match which {
            Which::Current(old) => self.sas[at].child(old).map(|(_, c)| Template::of(c)),
            Which::New(_) => Some(template_of(&self.policies[policy])),
            Which::Withdrawn => None,
        };
        let current = match which {
            Which::Current(old) => self.sas[at].child(old).map(|(_, c)| c.clone()),
            Which::New(_) | Which::Withdrawn => None,
        };
        let held = matches!(which, Which::New(p) if self.held[p]);
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        let nat = session.sa.nat.is_some_and(|n| n.any());
        match (peer, current) {
            (None, Some(current)) => {
                let (pending, payloads) = rekey::request(&config, &current, spi_in, rng);
                match session.request(ExchangeType::CREATE_CHILD_SA, &payloads, rng) {
                    Ok((id, bytes)) => {
                        let which = Which::Current(current.spi_in);
                        self.sas[at].rekey = Some(Step::Sent(which, pending, id));
                        self.send_request(at, path.local, path.remote, bytes, out);
                    }
                    Err(e) => out.push(Action::Log(format!("rekey request: {e:?}"))),
                }
            }
            // A Child SA of this end's for a rule that shares the IKE SA.
            (None, None) if matches!(which, Which::New(_)) && !held => {
                let template = template_of(&self.policies[policy]);
                let (pending, payloads) = rekey::request_new(&config, &template, spi_in, rng);
                match session.request(ExchangeType::CREATE_CHILD_SA, &payloads, rng) {
                    Ok((id, bytes)) => {
                        self.sas[at].rekey = Some(Step::Sent(which, pending, id));
                        self.send_request(at, path.local, path.remote, bytes, out);
                    }
                    Err(e) => out.push(Action::Log(format!("Child SA request: {e:?}"))),
                }
            }
            (Some((local, remote, h, payloads)), _) => {
                // The Child SA to replace went, or the rule was taken
                // down, while the SPI was reserved.
                let answer = match template {
                    Some(template) if !held => {
                        rekey::respond(&config, &session.sa, &template, &payloads, spi_in, rng)
                    }
                    _ => Err(Failure::Selectors),
                };
                let (response, child) = match answer {
                    Ok((response, child)) => (response, Some(child)),
                    Err(why) => {
                        let kind = why
                            .notify()
                            .unwrap_or(crate::wire::NotifyType::NO_PROPOSAL_CHOSEN);
                        let note = vec![Payload::new(Body::Notify(crate::wire::Notify::new(
                            kind,
                            Vec::new(),
                        )))];
                        out.push(Action::Log(format!(
                            "{}: refused the peer's Child SA: {why}",
                            self.policies[policy].name
                        )));
                        (note, None)
                    }
                };
                if let Ok(bytes) = session.respond(&h, &response, rng) {
                    out.push(Action::Send {
                        local,
                        remote,
                        bytes,
                    });
                }
                match child {
                    Some(child) => self.put_child(at, which, policy, child, nat, out),
                    // Refused: the SPI reserved for it goes back.
                    None => self.release(config.child.protocol, spi_in, path, out),
                }
            }
            (None, None) => self.release(config.child.protocol, spi_in, path, out),
        }
    }

    /// The new Child SA goes in: in place of the current one `which`
    /// names (kept until it is deleted), or as a new one for its rule.
    fn put_child(
        &mut self,
        at: usize,
        which: Which,
        policy: usize,
        child: ChildSa,
        nat: bool,
        out: &mut Vec<Action>,
    ) {
        if which == Which::Withdrawn {
            return;
        }
        let path = self.sas[at].path;
        let soft = self.install_child(policy, &child, path, nat, out);
        let rekey_at = soft.map(|s| self.now + s);
        let name = &self.policies[policy].name;
        let (spi_in, spi_out) = (child.spi_in, child.spi_out);
        let sa = &mut self.sas[at];
        let first = match which {
            Which::Current(old) => sa.is_first(old),
            // In place of the first Child SA, which the peer deleted.
            Which::New(p) => p == sa.policy && sa.child_gone,
            Which::Withdrawn => false,
        };
        let what = match which {
            Which::Current(_) => "Child SA rekeyed",
            Which::New(_) | Which::Withdrawn => "Child SA added",
        };
        out.push(Action::Log(format!(
            "{name}: {what}, {spi_in:#010x} in, {spi_out:#010x} out"
        )));
        if first {
            let gone = std::mem::replace(&mut sa.child_gone, false);
            sa.child_since = self.now;
            sa.child_rekey_at = rekey_at;
            if let State::Up(session) = &mut sa.state {
                let old = std::mem::replace(&mut session.sa.child, child);
                // A deleted Child SA's SAs are gone already.
                if !gone {
                    sa.old.push(old);
                }
            }
            return;
        }
        let extra = Extra {
            policy,
            child,
            since: self.now,
            rekey_at,
        };
        match which {
            Which::Current(old) => {
                if let Some(e) = sa.extra.iter_mut().find(|e| e.child.spi_in == old) {
                    let replaced = std::mem::replace(e, extra);
                    sa.old.push(replaced.child);
                }
            }
            Which::New(_) | Which::Withdrawn => sa.extra.push(extra),
        }
    }

    /// The peer answered this end's request with ID `id`.
    pub(super) fn rekey_response(
        &mut self,
        at: usize,
        id: u32,
        payloads: &[Payload],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        match self.sas[at].rekey.take() {
            Some(Step::Sent(Which::Current(old_spi), pending, sent)) if sent == id => {
                let path = self.sas[at].path;
                let reserved = pending.spi_in;
                let Some((policy, current)) =
                    self.sas[at].child(old_spi).map(|(p, c)| (p, c.clone()))
                else {
                    let protocol = self.policies[self.sas[at].policy].config.child.protocol;
                    return self.release(protocol, reserved, path, out);
                };
                let config = self.policies[policy].config.clone();
                let State::Up(session) = &self.sas[at].state else {
                    return;
                };
                let nat = session.sa.nat.is_some_and(|n| n.any());
                let template = Template::of(&current);
                let outcome = rekey::complete(pending, &config, &session.sa, &template, payloads);
                if outcome.is_err() {
                    // The SPI reserved for the new SA goes back.
                    self.release(config.child.protocol, reserved, path, out);
                }
                match outcome {
                    Ok(child) => {
                        self.put_child(at, Which::Current(old_spi), policy, child, nat, out);
                        // This end replaced the SA: it deletes the old one.
                        let Some(old) = self.sas[at].old.pop() else {
                            return;
                        };
                        let delete = Payload::new(Body::Delete(Delete {
                            protocol: old.suite.protocol,
                            spi_size: 4,
                            spis: vec![old.spi_in.to_be_bytes().to_vec()],
                        }));
                        let State::Up(session) = &mut self.sas[at].state else {
                            return;
                        };
                        if let Ok((id, bytes)) =
                            session.request(ExchangeType::INFORMATIONAL, &[delete], rng)
                        {
                            self.sas[at].rekey = Some(Step::Deleting(old, id));
                            self.send_request(at, path.local, path.remote, bytes, out);
                        }
                    }
                    Err(Failure::Refused(crate::wire::NotifyType::TEMPORARY_FAILURE)) => {
                        // The peer is rekeying too: try again in a
                        // moment, one to three seconds as this SA's SPI
                        // says, so that the two ends part.
                        let wait = 1 + self.sas[at].spi % 3;
                        self.sas[at].rekey_again = Some((self.now + wait, old_spi));
                    }
                    Err(why) => out.push(Action::Log(format!(
                        "{}: the peer refused the rekey: {why}",
                        self.policies[policy].name
                    ))),
                }
            }
            Some(Step::Sent(which, pending, sent)) if sent == id => {
                self.new_child_answered(at, which, pending, payloads, rng, out);
            }
            Some(Step::Deleting(old, sent)) if sent == id => {
                let path = self.sas[at].path;
                self.delete_sas(old.suite.protocol, old.spi_in, old.spi_out, path, out);
            }
            other => self.sas[at].rekey = other,
        }
    }

    /// The peer answered this end's request for a new Child SA.
    fn new_child_answered(
        &mut self,
        at: usize,
        which: Which,
        pending: Pending,
        payloads: &[Payload],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let path = self.sas[at].path;
        let reserved = pending.spi_in;
        let protocol = self.policies[self.sas[at].policy].config.child.protocol;
        let refused = |why: &Failure| matches!(why, Failure::Refused(_));
        let policy = match which {
            Which::New(p) if !self.held[p] => p,
            // The rule went, or was taken down, meanwhile: the SPI goes
            // back, and the peer deletes what it made.
            _ => {
                self.release(protocol, reserved, path, out);
                let answer = payloads.iter().find_map(|p| match &p.body {
                    Body::Notify(n) if n.kind.is_error() => Some(n.kind),
                    _ => None,
                });
                if answer.is_none() {
                    self.tell_deleted(at, protocol, reserved, rng, out);
                }
                return;
            }
        };
        let config = self.policies[policy].config.clone();
        let State::Up(session) = &self.sas[at].state else {
            return;
        };
        let nat = session.sa.nat.is_some_and(|n| n.any());
        let template = template_of(&self.policies[policy]);
        match rekey::complete(pending, &config, &session.sa, &template, payloads) {
            Ok(child) => self.put_child(at, Which::New(policy), policy, child, nat, out),
            Err(why) => {
                self.release(config.child.protocol, reserved, path, out);
                if !refused(&why) {
                    // The peer made a Child SA this end cannot take.
                    self.tell_deleted(at, config.child.protocol, reserved, rng, out);
                }
                if why == Failure::Refused(crate::wire::NotifyType::TEMPORARY_FAILURE) {
                    // The peer is busy with an exchange of its own: in a
                    // moment, one to three seconds as this SA's SPI says.
                    self.retry[policy] = self.now + 1 + self.sas[at].spi % 3;
                    return;
                }
                let peer = path.remote.ip();
                let what = format!(
                    "{}: Child SA with {peer} failed: {why}",
                    self.policies[policy].name
                );
                out.extend(self.failures.line(peer, self.now, what).map(Action::Log));
                if self.policies[policy].start == Start::Active {
                    self.retry[policy] = self.now + RETRY_POLICY;
                }
            }
        }
    }

    /// Gives back an SPI reserved with GETSPI and never keyed.
    pub(super) fn release(
        &mut self,
        protocol: ProtocolId,
        spi: u32,
        path: Path,
        out: &mut Vec<Action>,
    ) {
        let satype = match protocol {
            ProtocolId::AH => SaType::AH,
            _ => SaType::ESP,
        };
        let seq = self.next_seq();
        let m = delete_message(
            satype,
            spi,
            path.remote.ip(),
            path.local.ip(),
            seq,
            self.pid,
        );
        self.pending.push((seq, Waiting::Nothing));
        out.push(Action::PfKey(m.encode()));
    }
}

/// What a new Child SA for `policy` may be.
fn template_of(policy: &Policy) -> Template {
    Template {
        transport: policy.config.transport,
        ts_local: policy.config.ts_local.clone(),
        ts_remote: policy.config.ts_remote.clone(),
    }
}
