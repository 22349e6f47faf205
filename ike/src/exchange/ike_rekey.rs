//! Rekeying the IKE SA (RFC 7296 §1.3.2, §2.18): a CREATE_CHILD_SA
//! exchange over the old IKE SA whose SA payload proposes an IKE SA, each
//! side's new SPI in its proposal, with fresh nonces and a new
//! Diffie-Hellman exchange. The side that asked is the new SA's
//! initiator. SKEYSEED comes from the old SA's SK_d under the old SA's
//! PRF (the exchange belongs to it); the seven keys from SKEYSEED under
//! the new one's. The Child SAs move to the new SA, and the side that
//! asked deletes the old one.

use super::handshake::{Established, Failure};
use super::suite::{IkeOffer, IkeSuite};
use crate::crypto::dh::KeyPair;
use crate::crypto::keys::{IkeKeys, rekey_skeyseed};
use crate::wire::{Body, NotifyType, Payload, Proposal, ProtocolId};
use rand_core::CryptoRngCore;

const NONCE_LEN: usize = 32;

/// This end's request, sent and not yet answered.
#[derive(Debug)]
pub struct Pending {
    /// This end's SPI for the new SA.
    pub spi: u64,
    ni: Vec<u8>,
    dh: KeyPair,
}

/// The new IKE SA's SPIs, algorithms, keys and nonces; `initiator` when
/// this end asked.
#[derive(Debug)]
pub struct NewSa {
    pub spi_i: u64,
    pub spi_r: u64,
    pub initiator: bool,
    pub suite: IkeSuite,
    pub keys: IkeKeys,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
}

fn nonce(rng: &mut dyn CryptoRngCore) -> Vec<u8> {
    let mut n = vec![0u8; NONCE_LEN];
    rng.fill_bytes(&mut n);
    n
}

/// Whether a CREATE_CHILD_SA request's SA payload proposes an IKE SA.
pub fn is_request(payloads: &[Payload]) -> bool {
    payloads.iter().any(|p| match &p.body {
        Body::Sa(proposals) => proposals.iter().any(|p| p.protocol == ProtocolId::IKE),
        _ => false,
    })
}

/// The request for a new IKE SA under `spi`, offering `offer` with a key
/// exchange in the group the current SA agreed (which the peer took).
pub fn request(
    offer: &IkeOffer,
    current: &IkeSuite,
    spi: u64,
    rng: &mut dyn CryptoRngCore,
) -> (Pending, Vec<Payload>) {
    let ni = nonce(rng);
    let dh = current.group.generate(rng);
    let proposals: Vec<Proposal> = offer
        .proposals()
        .into_iter()
        .map(|mut p| {
            p.spi = spi.to_be_bytes().to_vec();
            p
        })
        .collect();
    let payloads = vec![
        Payload::new(Body::Sa(proposals)),
        Payload::new(Body::Nonce(ni.clone())),
        Payload::new(Body::Ke {
            group: dh.group().id(),
            data: dh.public().to_vec(),
        }),
    ];
    (Pending { spi, ni, dh }, payloads)
}

/// The SA, nonce and key exchange of a request or response.
struct Parts<'a> {
    sa: &'a [Proposal],
    nonce: &'a [u8],
    group: crate::wire::DhGroup,
    ke: &'a [u8],
}

fn parts(payloads: &[Payload]) -> Option<Parts<'_>> {
    let mut sa = None;
    let mut nonce = None;
    let mut ke = None;
    for p in payloads {
        match &p.body {
            Body::Sa(s) => sa = Some(s.as_slice()),
            Body::Nonce(n) => nonce = Some(n.as_slice()),
            Body::Ke { group, data } => ke = Some((*group, data.as_slice())),
            _ => {}
        }
    }
    let (group, ke) = ke?;
    Some(Parts {
        sa: sa?,
        nonce: nonce?,
        group,
        ke,
    })
}

fn spi_of(p: &Proposal) -> Option<u64> {
    let spi = u64::from_be_bytes(p.spi.as_slice().try_into().ok()?);
    (spi != 0).then_some(spi)
}

/// The seven keys of the new SA.
fn keys(
    old: &Established,
    suite: &IkeSuite,
    shared: &[u8],
    new: (&[u8], &[u8], u64, u64),
) -> IkeKeys {
    let (ni, nr, spi_i, spi_r) = new;
    let seed = rekey_skeyseed(old.suite.prf, &old.keys.d, shared, ni, nr);
    IkeKeys::derive(
        suite.prf,
        suite.protection.key_lengths(),
        &seed,
        ni,
        nr,
        spi_i,
        spi_r,
    )
}

/// Answers the peer's request over the IKE SA `old`, taking `spi` for
/// this end's side of the new SA: the response's payloads and the new SA.
pub fn respond(
    offer: &IkeOffer,
    old: &Established,
    request: &[Payload],
    spi: u64,
    rng: &mut dyn CryptoRngCore,
) -> Result<(Vec<Payload>, NewSa), Failure> {
    let Parts {
        sa: offered,
        nonce: ni,
        group,
        ke,
    } = parts(request).ok_or(Failure::Malformed(
        "IKE SA rekey request lacks SA, Ni or KEi",
    ))?;
    if !(16..=256).contains(&ni.len()) {
        return Err(Failure::Malformed("nonce length"));
    }
    let (mut answer, suite) = offer.choose(offered).ok_or(Failure::NoProposal)?;
    let chosen = offered
        .iter()
        .find(|p| p.number == answer.number && p.protocol == ProtocolId::IKE);
    let spi_i = chosen.and_then(spi_of).ok_or(Failure::Malformed(
        "IKE SA rekey proposal without an 8-byte SPI",
    ))?;
    if group != suite.group.id() {
        return Err(Failure::BadKe);
    }
    let dh = suite.group.generate(rng);
    let shared = dh.shared(ke).map_err(|_| Failure::BadKe)?;
    let nr = nonce(rng);
    answer.spi = spi.to_be_bytes().to_vec();
    let payloads = vec![
        Payload::new(Body::Sa(vec![answer])),
        Payload::new(Body::Nonce(nr.clone())),
        Payload::new(Body::Ke {
            group: dh.group().id(),
            data: dh.public().to_vec(),
        }),
    ];
    let keys = keys(old, &suite, &shared, (ni, &nr, spi_i, spi));
    let new = NewSa {
        spi_i,
        spi_r: spi,
        initiator: false,
        suite,
        keys,
        ni: ni.to_vec(),
        nr,
    };
    Ok((payloads, new))
}

/// The new SA, from the response to this end's request over `old`.
pub fn complete(
    pending: Pending,
    offer: &IkeOffer,
    old: &Established,
    response: &[Payload],
) -> Result<NewSa, Failure> {
    if let Some(e) = response.iter().find_map(|p| match &p.body {
        Body::Notify(n) if n.kind.is_error() => Some(n.kind),
        _ => None,
    }) {
        return Err(Failure::Refused(e));
    }
    let Parts {
        sa: answer,
        nonce: nr,
        group,
        ke,
    } = parts(response).ok_or(Failure::Malformed(
        "IKE SA rekey response lacks SA, Nr or KEr",
    ))?;
    if !(16..=256).contains(&nr.len()) {
        return Err(Failure::Malformed("nonce length"));
    }
    let suite = offer.confirm(answer).ok_or(Failure::NoProposal)?;
    let spi_r = spi_of(&answer[0]).ok_or(Failure::Malformed(
        "IKE SA rekey answer without an 8-byte SPI",
    ))?;
    if suite.group != pending.dh.group() || group != suite.group.id() {
        return Err(Failure::BadKe);
    }
    let shared = pending.dh.shared(ke).map_err(|_| Failure::BadKe)?;
    let keys = keys(old, &suite, &shared, (&pending.ni, nr, pending.spi, spi_r));
    Ok(NewSa {
        spi_i: pending.spi,
        spi_r,
        initiator: true,
        suite,
        keys,
        ni: pending.ni,
        nr: nr.to_vec(),
    })
}

/// Whether the peer put the rekey off (both ends rekeying at once).
pub fn put_off(failure: &Failure) -> bool {
    matches!(failure, Failure::Refused(NotifyType::TEMPORARY_FAILURE))
}
