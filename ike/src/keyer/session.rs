//! The messages of an established IKE SA: the peer's requests (liveness
//! checks, deletes, rekeys of the Child SA) and the responses to this
//! end's.

use super::*;

impl Keyer {
    /// A message for the established SA at `at`.
    pub(super) fn session(
        &mut self,
        at: usize,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        let received = session.receive(bytes);
        if received.is_ok() {
            self.sas[at].heard = self.now;
        }
        match received {
            Ok(Incoming::Repeat(again)) => out.push(Action::Send {
                local,
                remote,
                bytes: again,
            }),
            Ok(Incoming::Request(h, payloads)) => {
                self.peer_request(at, local, remote, h, payloads, rng, out)
            }
            Ok(Incoming::Response(h, payloads)) => {
                let answered = self.sas[at]
                    .outstanding
                    .as_ref()
                    .and_then(|o| Header::peek(&o.bytes).ok())
                    .is_some_and(|o| o.message_id == h.message_id);
                if answered {
                    self.sas[at].outstanding = None;
                    if self.sas[at].superseded {
                        if self.sas[at].delete_sent == Some(h.message_id) {
                            // The answer to its delete: it is gone.
                            self.forget_superseded(at);
                        }
                        return;
                    }
                    if !self.ike_rekey_response(at, h.message_id, &payloads, rng, out) {
                        self.rekey_response(at, h.message_id, &payloads, rng, out);
                    }
                }
            }
            Err(Failure::Unprotected(_)) => self.drops.unprotected += 1,
            Err(_) => self.drops.malformed += 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn peer_request(
        &mut self,
        at: usize,
        local: SocketAddr,
        remote: SocketAddr,
        h: Header,
        payloads: Vec<Payload>,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        if self.sas[at].superseded {
            return self.superseded_request(at, local, remote, h, &payloads, rng, out);
        }
        if h.exchange == ExchangeType::CREATE_CHILD_SA {
            if crate::exchange::ike_rekey::is_request(&payloads) {
                return self.peer_ike_rekey(at, local, remote, h, payloads, rng, out);
            }
            return self.peer_rekey(at, local, remote, h, payloads, rng, out);
        }
        if !matches!(self.sas[at].state, State::Up(_)) {
            return;
        }
        let mut answer = Vec::new();
        let mut gone_old = Vec::new();
        let mut gone_current = false;
        let mut gone_extra = Vec::new();
        let mut deletes_ike = false;
        if h.exchange == ExchangeType::INFORMATIONAL {
            for p in &payloads {
                let Body::Delete(d) = &p.body else { continue };
                if d.protocol == ProtocolId::IKE {
                    deletes_ike = true;
                    continue;
                }
                // The peer names its inbound SPIs: this end's outbound.
                for spi in &d.spis {
                    let Ok(spi) = <[u8; 4]>::try_from(spi.as_slice()).map(u32::from_be_bytes)
                    else {
                        continue;
                    };
                    let sa = &self.sas[at];
                    let mine = if let Some(old) = sa.old.iter().find(|c| c.spi_out == spi) {
                        gone_old.push(old.spi_out);
                        Some(old.spi_in)
                    } else if let Some(spi_in) = sa.child_sending(spi) {
                        if sa.is_first(spi_in) {
                            gone_current = true;
                        } else {
                            gone_extra.push(spi_in);
                        }
                        Some(spi_in)
                    } else {
                        None
                    };
                    if let Some(mine) = mine {
                        answer.push(Payload::new(Body::Delete(Delete {
                            protocol: d.protocol,
                            spi_size: 4,
                            spis: vec![mine.to_be_bytes().to_vec()],
                        })));
                    }
                }
            }
        } else {
            answer.push(Payload::new(Body::Notify(crate::wire::Notify::new(
                crate::wire::NotifyType::INVALID_SYNTAX,
                Vec::new(),
            ))));
        }
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        if let Ok(response) = session.respond(&h, &answer, rng) {
            out.push(Action::Send {
                local,
                remote,
                bytes: response,
            });
        }
        let path = self.sas[at].path;
        for spi_out in gone_old {
            if let Some(i) = self.sas[at].old.iter().position(|c| c.spi_out == spi_out) {
                let old = self.sas[at].old.remove(i);
                self.delete_sas(old.suite.protocol, old.spi_in, old.spi_out, path, out);
            }
        }
        for spi_in in gone_extra {
            if let Some(i) = self.sas[at]
                .extra
                .iter()
                .position(|e| e.child.spi_in == spi_in)
            {
                let e = self.sas[at].extra.remove(i);
                let c = &e.child;
                self.delete_sas(c.suite.protocol, c.spi_in, c.spi_out, path, out);
            }
        }
        if deletes_ike {
            self.remove_children(at, out);
        } else if gone_current {
            self.remove_first(at, out);
        }
        if deletes_ike {
            let olds = std::mem::take(&mut self.sas[at].old);
            for old in olds {
                self.delete_sas(old.suite.protocol, old.spi_in, old.spi_out, path, out);
            }
            let spi = self.sas[at].spi;
            let name = self.policies[self.sas[at].policy].name.clone();
            self.sas.retain(|sa| sa.spi != spi);
            out.push(Action::Log(format!(
                "{name}: the peer {} deleted the IKE SA",
                remote.ip()
            )));
        }
    }

    /// A request over an IKE SA that was rekeyed: its delete ends it;
    /// anything else is answered emptily, or put off (a CREATE_CHILD_SA
    /// belongs on the new SA).
    #[allow(clippy::too_many_arguments)]
    fn superseded_request(
        &mut self,
        at: usize,
        local: SocketAddr,
        remote: SocketAddr,
        h: Header,
        payloads: &[Payload],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let deletes_ike = payloads
            .iter()
            .any(|p| matches!(&p.body, Body::Delete(d) if d.protocol == ProtocolId::IKE));
        let answer = if h.exchange == ExchangeType::CREATE_CHILD_SA {
            vec![Payload::new(Body::Notify(crate::wire::Notify::new(
                crate::wire::NotifyType::TEMPORARY_FAILURE,
                Vec::new(),
            )))]
        } else {
            Vec::new()
        };
        let State::Up(session) = &mut self.sas[at].state else {
            return;
        };
        if let Ok(response) = session.respond(&h, &answer, rng) {
            out.push(Action::Send {
                local,
                remote,
                bytes: response,
            });
        }
        if deletes_ike {
            self.forget_superseded(at);
        }
    }

    /// An established SA whose peer has been silent for [`LIVENESS`]
    /// seconds, with no request of this end's waiting, gets an empty
    /// INFORMATIONAL request; one left unanswered through its
    /// retransmissions gives the SA up as dead.
    pub(super) fn check_liveness(
        &mut self,
        at: usize,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let now = self.now;
        let sa = &mut self.sas[at];
        if sa.superseded
            || sa.outstanding.is_some()
            || sa.rekey.is_some()
            || now < sa.heard + LIVENESS
        {
            return;
        }
        let path = sa.path;
        let State::Up(session) = &mut sa.state else {
            return;
        };
        if let Ok((_, bytes)) = session.request(ExchangeType::INFORMATIONAL, &[], rng) {
            self.send_request(at, path.local, path.remote, bytes, out);
        }
    }
}
