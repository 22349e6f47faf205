//! Rekeying a Child SA (RFC 7296 §1.3.3, §2.8): a CREATE_CHILD_SA
//! exchange over the IKE SA, with REKEY_SA naming the SA it replaces,
//! fresh nonces, new SPIs, and a new Diffie-Hellman exchange when the
//! Child SA has perfect forward secrecy. The new SA's keys come from
//! SK_d and the new nonces; the exchange's initiator's outbound keys come
//! first, whoever started the IKE SA.

use super::handshake::{ChildSa, Config, Established, Failure, child_keys};
use super::selectors;
use crate::crypto::dh::{Group, KeyPair};
use crate::wire::{Body, Notify, NotifyType, Payload, ProtocolId};
use rand_core::CryptoRngCore;

const NONCE_LEN: usize = 32;

/// This end's rekey request, sent and not yet answered.
#[derive(Debug)]
pub struct Pending {
    /// The new SA's inbound SPI here.
    pub spi_in: u32,
    ni: Vec<u8>,
    dh: Option<KeyPair>,
}

fn nonce(rng: &mut dyn CryptoRngCore) -> Vec<u8> {
    let mut n = vec![0u8; NONCE_LEN];
    rng.fill_bytes(&mut n);
    n
}

/// The request to rekey `child`, offering `spi_in` for the new SA.
pub fn request(
    config: &Config,
    child: &ChildSa,
    spi_in: u32,
    rng: &mut dyn CryptoRngCore,
) -> (Pending, Vec<Payload>) {
    let mut rekey = Notify::new(NotifyType::REKEY_SA, Vec::new());
    rekey.protocol = child.suite.protocol;
    rekey.spi = child.spi_in.to_be_bytes().to_vec();
    ask(config, Some(rekey), &Template::of(child), spi_in, rng)
}

/// The request for a new Child SA like `template`, beside the IKE SA's
/// others, offering `spi_in` for it.
pub fn request_new(
    config: &Config,
    template: &Template,
    spi_in: u32,
    rng: &mut dyn CryptoRngCore,
) -> (Pending, Vec<Payload>) {
    ask(config, None, template, spi_in, rng)
}

fn ask(
    config: &Config,
    rekey: Option<Notify>,
    template: &Template,
    spi_in: u32,
    rng: &mut dyn CryptoRngCore,
) -> (Pending, Vec<Payload>) {
    let ni = nonce(rng);
    let dh = config
        .child
        .dh
        .iter()
        .find_map(|&g| Group::of(g))
        .map(|g| g.generate(rng));
    let mut payloads: Vec<Payload> = rekey
        .into_iter()
        .map(|n| Payload::new(Body::Notify(n)))
        .collect();
    if template.transport {
        payloads.push(Payload::new(Body::Notify(Notify::new(
            NotifyType::USE_TRANSPORT_MODE,
            Vec::new(),
        ))));
    }
    payloads.push(Payload::new(Body::Sa(config.child.proposals(spi_in))));
    payloads.push(Payload::new(Body::Nonce(ni.clone())));
    if let Some(kp) = &dh {
        payloads.push(Payload::new(Body::Ke {
            group: kp.group().id(),
            data: kp.public().to_vec(),
        }));
    }
    payloads.push(Payload::new(Body::TsI(template.ts_local.clone())));
    payloads.push(Payload::new(Body::TsR(template.ts_remote.clone())));
    (Pending { spi_in, ni, dh }, payloads)
}

/// What a CREATE_CHILD_SA request or response holds.
struct Parts<'a> {
    rekey: Option<&'a Notify>,
    sa: Option<&'a Vec<crate::wire::Proposal>>,
    nonce: Option<&'a Vec<u8>>,
    ke: Option<(crate::wire::DhGroup, &'a Vec<u8>)>,
    tsi: Option<&'a Vec<crate::wire::TrafficSelector>>,
    tsr: Option<&'a Vec<crate::wire::TrafficSelector>>,
    transport: bool,
}

fn parts(payloads: &[Payload]) -> Parts<'_> {
    let mut p = Parts {
        rekey: None,
        sa: None,
        nonce: None,
        ke: None,
        tsi: None,
        tsr: None,
        transport: false,
    };
    for payload in payloads {
        match &payload.body {
            Body::Notify(n) if n.kind == NotifyType::REKEY_SA => p.rekey = Some(n),
            Body::Notify(n) if n.kind == NotifyType::USE_TRANSPORT_MODE => p.transport = true,
            Body::Sa(s) => p.sa = Some(s),
            Body::Nonce(n) => p.nonce = Some(n),
            Body::Ke { group, data } => p.ke = Some((*group, data)),
            Body::TsI(t) => p.tsi = Some(t),
            Body::TsR(t) => p.tsr = Some(t),
            _ => {}
        }
    }
    p
}

/// The inbound SPI here of the Child SA a request asks to rekey, if it
/// is a rekey request.
pub fn rekeyed_spi(payloads: &[Payload]) -> Option<u32> {
    let n = parts(payloads).rekey?;
    // The SPI the requester receives on: this end's outbound SPI.
    Some(u32::from_be_bytes(n.spi.as_slice().try_into().ok()?))
}

/// What a new Child SA must be like: its mode and the selectors it may
/// narrow to, a rule's or the Child SA's it replaces.
#[derive(Debug, Clone)]
pub struct Template {
    pub transport: bool,
    pub ts_local: Vec<crate::wire::TrafficSelector>,
    pub ts_remote: Vec<crate::wire::TrafficSelector>,
}

impl Template {
    /// The template of the Child SA `child`, for its rekey.
    pub fn of(child: &ChildSa) -> Template {
        Template {
            transport: child.transport,
            ts_local: child.ts_local.clone(),
            ts_remote: child.ts_remote.clone(),
        }
    }

    /// Whether a CREATE_CHILD_SA request asks for a Child SA of this
    /// mode whose selectors narrow to something of this template's.
    pub fn fits(&self, request: &[Payload]) -> bool {
        let p = parts(request);
        let (Some(tsi), Some(tsr)) = (p.tsi, p.tsr) else {
            return false;
        };
        p.transport == self.transport
            && !selectors::narrow(tsi, &self.ts_remote).is_empty()
            && !selectors::narrow(tsr, &self.ts_local).is_empty()
    }
}

/// Answers a request for a Child SA like `template` (a rekey, or a new
/// one), taking `spi_in` for it: the response's payloads and the new
/// Child SA.
pub fn respond(
    config: &Config,
    sa: &Established,
    template: &Template,
    request: &[Payload],
    spi_in: u32,
    rng: &mut dyn CryptoRngCore,
) -> Result<(Vec<Payload>, ChildSa), Failure> {
    let p = parts(request);
    let (Some(offer), Some(ni), Some(tsi), Some(tsr)) = (p.sa, p.nonce, p.tsi, p.tsr) else {
        return Err(Failure::Malformed(
            "CREATE_CHILD_SA request lacks SA, Ni, TSi or TSr",
        ));
    };
    if !(16..=256).contains(&ni.len()) {
        return Err(Failure::Malformed("nonce length"));
    }
    if p.transport != template.transport {
        return Err(Failure::NoProposal);
    }
    let child = template;
    let (answer, suite, spi_out) = config
        .child
        .choose(offer, spi_in)
        .ok_or(Failure::NoProposal)?;
    let mut ke_out = None;
    let shared = match suite.group {
        None => None,
        Some(group) => {
            let Some((_, data)) = p.ke.filter(|(g, _)| *g == group.id()) else {
                return Err(Failure::BadKe);
            };
            let kp = group.generate(rng);
            let shared = kp.shared(data).map_err(|_| Failure::BadKe)?;
            ke_out = Some(kp);
            Some(shared)
        }
    };
    // TSi is the requester's side: this end's remote.
    let tsi = selectors::narrow(tsi, &child.ts_remote);
    let tsr = selectors::narrow(tsr, &child.ts_local);
    if tsi.is_empty() || tsr.is_empty() {
        return Err(Failure::Selectors);
    }
    let nr = nonce(rng);
    let (out_keys, in_keys) = child_keys(
        &suite,
        &sa.keys.d,
        shared.as_deref().map(|s| s.as_slice()),
        ni,
        &nr,
        sa.suite,
        false,
    );
    let mut payloads = Vec::new();
    if child.transport {
        payloads.push(Payload::new(Body::Notify(Notify::new(
            NotifyType::USE_TRANSPORT_MODE,
            Vec::new(),
        ))));
    }
    payloads.push(Payload::new(Body::Sa(vec![answer])));
    payloads.push(Payload::new(Body::Nonce(nr)));
    if let Some(kp) = &ke_out {
        payloads.push(Payload::new(Body::Ke {
            group: kp.group().id(),
            data: kp.public().to_vec(),
        }));
    }
    payloads.push(Payload::new(Body::TsI(tsi.clone())));
    payloads.push(Payload::new(Body::TsR(tsr.clone())));
    Ok((
        payloads,
        ChildSa {
            suite,
            spi_in,
            spi_out,
            out_keys,
            in_keys,
            ts_local: tsr,
            ts_remote: tsi,
            transport: child.transport,
        },
    ))
}

/// The new Child SA, from the response to this end's request for one
/// like `child` (the Child SA it rekeys, or a rule's).
pub fn complete(
    pending: Pending,
    config: &Config,
    sa: &Established,
    child: &Template,
    response: &[Payload],
) -> Result<ChildSa, Failure> {
    if let Some(e) = response.iter().find_map(|p| match &p.body {
        Body::Notify(n) if n.kind.is_error() => Some(n.kind),
        _ => None,
    }) {
        return Err(Failure::Refused(e));
    }
    let p = parts(response);
    let (Some(answer), Some(nr), Some(tsi), Some(tsr)) = (p.sa, p.nonce, p.tsi, p.tsr) else {
        return Err(Failure::Malformed(
            "CREATE_CHILD_SA response lacks SA, Nr, TSi or TSr",
        ));
    };
    let (suite, spi_out) = config.child.confirm(answer).ok_or(Failure::NoProposal)?;
    if suite.protocol != ProtocolId::ESP && suite.protocol != ProtocolId::AH {
        return Err(Failure::NoProposal);
    }
    let shared = match (suite.group, &pending.dh) {
        (None, _) => None,
        (Some(group), Some(kp)) if kp.group() == group => {
            let Some((_, data)) = p.ke.filter(|(g, _)| *g == group.id()) else {
                return Err(Failure::BadKe);
            };
            Some(kp.shared(data).map_err(|_| Failure::BadKe)?)
        }
        _ => return Err(Failure::BadKe),
    };
    if !selectors::within(tsi, &child.ts_local) || !selectors::within(tsr, &child.ts_remote) {
        return Err(Failure::Selectors);
    }
    let (out_keys, in_keys) = child_keys(
        &suite,
        &sa.keys.d,
        shared.as_deref().map(|s| s.as_slice()),
        &pending.ni,
        nr,
        sa.suite,
        true,
    );
    Ok(ChildSa {
        suite,
        spi_in: pending.spi_in,
        spi_out,
        out_keys,
        in_keys,
        ts_local: tsi.clone(),
        ts_remote: tsr.clone(),
        transport: child.transport,
    })
}
