//! Two key managers, each beside its own `ipsecd` engine, with the
//! network and PF_KEY between them simulated: SAs come up at start or on
//! demand, packets cross, a lost request is sent again, a dead peer is
//! given up, and a shutdown deletes what the peer holds too.

use super::*;
use crate::exchange::selectors::of_net;
use crate::exchange::suite::{ChildOffer, IkeOffer};

use crate::wire::{DhGroup, EncrId, EsnId, IdType, Identification, IntegId, PrfId};
use ipsec_engine::engine::{Engine, Events, Verdict};
use ipsec_engine::packet::PacketBuf;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

const CLIENT: u64 = 1;

struct Side {
    addr: IpAddr,
    keyer: Keyer,
    engine: Engine,
    pid: u32,
    log: Vec<String>,
}

fn policy(me: &str, peer: &str, mine: &str, theirs: &str, start: Start) -> Policy {
    let net = |s: &str| {
        let (a, p) = s.split_once('/').unwrap();
        of_net(a.parse().unwrap(), p.parse().unwrap(), 0, 0)
    };
    let id = |a: &str| Identification {
        id_type: IdType::IPV4_ADDR,
        data: a.parse::<std::net::Ipv4Addr>().unwrap().octets().to_vec(),
    };
    Policy {
        name: format!("ike {me}"),
        start,
        local: me.parse().unwrap(),
        peer: Some(peer.parse().unwrap()),
        config: Config {
            ike: IkeOffer {
                encr: vec![(EncrId::AES_GCM_16, Some(256))],
                prf: vec![PrfId::HMAC_SHA2_256],
                integ: vec![],
                dh: vec![DhGroup::CURVE25519],
            },
            child: ChildOffer {
                protocol: ProtocolId::ESP,
                encr: vec![(EncrId::AES_GCM_16, Some(128))],
                integ: vec![IntegId::HMAC_SHA2_256_128],
                dh: vec![],
                esn: vec![EsnId::NO],
            },
            local_id: id(me),
            remote_id: Some(id(peer)),
            credentials: crate::exchange::auth::Credentials::Psk(Zeroizing::new(
                b"shared between the two".to_vec(),
            )),
            unix: 0,
            ts_local: vec![net(mine)],
            ts_remote: vec![net(theirs)],
            transport: false,
        },
        lifetimes: Lifetimes::default(),
        ike_lifetime: 0,
    }
}

fn side(
    pid: u32,
    p: Policy,
    rng: &mut dyn CryptoRngCore,
    queue: &mut Vec<(usize, Action)>,
    index: usize,
) -> Side {
    side_with(pid, vec![p], rng, queue, index)
}

/// A side with several policies (the first's local address is its own).
fn side_with(
    pid: u32,
    policies: Vec<Policy>,
    rng: &mut dyn CryptoRngCore,
    queue: &mut Vec<(usize, Action)>,
    index: usize,
) -> Side {
    let mut engine = Engine::new([pid as u8; 32]);
    engine.connect(CLIENT);
    let addr = policies[0].local;
    let (keyer, actions) = Keyer::new(pid, policies, 0, rng);
    queue.extend(actions.into_iter().map(|a| (index, a)));
    Side {
        addr,
        keyer,
        engine,
        pid,
        log: Vec::new(),
    }
}

/// Delivers actions until none are left; `lose` drops IKE datagrams it
/// returns true for.
fn pump(
    sides: &mut [Side; 2],
    mut queue: Vec<(usize, Action)>,
    now: u64,
    rng: &mut dyn CryptoRngCore,
    lose: &mut dyn FnMut(&[u8]) -> bool,
) {
    let mut rounds = 0;
    while let Some((from, action)) = (!queue.is_empty()).then(|| queue.remove(0)) {
        rounds += 1;
        assert!(rounds < 1000, "the exchange does not settle");
        match action {
            Action::Send {
                local,
                remote,
                bytes,
            } => {
                if lose(&bytes) {
                    continue;
                }
                let to = sides
                    .iter()
                    .position(|s| s.addr == remote.ip())
                    .expect("a peer");
                let event = Event::Datagram {
                    local: remote,
                    remote: local,
                    bytes: &bytes,
                };
                let out = sides[to].keyer.handle(event, now, rng);
                queue.extend(out.into_iter().map(|a| (to, a)));
            }
            Action::PfKey(bytes) => {
                let s = &mut sides[from];
                for d in s.engine.handle(CLIENT, s.pid, &bytes, now) {
                    if d.to == CLIENT {
                        let out = s.keyer.handle(Event::PfKey(&d.bytes), now, rng);
                        queue.extend(out.into_iter().map(|a| (from, a)));
                    }
                }
            }
            Action::Log(line) => sides[from].log.push(line),
        }
    }
}

/// Sends a packet from `src` to `dst` through side `from`'s engine and,
/// if it leaves protected, into side `to`'s. Returns the ACQUIREs and
/// whether the packet arrived whole.
fn send(
    sides: &mut [Side; 2],
    from: usize,
    to: usize,
    src: &str,
    dst: &str,
) -> (Vec<Vec<u8>>, bool) {
    let (s, d): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let mut p = vec![0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    let sum = p
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89, 0, 8, 0, 0]);
    let mut buf = PacketBuf::from_slice(&p);
    let mut events = Events::default();
    let verdict = sides[from].engine.outbound(&mut buf, 1, &mut events);
    let acquires = events
        .messages
        .iter()
        .filter(|m| m.to == CLIENT)
        .map(|m| m.bytes.clone())
        .collect();
    if verdict != Verdict::Wire {
        return (acquires, false);
    }
    let mut arriving = PacketBuf::from_slice(buf.as_slice());
    let opened = sides[to]
        .engine
        .inbound(&mut arriving, None, 1, &mut events)
        == Verdict::Enc;
    (acquires, opened && arriving.as_slice() == p)
}

/// Gives A's key manager the ACQUIREs its `ipsecd` sent, and lets what
/// follows settle.
fn hand_acquires(sides: &mut [Side; 2], acquires: &[Vec<u8>], rng: &mut dyn CryptoRngCore) {
    let mut queue = Vec::new();
    for m in acquires {
        let out = sides[0].keyer.handle(Event::PfKey(m), 0, rng);
        queue.extend(out.into_iter().map(|a| (0, a)));
    }
    pump(sides, queue, 0, rng, &mut |_| false);
}

fn pair(a_start: Start, rng: &mut dyn CryptoRngCore) -> ([Side; 2], Vec<(usize, Action)>) {
    let mut queue = Vec::new();
    let a = side(
        100,
        policy(
            "192.0.2.1",
            "192.0.2.2",
            "10.1.0.0/16",
            "10.2.0.0/16",
            a_start,
        ),
        rng,
        &mut queue,
        0,
    );
    let b = side(
        200,
        policy(
            "192.0.2.2",
            "192.0.2.1",
            "10.2.0.0/16",
            "10.1.0.0/16",
            Start::Passive,
        ),
        rng,
        &mut queue,
        1,
    );
    ([a, b], queue)
}

#[test]
fn an_active_policy_comes_up_at_start_and_packets_cross() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 1, "{:?}", sides[0].log);
    assert_eq!(sides[1].keyer.sessions().count(), 1, "{:?}", sides[1].log);
    assert!(
        sides[0].log.iter().any(|l| l.contains("up")),
        "{:?}",
        sides[0].log
    );
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
    assert!(send(&mut sides, 1, 0, "10.2.0.7", "10.1.0.5").1);
    // The flows hold clear text back: another network is not theirs.
    assert!(!send(&mut sides, 0, 1, "10.1.0.5", "10.3.0.1").1);
    assert_eq!(sides[0].keyer.drops, Drops::default());
    assert_eq!(sides[1].keyer.drops, Drops::default());
}

#[test]
fn an_on_demand_policy_comes_up_when_traffic_needs_it() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let (mut sides, queue) = pair(Start::OnDemand, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 0, "not before traffic");
    let (acquires, arrived) = send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7");
    assert!(
        !arrived,
        "the first packet waits for the SA (dropped, not clear)"
    );
    assert_eq!(acquires.len(), 1, "ipsecd asks for an SA");
    hand_acquires(&mut sides, &acquires, &mut rng);
    assert_eq!(sides[0].keyer.sessions().count(), 1, "{:?}", sides[0].log);
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
}

#[test]
fn a_lost_request_is_sent_again_and_a_dead_peer_given_up() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    // The first IKE_SA_INIT request is lost.
    let mut lost = 0;
    pump(&mut sides, queue, 0, &mut rng, &mut |bytes| {
        let first = Header::peek(bytes).is_ok_and(|h| {
            h.exchange == ExchangeType::IKE_SA_INIT && !h.flags.contains(Flags::RESPONSE)
        });
        if first && lost == 0 {
            lost += 1;
            return true;
        }
        false
    });
    assert_eq!(sides[0].keyer.sessions().count(), 0);
    let again = sides[0].keyer.handle(Event::Tick, 1, &mut rng);
    assert_eq!(again.len(), 1, "sent again after a second");
    let queue = again.into_iter().map(|a| (0, a)).collect();
    pump(&mut sides, queue, 1, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 1, "{:?}", sides[0].log);

    // A peer that never answers: sent again after 1, 2, 4 and 8 seconds,
    // and given up 16 seconds after the fifth.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| true);
    let mut sent_at = Vec::new();
    let mut given_up = None;
    let mut getspi_at = Vec::new();
    for now in 1..=40 {
        for a in sides[0].keyer.handle(Event::Tick, now, &mut rng) {
            match a {
                Action::Send { .. } => sent_at.push(now),
                Action::Log(l) => {
                    given_up.get_or_insert(now);
                    sides[0].log.push(l);
                }
                Action::PfKey(bytes) => {
                    let m = pfkey::Message::decode(&bytes).unwrap();
                    if m.header.msg_type == MsgType::GETSPI {
                        getspi_at.push(now);
                    }
                }
            }
        }
    }
    assert_eq!(sent_at, [1, 3, 7, 15]);
    assert_eq!(given_up, Some(31));
    // The policy is active: it tries again five seconds later.
    assert_eq!(getspi_at, [36]);
    assert!(
        sides[0].log.iter().any(|l| l.contains("no answer")),
        "{:?}",
        sides[0].log
    );
}

#[test]
fn a_shutdown_deletes_the_sas_on_both_ends() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    assert!(send(&mut sides, 1, 0, "10.2.0.7", "10.1.0.5").1);
    let out = sides[0].keyer.shutdown(&mut rng);
    let queue = out.into_iter().map(|a| (0, a)).collect();
    pump(&mut sides, queue, 2, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 0);
    assert_eq!(sides[1].keyer.sessions().count(), 0, "{:?}", sides[1].log);
    assert!(
        sides[1].log.iter().any(|l| l.contains("deleted")),
        "{:?}",
        sides[1].log
    );
    // Neither engine has an SA left for the traffic: it is held back.
    assert!(!send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
    assert!(!send(&mut sides, 1, 0, "10.2.0.7", "10.1.0.5").1);
}

#[test]
fn forged_and_stray_messages_are_dropped_and_counted() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let b = &mut sides[1].keyer;
    let (local, remote): (SocketAddr, SocketAddr) = (
        "192.0.2.2:500".parse().unwrap(),
        "192.0.2.1:500".parse().unwrap(),
    );
    let drops = |b: &mut Keyer, bytes: &[u8], rng: &mut dyn CryptoRngCore| {
        let out = b.handle(
            Event::Datagram {
                local,
                remote,
                bytes,
            },
            0,
            rng,
        );
        assert!(
            !out.iter().any(|a| matches!(a, Action::Send { .. })),
            "{out:?}"
        );
    };
    drops(b, &[1, 2, 3], &mut rng);
    assert_eq!(b.drops.malformed, 1);
    // An established SA's SPIs with a garbled body.
    let (spi_i, spi_r) = b.sessions().next().unwrap().1.spis();
    let mut forged = Message {
        header: Header {
            spi_i,
            spi_r,
            next: crate::wire::PayloadType::NONE,
            version: crate::wire::VERSION,
            exchange: ExchangeType::INFORMATIONAL,
            flags: Flags::INITIATOR,
            message_id: 2,
            length: 0,
        },
        payloads: vec![Payload::new(Body::Sk {
            first: crate::wire::PayloadType::NONE,
            data: vec![0; 64],
        })],
    }
    .encode()
    .unwrap();
    drops(b, &forged, &mut rng);
    assert_eq!(b.drops.unprotected, 1);
    forged[0] ^= 1;
    drops(b, &forged, &mut rng);
    assert_eq!(b.drops.unknown_spi, 1);
    assert_eq!(b.sessions().count(), 1, "the SA stands");
}

#[test]
fn a_flush_takes_the_flows_out_too() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let out = sides[0].keyer.flush(&mut rng);
    assert!(sides[0].keyer.policies().is_empty());
    let queue = out.into_iter().map(|a| (0, a)).collect();
    pump(&mut sides, queue, 2, &mut rng, &mut |_| false);
    assert!(
        !sides[0].log.iter().any(|l| l.contains("refused")),
        "{:?}",
        sides[0].log
    );
    // With no flow left, the traffic is A's own business again: it is
    // neither held back nor protected.
    let packet = {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 5, 10, 2, 0, 7,
        ];
        let sum = p
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89, 0, 8, 0, 0]);
        p
    };
    let mut buf = PacketBuf::from_slice(&packet);
    let verdict = sides[0]
        .engine
        .outbound(&mut buf, 3, &mut Events::default());
    assert_eq!(verdict, Verdict::Wire);
    // Routed on in the clear (one hop less to live), not protected.
    assert_eq!(buf.as_slice()[9], 17, "not ESP");
    assert_eq!(buf.as_slice()[12..], packet[12..]);
}

#[test]
fn a_policy_removed_ends_its_sa_and_leaves_the_others() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let name = sides[0].keyer.policies()[0].name.clone();
    assert!(
        sides[0]
            .keyer
            .remove_policy("no such policy", &mut rng)
            .is_none()
    );
    let out = sides[0].keyer.remove_policy(&name, &mut rng).unwrap();
    let queue = out.into_iter().map(|a| (0, a)).collect();
    pump(&mut sides, queue, 1, &mut rng, &mut |_| false);
    assert!(sides[0].keyer.policies().is_empty());
    assert_eq!(sides[0].keyer.sessions().count(), 0);
    assert_eq!(sides[1].keyer.sessions().count(), 0, "the peer was told");
    assert_eq!(
        sides[1].keyer.policies().len(),
        1,
        "the peer keeps its policy"
    );
}

/// Regression: an IKE_AUTH request that came over port 4500 before the
/// responder's SPI was reserved was answered, once it was, from port 500
/// (and the Child SA sent ESP to the wrong port).
#[test]
fn an_early_auth_request_is_answered_where_it_came() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let (mut sides, mut queue) = pair(Start::Active, &mut rng);
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut answer = None;
    let mut rounds = 0;
    while let Some((from, action)) = (!queue.is_empty()).then(|| queue.remove(0)) {
        rounds += 1;
        assert!(rounds < 500);
        match action {
            Action::Send {
                local,
                remote,
                bytes,
            } => {
                let h = Header::peek(&bytes).unwrap();
                let to = 1 - from;
                let (mut at, mut by) = (remote, local);
                if h.exchange == ExchangeType::IKE_AUTH && from == 0 {
                    // As if A had moved to port 4500 past a NAT.
                    at.set_port(NATT_PORT);
                    by.set_port(NATT_PORT);
                }
                let out = sides[to].keyer.handle(
                    Event::Datagram {
                        local: at,
                        remote: by,
                        bytes: &bytes,
                    },
                    0,
                    &mut rng,
                );
                if h.exchange == ExchangeType::IKE_AUTH && from == 0 {
                    assert!(out.is_empty(), "kept until the SPI is there: {out:?}");
                    // Now the held GETSPI goes to B's engine.
                    for bytes in held.drain(..) {
                        for d in sides[1].engine.handle(CLIENT, sides[1].pid, &bytes, 0) {
                            if d.to == CLIENT {
                                let out =
                                    sides[1].keyer.handle(Event::PfKey(&d.bytes), 0, &mut rng);
                                answer = out.iter().find_map(|a| match a {
                                    Action::PfKey(b) => pfkey::Message::decode(b)
                                        .ok()
                                        .filter(|m| m.header.msg_type == MsgType::X_DATAGRAM),
                                    _ => None,
                                });
                            }
                        }
                    }
                    break;
                }
                queue.extend(out.into_iter().map(|a| (to, a)));
            }
            Action::PfKey(bytes) => {
                let getspi = pfkey::Message::decode(&bytes)
                    .is_ok_and(|m| m.header.msg_type == MsgType::GETSPI);
                if from == 1 && getspi {
                    held.push(bytes);
                    continue;
                }
                let s = &mut sides[from];
                for d in s.engine.handle(CLIENT, s.pid, &bytes, 0) {
                    if d.to == CLIENT {
                        let out = s.keyer.handle(Event::PfKey(&d.bytes), 0, &mut rng);
                        queue.extend(out.into_iter().map(|a| (from, a)));
                    }
                }
            }
            Action::Log(_) => {}
        }
    }
    let answer = answer.expect("B answered through ipsecd's port 4500");
    let (from, to, message) = install::relayed(&answer).unwrap();
    assert_eq!((from.port(), to.port()), (NATT_PORT, NATT_PORT));
    let h = Header::peek(&message).unwrap();
    assert_eq!(h.exchange, ExchangeType::IKE_AUTH);
    assert!(h.flags.contains(Flags::RESPONSE));
}

/// ipsecd's soft expiry of an SA, as it tells registered key managers.
fn soft_expire(spi: u32, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let mut m = pfkey::Message::new(pfkey::Header::new(MsgType::EXPIRE, SaType::ESP, 0, 0));
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
    m.push(pfkey::ExtType::SA, pfkey::Body::Sa(sa)).unwrap();
    m.push(
        pfkey::ExtType::LIFETIME_SOFT,
        pfkey::Body::Lifetime(pfkey::Lifetime::default()),
    )
    .unwrap();
    m.push(pfkey::ExtType::ADDRESS_SRC, addr(src)).unwrap();
    m.push(pfkey::ExtType::ADDRESS_DST, addr(dst)).unwrap();
    m.encode()
}

fn child_spis(side: &Side) -> (u32, u32) {
    let (_, s) = side.keyer.sessions().next().expect("an IKE SA");
    (s.sa.child.spi_in, s.sa.child.spi_out)
}

#[test]
fn a_soft_expiry_rekeys_the_child_sa_on_either_side() {
    for (expiring, label) in [(0usize, "the initiator"), (1, "the responder")] {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(10 + expiring as u64);
        let (mut sides, queue) = pair(Start::Active, &mut rng);
        pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
        let before = (child_spis(&sides[0]), child_spis(&sides[1]));
        assert_eq!(sides[0].engine.sad.len(), 2);
        let (_, spi_out) = child_spis(&sides[expiring]);
        let me = sides[expiring].addr;
        let peer = sides[1 - expiring].addr;
        let expire = soft_expire(spi_out, me, peer);
        let out = sides[expiring]
            .keyer
            .handle(Event::PfKey(&expire), 5, &mut rng);
        let queue = out.into_iter().map(|a| (expiring, a)).collect();
        pump(&mut sides, queue, 5, &mut rng, &mut |_| false);
        let after = (child_spis(&sides[0]), child_spis(&sides[1]));
        assert_ne!(after.0, before.0, "{label}: A's Child SA is new");
        assert_eq!(
            after.0.0, after.1.1,
            "{label}: A receives on what B sends with"
        );
        assert_eq!(after.0.1, after.1.0, "{label}: and the other way");
        for s in &sides {
            assert!(
                s.log.iter().any(|l| l.contains("rekeyed")),
                "{label}: {:?}",
                s.log
            );
            assert_eq!(
                s.engine.sad.len(),
                2,
                "{label}: the old SAs are gone: {:?}",
                s.log
            );
        }
        assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1, "{label}");
        assert!(send(&mut sides, 1, 0, "10.2.0.7", "10.1.0.5").1, "{label}");
    }
}

/// Both ends warned at once: one rekey is put off and tried again, and
/// no SPI reserved for the loser is left behind (regression: its larval
/// SA stayed in ipsecd).
#[test]
fn simultaneous_rekeys_settle_without_leftovers() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let mut queue = Vec::new();
    for i in [0, 1] {
        let (_, spi_out) = child_spis(&sides[i]);
        let expire = soft_expire(spi_out, sides[i].addr, sides[1 - i].addr);
        let out = sides[i].keyer.handle(Event::PfKey(&expire), 5, &mut rng);
        queue.extend(out.into_iter().map(|a| (i, a)));
    }
    pump(&mut sides, queue, 5, &mut rng, &mut |_| false);
    // Whoever was put off tries again within three seconds.
    for now in 6..=9 {
        let mut queue = Vec::new();
        for i in [0, 1] {
            let out = sides[i].keyer.handle(Event::Tick, now, &mut rng);
            queue.extend(out.into_iter().map(|a| (i, a)));
        }
        pump(&mut sides, queue, now, &mut rng, &mut |_| false);
    }
    let (a, b) = (child_spis(&sides[0]), child_spis(&sides[1]));
    assert_eq!((a.0, a.1), (b.1, b.0));
    for s in &sides {
        assert!(s.log.iter().any(|l| l.contains("rekeyed")), "{:?}", s.log);
        assert_eq!(s.engine.sad.len(), 2, "{:?}", s.log);
    }
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
}

/// Regression: each end numbers its own requests (RFC 7296 §2.2); the
/// original responder's first is 0, not 2 (strongSwan's went
/// unanswered).
#[test]
fn each_end_numbers_its_own_requests() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(31);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let first_id = |out: &[Action]| {
        out.iter().find_map(|a| match a {
            Action::Send { bytes, .. } => Header::peek(bytes).ok().map(|h| h.message_id),
            _ => None,
        })
    };
    let out = sides[1].keyer.shutdown(&mut rng);
    assert_eq!(first_id(&out), Some(0), "the responder's first request");
    let queue = out.into_iter().map(|a| (1, a)).collect();
    pump(&mut sides, queue, 1, &mut rng, &mut |_| false);
    assert!(
        sides[0].log.iter().any(|l| l.contains("deleted")),
        "{:?}",
        sides[0].log
    );
    // And the initiator's first after IKE_AUTH is 2.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(32);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    assert_eq!(first_id(&sides[0].keyer.shutdown(&mut rng)), Some(2));
}

#[test]
fn a_silent_peer_is_asked_and_a_dead_one_removed() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(42);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let sides = &mut sides;
    // A live peer answers the liveness check, and nothing changes.
    let out = sides[0].keyer.handle(Event::Tick, LIVENESS, &mut rng);
    let asked = out.iter().any(|a| matches!(a, Action::Send { .. }));
    assert!(asked, "an empty INFORMATIONAL after {LIVENESS} s: {out:?}");
    let queue = out.into_iter().map(|a| (0, a)).collect();
    pump(sides, queue, LIVENESS, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 1);
    let quiet = sides[0].keyer.handle(Event::Tick, LIVENESS + 1, &mut rng);
    assert!(quiet.is_empty(), "answered: no more checks for a while");
    // A dead one: the check goes unanswered through its retransmissions
    // (sent at 121, then 122, 124, 128 and 136; given up at 152, before
    // the active policy tries again at 157).
    let start = 2 * LIVENESS + 1;
    for now in start..start + 35 {
        let out = sides[0].keyer.handle(Event::Tick, now, &mut rng);
        let queue = out.into_iter().map(|a| (0, a)).collect();
        pump(sides, queue, now, &mut rng, &mut |_| true);
    }
    assert_eq!(sides[0].keyer.sessions().count(), 0);
    assert!(
        sides[0].log.iter().any(|l| l.contains("stopped answering")),
        "{:?}",
        sides[0].log
    );
    assert_eq!(sides[0].engine.sad.len(), 0, "its Child SAs are gone");
}

#[test]
fn a_rule_for_any_peer_answers_and_its_flows_come_and_go_with_its_child_sa() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(63);
    let mut queue = Vec::new();
    let mine = policy(
        "192.0.2.1",
        "192.0.2.2",
        "10.1.0.0/16",
        "10.2.0.0/16",
        Start::Active,
    );
    let a = side(100, mine, &mut rng, &mut queue, 0);
    let mut any = policy(
        "192.0.2.2",
        "192.0.2.1",
        "10.2.0.0/16",
        "0.0.0.0/0",
        Start::Passive,
    );
    any.peer = None;
    any.config.remote_id = None;
    let b = side(200, any, &mut rng, &mut queue, 1);
    let mut sides = [a, b];
    // B's rule puts in no flows of its own.
    let (b_start, a_start): (Vec<_>, Vec<_>) = queue.into_iter().partition(|(i, _)| *i == 1);
    pump(&mut sides, b_start, 0, &mut rng, &mut |_| false);
    assert_eq!(sides[1].engine.spd.len(), 0);
    pump(&mut sides, a_start, 0, &mut rng, &mut |_| false);
    assert_eq!(sides[1].keyer.sessions().count(), 1, "{:?}", sides[1].log);
    // The Child SA brings the flows it was narrowed to, toward A: out
    // and in, 10.2.0.0/16 and 10.1.0.0/16 (not any).
    assert_eq!(sides[1].engine.spd.len(), 2);
    assert!(send(&mut sides, 1, 0, "10.2.0.7", "10.1.0.5").1);
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
    let (_, protected) = send(&mut sides, 1, 0, "10.2.0.7", "10.3.0.5");
    assert!(!protected, "beyond what was negotiated: no flow, no SA");
    // When A goes, so do B's Child SA and its flows; the rule stays.
    let out = sides[0].keyer.shutdown(&mut rng);
    let queue = out.into_iter().map(|a| (0, a)).collect();
    pump(&mut sides, queue, 2, &mut rng, &mut |_| false);
    assert_eq!(sides[1].keyer.sessions().count(), 0);
    assert_eq!(sides[1].engine.sad.len(), 0);
    assert_eq!(sides[1].engine.spd.len(), 0, "{:?}", sides[1].log);
    assert_eq!(sides[1].keyer.policies().len(), 1);
    // A named peer's rule comes before one for any peer.
    let mut named = policy(
        "192.0.2.2",
        "192.0.2.1",
        "10.2.0.0/16",
        "10.1.0.0/16",
        Start::Passive,
    );
    named.name = "named".into();
    let _ = sides[1].keyer.add_policy(named, 3, &mut rng);
    assert_eq!(
        sides[1]
            .keyer
            .answering("192.0.2.2".parse().unwrap(), "192.0.2.1".parse().unwrap()),
        [1, 0]
    );
    assert_eq!(
        sides[1]
            .keyer
            .answering("192.0.2.2".parse().unwrap(), "192.0.2.9".parse().unwrap()),
        [0]
    );
}

#[test]
fn a_flood_of_ike_sa_init_gets_cookies_and_leaves_state_bounded() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(51);
    let mut queue = Vec::new();
    let a = side(
        100,
        policy(
            "192.0.2.1",
            "192.0.2.2",
            "10.1.0.0/16",
            "10.2.0.0/16",
            Start::Active,
        ),
        &mut rng,
        &mut Vec::new(),
        0,
    );
    let b = side(
        200,
        policy(
            "192.0.2.2",
            "192.0.2.1",
            "10.2.0.0/16",
            "10.1.0.0/16",
            Start::Passive,
        ),
        &mut rng,
        &mut queue,
        1,
    );
    let mut sides = [a, b];
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    // A thousand IKE_SA_INIT requests under the peer's address, forged.
    let b_addr = SocketAddr::new(sides[1].addr, IKE_PORT);
    let from = SocketAddr::new("192.0.2.1".parse().unwrap(), IKE_PORT);
    let mut challenged = 0;
    for n in 0..1000u32 {
        let config = policy(
            "192.0.2.1",
            "192.0.2.2",
            "10.1.0.0/16",
            "10.2.0.0/16",
            Start::Active,
        )
        .config;
        let path = Path {
            local: from,
            remote: b_addr,
        };
        let (_, request) = Initiator::start(config, path, u64::from(n) + 1, &mut rng).unwrap();
        let out = sides[1].keyer.handle(
            Event::Datagram {
                local: b_addr,
                remote: from,
                bytes: &request,
            },
            0,
            &mut rng,
        );
        let cookie = out.iter().any(|a| match a {
            Action::Send { bytes, .. } => Message::decode(bytes).is_ok_and(|m| {
                m.notifications(crate::wire::NotifyType::COOKIE)
                    .next()
                    .is_some()
            }),
            _ => false,
        });
        challenged += usize::from(cookie);
    }
    assert_eq!(challenged, 1000 - HALF_OPEN_COOKIES);
    assert_eq!(
        sides[1].keyer.drops.cookies_asked,
        (1000 - HALF_OPEN_COOKIES) as u64
    );
    assert_eq!(
        sides[1].keyer.sas.len(),
        HALF_OPEN_COOKIES,
        "state stays bounded"
    );
    // The real initiator returns the cookie and gets through.
    let (mut fresh, queue) = {
        let mut queue = Vec::new();
        let (keyer, actions) = Keyer::new(
            100,
            vec![policy(
                "192.0.2.1",
                "192.0.2.2",
                "10.1.0.0/16",
                "10.2.0.0/16",
                Start::Active,
            )],
            0,
            &mut rng,
        );
        queue.extend(actions.into_iter().map(|a| (0, a)));
        (keyer, queue)
    };
    std::mem::swap(&mut sides[0].keyer, &mut fresh);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 1, "{:?}", sides[0].log);
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
    // The flood's half-open SAs go after their time, SPIs given back.
    let out = sides[1]
        .keyer
        .handle(Event::Tick, HALF_OPEN_LIFETIME, &mut rng);
    let queue = out.into_iter().map(|a| (1, a)).collect();
    pump(&mut sides, queue, HALF_OPEN_LIFETIME, &mut rng, &mut |_| {
        false
    });
    assert_eq!(
        sides[1].keyer.drops.half_open_expired,
        HALF_OPEN_COOKIES as u64
    );
    assert_eq!(sides[1].keyer.sas.len(), 1);
    assert_eq!(sides[1].engine.sad.len(), 2, "only the real Child SA's");
}

#[test]
fn the_responder_finds_which_of_its_rules_for_a_peer_the_initiator_means() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(52);
    let mut queue = Vec::new();
    let nets = [
        ("10.1.0.0/16", "10.2.0.0/16"),
        ("10.3.0.0/16", "10.4.0.0/16"),
    ];
    // Each pair of rules has a key of its own, so that each is an IKE
    // SA of its own (rules that share one are the next test's).
    let mine = |start, me, peer, swap: bool| -> Vec<Policy> {
        nets.iter()
            .map(|&(x, y)| {
                let (l, r) = if swap { (y, x) } else { (x, y) };
                let mut p = policy(me, peer, l, r, start);
                p.name = format!("{l} {r}");
                p.config.credentials = crate::exchange::auth::Credentials::Psk(Zeroizing::new(
                    format!("the key of {}", if swap { r } else { l }).into_bytes(),
                ));
                p
            })
            .collect()
    };
    let a = side_with(
        100,
        mine(Start::Active, "192.0.2.1", "192.0.2.2", false),
        &mut rng,
        &mut queue,
        0,
    );
    // B lists its rules the other way round: the second IKE SA's
    // IKE_SA_INIT is answered for the first rule, its IKE_AUTH is not.
    let mut rules_b = mine(Start::Passive, "192.0.2.2", "192.0.2.1", true);
    rules_b.reverse();
    let b = side_with(200, rules_b, &mut rng, &mut queue, 1);
    let mut sides = [a, b];
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 2, "{:?}", sides[0].log);
    assert_eq!(sides[1].keyer.sessions().count(), 2, "{:?}", sides[1].log);
    let mut names: Vec<&str> = sides[1]
        .keyer
        .sessions()
        .map(|(p, _)| p.name.as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["10.2.0.0/16 10.1.0.0/16", "10.4.0.0/16 10.3.0.0/16"]
    );
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
    assert!(send(&mut sides, 0, 1, "10.3.0.5", "10.4.0.7").1);
    assert!(send(&mut sides, 1, 0, "10.4.0.7", "10.3.0.5").1);
    assert_eq!(sides[1].keyer.drops, Drops::default());
}

/// Three rules for one peer: the first two alike but for their
/// selectors, the third with a key of its own.
fn three_rules(me: &str, peer: &str, start: Start, swap: bool) -> Vec<Policy> {
    [
        ("10.1.0.0/16", "10.2.0.0/16"),
        ("10.3.0.0/16", "10.4.0.0/16"),
        ("10.5.0.0/16", "10.6.0.0/16"),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(x, y))| {
        let (l, r) = if swap { (y, x) } else { (x, y) };
        let mut p = policy(me, peer, l, r, start);
        p.name = format!("rule {}", i + 1);
        if i == 2 {
            p.config.credentials =
                crate::exchange::auth::Credentials::Psk(Zeroizing::new(b"another key".to_vec()));
        }
        p
    })
    .collect()
}

/// A with the first `count` of [`three_rules`], starting as `start`, and
/// B with their passive counterparts; and their first actions.
fn sharing_pair(
    start: Start,
    count: usize,
    rng: &mut dyn CryptoRngCore,
) -> ([Side; 2], Vec<(usize, Action)>) {
    let mut queue = Vec::new();
    let ends = [
        (100, "192.0.2.1", "192.0.2.2", start, false),
        (200, "192.0.2.2", "192.0.2.1", Start::Passive, true),
    ];
    let mut index = 0;
    let sides = ends.map(|(pid, me, peer, start, swap)| {
        let mut rules = three_rules(me, peer, start, swap);
        rules.truncate(count);
        index += 1;
        side_with(pid, rules, rng, &mut queue, index - 1)
    });
    (sides, queue)
}

#[test]
fn rules_for_one_peer_with_the_same_ike_terms_share_one_ike_sa() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(60);
    let (mut sides, queue) = sharing_pair(Start::Active, 3, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    // Rules 1 and 2 share one IKE SA, with a Child SA each; rule 3's key
    // makes an IKE SA of its own.
    for side in &sides {
        let status = side.keyer.status(0);
        let children = |r: usize| -> Vec<usize> {
            status[r]
                .sas
                .iter()
                .flat_map(|sa| sa.children.iter().map(|c| c.rule))
                .collect()
        };
        assert_eq!(side.keyer.sessions().count(), 2, "{:?}", side.log);
        assert_eq!(children(0), [1, 2], "{:?}", side.log);
        assert!(status[1].sas.is_empty());
        assert_eq!(children(2), [3]);
        assert_eq!(side.engine.sad.len(), 6);
    }
    assert!(
        sides[0]
            .log
            .iter()
            .any(|l| l.contains("rule 2: Child SA added"))
    );
    for (x, y) in [
        ("10.1.0.5", "10.2.0.7"),
        ("10.3.0.5", "10.4.0.7"),
        ("10.5.0.5", "10.6.0.7"),
    ] {
        assert!(send(&mut sides, 0, 1, x, y).1, "{x} to {y}");
        assert!(send(&mut sides, 1, 0, y, x).1, "{y} to {x}");
    }
    // Rule 1 goes: its Child SA with it (the peer told), but the IKE SA
    // stays for rule 2, whose traffic goes on.
    let out = sides[0].keyer.remove_policy("rule 1", &mut rng).unwrap();
    let queue = out.into_iter().map(|a| (0, a)).collect();
    pump(&mut sides, queue, 1, &mut rng, &mut |_| false);
    let status = sides[0].keyer.status(1);
    assert_eq!(status[0].policy.name, "rule 2");
    assert_eq!(status[0].sas.len(), 1, "{:?}", sides[0].log);
    let rules: Vec<usize> = status[0].sas[0].children.iter().map(|c| c.rule).collect();
    assert_eq!(rules, [1], "rule 2 is now the first");
    let status = sides[1].keyer.status(1);
    let rules: Vec<usize> = status[0].sas[0].children.iter().map(|c| c.rule).collect();
    assert_eq!(
        rules,
        [2],
        "B deleted rule 1's Child SA: {:?}",
        sides[1].log
    );
    assert_eq!(sides[0].engine.sad.len(), 4);
    assert_eq!(sides[1].engine.sad.len(), 4);
    assert!(send(&mut sides, 0, 1, "10.3.0.5", "10.4.0.7").1);
    assert!(send(&mut sides, 1, 0, "10.4.0.7", "10.3.0.5").1);
    // Taken down, the last rule on it ends the IKE SA.
    let out = sides[0].keyer.down(1, 2, &mut rng).unwrap();
    let queue = out.into_iter().map(|a| (0, a)).collect();
    pump(&mut sides, queue, 2, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 1, "rule 3's");
    assert_eq!(sides[1].keyer.sessions().count(), 1, "{:?}", sides[1].log);
    assert_eq!(sides[0].engine.sad.len(), 2);
    assert_eq!(sides[1].engine.sad.len(), 2);
    // Brought up, it makes an IKE SA of its own: rule 3's has another
    // key.
    let out = sides[0].keyer.up(1, 3, &mut rng).unwrap();
    let queue = out.into_iter().map(|a| (0, a)).collect();
    pump(&mut sides, queue, 3, &mut rng, &mut |_| false);
    assert_eq!(sides[0].keyer.sessions().count(), 2, "{:?}", sides[0].log);
    assert!(send(&mut sides, 0, 1, "10.3.0.5", "10.4.0.7").1);
    // B's answer to the delete of the IKE SA that A ended is expected,
    // not a stray.
    assert_eq!(sides[0].keyer.drops, Drops::default());
    assert_eq!(sides[1].keyer.drops, Drops::default());
}

#[test]
fn an_acquire_starts_each_on_demand_rule_of_its_peer_under_one_ike_sa() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(61);
    let (mut sides, queue) = sharing_pair(Start::OnDemand, 2, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    // Traffic of the second rule: ipsecd's ACQUIRE names only the peer.
    let (acquires, arrived) = send(&mut sides, 0, 1, "10.3.0.5", "10.4.0.7");
    assert!(!arrived);
    hand_acquires(&mut sides, &acquires, &mut rng);
    assert_eq!(sides[0].keyer.sessions().count(), 1, "{:?}", sides[0].log);
    assert!(send(&mut sides, 0, 1, "10.3.0.5", "10.4.0.7").1);
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
}

/// A Child SA asked for a rule removed while the request is out is
/// deleted again, at both ends.
#[test]
fn a_child_sa_asked_for_a_rule_removed_meanwhile_is_deleted() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(62);
    let (mut sides, queue) = sharing_pair(Start::Active, 2, &mut rng);
    // Hold back A's CREATE_CHILD_SA request until rule 2 is gone.
    let mut held = None;
    pump(&mut sides, queue, 0, &mut rng, &mut |bytes| {
        let child = Header::peek(bytes).is_ok_and(|h| {
            h.exchange == ExchangeType::CREATE_CHILD_SA && !h.flags.contains(Flags::RESPONSE)
        });
        if child && held.is_none() {
            held = Some(bytes.to_vec());
            return true;
        }
        false
    });
    let request = held.expect("A asked for rule 2's Child SA");
    let out = sides[0].keyer.remove_policy("rule 2", &mut rng).unwrap();
    let mut queue: Vec<(usize, Action)> = out.into_iter().map(|a| (0, a)).collect();
    queue.push((
        0,
        Action::Send {
            local: "192.0.2.1:500".parse().unwrap(),
            remote: "192.0.2.2:500".parse().unwrap(),
            bytes: request,
        },
    ));
    pump(&mut sides, queue, 1, &mut rng, &mut |_| false);
    for side in &sides {
        let status = side.keyer.status(1);
        let rules: Vec<usize> = status[0].sas[0].children.iter().map(|c| c.rule).collect();
        assert_eq!(rules, [1], "{:?}", side.log);
        assert_eq!(side.engine.sad.len(), 2, "{:?}", side.log);
    }
}

#[test]
fn a_rule_taken_down_by_hand_stays_down_until_brought_up() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(53);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let status = sides[0].keyer.status(0);
    assert_eq!(status.len(), 1);
    let sa = &status[0].sas[0];
    assert_eq!((sa.state, sa.initiator), ("up", true));
    assert_eq!(sa.ike.as_ref().unwrap()[0], "aes-256-gcm");
    assert_eq!(sa.ike.as_ref().unwrap()[3], "curve25519");
    let child = &sa.children[0];
    assert_eq!(child.rule, 1);
    assert_eq!(child.algorithms, ["aes-128-gcm", "none", "none"]);
    assert_eq!(child.rekey_in, None, "no lifetime, no rekey");
    assert_eq!(
        sides[0].keyer.down(2, 1, &mut rng).unwrap_err(),
        NoRule::Number(2)
    );
    // Down: both ends delete, and the flows hold traffic back.
    let out = sides[0].keyer.down(1, 1, &mut rng).unwrap();
    pump(
        &mut sides,
        out.into_iter().map(|a| (0, a)).collect(),
        1,
        &mut rng,
        &mut |_| false,
    );
    assert_eq!(sides[0].engine.sad.len(), 0);
    assert_eq!(sides[1].engine.sad.len(), 0);
    assert!(!send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
    assert!(sides[0].keyer.status(0)[0].down);
    // An active rule does not start again by itself, nor on traffic.
    let out = sides[0].keyer.handle(Event::Tick, 30, &mut rng);
    pump(
        &mut sides,
        out.into_iter().map(|a| (0, a)).collect(),
        30,
        &mut rng,
        &mut |_| false,
    );
    assert!(sides[0].keyer.status(0)[0].sas.is_empty());
    // Up: it starts now.
    let out = sides[0].keyer.up(1, 31, &mut rng).unwrap();
    pump(
        &mut sides,
        out.into_iter().map(|a| (0, a)).collect(),
        31,
        &mut rng,
        &mut |_| false,
    );
    assert_eq!(sides[0].keyer.status(0)[0].sas[0].state, "up");
    assert!(!sides[0].keyer.status(0)[0].down);
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
}

#[test]
fn status_tells_when_a_child_sa_will_be_rekeyed() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(54);
    let mut queue = Vec::new();
    let mut pa = policy(
        "192.0.2.1",
        "192.0.2.2",
        "10.1.0.0/16",
        "10.2.0.0/16",
        Start::Active,
    );
    pa.lifetimes.hard_seconds = 100;
    let a = side(100, pa, &mut rng, &mut queue, 0);
    let b = side(
        200,
        policy(
            "192.0.2.2",
            "192.0.2.1",
            "10.2.0.0/16",
            "10.1.0.0/16",
            Start::Passive,
        ),
        &mut rng,
        &mut queue,
        1,
    );
    let mut sides = [a, b];
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let out = sides[0].keyer.handle(Event::Tick, 20, &mut rng);
    pump(
        &mut sides,
        out.into_iter().map(|a| (0, a)).collect(),
        20,
        &mut rng,
        &mut |_| false,
    );
    let status = sides[0].keyer.status(0);
    let child = &status[0].sas[0].children[0];
    assert_eq!(child.age, 20);
    let rekey_in = child.rekey_in.unwrap();
    assert!(
        (60..=70).contains(&rekey_in),
        "80-90 s after it went in: {rekey_in}"
    );
}

/// Two sides whose IKE SAs live `a` and `b` seconds (0: not rekeyed),
/// up after the initial exchanges at time 0.
fn ike_lifetimes(a: u64, b: u64, rng: &mut dyn CryptoRngCore) -> [Side; 2] {
    let mut queue = Vec::new();
    let mut pa = policy(
        "192.0.2.1",
        "192.0.2.2",
        "10.1.0.0/16",
        "10.2.0.0/16",
        Start::Active,
    );
    pa.ike_lifetime = a;
    let mut pb = policy(
        "192.0.2.2",
        "192.0.2.1",
        "10.2.0.0/16",
        "10.1.0.0/16",
        Start::Passive,
    );
    pb.ike_lifetime = b;
    let a = side(100, pa, rng, &mut queue, 0);
    let b = side(200, pb, rng, &mut queue, 1);
    let mut sides = [a, b];
    pump(&mut sides, queue, 0, rng, &mut |_| false);
    sides
}

/// Both sides' clocks tick at `now`, and what follows is delivered.
fn tick_both(sides: &mut [Side; 2], now: u64, rng: &mut dyn CryptoRngCore) {
    let mut queue = Vec::new();
    for (i, side) in sides.iter_mut().enumerate() {
        let out = side.keyer.handle(Event::Tick, now, rng);
        queue.extend(out.into_iter().map(|a| (i, a)));
    }
    pump(sides, queue, now, rng, &mut |_| false);
}

fn ike_spis(side: &Side) -> (u64, u64, bool) {
    let (_, s) = side.keyer.sessions().next().expect("an IKE SA");
    (s.sa.spi_i, s.sa.spi_r, s.sa.initiator)
}

#[test]
fn either_end_rekeys_the_ike_sa_and_the_child_sa_moves_to_the_new_one() {
    for (who, a, b) in [(0, 100, 0), (1, 0, 100)] {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(60 + who as u64);
        let mut sides = ike_lifetimes(a, b, &mut rng);
        let before = (ike_spis(&sides[0]), child_spis(&sides[0]));
        // Not before 80% of the lifetime.
        tick_both(&mut sides, 79, &mut rng);
        assert_eq!(ike_spis(&sides[0]), before.0);
        tick_both(&mut sides, 90, &mut rng);
        let (spi_i, spi_r, initiator) = ike_spis(&sides[0]);
        assert_ne!(
            (spi_i, spi_r),
            (before.0.0, before.0.1),
            "{:?}",
            sides[who].log
        );
        assert_eq!(ike_spis(&sides[1]), (spi_i, spi_r, !initiator));
        assert_eq!(initiator, who == 0, "the end that asked starts the new SA");
        for s in &sides {
            assert_eq!(s.keyer.sas.len(), 1, "the old IKE SA is gone: {:?}", s.log);
            assert!(
                s.log
                    .iter()
                    .any(|l| l.contains("IKE SA with") && l.contains("rekeyed"))
            );
            assert_eq!(s.engine.sad.len(), 2, "the Child SA stays");
        }
        assert_eq!(child_spis(&sides[0]), before.1);
        assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
        assert!(send(&mut sides, 1, 0, "10.2.0.7", "10.1.0.5").1);
        // The new SA carries requests both ways (its message IDs from 0):
        // a liveness check each, after a silent minute.
        tick_both(&mut sides, 90 + LIVENESS, &mut rng);
        tick_both(&mut sides, 90 + 2 * LIVENESS, &mut rng);
        for s in &sides {
            assert_eq!(s.keyer.drops, Drops::default(), "{:?}", s.log);
            assert_eq!(s.keyer.sessions().count(), 1);
        }
        // And the new SA is rekeyed in its turn.
        tick_both(&mut sides, 90 + 2 * LIVENESS + 90, &mut rng);
        assert_ne!(ike_spis(&sides[0]).0, spi_i);
        assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
    }
}

#[test]
fn simultaneous_ike_sa_rekeys_are_put_off_and_one_goes_through() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(62);
    let mut sides = ike_lifetimes(100, 100, &mut rng);
    let before = ike_spis(&sides[0]);
    let mut now = 90;
    while ike_spis(&sides[0]) == before {
        tick_both(&mut sides, now, &mut rng);
        now += 1;
        assert!(now < 120, "the rekeys never parted");
    }
    assert_eq!(ike_spis(&sides[1]).0, ike_spis(&sides[0]).0);
    for s in &sides {
        assert_eq!(s.keyer.sas.len(), 1, "{:?}", s.log);
        assert_eq!(s.engine.sad.len(), 2);
    }
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
}

fn pki(who: &str, ca: &str) -> crate::exchange::auth::Credentials {
    use crate::crypto::pki::{Pki, PrivateKey};
    let read = |name: &str| {
        std::fs::read(format!(
            "{}/testdata/pki/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let key = PrivateKey::from_bytes(&read(&format!("{who}.key"))).unwrap();
    let pki = Pki::new(key, &read(&format!("{who}.crt")), &[&read(ca)]).unwrap();
    crate::exchange::auth::Credentials::Certificate(std::sync::Arc::new(pki))
}

/// Two sides with certificates: A's (ECDSA) and B's (RSA), A trusting
/// `a_trusts` and B `b_trusts`.
fn certified(a_trusts: &str, b_trusts: &str, rng: &mut dyn CryptoRngCore) -> [Side; 2] {
    let mut queue = Vec::new();
    let mut pa = policy(
        "192.0.2.1",
        "192.0.2.2",
        "10.1.0.0/16",
        "10.2.0.0/16",
        Start::Active,
    );
    pa.config.credentials = pki("a", a_trusts);
    let mut pb = policy(
        "192.0.2.2",
        "192.0.2.1",
        "10.2.0.0/16",
        "10.1.0.0/16",
        Start::Passive,
    );
    pb.config.credentials = pki("b", b_trusts);
    let a = side(100, pa, rng, &mut queue, 0);
    let b = side(200, pb, rng, &mut queue, 1);
    let mut sides = [a, b];
    for s in &mut sides {
        // 2026-12-03, inside the test certificates' validity.
        s.keyer.set_unix_epoch(1_796_300_000);
    }
    pump(&mut sides, queue, 0, rng, &mut |_| false);
    sides
}

#[test]
fn certificates_from_a_trusted_authority_bring_the_tunnel_up() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(70);
    let mut sides = certified("ca.crt", "ca.crt", &mut rng);
    for s in &sides {
        assert_eq!(s.keyer.sessions().count(), 1, "{:?}", s.log);
    }
    assert!(send(&mut sides, 0, 1, "10.1.0.5", "10.2.0.7").1);
    assert!(send(&mut sides, 1, 0, "10.2.0.7", "10.1.0.5").1);
}

#[test]
fn a_certificate_from_an_authority_not_trusted_is_refused() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(71);
    let sides = certified("ca.crt", "other-ca.crt", &mut rng);
    for s in &sides {
        assert_eq!(s.keyer.sessions().count(), 0, "{:?}", s.log);
        assert_eq!(s.engine.sad.len(), 0);
    }
    assert!(
        sides[1]
            .log
            .iter()
            .any(|l| l.contains("authentication failed")),
        "{:?}",
        sides[1].log
    );
    assert!(
        sides[0]
            .log
            .iter()
            .any(|l| l.contains("AUTHENTICATION_FAILED")),
        "{:?}",
        sides[0].log
    );
}

#[test]
fn a_replayed_request_gets_the_same_answer_and_an_older_one_is_dropped() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(72);
    let (mut sides, queue) = pair(Start::Active, &mut rng);
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "192.0.2.1:500".parse().unwrap(),
        "192.0.2.2:500".parse().unwrap(),
    );
    let sent = |out: Vec<Action>| -> Vec<Vec<u8>> {
        out.into_iter()
            .filter_map(|a| match a {
                Action::Send { bytes, .. } => Some(bytes),
                _ => None,
            })
            .collect()
    };
    let deliver = |k: &mut Keyer, bytes: &[u8], now, rng: &mut dyn CryptoRngCore| {
        let event = Event::Datagram {
            local: b_addr,
            remote: a_addr,
            bytes,
        };
        sent(k.handle(event, now, rng))
    };
    // A's liveness check after a silent minute.
    let first = sent(sides[0].keyer.handle(Event::Tick, LIVENESS, &mut rng));
    assert_eq!(first.len(), 1);
    let answer = deliver(&mut sides[1].keyer, &first[0], LIVENESS, &mut rng);
    assert_eq!(answer.len(), 1);
    // Again, as an attacker or a lost response would have it: the same
    // answer, not a second handling.
    let again = deliver(&mut sides[1].keyer, &first[0], LIVENESS, &mut rng);
    assert_eq!(again, answer);
    // A's next request moves the window on; the first, replayed now, is
    // dropped and counted.
    let out = sides[0].keyer.handle(
        Event::Datagram {
            local: a_addr,
            remote: b_addr,
            bytes: &answer[0],
        },
        LIVENESS,
        &mut rng,
    );
    assert!(sent(out).is_empty());
    let second = sent(sides[0].keyer.handle(Event::Tick, 2 * LIVENESS, &mut rng));
    assert_eq!(second.len(), 1);
    assert_eq!(
        deliver(&mut sides[1].keyer, &second[0], 2 * LIVENESS, &mut rng).len(),
        1
    );
    let malformed = sides[1].keyer.drops.malformed;
    assert!(deliver(&mut sides[1].keyer, &first[0], 2 * LIVENESS, &mut rng).is_empty());
    assert_eq!(sides[1].keyer.drops.malformed, malformed + 1);
    assert_eq!(sides[1].keyer.sessions().count(), 1, "the SA stands");
}

#[test]
fn a_child_sa_the_peer_adds_for_another_rule_lives_with_the_ike_sa() {
    use crate::exchange::rekey;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(73);
    let mut queue = Vec::new();
    let a = side(
        100,
        policy(
            "192.0.2.1",
            "192.0.2.2",
            "10.1.0.0/16",
            "10.2.0.0/16",
            Start::Active,
        ),
        &mut rng,
        &mut queue,
        0,
    );
    let mut first = policy(
        "192.0.2.2",
        "192.0.2.1",
        "10.2.0.0/16",
        "10.1.0.0/16",
        Start::Passive,
    );
    first.ike_lifetime = 100;
    let second = policy(
        "192.0.2.2",
        "192.0.2.1",
        "10.4.0.0/16",
        "10.3.0.0/16",
        Start::Passive,
    );
    let b = side_with(200, vec![first, second], &mut rng, &mut queue, 1);
    let mut sides = [a, b];
    pump(&mut sides, queue, 0, &mut rng, &mut |_| false);
    // A asks, over its IKE SA, for a Child SA of B's second rule.
    let mine = policy(
        "192.0.2.1",
        "192.0.2.2",
        "10.3.0.0/16",
        "10.4.0.0/16",
        Start::Active,
    );
    let template = rekey::Template {
        transport: false,
        ts_local: mine.config.ts_local.clone(),
        ts_remote: mine.config.ts_remote.clone(),
    };
    let (_, payloads) = rekey::request_new(&mine.config, &template, 0x0abc_0001, &mut rng);
    let State::Up(session) = &mut sides[0].keyer.sas[0].state else {
        panic!("A's IKE SA is up");
    };
    let (_, request) = session
        .request(ExchangeType::CREATE_CHILD_SA, &payloads, &mut rng)
        .unwrap();
    let queue = vec![(
        0,
        Action::Send {
            local: "192.0.2.1:500".parse().unwrap(),
            remote: "192.0.2.2:500".parse().unwrap(),
            bytes: request,
        },
    )];
    pump(&mut sides, queue, 1, &mut rng, &mut |_| false);
    let status = sides[1].keyer.status(1);
    assert_eq!(status[0].sas.len(), 1, "one IKE SA");
    let rules: Vec<usize> = status[0].sas[0].children.iter().map(|c| c.rule).collect();
    assert_eq!(rules, [1, 2], "{:?}", sides[1].log);
    assert_eq!(sides[1].engine.sad.len(), 4);
    assert!(sides[1].log.iter().any(|l| l.contains("Child SA added")));
    // B's outbound SA for it serves its rule's flow only.
    let added = &status[0].sas[0].children[1];
    let out_sa = sides[1]
        .engine
        .sad
        .get(&ipsec_engine::sa::SaId {
            dst: "192.0.2.1".parse().unwrap(),
            spi: added.spi_out,
            satype: SaType::ESP,
        })
        .unwrap();
    assert!(
        out_sa
            .flow
            .is_some_and(|f| f.src == "10.4.0.0".parse::<IpAddr>().unwrap())
    );
    // The IKE SA's rekey takes it along.
    tick_both(&mut sides, 90, &mut rng);
    let status = sides[1].keyer.status(90);
    assert_eq!(status[0].sas.len(), 1, "{:?}", sides[1].log);
    assert_eq!(status[0].sas[0].children.len(), 2);
    assert_eq!(sides[1].engine.sad.len(), 4);
    // A request for selectors no rule of B's has is refused.
    let stray = policy(
        "192.0.2.1",
        "192.0.2.2",
        "10.7.0.0/16",
        "10.8.0.0/16",
        Start::Active,
    );
    let template = rekey::Template {
        transport: false,
        ts_local: stray.config.ts_local.clone(),
        ts_remote: stray.config.ts_remote.clone(),
    };
    let (_, payloads) = rekey::request_new(&stray.config, &template, 0x0abc_0002, &mut rng);
    let State::Up(session) = &mut sides[0].keyer.sas[0].state else {
        panic!("A's IKE SA is up");
    };
    let (_, request) = session
        .request(ExchangeType::CREATE_CHILD_SA, &payloads, &mut rng)
        .unwrap();
    let out = sides[1].keyer.handle(
        Event::Datagram {
            local: "192.0.2.2:500".parse().unwrap(),
            remote: "192.0.2.1:500".parse().unwrap(),
            bytes: &request,
        },
        91,
        &mut rng,
    );
    let Some(Action::Send { bytes, .. }) = out.iter().find(|a| matches!(a, Action::Send { .. }))
    else {
        panic!("no answer: {out:?}");
    };
    let State::Up(session) = &mut sides[0].keyer.sas[0].state else {
        panic!("A's IKE SA is up");
    };
    let Ok(crate::exchange::session::Incoming::Response(_, answer)) = session.receive(bytes) else {
        panic!("not a response");
    };
    assert!(
        answer.iter().any(|p| matches!(&p.body, Body::Notify(n) if n.kind == crate::wire::NotifyType::TS_UNACCEPTABLE)),
        "{answer:?}"
    );
    assert_eq!(sides[1].keyer.status(91)[0].sas[0].children.len(), 2);
}
