//! An IKE SA's Child SAs: the one set up with it, and those added later
//! with CREATE_CHILD_SA for other rules of the same peer. This end adds
//! one for each rule that shares the IKE SA's terms (ends, proposals,
//! identities, credentials, lifetime), as isakmpd runs the quick modes
//! of all rules for a peer under one phase 1; a peer may add its own
//! (strongSwan does, for a connection of several children). Each is
//! known by the SPI it receives on.

use super::rekeying::{Step, Which};
use super::*;
use crate::exchange::auth::Credentials;

/// Whether rule `b` may have its Child SA under an IKE SA made for rule
/// `a`: the IKE SA is what `b`'s own would be.
pub(super) fn shares_ike(a: &Policy, b: &Policy) -> bool {
    let (x, y) = (&a.config, &b.config);
    let same_credentials = match (&x.credentials, &y.credentials) {
        (Credentials::Psk(k), Credentials::Psk(l)) => {
            use subtle::ConstantTimeEq;
            bool::from(k.as_slice().ct_eq(l.as_slice()))
        }
        // iked has one key and certificate, and one set of authorities.
        (Credentials::Certificate(_), Credentials::Certificate(_)) => true,
        _ => false,
    };
    a.local == b.local
        && a.peer == b.peer
        && a.ike_lifetime == b.ike_lifetime
        && x.ike == y.ike
        && x.local_id == y.local_id
        && x.remote_id == y.remote_id
        && x.child.protocol == y.child.protocol
        && same_credentials
}

/// A Child SA added to an IKE SA after the first, for rule `policy`.
#[derive(Debug)]
pub(super) struct Extra {
    pub policy: usize,
    pub child: ChildSa,
    /// When it went in, and when ipsecd will warn that it needs rekeying.
    pub since: u64,
    pub rekey_at: Option<u64>,
}

impl IkeSa {
    /// Whether rule `index` has, or is getting, a Child SA here.
    pub(super) fn serves(&self, index: usize) -> bool {
        self.policy == index
            || self.extra.iter().any(|e| e.policy == index)
            || matches!(
                self.rekey,
                Some(Step::Reserving(Which::New(p), None) | Step::Sent(Which::New(p), _, _))
                    if p == index
            )
    }

    /// The rules other than its own with a Child SA here, or one on the
    /// way from this end.
    fn riders(&self) -> Vec<usize> {
        let mut rules: Vec<usize> = self.extra.iter().map(|e| e.policy).collect();
        if let Some(Step::Reserving(Which::New(p), None) | Step::Sent(Which::New(p), _, _)) =
            &self.rekey
        {
            rules.push(*p);
        }
        rules.retain(|&p| p != self.policy);
        rules
    }

    /// Up, current, and running no exchange of its own: free to start
    /// one.
    fn free(&self) -> bool {
        matches!(self.state, State::Up(_))
            && !self.superseded
            && self.outstanding.is_none()
            && self.rekey.is_none()
            && self.ike_rekey.is_none()
    }

    /// Every current Child SA, with its rule.
    pub(super) fn children(&self) -> Vec<(usize, &ChildSa)> {
        let mut out = Vec::new();
        if let State::Up(session) = &self.state
            && !self.child_gone
        {
            out.push((self.policy, &session.sa.child));
        }
        out.extend(self.extra.iter().map(|e| (e.policy, &e.child)));
        out
    }

    /// The current Child SA that receives on `spi_in`, with its rule.
    pub(super) fn child(&self, spi_in: u32) -> Option<(usize, &ChildSa)> {
        self.children()
            .into_iter()
            .find(|(_, c)| c.spi_in == spi_in)
    }

    /// The inbound SPI of the current Child SA that sends on `spi_out`
    /// (the SPI the peer receives on, which is how it names it).
    pub(super) fn child_sending(&self, spi_out: u32) -> Option<u32> {
        self.children()
            .into_iter()
            .find(|(_, c)| c.spi_out == spi_out)
            .map(|(_, c)| c.spi_in)
    }

    /// Whether the first Child SA is the one receiving on `spi_in`.
    pub(super) fn is_first(&self, spi_in: u32) -> bool {
        matches!(&self.state, State::Up(s) if !self.child_gone && s.sa.child.spi_in == spi_in)
    }
}

impl Keyer {
    /// Rule `index` waits to add its Child SA under an IKE SA it shares,
    /// up or being set up by this end; `false` if there is none.
    pub(super) fn share(&mut self, index: usize, out: &mut Vec<Action>) -> bool {
        let rule = &self.policies[index];
        let shared = self.sas.iter().any(|sa| {
            !sa.superseded
                && matches!(
                    sa.state,
                    State::Up(_) | State::Reserving | State::Initiating(_)
                )
                && shares_ike(&self.policies[sa.policy], rule)
        });
        if shared {
            self.want[index] = true;
            self.pump_children(out);
        }
        shared
    }

    /// On each free IKE SA, starts the Child SA of the first rule waiting
    /// for it: GETSPI, then CREATE_CHILD_SA (one exchange at a time).
    pub(super) fn pump_children(&mut self, out: &mut Vec<Action>) {
        if !self.want.contains(&true) {
            return;
        }
        for at in 0..self.sas.len() {
            if !self.sas[at].free() {
                continue;
            }
            let owner = &self.policies[self.sas[at].policy];
            let next = (0..self.policies.len())
                .find(|&i| self.want[i] && shares_ike(owner, &self.policies[i]));
            if let Some(index) = next {
                self.want[index] = false;
                self.sas[at].rekey = Some(Step::Reserving(Which::New(index), None));
                self.reserve_for(at, out);
            }
        }
    }

    /// The IKE SA at `at` is given up: the rules with a Child SA under
    /// it, or waiting for one, start again later if they are active.
    pub(super) fn riders_retry(&mut self, at: usize) {
        let owner = self.sas[at].policy;
        let mut rules = self.sas[at].riders();
        for i in 0..self.policies.len() {
            if self.want[i] && shares_ike(&self.policies[owner], &self.policies[i]) {
                self.want[i] = false;
                rules.push(i);
            }
        }
        for i in rules {
            if self.policies[i].start == Start::Active && !self.held[i] {
                self.retry[i] = self.now + RETRY_POLICY;
            }
        }
    }

    /// Rule `index` lets go of its SAs (taken down, or removed): an IKE
    /// SA made for it ends, unless other rules' Child SAs live under it:
    /// then only its own Child SA goes (the peer told) and the IKE SA
    /// passes to one of them. Its Child SAs under other rules' IKE SAs
    /// go too.
    pub(super) fn let_go(
        &mut self,
        index: usize,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        self.want[index] = false;
        self.retry[index] = 0;
        let mut ended = Vec::new();
        for at in 0..self.sas.len() {
            let sa = &self.sas[at];
            if sa.policy != index {
                continue;
            }
            let heir = sa.extra.iter().map(|e| e.policy).find(|&p| p != index);
            match (heir, &sa.state) {
                (Some(heir), State::Up(_)) if !sa.superseded => {
                    self.drop_first(at, rng, out);
                    self.sas[at].policy = heir;
                }
                (_, State::Up(_)) => {
                    self.end(at, rng, out);
                    self.riders_retry(at);
                    ended.push(self.sas[at].spi);
                }
                // Half-made: its reserved SPI goes back.
                _ => {
                    self.riders_retry(at);
                    ended.push(self.sas[at].spi);
                }
            }
        }
        for spi in ended {
            if let Some(at) = self.sas.iter().position(|sa| sa.spi == spi) {
                if !matches!(self.sas[at].state, State::Up(_)) {
                    self.forget_half_open(spi, out);
                } else {
                    self.sas.swap_remove(at);
                }
            }
        }
        self.drop_extras(index, rng, out);
    }

    /// Deletes the first Child SA of the SA at `at`, and tells the peer
    /// when the SA is free to.
    fn drop_first(&mut self, at: usize, rng: &mut dyn CryptoRngCore, out: &mut Vec<Action>) {
        let sa = &self.sas[at];
        let State::Up(session) = &sa.state else {
            return;
        };
        if sa.child_gone {
            return;
        }
        let (protocol, spi_in) = (session.sa.child.suite.protocol, session.sa.child.spi_in);
        self.remove_first(at, out);
        self.tell_deleted(at, protocol, spi_in, rng, out);
    }

    /// Tells the peer that this end deleted its Child SA receiving on
    /// `spi_in`, if the SA at `at` is free to ask (otherwise the peer's
    /// copy lapses with its lifetime or the IKE SA).
    pub(super) fn tell_deleted(
        &mut self,
        at: usize,
        protocol: ProtocolId,
        spi_in: u32,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        if !self.sas[at].free() {
            return;
        }
        let path = self.sas[at].path;
        let delete = Payload::new(Body::Delete(Delete {
            protocol,
            spi_size: 4,
            spis: vec![spi_in.to_be_bytes().to_vec()],
        }));
        if let State::Up(session) = &mut self.sas[at].state
            && let Ok((_, bytes)) = session.request(ExchangeType::INFORMATIONAL, &[delete], rng)
        {
            self.send_request(at, path.local, path.remote, bytes, out);
        }
    }
}
