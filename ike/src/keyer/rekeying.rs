//! Rekeying the Child SA before it expires: `ipsecd`'s soft `SADB_EXPIRE`
//! for either of its SAs starts a CREATE_CHILD_SA exchange (after GETSPI
//! for the new inbound SPI); once the new SAs are in, this end deletes the
//! old one with an INFORMATIONAL exchange, and removes it from `ipsecd`
//! when the peer has answered. A peer's rekey request is answered once
//! GETSPI has reserved this end's new SPI; the old SAs stay until the
//! peer deletes them. A peer that deleted the Child SA may ask for a new
//! one in its place, which is answered the same way.

use super::*;
use crate::exchange::rekey::{self, Pending};

/// Where a rekey stands.
#[derive(Debug)]
pub(super) enum Step {
    /// GETSPI sent; with the peer's request when it is the peer's rekey.
    Reserving(Option<(SocketAddr, SocketAddr, Header, Vec<Payload>)>),
    /// This end's CREATE_CHILD_SA request sent, with this message ID.
    Sent(Pending, u32),
    /// The old Child SA's delete sent, with this message ID.
    Deleting(ChildSa, u32),
}

impl Keyer {
    /// `SADB_EXPIRE`: a soft one for a Child SA's SA starts its rekey.
    pub(super) fn expired(&mut self, m: &pfkey::Message, out: &mut Vec<Action>) {
        let soft = m.get(pfkey::ExtType::LIFETIME_SOFT).is_some();
        let Some(pfkey::Body::Sa(sa)) = m.get(pfkey::ExtType::SA) else {
            return;
        };
        let found = self.sas.iter().position(|s| match &s.state {
            State::Up(session) if !s.superseded => {
                let c = &session.sa.child;
                c.spi_in == sa.spi || c.spi_out == sa.spi
            }
            _ => false,
        });
        let Some(at) = found else { return };
        if !soft {
            let name = &self.policies[self.sas[at].policy].name;
            out.push(Action::Log(format!(
                "{name}: SA {:#010x} reached its hard lifetime before a rekey",
                sa.spi
            )));
            return;
        }
        self.start_rekey(at, out);
    }

    /// Starts this end's rekey of the SA at `at`'s Child SA, unless one is
    /// under way.
    pub(super) fn start_rekey(&mut self, at: usize, out: &mut Vec<Action>) {
        if self.sas[at].rekey.is_some() || !matches!(self.sas[at].state, State::Up(_)) {
            return;
        }
        self.sas[at].rekey = Some(Step::Reserving(None));
        self.reserve_for(at, out);
    }

    /// GETSPI for the new Child SA of the SA at `at`.
    fn reserve_for(&mut self, at: usize, out: &mut Vec<Action>) {
        let (spi, path) = (self.sas[at].spi, self.sas[at].path);
        let protocol = self.policies[self.sas[at].policy].config.child.protocol;
        let ends = Ends {
            local: path.local.ip(),
            remote: path.remote.ip(),
        };
        self.reserve(spi, protocol, ends, out);
    }

    /// A peer's CREATE_CHILD_SA request: a rekey of the current Child SA
    /// is answered once this end's new SPI is reserved; anything else is
    /// not in this version.
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
        let busy = self.sas[at].rekey.is_some();
        let gone = self.sas[at].child_gone;
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        let current = session.sa.child.spi_out;
        let refuse = match rekey::rekeyed_spi(&payloads) {
            Some(spi) if spi == current && !busy => None,
            // Both ends rekeying at once: this end's goes on.
            Some(spi) if spi == current => Some(crate::wire::NotifyType::TEMPORARY_FAILURE),
            Some(_) => Some(crate::wire::NotifyType::CHILD_SA_NOT_FOUND),
            // A new Child SA in place of one the peer deleted.
            None if gone && !busy => None,
            None => Some(crate::wire::NotifyType::NO_ADDITIONAL_SAS),
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
        self.sas[at].rekey = Some(Step::Reserving(Some((local, remote, h, payloads))));
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
        let Some(Step::Reserving(peer)) = self.sas[at].rekey.take() else {
            return;
        };
        let policy = self.sas[at].policy;
        let path = self.sas[at].path;
        let config = self.policies[policy].config.clone();
        let nat = matches!(&self.sas[at].state, State::Up(s) if s.sa.nat.is_some_and(|n| n.any()));
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        match peer {
            None => {
                let (pending, payloads) = rekey::request(&config, &session.sa.child, spi_in, rng);
                match session.request(ExchangeType::CREATE_CHILD_SA, &payloads, rng) {
                    Ok((id, bytes)) => {
                        self.sas[at].rekey = Some(Step::Sent(pending, id));
                        self.send_request(at, path.local, path.remote, bytes, out);
                    }
                    Err(e) => out.push(Action::Log(format!("rekey request: {e:?}"))),
                }
            }
            Some((local, remote, h, payloads)) => {
                let answer = rekey::respond(
                    &config,
                    &session.sa,
                    &session.sa.child,
                    &payloads,
                    spi_in,
                    rng,
                );
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
                        out.push(Action::Log(format!("refused the peer's rekey: {why}")));
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
                    Some(child) => self.replace_child(at, policy, child, path, nat, out),
                    // Refused: the SPI reserved for it goes back.
                    None => self.release(config.child.protocol, spi_in, path, out),
                }
            }
        }
    }

    /// The new Child SA goes in and becomes the current one; the old one
    /// is kept until it is deleted.
    fn replace_child(
        &mut self,
        at: usize,
        policy: usize,
        child: ChildSa,
        path: Path,
        nat: bool,
        out: &mut Vec<Action>,
    ) {
        self.install_child(policy, &child, path, nat, out);
        out.push(Action::Log(format!(
            "{}: Child SA rekeyed, {:#010x} in, {:#010x} out",
            self.policies[policy].name, child.spi_in, child.spi_out
        )));
        let gone = std::mem::replace(&mut self.sas[at].child_gone, false);
        if let State::Up(session) = &mut self.sas[at].state {
            let old = std::mem::replace(&mut session.sa.child, child);
            // A deleted Child SA's SAs are gone already.
            if !gone {
                self.sas[at].old.push(old);
            }
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
            Some(Step::Sent(pending, sent)) if sent == id => {
                let policy = self.sas[at].policy;
                let path = self.sas[at].path;
                let config = self.policies[policy].config.clone();
                let State::Up(session) = &self.sas[at].state else {
                    return;
                };
                let nat = session.sa.nat.is_some_and(|n| n.any());
                let reserved = pending.spi_in;
                let protocol = config.child.protocol;
                let outcome =
                    rekey::complete(pending, &config, &session.sa, &session.sa.child, payloads);
                if outcome.is_err() {
                    // The SPI reserved for the new SA goes back.
                    self.release(protocol, reserved, path, out);
                }
                match outcome {
                    Ok(child) => {
                        self.replace_child(at, policy, child, path, nat, out);
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
                        self.sas[at].rekey_again = self.now + wait;
                    }
                    Err(why) => out.push(Action::Log(format!(
                        "{}: the peer refused the rekey: {why}",
                        self.policies[policy].name
                    ))),
                }
            }
            Some(Step::Deleting(old, sent)) if sent == id => {
                let path = self.sas[at].path;
                self.delete_sas(old.suite.protocol, old.spi_in, old.spi_out, path, out);
            }
            other => self.sas[at].rekey = other,
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
