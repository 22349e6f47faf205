//! Rekeying the IKE SA before its lifetime (the rule's `main lifetime`)
//! runs out: this end asks with CREATE_CHILD_SA between 80% and 90% of
//! it, when nothing else is under way on the SA; the new SA takes the
//! Child SAs over and the old one is deleted by the end that asked. A
//! peer's request is answered at once, or put off with TEMPORARY_FAILURE
//! while this end is rekeying something itself. The old SA, superseded,
//! only waits for its delete.

use super::*;
use crate::exchange::ike_rekey::{self, NewSa};

/// Seconds before trying again a rekey the peer refused outright.
const AGAIN_AFTER_REFUSAL: u64 = 60;

impl Keyer {
    /// When this end should rekey an IKE SA of `policy` with SPI `spi`
    /// made now, if ever.
    pub(super) fn ike_rekey_time(&self, policy: usize, spi: u64) -> Option<u64> {
        let hard = self.policies[policy].ike_lifetime;
        (hard > 0).then(|| self.now + soft_lifetime(hard, spi))
    }

    /// Starts this end's rekey of the IKE SA at `at` if it is due and
    /// the SA is quiet.
    pub(super) fn maybe_rekey_ike(
        &mut self,
        at: usize,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let sa = &self.sas[at];
        let due = sa.ike_rekey_at.is_some_and(|t| self.now >= t);
        let busy = sa.superseded
            || sa.ike_rekey.is_some()
            || sa.rekey.is_some()
            || sa.outstanding.is_some()
            || !sa.old.is_empty();
        if !due || busy || !matches!(sa.state, State::Up(_)) {
            return;
        }
        let (policy, path) = (sa.policy, sa.path);
        let spi = self.fresh_spi(rng);
        let offer = self.policies[policy].config.ike.clone();
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        let (pending, payloads) = ike_rekey::request(&offer, &session.sa.suite, spi, rng);
        match session.request(ExchangeType::CREATE_CHILD_SA, &payloads, rng) {
            Ok((id, bytes)) => {
                self.sas[at].ike_rekey = Some((id, pending));
                self.send_request(at, path.local, path.remote, bytes, out);
            }
            Err(why) => out.push(Action::Log(format!("IKE SA rekey request: {why}"))),
        }
    }

    /// The peer's answer to this end's request with ID `id`, if it was
    /// the IKE SA's rekey; whether it was.
    pub(super) fn ike_rekey_response(
        &mut self,
        at: usize,
        id: u32,
        payloads: &[Payload],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) -> bool {
        let pending = match self.sas[at].ike_rekey.take() {
            Some((sent, pending)) if sent == id => pending,
            other => {
                self.sas[at].ike_rekey = other;
                return false;
            }
        };
        let policy = self.sas[at].policy;
        let offer = self.policies[policy].config.ike.clone();
        let State::Up(session) = &self.sas[at].state else {
            return true;
        };
        match ike_rekey::complete(pending, &offer, &session.sa, payloads) {
            Ok(new) => {
                self.replace_ike(at, new, out);
                // This end asked: it deletes the old SA.
                let path = self.sas[at].path;
                let delete = Payload::new(Body::Delete(Delete {
                    protocol: ProtocolId::IKE,
                    spi_size: 0,
                    spis: Vec::new(),
                }));
                let State::Up(session) = &mut self.sas[at].state else {
                    return true;
                };
                if let Ok((id, bytes)) =
                    session.request(ExchangeType::INFORMATIONAL, &[delete], rng)
                {
                    self.sas[at].delete_sent = Some(id);
                    self.send_request(at, path.local, path.remote, bytes, out);
                }
            }
            Err(why) if ike_rekey::put_off(&why) => {
                // The peer is rekeying too: again in one to three
                // seconds, as this SA's SPI says, so that the ends part.
                self.sas[at].ike_rekey_at = Some(self.now + 1 + self.sas[at].spi % 3);
            }
            Err(why) => {
                out.push(Action::Log(format!(
                    "{}: the peer refused to rekey the IKE SA: {why}",
                    self.policies[policy].name
                )));
                self.sas[at].ike_rekey_at = Some(self.now + AGAIN_AFTER_REFUSAL);
            }
        }
        true
    }

    /// The peer's request to rekey the IKE SA at `at`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn peer_ike_rekey(
        &mut self,
        at: usize,
        local: SocketAddr,
        remote: SocketAddr,
        h: Header,
        payloads: Vec<Payload>,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let sa = &self.sas[at];
        let busy =
            sa.superseded || sa.ike_rekey.is_some() || sa.rekey.is_some() || !sa.old.is_empty();
        let policy = sa.policy;
        let spi = self.fresh_spi(rng);
        let offer = self.policies[policy].config.ike.clone();
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        let answer = if busy {
            Err(Failure::Refused(crate::wire::NotifyType::TEMPORARY_FAILURE))
        } else {
            ike_rekey::respond(&offer, &session.sa, &payloads, spi, rng)
        };
        let (response, new) = match answer {
            Ok((response, new)) => (response, Some(new)),
            Err(why) => {
                let kind = match &why {
                    Failure::Refused(kind) => *kind,
                    other => other
                        .notify()
                        .unwrap_or(crate::wire::NotifyType::NO_PROPOSAL_CHOSEN),
                };
                if !busy {
                    out.push(Action::Log(format!(
                        "{}: refused the peer's IKE SA rekey: {why}",
                        self.policies[policy].name
                    )));
                }
                let note = Payload::new(Body::Notify(crate::wire::Notify::new(kind, Vec::new())));
                (vec![note], None)
            }
        };
        if let Ok(bytes) = session.respond(&h, &response, rng) {
            out.push(Action::Send {
                local,
                remote,
                bytes,
            });
        }
        if let Some(new) = new {
            self.replace_ike(at, new, out);
        }
    }

    /// The IKE SA at `at` is rekeyed: a new SA with `new`'s SPIs and keys
    /// takes its Child SAs and what belongs to them; the old one stays,
    /// superseded, until deleted.
    fn replace_ike(&mut self, at: usize, new: NewSa, out: &mut Vec<Action>) {
        let old = &mut self.sas[at];
        let State::Up(session) = &old.state else {
            return;
        };
        let e = &session.sa;
        let established = Established {
            spi_i: new.spi_i,
            spi_r: new.spi_r,
            initiator: new.initiator,
            suite: new.suite,
            keys: new.keys,
            ni: new.ni,
            nr: new.nr,
            peer_id: e.peer_id.clone(),
            nat: e.nat,
            child: e.child.clone(),
        };
        let (own, peer) = if new.initiator {
            (new.spi_i, new.spi_r)
        } else {
            (new.spi_r, new.spi_i)
        };
        let state = State::Up(Box::new(Session::rekeyed(established)));
        let mut sa = IkeSa::new(own, peer, old.policy, old.path, state, self.now);
        sa.child_spi = old.child_spi;
        sa.child_gone = old.child_gone;
        sa.child_since = old.child_since;
        sa.child_rekey_at = old.child_rekey_at;
        sa.rekey_again = old.rekey_again.take();
        sa.old = std::mem::take(&mut old.old);
        sa.extra = std::mem::take(&mut old.extra);
        sa.heard = self.now;
        old.superseded = true;
        old.ike_rekey_at = None;
        let policy = sa.policy;
        sa.ike_rekey_at = self.ike_rekey_time(policy, own);
        out.push(Action::Log(format!(
            "{}: IKE SA with {} rekeyed, now {:016x}:{:016x}",
            self.policies[policy].name,
            sa.path.remote.ip(),
            new.spi_i,
            new.spi_r
        )));
        self.sas.push(sa);
    }

    /// Forgets a superseded IKE SA: its Child SAs live on in the new one.
    pub(super) fn forget_superseded(&mut self, at: usize) {
        self.sas.swap_remove(at);
    }
}
