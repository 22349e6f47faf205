//! The PF_KEY engine: the kernel's half of PF_KEY v2, as OpenBSD plays it.
//! Messages from clients come in as bytes; what goes out is a list of
//! messages, each for one client. The SAD and SPD change as the messages
//! say; time is passed in.
//!
//! Where OpenBSD's kernel would fail a write (`EINVAL`, `EMSGSIZE`, a
//! reply that breaks its own rules), there is no write to fail here: the
//! sender alone gets its header back with the errno set and nothing else.
//! Other errors are echoed to every client, as OpenBSD does.

pub mod bridged;
pub mod complaints;
pub mod counters;
pub mod datapath;
pub mod filtered;
mod flows;
mod persist;
pub mod relay;
mod sas;
mod steering;

use crate::sad::{Expiry, Sad, SecurityAssociation};
use crate::spd::{PacketKey, Selector, Spd};
use pfkey::validate::{self, Errno};
use pfkey::{Body, ExtType, Header, Identity, Message, MsgType, SaType, SockAddr};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub use bridged::Crossing;
pub use counters::{Counters, DropReason, FlowUsage};
pub use datapath::{Events, Tap, Verdict};
pub use flows::Policy;
pub use persist::RestoreError;
pub use steering::EncRoute;

/// A client connection, as the shell numbers them.
pub type ClientId = u64;

/// One message for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub to: ClientId,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Client {
    /// Bit `1 << satype` for each SA type it registered for.
    registered: u32,
    promiscuous: bool,
}

/// Who a reply goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every client (OpenBSD's default).
    Broadcast,
    /// The sender alone (and promiscuous clients, wrapped).
    Unicast,
    /// Clients registered for an SA type (all registered ones for 0).
    Registered(SaType),
}

/// An acquire sent to the key managers, not yet answered.
#[derive(Debug, Clone)]
struct PendingAcquire {
    seq: u32,
    selector: Selector,
    gateway: IpAddr,
    expires: u64,
}

/// How long an acquire is remembered (OpenBSD's `expire_acquire`).
pub const ACQUIRE_LIFETIME: u64 = 30;

/// How large the tables may grow. Every entry comes from a client (or,
/// for acquires, from traffic), so each table is bounded; past a bound,
/// an ADD, GETSPI or ADDFLOW is refused with `ENOBUFS`, and traffic that
/// would need another acquire waits for one to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub sas: usize,
    /// SAs reserved by GETSPI and not keyed yet (they expire on their own).
    pub larval: usize,
    pub flows: usize,
    /// Acquires sent and not yet answered or forgotten.
    pub acquires: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            sas: 1 << 20,
            larval: 1 << 16,
            flows: 1 << 20,
            acquires: 4096,
        }
    }
}

/// The engine: tables, clients and pending acquires.
#[derive(Debug)]
pub struct Engine {
    pub sad: Sad,
    pub spd: Spd<Policy>,
    clients: BTreeMap<ClientId, Client>,
    /// Sequence numbers of kernel-originated messages.
    seq: u32,
    acquires: Vec<PendingAcquire>,
    random: Rng,
    /// Unpredictable bytes for CBC IVs.
    ivs: crate::random::Random,
    /// The identification field of the next IPv4 tunnel header.
    ident: u16,
    /// A copy of an outbound packet that may not fit the path once
    /// protected, for the ICMP error that would quote it; reused.
    original: Vec<u8>,
    /// Whether the data path keeps copies for an enc capture.
    pub capture: bool,
    pub counters: Counters,
    /// Failures to tell the operator about, rate-limited.
    pub complaints: complaints::Complaints,
    /// The largest packet the path to peers carries.
    pub path_mtu: usize,
    /// The largest packet a bridge port carries (bridge mode).
    pub bridge_mtu: usize,
    /// The pf-style filter (`ipsecd -p`); empty, it passes everything.
    pub filter: crate::filter::Ruleset,
    /// Counts changes to the tables, so that the shell knows when to
    /// bring routes, filter rules and the MTU up to date.
    pub changes: u64,
    /// Counts changes to the SPD alone: when it moves, the saved flows
    /// are written again.
    pub flow_changes: u64,
    /// Counts flushes of the SPD (`ipsecctl -F`): the operator's word that
    /// whatever guards an earlier run left may go.
    pub spd_flushes: u64,
    pub limits: Limits,
    /// The host cannot steer IPv6 into the enc interface (no IPv6 policy
    /// rule): IPv6 flows are refused with `EOPNOTSUPP` rather than
    /// accepted and left unenforced.
    pub refuse_ipv6_flows: bool,
    /// Packets carrying IKE a key manager asked to send on the NAT
    /// traversal port ([`Engine::take_relayed`]).
    relayed: Vec<Vec<u8>>,
}

/// xorshift64*: SPIs only need to be spread out, not secret.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// What a handler produced: the reply and who gets it, or nothing more
/// (dumps send their records themselves).
enum Outcome {
    Reply(Message, Mode),
    Done(Vec<Delivery>),
}

type Handled = Result<Outcome, Errno>;

impl Engine {
    /// An engine with empty tables. `entropy` must be secret and fresh:
    /// it keys the IV generator and spreads SPIs.
    pub fn new(entropy: [u8; 32]) -> Engine {
        let mut ivs = crate::random::Random::new(&entropy);
        // SPIs go on the wire in clear, and the generator that spreads
        // them can be run backwards from them: its seed is drawn from the
        // keystream, never taken from the key the keystream comes from.
        let mut seed = [0u8; 8];
        ivs.fill(&mut seed);
        let mut ident = [0u8; 2];
        ivs.fill(&mut ident);
        Engine {
            sad: Sad::new(),
            spd: Spd::new(),
            clients: BTreeMap::new(),
            seq: 0,
            acquires: Vec::new(),
            random: Rng(u64::from_ne_bytes(seed) | 1),
            ivs,
            original: Vec::new(),
            ident: u16::from_ne_bytes(ident),
            capture: false,
            counters: Counters::default(),
            complaints: complaints::Complaints::default(),
            path_mtu: 1500,
            bridge_mtu: 1500,
            filter: crate::filter::Ruleset::default(),
            changes: 0,
            flow_changes: 0,
            spd_flushes: 0,
            limits: Limits::default(),
            refuse_ipv6_flows: false,
            relayed: Vec::new(),
        }
    }

    pub fn connect(&mut self, id: ClientId) {
        self.clients.insert(id, Client::default());
    }

    pub fn disconnect(&mut self, id: ClientId) {
        self.clients.remove(&id);
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Handles one message a client wrote; `pid` is the client's process.
    pub fn handle(&mut self, from: ClientId, pid: u32, bytes: &[u8], now: u64) -> Vec<Delivery> {
        if bytes.get(1) == Some(&MsgType::X_PROMISC.0) && bytes.len() > 16 {
            return self.forward(from, pid, bytes);
        }
        let msg = match validate::parse_request(bytes, pid) {
            Ok(msg) => msg,
            Err(e) => return vec![self.errno_reply(from, bytes, e)],
        };
        // Monitors see what was sent, once it is known to be a message.
        let mut out = self.promiscuous_copies(from, pid, bytes);
        let result = self.dispatch(from, &msg, now);
        if result.is_ok()
            && matches!(
                msg.header.msg_type,
                MsgType::ADD
                    | MsgType::UPDATE
                    | MsgType::DELETE
                    | MsgType::FLUSH
                    | MsgType::X_ADDFLOW
                    | MsgType::X_DELFLOW
                    | MsgType::X_GRPSPIS
            )
        {
            self.changes += 1;
            let spd_flush =
                msg.header.msg_type == MsgType::FLUSH && msg.header.satype == SaType::UNSPEC;
            if spd_flush {
                self.spd_flushes += 1;
            }
            if spd_flush || matches!(msg.header.msg_type, MsgType::X_ADDFLOW | MsgType::X_DELFLOW) {
                self.flow_changes += 1;
            }
        }
        match result {
            Ok(Outcome::Done(sends)) => out.extend(sends),
            Ok(Outcome::Reply(reply, mode)) => match validate::check_reply(&reply) {
                Ok(()) => out.extend(self.deliver(from, &encoded(&reply), mode)),
                Err(e) => out.push(self.errno_reply(from, bytes, e)),
            },
            Err(e) if matches!(e, Errno::EINVAL | Errno::ENOMEM | Errno::ENOBUFS) => {
                out.push(self.errno_reply(from, bytes, e))
            }
            Err(e) => {
                let mut header = msg.header;
                header.errno = e.0;
                let echo = Message::new(header).encode();
                out.extend(self.deliver(from, &echo, Mode::Broadcast));
            }
        }
        out
    }

    fn dispatch(&mut self, from: ClientId, msg: &Message, now: u64) -> Handled {
        match msg.header.msg_type {
            MsgType::GETSPI => self.getspi(msg, now),
            MsgType::ADD => self.add(msg, now),
            MsgType::UPDATE => self.update(msg, now),
            MsgType::DELETE => self.delete(msg),
            MsgType::GET => self.get(msg),
            MsgType::REGISTER => self.register(from, msg),
            MsgType::ACQUIRE | MsgType::EXPIRE => Ok(Outcome::Reply(msg.clone(), Mode::Broadcast)),
            MsgType::FLUSH => self.flush(msg),
            MsgType::DUMP => self.dump(from, msg),
            MsgType::X_PROMISC => {
                if let Some(client) = self.clients.get_mut(&from) {
                    client.promiscuous = msg.header.satype != SaType::UNSPEC;
                }
                Ok(Outcome::Reply(msg.clone(), Mode::Broadcast))
            }
            MsgType::X_ADDFLOW => self.addflow(msg),
            MsgType::X_DELFLOW => self.delflow(msg),
            MsgType::X_GRPSPIS => self.grpspis(msg),
            MsgType::X_ASKPOLICY => self.askpolicy(msg),
            MsgType::X_SPDDUMP => self.spddump(from, msg),
            MsgType::X_FILTERDUMP => self.filterdump(from, msg),
            MsgType::X_DATAGRAM => self.relay_out(msg),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Dump records, to the requester alone, the last with sequence number
    /// 0; with none, the requester gets its header back with `ENOENT`.
    fn records(&self, from: ClientId, request: &Message, mut records: Vec<Message>) -> Handled {
        if let Some(last) = records.last_mut() {
            last.header.seq = 0;
        } else {
            return Ok(Outcome::Done(vec![self.errno_reply(
                from,
                &request.encode(),
                Errno::ENOENT,
            )]));
        }
        // Unicast, so monitors see the records too.
        let sends = records
            .iter()
            .flat_map(|r| self.deliver(from, &encoded(r), Mode::Unicast))
            .collect();
        Ok(Outcome::Done(sends))
    }

    /// The sender's header with `errno` set, or a bare header when there
    /// was not even one.
    fn errno_reply(&self, to: ClientId, bytes: &[u8], e: Errno) -> Delivery {
        let mut header = [0u8; 16];
        let n = bytes.len().min(16);
        header[..n].copy_from_slice(&bytes[..n]);
        header[0] = pfkey::PF_KEY_V2;
        header[2] = e.0;
        header[4..6].copy_from_slice(&2u16.to_ne_bytes());
        Delivery {
            to,
            bytes: header.to_vec(),
        }
    }

    /// Copies of what a client sent, for promiscuous clients: wrapped in a
    /// header of type X_PROMISC whose sequence number is the sender's pid.
    fn promiscuous_copies(&self, from: ClientId, pid: u32, bytes: &[u8]) -> Vec<Delivery> {
        let watchers: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(id, c)| c.promiscuous && **id != from)
            .map(|(id, _)| *id)
            .collect();
        if watchers.is_empty() || bytes.len() > pfkey::MAX_MESSAGE || !bytes.len().is_multiple_of(8)
        {
            return Vec::new();
        }
        let wrapped = wrap(bytes, SaType::UNSPEC, pid);
        watchers
            .into_iter()
            .map(|to| Delivery {
                to,
                bytes: wrapped.clone(),
            })
            .collect()
    }

    /// A promiscuous message holding another message: passed on verbatim
    /// to every other client when its sequence number is 0 or the
    /// sender's pid, and what it holds is a message.
    fn forward(&self, from: ClientId, pid: u32, bytes: &[u8]) -> Vec<Delivery> {
        let seq = bytes
            .get(8..12)
            .map_or(u32::MAX, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        // Only a well-formed message, whole, goes on to the others.
        let inner_ok = bytes
            .get(16..)
            .is_some_and(|inner| Message::decode(inner).is_ok());
        if Message::peek_len(bytes) != Some(bytes.len()) || !inner_ok || (seq != 0 && seq != pid) {
            return vec![self.errno_reply(from, bytes, Errno::EINVAL)];
        }
        self.clients
            .keys()
            .filter(|&&id| id != from)
            .map(|&to| Delivery {
                to,
                bytes: bytes.to_vec(),
            })
            .collect()
    }

    fn deliver(&self, from: ClientId, bytes: &[u8], mode: Mode) -> Vec<Delivery> {
        let mut out = Vec::new();
        let wrapped = || wrap(bytes, SaType::UNSPEC, 0);
        for (&id, client) in &self.clients {
            let direct = match mode {
                Mode::Broadcast => true,
                Mode::Unicast => id == from,
                Mode::Registered(t) => {
                    client.registered != 0
                        && (t == SaType::UNSPEC || client.registered & (1 << t.0) != 0)
                }
            };
            if direct {
                out.push(Delivery {
                    to: id,
                    bytes: bytes.to_vec(),
                });
            } else if client.promiscuous {
                out.push(Delivery {
                    to: id,
                    bytes: wrapped(),
                });
            }
        }
        out
    }

    /// Time passes: expired SAs are reported (and removed), as are
    /// forgotten acquires.
    pub fn tick(&mut self, now: u64) -> Vec<Delivery> {
        self.acquires.retain(|a| a.expires > now);
        let mut out = Vec::new();
        for (sa, expiry) in self.sad.expire(now) {
            if expiry != Expiry::Soft {
                self.changes += 1;
            }
            if expiry == Expiry::Larval {
                continue;
            }
            let msg = self.expire_message(&sa, expiry);
            out.extend(self.deliver(0, &msg.encode(), Mode::Broadcast));
        }
        out
    }

    /// Reports an expiry the data path found (a byte limit).
    pub fn expired(&mut self, sa: &SecurityAssociation, expiry: Expiry) -> Vec<Delivery> {
        if expiry == Expiry::Larval {
            return Vec::new();
        }
        let msg = self.expire_message(sa, expiry);
        self.deliver(0, &msg.encode(), Mode::Broadcast)
    }

    /// A packet needs an SA its flow asks for and none exists: tell the
    /// key managers, unless they were told already for this flow and peer.
    pub fn acquire(&mut self, packet: &PacketKey, now: u64) -> Vec<Delivery> {
        let Some((selector, policy)) = self.spd.lookup(packet) else {
            return Vec::new();
        };
        if !policy.wants_sa() {
            return Vec::new();
        }
        let gateway = policy.peer.unwrap_or(packet.dst);
        if self.sad.by_dst(gateway, policy.satype).next().is_some() {
            return Vec::new();
        }
        let selector = *selector;
        if self
            .acquires
            .iter()
            .any(|a| a.gateway == gateway && a.selector.mask_eq(&selector) && a.expires > now)
        {
            return Vec::new();
        }
        if self.acquires.len() >= self.limits.acquires {
            return Vec::new();
        }
        let seq = self.next_seq();
        let msg = flows::acquire_message(seq, self.spd.get(&selector), gateway);
        self.acquires.push(PendingAcquire {
            seq,
            selector,
            gateway,
            expires: now + ACQUIRE_LIFETIME,
        });
        let satype = msg.header.satype;
        self.deliver(0, &msg.encode(), Mode::Registered(satype))
    }
}

/// A message in its wire form, wiped when it goes: replies to GET and
/// DUMP carry keys, and every client gets a copy of its own.
fn encoded(msg: &Message) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(msg.encode())
}

/// `inner` behind an outer header of type X_PROMISC.
fn wrap(inner: &[u8], satype: SaType, seq: u32) -> Vec<u8> {
    let mut out = Message::new(Header::new(MsgType::X_PROMISC, satype, seq, 0)).encode();
    let units = ((out.len() + inner.len()) / 8) as u16;
    out[4..6].copy_from_slice(&units.to_ne_bytes());
    out.extend_from_slice(inner);
    out
}

/// The address an address extension holds, if any.
fn address(msg: &Message, t: ExtType) -> Option<&SockAddr> {
    match msg.get(t) {
        Some(Body::Address(a)) => Some(&a.addr),
        _ => None,
    }
}

fn ip(msg: &Message, t: ExtType) -> Option<IpAddr> {
    address(msg, t).and_then(SockAddr::addr)
}

fn identity(msg: &Message, t: ExtType) -> Option<Identity> {
    match msg.get(t) {
        Some(Body::Identity(i)) => Some(i.clone()),
        _ => None,
    }
}

fn push(m: &mut Message, t: ExtType, body: Body) {
    m.extensions.push(pfkey::Extension { ext_type: t, body });
}

fn sockaddr(ip: IpAddr) -> Body {
    Body::Address(pfkey::Address {
        reserved: 0,
        addr: SockAddr::ip(ip, 0),
    })
}

#[cfg(test)]
mod tests;
