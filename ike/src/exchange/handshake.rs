//! The initial exchanges (RFC 7296 §1.2): IKE_SA_INIT, which agrees on
//! algorithms and does Diffie-Hellman, and IKE_AUTH, which authenticates
//! both ends with a shared key and sets up the first Child SA. Each side
//! is a value that takes the peer's message and gives the next one to
//! send; the time of sending, retransmission and PF_KEY are the
//! caller's.

use super::auth;
use super::nat::{self, Nat};
use super::selectors;
use super::suite::{ChildOffer, ChildSuite, IkeOffer, IkeSuite};
use crate::crypto::dh::KeyPair;
use crate::crypto::keys::{IkeKeys, child_keymat, skeyseed};
use crate::crypto::prf::Secret;
use crate::crypto::sk::OpenError;
use crate::wire::{
    Body, DhGroup, ExchangeType, Flags, Header, Identification, Message, Notify, NotifyType,
    Payload, PayloadType, TrafficSelector, VERSION,
};
use rand_core::CryptoRngCore;
use std::net::SocketAddr;
use zeroize::Zeroizing;

/// The length of the nonces this side sends (at least half the PRF's key
/// size, RFC 7296 §2.10; 32 bytes suit every PRF here).
const NONCE_LEN: usize = 32;

/// What one end needs to set up an IKE SA and its first Child SA.
#[derive(Debug, Clone)]
pub struct Config {
    pub ike: IkeOffer,
    pub child: ChildOffer,
    pub local_id: Identification,
    /// The identity the peer must prove; `None` takes whatever identity
    /// proves the key (with certificates: one its certificate names).
    pub remote_id: Option<Identification>,
    pub credentials: auth::Credentials,
    /// The time certificates are checked at, in seconds since 1970: the
    /// key manager sets it when an exchange starts.
    pub unix: u64,
    /// This end's side of the Child SA's traffic, and the peer's.
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub transport: bool,
}

/// Where the exchange runs: this end's address and the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Why an exchange failed. Each names what the log and the peer are
/// told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not a well-formed message, or not one that fits here.
    Malformed(&'static str),
    /// The message could not be opened: forged, damaged, or not keyed
    /// as this SA is.
    Unprotected(OpenError),
    /// The peer refused, with this notification.
    Refused(NotifyType),
    /// No proposal in common.
    NoProposal,
    /// The peer's KE payload is not of the agreed group, or not a valid
    /// value in it.
    BadKe,
    /// The peer's AUTH payload does not prove the shared key, or its
    /// identity is not the one expected.
    Authentication,
    /// The Child SA's traffic selectors have nothing in common.
    Selectors,
}

impl Failure {
    /// The error notification that tells the peer, where one does.
    pub fn notify(&self) -> Option<NotifyType> {
        match self {
            Failure::Malformed(_) => Some(NotifyType::INVALID_SYNTAX),
            Failure::NoProposal => Some(NotifyType::NO_PROPOSAL_CHOSEN),
            Failure::BadKe => Some(NotifyType::INVALID_KE_PAYLOAD),
            Failure::Authentication => Some(NotifyType::AUTHENTICATION_FAILED),
            Failure::Selectors => Some(NotifyType::TS_UNACCEPTABLE),
            Failure::Unprotected(_) | Failure::Refused(_) => None,
        }
    }
}

/// What an operator reads in the log.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Malformed(what) => write!(f, "malformed message ({what})"),
            Failure::Unprotected(why) => write!(f, "a message that does not open ({why:?})"),
            Failure::Refused(notify) => write!(f, "refused by the peer: {notify}"),
            Failure::NoProposal => f.write_str("no proposal chosen"),
            Failure::BadKe => f.write_str("a key exchange value not in the agreed group"),
            Failure::Authentication => f.write_str("authentication failed"),
            Failure::Selectors => f.write_str("traffic selectors unacceptable"),
        }
    }
}

/// A Child SA as the initial exchanges set it up, seen from one end.
#[derive(Debug, Clone)]
pub struct ChildSa {
    pub suite: ChildSuite,
    /// The SPI this end receives on, and the one it sends with.
    pub spi_in: u32,
    pub spi_out: u32,
    /// Keys for what this end sends: cipher key (with an AEAD's salt),
    /// then integrity key.
    pub out_keys: (Secret, Secret),
    /// Keys for what this end receives.
    pub in_keys: (Secret, Secret),
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub transport: bool,
}

/// An IKE SA once authenticated.
#[derive(Debug)]
pub struct Established {
    pub spi_i: u64,
    pub spi_r: u64,
    /// Whether this end started it.
    pub initiator: bool,
    pub suite: IkeSuite,
    pub keys: IkeKeys,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// The peer's proven identity.
    pub peer_id: Identification,
    /// NAT between the ends, if the peer did NAT detection.
    pub nat: Option<Nat>,
    pub child: ChildSa,
}

/// The initiator's side, from the first request to the IKE_AUTH
/// response.
#[derive(Debug)]
pub struct Initiator {
    config: Config,
    path: Path,
    spi_i: u64,
    dh: KeyPair,
    ni: Vec<u8>,
    cookie: Option<Vec<u8>>,
    /// The IKE_SA_INIT request as last sent.
    request: Vec<u8>,
    state: InitiatorState,
}

#[derive(Debug)]
enum InitiatorState {
    /// IKE_SA_INIT sent.
    Init,
    /// IKE_AUTH sent, with what checking its answer needs.
    Auth(Box<AuthSent>),
}

#[derive(Debug)]
struct AuthSent {
    suite: IkeSuite,
    keys: IkeKeys,
    spi_r: u64,
    nr: Vec<u8>,
    response: Vec<u8>,
    nat: Option<Nat>,
    child_spi: u32,
}

/// What the initiator does next.
#[derive(Debug)]
pub enum Next {
    /// Send this message (a new IKE_SA_INIT request, or IKE_AUTH).
    Send(Vec<u8>),
    /// Done: the IKE SA and its first Child SA are up.
    Established(Box<Established>),
}

fn header(spi_i: u64, spi_r: u64, exchange: ExchangeType, flags: Flags, id: u32) -> Header {
    Header {
        spi_i,
        spi_r,
        next: PayloadType::NONE,
        version: VERSION,
        exchange,
        flags,
        message_id: id,
        length: 0,
    }
}

fn nonce(rng: &mut dyn CryptoRngCore) -> Vec<u8> {
    let mut n = vec![0u8; NONCE_LEN];
    rng.fill_bytes(&mut n);
    n
}

/// The first error notification of a message, if it has one.
fn error_in(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match &p.body {
        Body::Notify(n) if n.kind.is_error() => Some(n.kind),
        _ => None,
    })
}

fn notifies(payloads: &[Payload]) -> impl Iterator<Item = &Notify> {
    payloads.iter().filter_map(|p| match &p.body {
        Body::Notify(n) => Some(n),
        _ => None,
    })
}

impl Initiator {
    /// Starts an IKE SA from `path.local` to `path.remote` with SPI
    /// `spi_i`; returns the side and the IKE_SA_INIT request to send.
    pub fn start(
        config: Config,
        path: Path,
        spi_i: u64,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(Initiator, Vec<u8>), Failure> {
        let group = config
            .ike
            .dh
            .iter()
            .find_map(|&g| crate::crypto::dh::Group::of(g))
            .ok_or(Failure::NoProposal)?;
        let mut me = Initiator {
            dh: group.generate(rng),
            ni: nonce(rng),
            config,
            path,
            spi_i,
            cookie: None,
            request: Vec::new(),
            state: InitiatorState::Init,
        };
        me.request = me.init_request()?;
        let request = me.request.clone();
        Ok((me, request))
    }

    fn init_request(&self) -> Result<Vec<u8>, Failure> {
        let mut payloads = Vec::new();
        if let Some(cookie) = &self.cookie {
            payloads.push(Payload::new(Body::Notify(Notify::new(
                NotifyType::COOKIE,
                cookie.clone(),
            ))));
        }
        payloads.push(Payload::new(Body::Sa(self.config.ike.proposals())));
        payloads.push(Payload::new(Body::Ke {
            group: self.dh.group().id(),
            data: self.dh.public().to_vec(),
        }));
        payloads.push(Payload::new(Body::Nonce(self.ni.clone())));
        payloads.extend(self.config.credentials.hash_algorithms());
        for n in nat::notifications(self.spi_i, 0, self.path.local, self.path.remote) {
            payloads.push(Payload::new(Body::Notify(n)));
        }
        Message {
            header: header(
                self.spi_i,
                0,
                ExchangeType::IKE_SA_INIT,
                Flags::INITIATOR,
                0,
            ),
            payloads,
        }
        .encode()
        .map_err(|_| Failure::Malformed("IKE_SA_INIT request"))
    }

    /// The IKE SA's initiator SPI.
    pub fn spi(&self) -> u64 {
        self.spi_i
    }

    /// What NAT detection found in the IKE_SA_INIT response, once it is
    /// in; `None` before, or when the responder does no NAT detection.
    pub fn nat(&self) -> Option<Nat> {
        match &self.state {
            InitiatorState::Auth(sent) => sent.nat,
            InitiatorState::Init => None,
        }
    }

    /// Takes the responder's answer to the last request. `child_spi` is
    /// the SPI this end will receive the Child SA's traffic on (from
    /// GETSPI).
    pub fn receive(
        &mut self,
        bytes: &[u8],
        child_spi: u32,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Next, Failure> {
        let head = Header::peek(bytes).map_err(|_| Failure::Malformed("header"))?;
        if head.spi_i != self.spi_i || !head.flags.contains(Flags::RESPONSE) {
            return Err(Failure::Malformed("not a response to this SA"));
        }
        match &self.state {
            InitiatorState::Init => self.init_response(bytes, child_spi, rng),
            InitiatorState::Auth(_) => self.auth_response(bytes),
        }
    }

    fn init_response(
        &mut self,
        bytes: &[u8],
        child_spi: u32,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Next, Failure> {
        let m = Message::decode(bytes).map_err(|_| Failure::Malformed("IKE_SA_INIT response"))?;
        if m.header.exchange != ExchangeType::IKE_SA_INIT || m.header.message_id != 0 {
            return Err(Failure::Malformed("not an IKE_SA_INIT response"));
        }
        // Asked for a cookie: the same request again, with it.
        if let Some(c) = m.notifications(NotifyType::COOKIE).next() {
            self.cookie = Some(c.data.clone());
            self.request = self.init_request()?;
            return Ok(Next::Send(self.request.clone()));
        }
        // Asked for another group: one this side offers, then again.
        if let Some(n) = m.notifications(NotifyType::INVALID_KE_PAYLOAD).next() {
            let wanted = <[u8; 2]>::try_from(n.data.as_slice())
                .map(|b| DhGroup(u16::from_be_bytes(b)))
                .map_err(|_| Failure::Malformed("INVALID_KE_PAYLOAD"))?;
            let group = self
                .config
                .ike
                .dh
                .contains(&wanted)
                .then(|| crate::crypto::dh::Group::of(wanted))
                .flatten()
                .filter(|&g| g != self.dh.group())
                .ok_or(Failure::Refused(NotifyType::INVALID_KE_PAYLOAD))?;
            self.dh = group.generate(rng);
            self.request = self.init_request()?;
            return Ok(Next::Send(self.request.clone()));
        }
        if let Some(e) = error_in(&m.payloads) {
            return Err(Failure::Refused(e));
        }
        let mut sa = None;
        let mut ke = None;
        let mut nr = None;
        for p in &m.payloads {
            match &p.body {
                Body::Sa(proposals) => sa = Some(proposals),
                Body::Ke { group, data } => ke = Some((*group, data)),
                Body::Nonce(n) => nr = Some(n.clone()),
                _ => {}
            }
        }
        let (Some(sa), Some((group, ke)), Some(nr)) = (sa, ke, nr) else {
            return Err(Failure::Malformed(
                "IKE_SA_INIT response lacks SA, KE or Nr",
            ));
        };
        if !(16..=256).contains(&nr.len()) {
            return Err(Failure::Malformed("nonce length"));
        }
        let suite = self.config.ike.confirm(sa).ok_or(Failure::NoProposal)?;
        if suite.group != self.dh.group() || group != suite.group.id() {
            return Err(Failure::BadKe);
        }
        let shared = self.dh.shared(ke).map_err(|_| Failure::BadKe)?;
        let spi_r = m.header.spi_r;
        let seed = skeyseed(suite.prf, &self.ni, &nr, &shared);
        let keys = IkeKeys::derive(
            suite.prf,
            suite.protection.key_lengths(),
            &seed,
            &self.ni,
            &nr,
            self.spi_i,
            spi_r,
        );
        let nat = Nat::detect(
            notifies(&m.payloads),
            self.spi_i,
            spi_r,
            self.path.local,
            self.path.remote,
        );
        // IKE_AUTH: who this end is, proof of the key, the Child SA.
        let octets = auth::signed_octets(
            suite.prf,
            &self.request,
            &nr,
            &keys.pi,
            &self.config.local_id,
        );
        let proof = self
            .config
            .credentials
            .prove(suite.prf, &octets)
            .ok_or(Failure::Authentication)?;
        // The CERTREQ that asks for the responder's certificate goes here,
        // not in IKE_SA_INIT (RFC 7296 §1.2).
        let mut inner = vec![Payload::new(Body::IdI(self.config.local_id.clone()))];
        let (cert, auth) = proof.split_at(proof.len() - 1);
        inner.extend(cert.iter().cloned());
        inner.extend(self.config.credentials.cert_request());
        if let Some(id) = &self.config.remote_id {
            inner.push(Payload::new(Body::IdR(id.clone())));
        }
        inner.extend(auth.iter().cloned());
        if self.config.transport {
            inner.push(Payload::new(Body::Notify(Notify::new(
                NotifyType::USE_TRANSPORT_MODE,
                Vec::new(),
            ))));
        }
        inner.push(Payload::new(Body::Sa(
            self.config.child.proposals(child_spi),
        )));
        inner.push(Payload::new(Body::TsI(self.config.ts_local.clone())));
        inner.push(Payload::new(Body::TsR(self.config.ts_remote.clone())));
        let request = suite
            .protection
            .seal(
                header(
                    self.spi_i,
                    spi_r,
                    ExchangeType::IKE_AUTH,
                    Flags::INITIATOR,
                    1,
                ),
                &inner,
                &keys.ei,
                &keys.ai,
                rng,
            )
            .map_err(|_| Failure::Malformed("IKE_AUTH request"))?;
        self.state = InitiatorState::Auth(Box::new(AuthSent {
            suite,
            keys,
            spi_r,
            nr,
            response: bytes.to_vec(),
            nat,
            child_spi,
        }));
        Ok(Next::Send(request))
    }

    fn auth_response(&mut self, bytes: &[u8]) -> Result<Next, Failure> {
        let InitiatorState::Auth(sent) = &self.state else {
            return Err(Failure::Malformed("no IKE_AUTH sent"));
        };
        let head = Header::peek(bytes).map_err(|_| Failure::Malformed("header"))?;
        if head.exchange != ExchangeType::IKE_AUTH
            || head.message_id != 1
            || head.spi_r != sent.spi_r
        {
            return Err(Failure::Malformed("not the IKE_AUTH response"));
        }
        let inner = sent
            .suite
            .protection
            .open(bytes, &sent.keys.er, &sent.keys.ar)
            .map_err(Failure::Unprotected)?;
        if let Some(e) = error_in(&inner) {
            return Err(Failure::Refused(e));
        }
        let mut idr = None;
        let mut auth_data = None;
        let mut sa = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in &inner {
            match &p.body {
                Body::IdR(id) => idr = Some(id.clone()),
                Body::Auth { method, data } => auth_data = Some((*method, data.clone())),
                Body::Sa(proposals) => sa = Some(proposals.clone()),
                Body::TsI(t) => tsi = Some(t.clone()),
                Body::TsR(t) => tsr = Some(t.clone()),
                _ => {}
            }
        }
        let (Some(idr), Some((method, auth_data))) = (idr, auth_data) else {
            return Err(Failure::Malformed("IKE_AUTH response lacks IDr or AUTH"));
        };
        let suite = sent.suite;
        let octets = auth::signed_octets(suite.prf, &sent.response, &self.ni, &sent.keys.pr, &idr);
        let proven = self.config.credentials.check(
            suite.prf,
            &octets,
            &idr,
            (method, &auth_data),
            &auth::certificates(&inner),
            self.config.unix,
        );
        let expected = self.config.remote_id.as_ref().is_none_or(|id| *id == idr);
        if !proven || !expected {
            return Err(Failure::Authentication);
        }
        let (Some(sa), Some(tsi), Some(tsr)) = (sa, tsi, tsr) else {
            return Err(Failure::Malformed("IKE_AUTH response lacks SA, TSi or TSr"));
        };
        let (child_suite, spi_out) = self.config.child.confirm(&sa).ok_or(Failure::NoProposal)?;
        // The responder may narrow, never widen.
        if !selectors::within(&tsi, &self.config.ts_local)
            || !selectors::within(&tsr, &self.config.ts_remote)
        {
            return Err(Failure::Selectors);
        }
        let transport = inner.iter().any(
            |p| matches!(&p.body, Body::Notify(n) if n.kind == NotifyType::USE_TRANSPORT_MODE),
        );
        if transport != self.config.transport {
            return Err(Failure::Malformed("the mode is not the one asked for"));
        }
        let InitiatorState::Auth(sent) = std::mem::replace(&mut self.state, InitiatorState::Init)
        else {
            unreachable!("checked above")
        };
        let (out_keys, in_keys) = child_keys(
            &child_suite,
            &sent.keys.d,
            None,
            &self.ni,
            &sent.nr,
            suite,
            true,
        );
        Ok(Next::Established(Box::new(Established {
            spi_i: self.spi_i,
            spi_r: sent.spi_r,
            initiator: true,
            suite,
            ni: self.ni.clone(),
            nr: sent.nr.clone(),
            keys: sent.keys,
            peer_id: idr,
            nat: sent.nat,
            child: ChildSa {
                suite: child_suite,
                spi_in: sent.child_spi,
                spi_out,
                out_keys,
                in_keys,
                ts_local: tsi,
                ts_remote: tsr,
                transport,
            },
        })))
    }
}

/// The Child SA's keys (RFC 7296 §2.17): the initiator's outbound SA's
/// first, each cipher key before its integrity key; `shared` is a new
/// Diffie-Hellman secret (perfect forward secrecy), `ni` and `nr` the
/// nonces of the exchange that made it. Returns this end's (outbound,
/// inbound).
pub fn child_keys(
    suite: &ChildSuite,
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    ike: IkeSuite,
    initiator: bool,
) -> ((Secret, Secret), (Secret, Secret)) {
    let (e, a) = child_key_lengths(suite);
    let keymat = child_keymat(ike.prf, sk_d, shared, ni, nr, 2 * (e + a));
    let part = |from: usize, n: usize| Zeroizing::new(keymat[from..from + n].to_vec());
    let i_to_r = (part(0, e), part(e, a));
    let r_to_i = (part(e + a, e), part(2 * e + a, a));
    if initiator {
        (i_to_r, r_to_i)
    } else {
        (r_to_i, i_to_r)
    }
}

/// The cipher key (with an AEAD's 4-byte salt) and integrity key lengths
/// of a Child SA.
pub fn child_key_lengths(suite: &ChildSuite) -> (usize, usize) {
    use crate::wire::{EncrId, IntegId};
    let e = match suite.encr {
        None => 0,
        Some((EncrId::AES_GCM_16 | EncrId::AES_GCM_12 | EncrId::AES_GCM_8, bits)) => {
            usize::from(bits.unwrap_or(128)) / 8 + 4
        }
        Some((EncrId::CHACHA20_POLY1305, _)) => 36,
        Some((EncrId::DES3, _)) => 24,
        Some((_, bits)) => usize::from(bits.unwrap_or(128)) / 8,
    };
    let a = match suite.integ {
        IntegId::HMAC_SHA1_96 => 20,
        IntegId::HMAC_SHA2_256_128 => 32,
        IntegId::HMAC_SHA2_384_192 => 48,
        IntegId::HMAC_SHA2_512_256 => 64,
        _ => 0,
    };
    (e, a)
}

/// The responder's side, from the IKE_SA_INIT request to its answer to
/// IKE_AUTH.
#[derive(Debug)]
pub struct Responder {
    config: Config,
    spi_i: u64,
    spi_r: u64,
    suite: IkeSuite,
    keys: IkeKeys,
    ni: Vec<u8>,
    nr: Vec<u8>,
    request: Vec<u8>,
    response: Vec<u8>,
    nat: Option<Nat>,
}

/// What the responder answers.
#[derive(Debug)]
pub enum Answer<T> {
    /// Send this, and go on with the value.
    Go(Vec<u8>, T),
    /// Send this error response, and forget the exchange.
    Refuse(Vec<u8>, Failure),
}

/// An unprotected IKE_SA_INIT error response to `request`.
fn init_error(request: &Header, kind: NotifyType, data: Vec<u8>) -> Vec<u8> {
    Message {
        header: header(
            request.spi_i,
            0,
            ExchangeType::IKE_SA_INIT,
            Flags::RESPONSE,
            0,
        ),
        payloads: vec![Payload::new(Body::Notify(Notify::new(kind, data)))],
    }
    .encode()
    .unwrap_or_default()
}

impl Responder {
    /// Answers an IKE_SA_INIT request `bytes` that came over `path`,
    /// choosing `spi_r` as this end's SPI.
    pub fn start(
        config: Config,
        path: Path,
        bytes: &[u8],
        spi_r: u64,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Answer<Responder>, Failure> {
        let m = Message::decode(bytes).map_err(|_| Failure::Malformed("IKE_SA_INIT request"))?;
        let h = m.header;
        if h.exchange != ExchangeType::IKE_SA_INIT
            || h.message_id != 0
            || h.spi_r != 0
            || !h.flags.contains(Flags::INITIATOR)
            || h.flags.contains(Flags::RESPONSE)
        {
            return Err(Failure::Malformed("not an IKE_SA_INIT request"));
        }
        let mut sa = None;
        let mut ke = None;
        let mut ni = None;
        for p in &m.payloads {
            match &p.body {
                Body::Sa(proposals) => sa = Some(proposals),
                Body::Ke { group, data } => ke = Some((*group, data)),
                Body::Nonce(n) => ni = Some(n.clone()),
                _ => {}
            }
        }
        let (Some(sa), Some((group, ke)), Some(ni)) = (sa, ke, ni) else {
            return Ok(Answer::Refuse(
                init_error(&h, NotifyType::INVALID_SYNTAX, Vec::new()),
                Failure::Malformed("IKE_SA_INIT request lacks SA, KE or Ni"),
            ));
        };
        if !(16..=256).contains(&ni.len()) {
            return Ok(Answer::Refuse(
                init_error(&h, NotifyType::INVALID_SYNTAX, Vec::new()),
                Failure::Malformed("nonce length"),
            ));
        }
        let Some((answer, suite)) = config.ike.choose(sa) else {
            return Ok(Answer::Refuse(
                init_error(&h, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()),
                Failure::NoProposal,
            ));
        };
        if group != suite.group.id() {
            let wanted = suite.group.id().0.to_be_bytes().to_vec();
            return Ok(Answer::Refuse(
                init_error(&h, NotifyType::INVALID_KE_PAYLOAD, wanted),
                Failure::BadKe,
            ));
        }
        let dh = suite.group.generate(rng);
        let Ok(shared) = dh.shared(ke) else {
            return Ok(Answer::Refuse(
                init_error(&h, NotifyType::INVALID_SYNTAX, Vec::new()),
                Failure::BadKe,
            ));
        };
        let nr = nonce(rng);
        let seed = skeyseed(suite.prf, &ni, &nr, &shared);
        let keys = IkeKeys::derive(
            suite.prf,
            suite.protection.key_lengths(),
            &seed,
            &ni,
            &nr,
            h.spi_i,
            spi_r,
        );
        let nat = Nat::detect(notifies(&m.payloads), h.spi_i, 0, path.local, path.remote);
        let mut payloads = vec![
            Payload::new(Body::Sa(vec![answer])),
            Payload::new(Body::Ke {
                group: suite.group.id(),
                data: dh.public().to_vec(),
            }),
            Payload::new(Body::Nonce(nr.clone())),
        ];
        payloads.extend(config.credentials.cert_request());
        payloads.extend(config.credentials.hash_algorithms());
        if nat.is_some() {
            for n in nat::notifications(h.spi_i, spi_r, path.local, path.remote) {
                payloads.push(Payload::new(Body::Notify(n)));
            }
        }
        let response = Message {
            header: header(
                h.spi_i,
                spi_r,
                ExchangeType::IKE_SA_INIT,
                Flags::RESPONSE,
                0,
            ),
            payloads,
        }
        .encode()
        .map_err(|_| Failure::Malformed("IKE_SA_INIT response"))?;
        Ok(Answer::Go(
            response.clone(),
            Responder {
                config,
                spi_i: h.spi_i,
                spi_r,
                suite,
                keys,
                ni,
                nr,
                request: bytes.to_vec(),
                response,
                nat,
            },
        ))
    }

    /// The IKE SA's SPIs (initiator's, responder's).
    pub fn spis(&self) -> (u64, u64) {
        (self.spi_i, self.spi_r)
    }

    /// Answers the IKE_AUTH request `bytes`; `child_spi` is the SPI this
    /// end will receive the Child SA's traffic on. A request that cannot
    /// be opened is dropped (`Err`), as an attacker's would be; one that
    /// opens but fails is answered with the reason.
    pub fn auth(
        &self,
        bytes: &[u8],
        child_spi: u32,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Answer<Established>, Failure> {
        let answer = self.auth_among(bytes, child_spi, &[&self.config], rng)?;
        Ok(match answer {
            Answer::Go(response, (_, established)) => Answer::Go(response, established),
            Answer::Refuse(response, why) => Answer::Refuse(response, why),
        })
    }

    /// As [`Responder::auth`], for the first of `configs` (rules for the
    /// same peer: its identity and key, its traffic selectors) the
    /// request fits; the answer says which. When none fits, the reason
    /// is the first config's that proved the peer, else authentication.
    pub fn auth_among(
        &self,
        bytes: &[u8],
        child_spi: u32,
        configs: &[&Config],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Answer<(usize, Established)>, Failure> {
        let head = Header::peek(bytes).map_err(|_| Failure::Malformed("header"))?;
        if head.exchange != ExchangeType::IKE_AUTH
            || head.message_id != 1
            || head.spi_i != self.spi_i
            || head.spi_r != self.spi_r
            || head.flags.contains(Flags::RESPONSE)
        {
            return Err(Failure::Malformed("not the IKE_AUTH request"));
        }
        let inner = self
            .suite
            .protection
            .open(bytes, &self.keys.ei, &self.keys.ai)
            .map_err(Failure::Unprotected)?;
        let mut first_failure = None;
        for (at, config) in configs.iter().enumerate() {
            match self.authenticate(&inner, child_spi, config) {
                Ok((payloads, established)) => {
                    let response = self.seal_response(&payloads, rng)?;
                    return Ok(Answer::Go(response, (at, established)));
                }
                Err(Failure::Authentication) => {}
                Err(failure) => {
                    first_failure.get_or_insert(failure);
                }
            }
        }
        let failure = first_failure.unwrap_or(Failure::Authentication);
        let kind = failure.notify().unwrap_or(NotifyType::INVALID_SYNTAX);
        let note = vec![Payload::new(Body::Notify(Notify::new(kind, Vec::new())))];
        let response = self.seal_response(&note, rng)?;
        Ok(Answer::Refuse(response, failure))
    }

    fn seal_response(
        &self,
        payloads: &[Payload],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<u8>, Failure> {
        self.suite
            .protection
            .seal(
                header(
                    self.spi_i,
                    self.spi_r,
                    ExchangeType::IKE_AUTH,
                    Flags::RESPONSE,
                    1,
                ),
                payloads,
                &self.keys.er,
                &self.keys.ar,
                rng,
            )
            .map_err(|_| Failure::Malformed("IKE_AUTH response"))
    }

    fn authenticate(
        &self,
        inner: &[Payload],
        child_spi: u32,
        config: &Config,
    ) -> Result<(Vec<Payload>, Established), Failure> {
        let mut idi = None;
        let mut auth_data = None;
        let mut sa = None;
        let mut tsi = None;
        let mut tsr = None;
        let mut transport = false;
        for p in inner {
            match &p.body {
                Body::IdI(id) => idi = Some(id.clone()),
                Body::Auth { method, data } => auth_data = Some((*method, data.clone())),
                Body::Sa(proposals) => sa = Some(proposals.clone()),
                Body::TsI(t) => tsi = Some(t.clone()),
                Body::TsR(t) => tsr = Some(t.clone()),
                Body::Notify(n) if n.kind == NotifyType::USE_TRANSPORT_MODE => transport = true,
                _ => {}
            }
        }
        let (Some(idi), Some((method, auth_data))) = (idi, auth_data) else {
            return Err(Failure::Malformed("IKE_AUTH request lacks IDi or AUTH"));
        };
        let prf = self.suite.prf;
        let octets = auth::signed_octets(prf, &self.request, &self.nr, &self.keys.pi, &idi);
        let proven = config.credentials.check(
            prf,
            &octets,
            &idi,
            (method, &auth_data),
            &auth::certificates(inner),
            self.config.unix,
        );
        let expected = config.remote_id.as_ref().is_none_or(|id| *id == idi);
        if !proven || !expected {
            return Err(Failure::Authentication);
        }
        let (Some(sa), Some(tsi), Some(tsr)) = (sa, tsi, tsr) else {
            return Err(Failure::Malformed("IKE_AUTH request lacks SA, TSi or TSr"));
        };
        if transport != config.transport {
            return Err(Failure::NoProposal);
        }
        let (answer, child_suite, spi_out) = self
            .config
            .child
            .choose(&sa, child_spi)
            .ok_or(Failure::NoProposal)?;
        // TSi is the initiator's side, this end's remote.
        let tsi = selectors::narrow(&tsi, &config.ts_remote);
        let tsr = selectors::narrow(&tsr, &config.ts_local);
        if tsi.is_empty() || tsr.is_empty() {
            return Err(Failure::Selectors);
        }
        let octets_r = auth::signed_octets(
            prf,
            &self.response,
            &self.ni,
            &self.keys.pr,
            &config.local_id,
        );
        let proof = config
            .credentials
            .prove(prf, &octets_r)
            .ok_or(Failure::Authentication)?;
        let mut payloads = vec![Payload::new(Body::IdR(config.local_id.clone()))];
        payloads.extend(proof);
        if transport {
            payloads.push(Payload::new(Body::Notify(Notify::new(
                NotifyType::USE_TRANSPORT_MODE,
                Vec::new(),
            ))));
        }
        payloads.push(Payload::new(Body::Sa(vec![answer])));
        payloads.push(Payload::new(Body::TsI(tsi.clone())));
        payloads.push(Payload::new(Body::TsR(tsr.clone())));
        let (out_keys, in_keys) = child_keys(
            &child_suite,
            &self.keys.d,
            None,
            &self.ni,
            &self.nr,
            self.suite,
            false,
        );
        let keys = IkeKeys {
            d: self.keys.d.clone(),
            ai: self.keys.ai.clone(),
            ar: self.keys.ar.clone(),
            ei: self.keys.ei.clone(),
            er: self.keys.er.clone(),
            pi: self.keys.pi.clone(),
            pr: self.keys.pr.clone(),
        };
        let established = Established {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            initiator: false,
            suite: self.suite,
            keys,
            ni: self.ni.clone(),
            nr: self.nr.clone(),
            peer_id: idi,
            nat: self.nat,
            child: ChildSa {
                suite: child_suite,
                spi_in: child_spi,
                spi_out,
                out_keys,
                in_keys,
                ts_local: tsr,
                ts_remote: tsi,
                transport,
            },
        };
        Ok((payloads, established))
    }
}

#[cfg(test)]
mod tests;
