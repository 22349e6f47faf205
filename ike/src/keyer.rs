//! The key manager as a value: `iked`'s whole protocol logic, with no
//! I/O. Datagrams, PF_KEY messages from `ipsecd` and the passing of time
//! go in as [`Event`]s; datagrams to send, PF_KEY requests and log lines
//! come out as [`Action`]s. Randomness comes from the caller.
//!
//! For each policy it installs the flows that send the policy's traffic
//! through SAs to the peer (`require`: nothing leaves in clear text
//! before the SAs are up), starts an IKE SA at once (active) or when
//! `ipsecd` asks with `SADB_ACQUIRE` (dynamic), or waits for the peer
//! (passive). Each Child SA's inbound SPI is reserved with GETSPI before
//! it is offered; once agreed, the inbound SA is keyed with UPDATE and the
//! outbound one added. A request is sent again 1, 2, 4 and 8 seconds
//! apart; 16 seconds after the fifth, the SA is given up.

use crate::exchange::handshake::{
    Answer, ChildSa, Config, Established, Failure, Initiator, Next, Path, Responder,
};
use crate::exchange::session::{Incoming, Session};
use crate::install::{self, Ends, FlowSpec, Lifetimes};
use crate::wire::{
    Body, Delete, ExchangeType, Flags, Header, Message, Payload, ProtocolId, TrafficSelector,
};
use pfkey::{FlowDirection, FlowType, MsgType, SaType};
use rand_core::CryptoRngCore;
use std::net::{IpAddr, SocketAddr};

/// The IKE port, and the one for NAT traversal.
pub const IKE_PORT: u16 = 500;
pub const NATT_PORT: u16 = 4500;

/// Seconds before the first retransmission; it doubles each time.
const RETRY: u64 = 1;
/// Transmissions of one request before the SA is given up.
const TRIES: u32 = 5;
/// Seconds before an active policy whose IKE SA failed tries again.
const RETRY_POLICY: u64 = 5;
/// Half-open SAs (IKE_SA_INIT answered, no IKE_AUTH yet) past which a
/// request must bring a cookie, past which requests are dropped, and how
/// long one lives.
pub const HALF_OPEN_COOKIES: usize = 32;
pub const MAX_HALF_OPEN: usize = 1024;
pub const HALF_OPEN_LIFETIME: u64 = 30;
/// How many ended IKE SAs are remembered, for their delete's answer.
const ENDED_KEPT: usize = 1024;
/// Seconds without a word from the peer of an established IKE SA before
/// an empty INFORMATIONAL asks whether it is still there.
pub const LIVENESS: u64 = 60;

/// When a policy's IKE SA is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At once, and again when it goes.
    Active,
    /// When the peer starts it.
    Passive,
    /// When traffic needs it (`SADB_ACQUIRE`).
    OnDemand,
}

/// One `ike` rule, as the key manager uses it.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How the operator knows it (the rule's place, say).
    pub name: String,
    pub start: Start,
    pub local: IpAddr,
    /// `None`: any peer, for a passive rule; its flows go into `ipsecd`
    /// with each Child SA, toward that Child SA's peer, and out with it.
    pub peer: Option<IpAddr>,
    pub config: Config,
    /// The Child SA's lifetimes (its hard one; the soft one is placed
    /// here).
    pub lifetimes: Lifetimes,
    /// Seconds the IKE SA lives before it is rekeyed (0: it is not).
    pub ike_lifetime: u64,
}

/// What happens to the key manager.
#[derive(Debug)]
pub enum Event<'a> {
    /// An IKE message arrived (without the non-ESP marker of port 4500).
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &'a [u8],
    },
    /// A PF_KEY message from `ipsecd`: a reply, or an ACQUIRE or EXPIRE.
    PfKey(&'a [u8]),
    /// Time passed.
    Tick,
}

/// What the key manager wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send an IKE message (over port 4500, the shell adds the marker).
    Send {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Send a PF_KEY request to `ipsecd`.
    PfKey(Vec<u8>),
    /// Tell the operator.
    Log(String),
}

/// What was dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// Not an IKE message, or not one that fits any SA.
    pub malformed: u64,
    /// Could not be opened: forged, damaged, or for keys gone.
    pub unprotected: u64,
    /// For an SPI this end does not know.
    pub unknown_spi: u64,
    /// An IKE_SA_INIT from a peer no policy names.
    pub no_policy: u64,
    /// IKE_SA_INIT requests answered with a cookie challenge, under a
    /// flood, instead of with state.
    pub cookies_asked: u64,
    /// IKE_SA_INIT requests dropped: too many half-open SAs even so.
    pub half_open_full: u64,
    /// Half-open SAs forgotten: no IKE_AUTH came in time.
    pub half_open_expired: u64,
}

#[derive(Debug)]
enum State {
    /// Waiting for GETSPI before the first request.
    Reserving,
    Initiating(Box<Initiator>),
    /// IKE_SA_INIT answered; IKE_AUTH awaited (and the SPI, maybe).
    Responding {
        responder: Option<Box<Responder>>,
        init_response: Vec<u8>,
        /// An IKE_AUTH request that came before the SPI was reserved.
        /// With the addresses it came between (it may have come over
        /// port 4500).
        early: Option<(SocketAddr, SocketAddr, Vec<u8>)>,
    },
    Up(Box<Session>),
}

/// A datagram for an SA, with its header read.
#[derive(Debug, Clone, Copy)]
struct Arrival<'a> {
    local: SocketAddr,
    remote: SocketAddr,
    bytes: &'a [u8],
    header: Header,
}

/// A request sent and not yet answered.
#[derive(Debug)]
struct Outstanding {
    bytes: Vec<u8>,
    remote: SocketAddr,
    local: SocketAddr,
    /// When to send it again.
    due: u64,
    tries: u32,
}

#[derive(Debug)]
struct IkeSa {
    /// This end's IKE SPI.
    spi: u64,
    /// The peer's, once known (the initiator's, when this end responds).
    peer_spi: u64,
    policy: usize,
    path: Path,
    child_spi: Option<u32>,
    state: State,
    outstanding: Option<Outstanding>,
    /// A rekey of the Child SA under way.
    rekey: Option<rekeying::Step>,
    /// Child SAs a rekey replaced, until the peer deletes them.
    old: Vec<ChildSa>,
    /// When to try again a rekey that the peer put off or that waited
    /// for another, and of which Child SA (by its inbound SPI).
    rekey_again: Option<(u64, u32)>,
    /// Child SAs the peer added for other rules of its own.
    extra: Vec<children::Extra>,
    /// The peer deleted the current Child SA, and no other replaced it.
    child_gone: bool,
    /// When the peer was last heard from (a message that opened).
    heard: u64,
    /// When the SA was made.
    created: u64,
    /// When the current Child SA went in, and when ipsecd will warn that
    /// it needs rekeying (its soft lifetime), if it will.
    child_since: u64,
    child_rekey_at: Option<u64>,
    /// When this end rekeys the IKE SA, if it will, and its request
    /// while it does (with the message ID).
    ike_rekey_at: Option<u64>,
    ike_rekey: Option<(u32, crate::exchange::ike_rekey::Pending)>,
    /// Rekeyed: its Child SAs moved to the new IKE SA, and it waits to
    /// be deleted, by the peer or by this end's request with this ID.
    superseded: bool,
    delete_sent: Option<u32>,
}

impl IkeSa {
    fn new(spi: u64, peer_spi: u64, policy: usize, path: Path, state: State, now: u64) -> IkeSa {
        IkeSa {
            spi,
            peer_spi,
            policy,
            path,
            child_spi: None,
            state,
            outstanding: None,
            rekey: None,
            old: Vec::new(),
            rekey_again: None,
            extra: Vec::new(),
            child_gone: false,
            heard: 0,
            created: now,
            child_since: 0,
            child_rekey_at: None,
            ike_rekey_at: None,
            ike_rekey: None,
            superseded: false,
            delete_sent: None,
        }
    }
}

/// What makes a policy's flow messages: [`install::flows`] or
/// [`install::delflows`].
type FlowMaker =
    fn(&FlowSpec<'_>, Ends, u32, u32) -> Result<Vec<pfkey::Message>, install::Unsupported>;

/// A PF_KEY request whose reply something waits for.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// The Child SA's inbound SPI, for the IKE SA with this SPI.
    Spi(u64),
    /// Nothing: the reply is only checked.
    Nothing,
}

/// The key manager.
#[derive(Debug)]
pub struct Keyer {
    pid: u32,
    seq: u32,
    now: u64,
    policies: Vec<Policy>,
    /// When to try each active policy's IKE SA again after a failure (0:
    /// not waiting), by policy.
    retry: Vec<u64>,
    /// Policies taken down by hand: no IKE SA until brought up.
    held: Vec<bool>,
    /// Policies waiting to add their Child SA under an IKE SA they share
    /// with another rule (see [`children`]), by policy.
    want: Vec<bool>,
    cookies: crate::exchange::cookie::Cookies,
    failures: failures::FailureLog,
    /// The wall clock's seconds since 1970 when `now` was 0, for
    /// certificates' validity.
    unix_epoch: u64,
    sas: Vec<IkeSa>,
    /// IKE SAs this end ended with a delete it did not wait to have
    /// answered, and until when the answer may come: it is not a stray.
    ended: std::collections::VecDeque<(u64, u64)>,
    /// The flows rules for any peer put in with their Child SAs.
    peer_flows: Vec<any_peer::PeerFlows>,
    pending: Vec<(u32, Waiting)>,
    pub drops: Drops,
}

impl Keyer {
    /// A key manager that talks to `ipsecd` as process `pid`, with
    /// `policies`, at `now` (seconds). Returns it and its first actions:
    /// registering for ESP and AH, the flows, the active policies' SAs.
    pub fn new(
        pid: u32,
        policies: Vec<Policy>,
        now: u64,
        rng: &mut dyn CryptoRngCore,
    ) -> (Keyer, Vec<Action>) {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *secret);
        let mut k = Keyer {
            pid,
            seq: 0,
            now,
            policies: Vec::new(),
            retry: Vec::new(),
            held: Vec::new(),
            want: Vec::new(),
            cookies: crate::exchange::cookie::Cookies::new(*secret),
            failures: failures::FailureLog::default(),
            unix_epoch: 0,
            sas: Vec::new(),
            ended: std::collections::VecDeque::new(),
            peer_flows: Vec::new(),
            pending: Vec::new(),
            drops: Drops::default(),
        };
        let mut out = Vec::new();
        for satype in [SaType::ESP, SaType::AH] {
            let seq = k.next_seq();
            let m = pfkey::Message::new(pfkey::Header::new(MsgType::REGISTER, satype, seq, pid));
            out.push(Action::PfKey(m.encode()));
        }
        for p in policies {
            k.add(p, rng, &mut out);
        }
        (k, out)
    }

    /// Tells the key manager the wall clock's time, in seconds since 1970,
    /// at `now` 0: certificates are checked against it.
    pub fn set_unix_epoch(&mut self, unix: u64) {
        self.unix_epoch = unix;
    }

    fn unix_now(&self) -> u64 {
        self.unix_epoch + self.now
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// The policies in force.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The established IKE SAs.
    pub fn sessions(&self) -> impl Iterator<Item = (&Policy, &Session)> {
        self.sas.iter().filter_map(|sa| match &sa.state {
            State::Up(s) if !sa.superseded => Some((&self.policies[sa.policy], s.as_ref())),
            _ => None,
        })
    }

    /// Adds a policy at `now`: its flows, and its IKE SA if it is active.
    pub fn add_policy(
        &mut self,
        policy: Policy,
        now: u64,
        rng: &mut dyn CryptoRngCore,
    ) -> Vec<Action> {
        self.now = now;
        let mut out = Vec::new();
        self.add(policy, rng, &mut out);
        out
    }

    /// Removes every policy: each IKE SA ended (its peer told), its Child
    /// SAs deleted, and the flows taken out.
    pub fn flush(&mut self, rng: &mut dyn CryptoRngCore) -> Vec<Action> {
        let mut out = self.shutdown(rng);
        self.sweep_peer_flows(&mut out);
        self.retry.clear();
        self.held.clear();
        self.want.clear();
        for p in std::mem::take(&mut self.policies) {
            self.flows(&p, install::delflows, &mut out);
        }
        out
    }

    /// The flows of `policy`, added or removed by `make` (a rule for any
    /// peer has none of its own: see [`any_peer`]).
    fn flows(&mut self, policy: &Policy, make: FlowMaker, out: &mut Vec<Action>) {
        let Some(peer) = policy.peer else {
            return;
        };
        let ends = Ends {
            local: policy.local,
            remote: peer,
        };
        let c = &policy.config;
        let between = (c.ts_local.as_slice(), c.ts_remote.as_slice());
        self.flows_between(c.child.protocol, ends, between, make, &policy.name, out);
    }

    /// The flows from selectors `between.0` to `between.1` and back,
    /// through SAs between `ends`, added or removed by `make`.
    fn flows_between(
        &mut self,
        protocol: ProtocolId,
        ends: Ends,
        between: (&[TrafficSelector], &[TrafficSelector]),
        make: FlowMaker,
        name: &str,
        out: &mut Vec<Action>,
    ) {
        let (local, remote) = between;
        for (direction, from, to) in [
            (FlowDirection::OUT, local, remote),
            (FlowDirection::IN, remote, local),
        ] {
            for (f, t) in from.iter().flat_map(|f| to.iter().map(move |t| (f, t))) {
                let spec = FlowSpec {
                    protocol,
                    direction,
                    flow_type: FlowType::REQUIRE,
                    from: f,
                    to: t,
                };
                let seq = self.next_seq();
                match make(&spec, ends, seq, self.pid) {
                    Ok(flows) => {
                        self.pending.push((seq, Waiting::Nothing));
                        out.extend(flows.iter().map(|m| Action::PfKey(m.encode())));
                    }
                    Err(e) => out.push(Action::Log(format!(
                        "{name}: its selectors make no flows: {e:?}"
                    ))),
                }
            }
        }
    }

    fn add(&mut self, policy: Policy, rng: &mut dyn CryptoRngCore, out: &mut Vec<Action>) {
        let index = self.policies.len();
        self.flows(&policy, install::flows, out);
        let active = policy.start == Start::Active;
        self.policies.push(policy);
        self.retry.push(0);
        self.held.push(false);
        self.want.push(false);
        if active {
            self.initiate(index, rng, out);
        }
    }

    /// Starts an IKE SA for policy `index` (first the Child SA's SPI),
    /// or its Child SA under one it shares with another rule.
    fn initiate(&mut self, index: usize, rng: &mut dyn CryptoRngCore, out: &mut Vec<Action>) {
        let busy = self.want[index] || self.sas.iter().any(|sa| sa.serves(index));
        if busy || self.held[index] {
            return;
        }
        // A rule for any peer waits to be asked.
        let Some(peer) = self.policies[index].peer else {
            return;
        };
        if self.share(index, out) {
            return;
        }
        let p = &self.policies[index];
        let path = Path {
            local: SocketAddr::new(p.local, IKE_PORT),
            remote: SocketAddr::new(peer, IKE_PORT),
        };
        let spi = self.fresh_spi(rng);
        let ends = Ends {
            local: p.local,
            remote: peer,
        };
        let protocol = p.config.child.protocol;
        self.sas
            .push(IkeSa::new(spi, 0, index, path, State::Reserving, self.now));
        self.reserve(spi, protocol, ends, out);
    }

    fn reserve(&mut self, spi: u64, protocol: ProtocolId, ends: Ends, out: &mut Vec<Action>) {
        let seq = self.next_seq();
        match install::getspi(protocol, ends, seq, self.pid) {
            Ok(m) => {
                self.pending.push((seq, Waiting::Spi(spi)));
                out.push(Action::PfKey(m.encode()));
            }
            Err(e) => out.push(Action::Log(format!("cannot reserve an SPI: {e:?}"))),
        }
    }

    /// A fresh random IKE SPI, nonzero and not in use.
    fn fresh_spi(&self, rng: &mut dyn CryptoRngCore) -> u64 {
        loop {
            let spi = rng.next_u64();
            if spi != 0 && !self.sas.iter().any(|sa| sa.spi == spi) {
                return spi;
            }
        }
    }

    /// Takes an event at `now` (seconds); returns what to do.
    pub fn handle(
        &mut self,
        event: Event<'_>,
        now: u64,
        rng: &mut dyn CryptoRngCore,
    ) -> Vec<Action> {
        self.now = now;
        let mut out = Vec::new();
        match event {
            Event::Datagram {
                local,
                remote,
                bytes,
            } => self.datagram(local, remote, bytes, rng, &mut out),
            Event::PfKey(bytes) => self.pfkey(bytes, rng, &mut out),
            Event::Tick => self.tick(rng, &mut out),
        }
        self.pump_children(&mut out);
        self.sweep_peer_flows(&mut out);
        // Port 4500 is ipsecd's: IKE for it goes through ipsecd.
        for action in &mut out {
            if let Action::Send {
                local,
                remote,
                bytes,
            } = action
                && local.port() == NATT_PORT
            {
                let seq = self.next_seq();
                *action = Action::PfKey(
                    install::datagram(*local, *remote, bytes, seq, self.pid).encode(),
                );
            }
        }
        out
    }

    fn pfkey(&mut self, bytes: &[u8], rng: &mut dyn CryptoRngCore, out: &mut Vec<Action>) {
        let Ok(m) = pfkey::Message::decode(bytes) else {
            return;
        };
        let h = m.header;
        if h.msg_type == MsgType::ACQUIRE {
            return self.acquire(&m, rng, out);
        }
        if h.msg_type == MsgType::EXPIRE {
            return self.expired(&m, out);
        }
        if h.msg_type == MsgType::X_DATAGRAM {
            if let Some((from, to, message)) = install::relayed(&m) {
                self.datagram(to, from, &message, rng, out);
            }
            return;
        }
        if h.pid != self.pid {
            return;
        }
        let Some(at) = self.pending.iter().position(|(seq, _)| *seq == h.seq) else {
            return;
        };
        let (_, waiting) = self.pending.swap_remove(at);
        if h.errno != 0 {
            out.push(Action::Log(format!(
                "ipsecd refused {}: {}",
                h.msg_type,
                pfkey::validate::Errno(h.errno).description()
            )));
        }
        if let Waiting::Spi(spi) = waiting {
            match install::reserved_spi(&m) {
                Some(child_spi) => self.spi_reserved(spi, child_spi, rng, out),
                None => self.give_up(spi, "no SPI reserved", out),
            }
        }
    }

    /// `SADB_ACQUIRE`: traffic for a flow with no SA; starts the
    /// on-demand policies for that peer.
    fn acquire(&mut self, m: &pfkey::Message, rng: &mut dyn CryptoRngCore, out: &mut Vec<Action>) {
        let Some(pfkey::Body::Address(dst)) = m.get(pfkey::ExtType::ADDRESS_DST) else {
            return;
        };
        let Some(peer) = dst.addr.addr() else { return };
        // The message names the peer, not the flow: every rule for the
        // peer that has no SA yet is started (under one IKE SA when they
        // share it).
        for index in 0..self.policies.len() {
            let p = &self.policies[index];
            if p.peer == Some(peer) && p.start != Start::Passive {
                self.initiate(index, rng, out);
            }
        }
    }

    fn spi_reserved(
        &mut self,
        spi: u64,
        child_spi: u32,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let Some(at) = self.sas.iter().position(|sa| sa.spi == spi) else {
            return;
        };
        if !matches!(self.sas[at].state, State::Up(_)) {
            self.sas[at].child_spi = Some(child_spi);
        }
        let policy = self.sas[at].policy;
        match &mut self.sas[at].state {
            State::Reserving => {
                let mut config = self.policies[policy].config.clone();
                config.unix = self.unix_now();
                let path = self.sas[at].path;
                match Initiator::start(config, path, spi, rng) {
                    Ok((initiator, request)) => {
                        self.sas[at].state = State::Initiating(Box::new(initiator));
                        self.send_request(at, path.local, path.remote, request, out);
                    }
                    Err(e) => self.give_up(spi, &e.to_string(), out),
                }
            }
            State::Responding { early, .. } => {
                if let Some((local, remote, request)) = early.take() {
                    self.responder_auth(at, local, remote, &request, rng, out);
                }
            }
            State::Up(_) => self.rekey_spi(at, child_spi, rng, out),
            _ => {}
        }
    }

    fn send_request(
        &mut self,
        at: usize,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Send {
            local,
            remote,
            bytes: bytes.clone(),
        });
        self.sas[at].outstanding = Some(Outstanding {
            bytes,
            remote,
            local,
            due: self.now + RETRY,
            tries: 1,
        });
    }

    /// Forgets a half-open SA quietly (a flood's leftovers are not worth
    /// a log line each), giving back its reserved SPI.
    fn forget_half_open(&mut self, spi: u64, out: &mut Vec<Action>) {
        let Some(at) = self.sas.iter().position(|sa| sa.spi == spi) else {
            return;
        };
        let sa = self.sas.swap_remove(at);
        if let Some(child_spi) = sa.child_spi {
            let protocol = self.policies[sa.policy].config.child.protocol;
            self.release(protocol, child_spi, sa.path, out);
        }
    }

    /// Gives up an IKE SA that did not come up: logged, its reserved SPI
    /// released, and its policy tried again later if it is active.
    fn give_up(&mut self, spi: u64, why: &str, out: &mut Vec<Action>) {
        let Some(at) = self.sas.iter().position(|sa| sa.spi == spi) else {
            return;
        };
        if self.sas[at].superseded {
            // Its delete went unanswered; its Child SAs are the new SA's.
            return self.forget_superseded(at);
        }
        self.riders_retry(at);
        let was_up = matches!(self.sas[at].state, State::Up(_));
        if was_up {
            // A dead peer: its Child SAs go, the flows stay.
            self.remove_children(at, out);
            let path = self.sas[at].path;
            for old in std::mem::take(&mut self.sas[at].old) {
                self.delete_sas(old.suite.protocol, old.spi_in, old.spi_out, path, out);
            }
        }
        let sa = self.sas.swap_remove(at);
        let policy = &self.policies[sa.policy];
        let (active, protocol) = (policy.start == Start::Active, policy.config.child.protocol);
        let peer = sa.path.remote.ip();
        if was_up {
            out.push(Action::Log(format!(
                "{}: the peer {peer} stopped answering ({why}): its IKE SA and Child SAs are removed",
                policy.name
            )));
        } else {
            let what = format!("{}: IKE SA with {peer} failed: {why}", policy.name);
            out.extend(self.failures.line(peer, self.now, what).map(Action::Log));
        }
        if let (Some(child_spi), false) = (sa.child_spi, matches!(sa.state, State::Up(_))) {
            self.release(protocol, child_spi, sa.path, out);
        }
        if active {
            self.retry[sa.policy] = self.now + RETRY_POLICY;
        }
    }

    fn tick(&mut self, rng: &mut dyn CryptoRngCore, out: &mut Vec<Action>) {
        let now = self.now;
        for at in 0..self.sas.len() {
            let sa = &mut self.sas[at];
            if sa.superseded {
                continue;
            }
            if let Some((when, spi_in)) = sa.rekey_again
                && now >= when
                && sa.rekey.is_none()
            {
                sa.rekey_again = None;
                self.start_rekey(at, spi_in, out);
            }
            self.maybe_rekey_ike(at, rng, out);
            self.check_liveness(at, rng, out);
        }
        self.ended.retain(|&(_, until)| now < until);
        // Half-open SAs that never went on.
        let stale: Vec<u64> = self
            .sas
            .iter()
            .filter(|sa| {
                matches!(sa.state, State::Responding { .. })
                    && now >= sa.created + HALF_OPEN_LIFETIME
            })
            .map(|sa| sa.spi)
            .collect();
        for spi in stale {
            self.drops.half_open_expired += 1;
            self.forget_half_open(spi, out);
        }
        for index in 0..self.policies.len() {
            let due = self.retry[index];
            if due != 0 && now >= due {
                self.retry[index] = 0;
                self.initiate(index, rng, out);
            }
        }
        let mut lost = Vec::new();
        for sa in &mut self.sas {
            let Some(o) = &mut sa.outstanding else {
                continue;
            };
            if now < o.due {
                continue;
            }
            if o.tries >= TRIES {
                lost.push(sa.spi);
                continue;
            }
            out.push(Action::Send {
                local: o.local,
                remote: o.remote,
                bytes: o.bytes.clone(),
            });
            o.tries += 1;
            o.due = now + (RETRY << (o.tries - 1));
        }
        for spi in lost {
            self.give_up(spi, "no answer", out);
        }
    }

    fn datagram(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let Ok(h) = Header::peek(bytes) else {
            self.drops.malformed += 1;
            return;
        };
        let response = h.flags.contains(Flags::RESPONSE);
        // This end's SPI is the initiator's when it started the SA.
        let found = self.sas.iter().position(|sa| {
            let ours_first = matches!(sa.state, State::Initiating(_) | State::Reserving)
                || matches!(&sa.state, State::Up(s) if s.sa.initiator);
            if ours_first {
                h.spi_i == sa.spi
            } else {
                h.spi_i == sa.peer_spi
                    && (h.spi_r == sa.spi || (h.spi_r == 0 && sa.path.remote.ip() == remote.ip()))
            }
        });
        match found {
            Some(at) => {
                let arrival = Arrival {
                    local,
                    remote,
                    bytes,
                    header: h,
                };
                self.for_sa(at, &arrival, rng, out)
            }
            None if h.exchange == ExchangeType::IKE_SA_INIT && !response && h.spi_r == 0 => {
                self.respond(local, remote, bytes, rng, out)
            }
            // The answer to the delete of an SA this end ended.
            None if response
                && h.exchange == ExchangeType::INFORMATIONAL
                && self
                    .ended
                    .iter()
                    .any(|&(spi, _)| spi == h.spi_i || spi == h.spi_r) => {}
            None => self.drops.unknown_spi += 1,
        }
    }

    /// A new IKE_SA_INIT request: the policy for this peer answers it.
    fn respond(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let Some(index) = self.answering(local.ip(), remote.ip()).first().copied() else {
            self.drops.no_policy += 1;
            return;
        };
        // Under a flood, state only for who shows it gets our answers.
        let half_open = self
            .sas
            .iter()
            .filter(|sa| matches!(sa.state, State::Responding { .. }))
            .count();
        if half_open >= MAX_HALF_OPEN {
            self.drops.half_open_full += 1;
            return;
        }
        if half_open >= HALF_OPEN_COOKIES {
            let Ok(m) = Message::decode(bytes) else {
                self.drops.malformed += 1;
                return;
            };
            if !self.cookies.carries(&m, remote) {
                self.drops.cookies_asked += 1;
                if let Some(challenge) = self.cookies.challenge(&m, remote) {
                    out.push(Action::Send {
                        local,
                        remote,
                        bytes: challenge,
                    });
                }
                return;
            }
        }
        let spi = self.fresh_spi(rng);
        let path = Path { local, remote };
        let mut config = self.policies[index].config.clone();
        config.unix = self.unix_now();
        match Responder::start(config, path, bytes, spi, rng) {
            Ok(Answer::Go(response, responder)) => {
                let (peer_spi, _) = responder.spis();
                out.push(Action::Send {
                    local,
                    remote,
                    bytes: response.clone(),
                });
                let protocol = self.policies[index].config.child.protocol;
                let state = State::Responding {
                    responder: Some(Box::new(responder)),
                    init_response: response,
                    early: None,
                };
                self.sas
                    .push(IkeSa::new(spi, peer_spi, index, path, state, self.now));
                let ends = Ends {
                    local: local.ip(),
                    remote: remote.ip(),
                };
                self.reserve(spi, protocol, ends, out);
            }
            Ok(Answer::Refuse(response, why)) => {
                out.push(Action::Send {
                    local,
                    remote,
                    bytes: response,
                });
                let what = format!(
                    "{}: refused IKE_SA_INIT from {}: {why}",
                    self.policies[index].name,
                    remote.ip()
                );
                out.extend(
                    self.failures
                        .line(remote.ip(), self.now, what)
                        .map(Action::Log),
                );
            }
            Err(_) => self.drops.malformed += 1,
        }
    }

    fn for_sa(
        &mut self,
        at: usize,
        arrival: &Arrival<'_>,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let Arrival {
            local,
            remote,
            bytes,
            header: h,
        } = *arrival;
        let response = h.flags.contains(Flags::RESPONSE);
        let sa = &mut self.sas[at];
        match &mut sa.state {
            State::Reserving => self.drops.unknown_spi += 1,
            State::Initiating(_) if response => self.initiator_answer(at, bytes, rng, out),
            State::Initiating(_) => self.drops.malformed += 1,
            State::Responding { init_response, .. } if h.exchange == ExchangeType::IKE_SA_INIT => {
                // The initiator repeated its first request.
                out.push(Action::Send {
                    local,
                    remote,
                    bytes: init_response.clone(),
                });
            }
            State::Responding { early, .. }
                if h.exchange == ExchangeType::IKE_AUTH && !response =>
            {
                if sa.child_spi.is_none() {
                    // Answered once GETSPI is.
                    *early = Some((local, remote, bytes.to_vec()));
                } else {
                    self.responder_auth(at, local, remote, bytes, rng, out);
                }
            }
            State::Responding { .. } => self.drops.malformed += 1,
            State::Up(_) => self.session(at, local, remote, bytes, rng, out),
        }
    }

    fn initiator_answer(
        &mut self,
        at: usize,
        bytes: &[u8],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        let sa = &mut self.sas[at];
        let State::Initiating(initiator) = &mut sa.state else {
            return;
        };
        let child_spi = sa.child_spi.unwrap_or_default();
        match initiator.receive(bytes, child_spi, rng) {
            Ok(Next::Send(request)) => {
                // Past IKE_SA_INIT, with a NAT between the ends, the
                // exchange goes on over port 4500 (RFC 7296 §2.23).
                let mut path = sa.path;
                let init =
                    Header::peek(&request).is_ok_and(|h| h.exchange == ExchangeType::IKE_SA_INIT);
                if !init && initiator.nat().is_some_and(|n| n.any()) {
                    path.local.set_port(NATT_PORT);
                    path.remote.set_port(NATT_PORT);
                    sa.path = path;
                }
                if let Ok(h) = Header::peek(bytes) {
                    sa.peer_spi = h.spi_r;
                }
                self.send_request(at, path.local, path.remote, request, out);
            }
            Ok(Next::Established(established)) => {
                sa.outstanding = None;
                self.established(at, *established, out);
            }
            Err(Failure::Unprotected(_)) => self.drops.unprotected += 1,
            Err(Failure::Malformed(_)) => self.drops.malformed += 1,
            Err(why) => {
                let spi = sa.spi;
                self.give_up(spi, &why.to_string(), out);
            }
        }
    }

    fn responder_auth(
        &mut self,
        at: usize,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        // Any rule for this peer may be the one the initiator means (each
        // has its selectors, maybe its identity and key): the one
        // IKE_SA_INIT was answered for first, then the others in order
        // whose Child SA the reserved SPI suits.
        let (first, path) = (self.sas[at].policy, self.sas[at].path);
        let protocol = self.policies[first].config.child.protocol;
        let candidates: Vec<usize> = std::iter::once(first)
            .chain(
                self.answering(path.local.ip(), path.remote.ip())
                    .into_iter()
                    .filter(|&i| i != first && self.policies[i].config.child.protocol == protocol),
            )
            .collect();
        let sa = &mut self.sas[at];
        let State::Responding {
            responder: Some(r), ..
        } = &sa.state
        else {
            return;
        };
        let child_spi = sa.child_spi.unwrap_or_default();
        let configs: Vec<&Config> = candidates
            .iter()
            .map(|&i| &self.policies[i].config)
            .collect();
        match r.auth_among(bytes, child_spi, &configs, rng) {
            Ok(Answer::Go(response, (chosen, established))) => {
                sa.policy = candidates[chosen];
                // The initiator may have moved to port 4500.
                sa.path = Path { local, remote };
                out.push(Action::Send {
                    local,
                    remote,
                    bytes: response.clone(),
                });
                self.established(at, established, out);
                if let State::Up(session) = &mut self.sas[at].state {
                    session.remember_auth_response(response);
                }
            }
            Ok(Answer::Refuse(response, why)) => {
                out.push(Action::Send {
                    local,
                    remote,
                    bytes: response,
                });
                let spi = sa.spi;
                self.give_up(spi, &why.to_string(), out);
            }
            // Forged or damaged: dropped, and the exchange waits for the
            // real request.
            Err(Failure::Unprotected(_)) => self.drops.unprotected += 1,
            Err(_) => self.drops.malformed += 1,
        }
    }

    /// Both ends are authenticated: the Child SA goes into `ipsecd`.
    fn established(&mut self, at: usize, established: Established, out: &mut Vec<Action>) {
        let policy = self.sas[at].policy;
        let path = self.sas[at].path;
        let nat = established.nat.is_some_and(|n| n.any());
        let soft = self.install_child(policy, &established.child, path, nat, out);
        self.sas[at].child_since = self.now;
        self.sas[at].child_rekey_at = soft.map(|s| self.now + s);
        out.push(Action::Log(format!(
            "{}: IKE SA with {} up, Child SA {:#010x} in, {:#010x} out",
            self.policies[policy].name,
            path.remote.ip(),
            established.child.spi_in,
            established.child.spi_out
        )));
        self.sas[at].state = State::Up(Box::new(Session::new(established)));
        self.sas[at].heard = self.now;
        self.sas[at].ike_rekey_at = self.ike_rekey_time(policy, self.sas[at].spi);
    }

    /// Keys a Child SA in `ipsecd`: UPDATE for the inbound SA reserved
    /// with GETSPI, ADD for the outbound one, in UDP when there is a NAT.
    fn install_child(
        &mut self,
        policy: usize,
        child: &ChildSa,
        path: Path,
        nat: bool,
        out: &mut Vec<Action>,
    ) -> Option<u64> {
        let mut lifetimes = self.policies[policy].lifetimes;
        let hard = lifetimes.hard_seconds;
        if hard > 0 {
            lifetimes.soft_seconds = soft_lifetime(hard, u64::from(child.spi_in));
        }
        let ends = Ends {
            local: path.local.ip(),
            remote: path.remote.ip(),
        };
        let udp = nat.then_some(path.remote.port());
        let seq = self.next_seq();
        match install::sa_messages(child, ends, lifetimes, udp, seq, self.pid) {
            Ok(mut messages) => {
                // The outbound SA serves the rule's flow, and no other of
                // the same peer's (each of several Child SAs its own); for
                // a rule for any peer, the flow it brings (see any_peer).
                let p = &self.policies[policy];
                let c = &p.config;
                let (local, remote) = match p.peer {
                    Some(_) => (&c.ts_local, &c.ts_remote),
                    None => (&child.ts_local, &child.ts_remote),
                };
                if let ([from], [to]) = (local.as_slice(), remote.as_slice()) {
                    let spec = FlowSpec {
                        protocol: c.child.protocol,
                        direction: FlowDirection::OUT,
                        flow_type: FlowType::REQUIRE,
                        from,
                        to,
                    };
                    if let Ok([flow]) = install::flows(&spec, ends, seq, self.pid).as_deref() {
                        install::serve_flow(&mut messages[1], flow);
                    }
                }
                self.pending.push((seq, Waiting::Nothing));
                out.extend(messages.iter().map(|m| Action::PfKey(m.encode())));
                self.follow_child(policy, child, path, out);
            }
            Err(e) => out.push(Action::Log(format!(
                "{}: the Child SA cannot be installed: {e:?}",
                self.policies[policy].name
            ))),
        }
        (lifetimes.soft_seconds > 0).then_some(lifetimes.soft_seconds)
    }

    /// Deletes every current Child SA of the SA at `at` from `ipsecd`.
    fn remove_children(&mut self, at: usize, out: &mut Vec<Action>) {
        self.remove_first(at, out);
        let path = self.sas[at].path;
        for e in std::mem::take(&mut self.sas[at].extra) {
            let c = &e.child;
            self.delete_sas(c.suite.protocol, c.spi_in, c.spi_out, path, out);
        }
    }

    /// Deletes the first Child SA of the SA at `at` from `ipsecd`, if it
    /// is still there.
    fn remove_first(&mut self, at: usize, out: &mut Vec<Action>) {
        let sa = &self.sas[at];
        let State::Up(session) = &sa.state else {
            return;
        };
        if sa.child_gone {
            return;
        }
        let child = &session.sa.child;
        let (protocol, spi_in, spi_out) = (child.suite.protocol, child.spi_in, child.spi_out);
        let path = sa.path;
        self.sas[at].child_gone = true;
        self.delete_sas(protocol, spi_in, spi_out, path, out);
    }

    /// Deletes a Child SA's two SAs from `ipsecd`.
    fn delete_sas(
        &mut self,
        protocol: ProtocolId,
        spi_in: u32,
        spi_out: u32,
        path: Path,
        out: &mut Vec<Action>,
    ) {
        let satype = match protocol {
            ProtocolId::AH => SaType::AH,
            _ => SaType::ESP,
        };
        for (spi, src, dst) in [
            (spi_in, path.remote.ip(), path.local.ip()),
            (spi_out, path.local.ip(), path.remote.ip()),
        ] {
            let seq = self.next_seq();
            let m = delete_message(satype, spi, src, dst, seq, self.pid);
            self.pending.push((seq, Waiting::Nothing));
            out.push(Action::PfKey(m.encode()));
        }
    }

    /// Ends every IKE SA: tells each peer, and deletes the Child SAs.
    pub fn shutdown(&mut self, rng: &mut dyn CryptoRngCore) -> Vec<Action> {
        let mut out = Vec::new();
        for at in 0..self.sas.len() {
            self.end(at, rng, &mut out);
        }
        self.sas.clear();
        out
    }

    /// Removes the policy named `name`: its SAs go as
    /// [`Keyer::down`] takes them, and its flows too. `None` when there is
    /// no such policy.
    pub fn remove_policy(
        &mut self,
        name: &str,
        rng: &mut dyn CryptoRngCore,
    ) -> Option<Vec<Action>> {
        let index = self.policies.iter().position(|p| p.name == name)?;
        let mut out = Vec::new();
        self.let_go(index, rng, &mut out);
        self.sweep_peer_flows(&mut out);
        self.peer_flows_for_removed_rule(index);
        for sa in &mut self.sas {
            if sa.policy > index {
                sa.policy -= 1;
            }
            for e in &mut sa.extra {
                if e.policy > index {
                    e.policy -= 1;
                }
            }
            sa.rekey_for_removed_rule(index);
        }
        let policy = self.policies.remove(index);
        self.retry.remove(index);
        self.held.remove(index);
        self.want.remove(index);
        self.flows(&policy, install::delflows, &mut out);
        Some(out)
    }

    /// Ends the Child SAs of rule `index` that live under other rules' IKE
    /// SAs: deleted from `ipsecd`, and the peer told when the SA is free
    /// to.
    pub(super) fn drop_extras(
        &mut self,
        index: usize,
        rng: &mut dyn CryptoRngCore,
        out: &mut Vec<Action>,
    ) {
        for at in 0..self.sas.len() {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sas[at].extra)
                .into_iter()
                .partition(|e| e.policy == index);
            self.sas[at].extra = kept;
            let path = self.sas[at].path;
            for e in gone {
                let c = &e.child;
                self.delete_sas(c.suite.protocol, c.spi_in, c.spi_out, path, out);
                self.tell_deleted(at, c.suite.protocol, c.spi_in, rng, out);
            }
        }
    }

    /// Tells the peer of an established IKE SA that it ends, and deletes
    /// its Child SAs; the caller forgets it.
    fn end(&mut self, at: usize, rng: &mut dyn CryptoRngCore, out: &mut Vec<Action>) {
        let path = self.sas[at].path;
        if self.ended.len() >= ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended
            .push_back((self.sas[at].spi, self.now + HALF_OPEN_LIFETIME));
        if let State::Up(session) = &mut self.sas[at].state {
            let delete = Payload::new(Body::Delete(Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: Vec::new(),
            }));
            if let Ok((_, bytes)) = session.request(ExchangeType::INFORMATIONAL, &[delete], rng) {
                out.push(Action::Send {
                    local: path.local,
                    remote: path.remote,
                    bytes,
                });
            }
            if !self.sas[at].superseded {
                self.remove_children(at, out);
            }
        }
    }
}

/// When to act before `hard` seconds run out: between 80% and 90% of
/// them, at a point a random `seed` (an SPI) picks, so that the two ends,
/// each going by its own SAs, seldom rekey at once.
fn soft_lifetime(hard: u64, seed: u64) -> u64 {
    let spread = (hard / 10).max(1).min(hard.saturating_sub(1));
    hard - spread - seed % (spread + 1)
}

/// SADB_DELETE for the SA `spi` from `src` to `dst`.
fn delete_message(
    satype: SaType,
    spi: u32,
    src: IpAddr,
    dst: IpAddr,
    seq: u32,
    pid: u32,
) -> pfkey::Message {
    let mut m = pfkey::Message::new(pfkey::Header::new(MsgType::DELETE, satype, seq, pid));
    let addr = |ip| {
        pfkey::Body::Address(pfkey::Address {
            reserved: 0,
            addr: pfkey::SockAddr::ip(ip, 0),
        })
    };
    let sa = pfkey::Sa {
        spi,
        ..pfkey::Sa::default()
    };
    let _ = m.push(pfkey::ExtType::SA, pfkey::Body::Sa(sa));
    let _ = m.push(pfkey::ExtType::ADDRESS_SRC, addr(src));
    let _ = m.push(pfkey::ExtType::ADDRESS_DST, addr(dst));
    m
}

/// A message's encoding, for tests and logs.
pub fn describe(bytes: &[u8]) -> String {
    match Message::decode(bytes) {
        Ok(m) => format!(
            "{} {} id {}",
            m.header.exchange,
            if m.header.flags.contains(Flags::RESPONSE) {
                "response"
            } else {
                "request"
            },
            m.header.message_id
        ),
        Err(e) => format!("undecodable: {e}"),
    }
}

mod any_peer;
mod children;
mod failures;
mod ike_rekeying;
mod operate;
pub use operate::{ChildStatus, NoRule, RuleStatus, SaStatus};
mod rekeying;
mod session;

#[cfg(test)]
mod tests;
