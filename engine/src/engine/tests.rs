//! The engine driven by the messages ipsecctl sends for real
//! configurations, and by a key manager.

use super::*;
use crate::spd::Direction;
use ipsec_compiler::Fixed;
use ipsec_compiler::lower::Action;
use pfkey::{Lifetime, SpiRange};

const CTL: ClientId = 1;
const KEYMGR: ClientId = 2;
const WATCHER: ClientId = 3;
pub(super) const PID: u32 = 4242;

const CONFIG: &str = "\
flow esp from 10.1.0.0/16 to 10.2.0.0/16 peer 192.0.2.2
flow ah out proto tcp from 192.0.2.1 to 192.0.2.2 port 179
esp transport from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 \
  authkey 0x11111111111111111111111111111111111111111111111111111111111111111:0x2222222222222222222222222222222222222222222222222222222222222222 \
  enckey 0x33333333333333333333333333333333:0x44444444444444444444444444444444 bundle b
ipcomp transport from 192.0.2.1 to 192.0.2.2 spi 0x2000 bundle b
";

fn messages(action: Action) -> Vec<Vec<u8>> {
    compile(CONFIG, action)
}

/// The messages `ipsecctl -f` sends to load `conf`.
pub(super) fn load_messages(conf: &str) -> Vec<Vec<u8>> {
    compile(conf, Action::Add)
}

fn compile(conf: &str, action: Action) -> Vec<Vec<u8>> {
    ipsec_compiler::load_messages(conf, &Fixed::standard(), action, PID)
        .unwrap()
        .iter()
        .map(Message::encode)
        .collect()
}

fn engine() -> Engine {
    let mut e = Engine::new([7; 32]);
    for c in [CTL, KEYMGR, WATCHER] {
        e.connect(c);
    }
    e
}

fn errno(bytes: &[u8]) -> u8 {
    bytes[2]
}

/// GETSPI for an ESP SPI from 192.0.2.1 to `dst`, anywhere above 0x1000.
fn getspi_to(dst: &str) -> Message {
    let mut getspi = Message::new(Header::new(MsgType::GETSPI, SaType::ESP, 2, PID));
    for (t, a) in [
        (ExtType::ADDRESS_SRC, "192.0.2.1"),
        (ExtType::ADDRESS_DST, dst),
    ] {
        getspi.push(t, sockaddr(a.parse().unwrap())).unwrap();
    }
    let range = SpiRange {
        min: 0x1000,
        max: 0xffff_ffff,
        reserved: 0,
    };
    getspi
        .push(ExtType::SPIRANGE, Body::SpiRange(range))
        .unwrap();
    getspi
}

/// Sends `bytes` from `from`; returns what each client got.
fn send(e: &mut Engine, from: ClientId, bytes: &[u8], now: u64) -> Vec<Delivery> {
    e.handle(from, PID, bytes, now)
}

fn replies_to(sends: &[Delivery], who: ClientId) -> Vec<Message> {
    sends
        .iter()
        .filter(|s| s.to == who)
        .map(|s| Message::decode(&s.bytes).expect("the engine writes valid messages"))
        .collect()
}

#[test]
fn a_configuration_loads_dumps_and_deletes() {
    let mut e = engine();
    for m in messages(Action::Add) {
        let out = send(&mut e, CTL, &m, 0);
        let mine = replies_to(&out, CTL);
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].header.errno, 0, "{:?}", mine[0]);
        // Replies go to every client, without the keys.
        assert_eq!(replies_to(&out, KEYMGR), mine);
        assert!(mine[0].get(ExtType::KEY_AUTH).is_none());
    }
    assert_eq!((e.spd.len(), e.sad.len()), (3, 3));
    let esp = crate::sad::SaId {
        dst: "192.0.2.2".parse().unwrap(),
        spi: 0x1000,
        satype: SaType::ESP,
    };
    assert!(
        e.sad.get(&esp).unwrap().next.is_some(),
        "the bundle is linked"
    );

    // The flow dump, to the requester alone.
    let ask = Message::new(Header::new(MsgType::X_SPDDUMP, SaType::UNSPEC, 9, PID)).encode();
    let out = send(&mut e, CTL, &ask, 0);
    assert!(out.iter().all(|s| s.to == CTL));
    let flows = replies_to(&out, CTL);
    assert_eq!(flows.len(), 3);
    assert_eq!(flows.iter().filter(|m| m.header.seq == 0).count(), 1);
    assert_eq!(flows[2].header.seq, 0);

    // The SA dump: sorted by SPI, keys included.
    let ask = Message::new(Header::new(MsgType::DUMP, SaType::UNSPEC, 10, PID)).encode();
    let sas = replies_to(&send(&mut e, CTL, &ask, 0), CTL);
    let spis: Vec<u32> = sas
        .iter()
        .map(|m| match m.get(ExtType::SA) {
            Some(Body::Sa(sa)) => sa.spi,
            _ => 0,
        })
        .collect();
    assert_eq!(spis, [0x1000, 0x1001, 0x2000]);
    assert!(sas[0].get(ExtType::KEY_ENCRYPT).is_some());
    assert!(sas[0].get(ExtType::X_SA2).is_some());

    for m in messages(Action::Delete) {
        let out = send(&mut e, CTL, &m, 0);
        assert_eq!(errno(&out[0].bytes), 0);
    }
    assert!(e.spd.is_empty() && e.sad.is_empty());
    let out = send(&mut e, CTL, &ask, 0);
    assert_eq!(out.len(), 1);
    assert_eq!(errno(&out[0].bytes), 2, "an empty dump says ENOENT");
}

#[test]
fn flush_and_errors() {
    let mut e = engine();
    let add = messages(Action::Add);
    for m in &add {
        send(&mut e, CTL, m, 0);
    }
    // Adding again: EEXIST for SAs, echoed without extensions to all.
    let again = send(&mut e, CTL, &add[3], 0);
    assert_eq!(again.len(), 3);
    assert!(
        again
            .iter()
            .all(|s| errno(&s.bytes) == Errno::EEXIST.0 && s.bytes.len() == 16)
    );
    let flush = Message::new(Header::new(MsgType::FLUSH, SaType::UNSPEC, 1, PID)).encode();
    send(&mut e, CTL, &flush, 0);
    assert!(e.spd.is_empty() && e.sad.is_empty());
    let delete = messages(Action::Delete);
    let gone = send(&mut e, CTL, &delete[0], 0);
    assert!(gone.iter().all(|s| errno(&s.bytes) == Errno::ESRCH.0));
}

#[test]
fn malformed_messages_get_einval_and_the_engine_goes_on() {
    let mut e = engine();
    let good = messages(Action::Add).remove(0);
    let mut duplicate = Message::decode(&good).unwrap();
    let first = duplicate.extensions[0].clone();
    duplicate.extensions.push(first);
    let mut overrun = good.clone();
    overrun[16] = 0xff;
    let mut version = good.clone();
    version[0] = 1;
    let mut long = good.clone();
    long.extend_from_slice(&[0; 8]);
    for bad in [
        &good[..5],
        &good[..good.len() - 8],
        &long,
        &version,
        &overrun,
        &duplicate.encode(),
    ] {
        let out = send(&mut e, CTL, bad, 0);
        assert_eq!(out.len(), 1, "only the sender hears of it");
        assert_eq!(out[0].to, CTL);
        assert_eq!(errno(&out[0].bytes), Errno::EINVAL.0);
    }
    let wrong_pid = e.handle(CTL, PID + 1, &good, 0);
    assert_eq!(errno(&wrong_pid[0].bytes), Errno::EINVAL.0);
    assert_eq!(errno(&send(&mut e, CTL, &good, 0)[0].bytes), 0);
    assert_eq!(e.spd.len(), 1);
}

#[test]
fn a_key_manager_acquires_keys_and_sees_expiry() {
    let mut e = engine();
    let register = Message::new(Header::new(MsgType::REGISTER, SaType::ESP, 1, PID)).encode();
    let out = send(&mut e, KEYMGR, &register, 0);
    let reply = &replies_to(&out, KEYMGR)[0];
    assert!(reply.get(ExtType::SUPPORTED_ENCRYPT).is_some());

    // A flow that requires an SA, and none yet.
    let flow = messages(Action::Add).remove(0);
    send(&mut e, CTL, &flow, 0);
    let packet = PacketKey {
        direction: Direction::Out,
        src: "10.1.0.5".parse().unwrap(),
        dst: "10.2.0.9".parse().unwrap(),
        proto: 6,
        sport: 1234,
        dport: 80,
    };
    let out = e.acquire(&packet, 1);
    assert_eq!(out.len(), 1, "only the registered key manager hears");
    assert_eq!(out[0].to, KEYMGR);
    let acquire = Message::decode(&out[0].bytes).unwrap();
    assert_eq!(acquire.header.msg_type, MsgType::ACQUIRE);
    assert!(
        matches!(acquire.get(ExtType::PROPOSAL), Some(Body::Proposal(p)) if p.combs.len() == 1)
    );
    assert!(
        e.acquire(&packet, 2).is_empty(),
        "asked once until it expires"
    );

    // The key manager reserves an SPI toward the peer and keys it.
    let getspi = getspi_to("192.0.2.2");
    let reply = replies_to(&send(&mut e, KEYMGR, &getspi.encode(), 3), KEYMGR).remove(0);
    let Some(Body::Sa(larval)) = reply.get(ExtType::SA) else {
        panic!("{reply:?}")
    };
    assert_eq!(larval.state, pfkey::SaState::LARVAL);

    let mut update = Message::new(Header::new(MsgType::UPDATE, SaType::ESP, 3, PID));
    let sa = pfkey::Sa {
        spi: larval.spi,
        state: pfkey::SaState::MATURE,
        auth: pfkey::AuthAlg::X_SHA2_256,
        encrypt: pfkey::EncAlg::X_AESGCM16.0,
        replay: 64,
        flags: 0,
    };
    update.push(ExtType::SA, Body::Sa(sa)).unwrap();
    update
        .push(ExtType::ADDRESS_SRC, sockaddr("192.0.2.1".parse().unwrap()))
        .unwrap();
    update
        .push(ExtType::ADDRESS_DST, sockaddr("192.0.2.2".parse().unwrap()))
        .unwrap();
    update
        .push(ExtType::KEY_AUTH, Body::Key(pfkey::Key::new(&[9; 32])))
        .unwrap();
    update
        .push(ExtType::KEY_ENCRYPT, Body::Key(pfkey::Key::new(&[8; 20])))
        .unwrap();
    let soft = Lifetime {
        addtime: 100,
        ..Lifetime::default()
    };
    update
        .push(ExtType::LIFETIME_SOFT, Body::Lifetime(soft))
        .unwrap();
    let out = send(&mut e, KEYMGR, &update.encode(), 4);
    assert_eq!(
        errno(&out[0].bytes),
        0,
        "{:?}",
        Message::decode(&out[0].bytes)
    );
    assert!(e.acquire(&packet, 40).is_empty(), "an SA exists now");

    // Its soft lifetime runs out: every client hears, once.
    assert!(e.tick(103).is_empty());
    let out = e.tick(104);
    assert_eq!(out.len(), 3);
    let expire = Message::decode(&out[0].bytes).unwrap();
    assert_eq!(expire.header.msg_type, MsgType::EXPIRE);
    assert!(expire.get(ExtType::LIFETIME_SOFT).is_some());
    assert!(e.tick(500).is_empty());
}

#[test]
fn a_monitor_sees_every_message() {
    let mut e = engine();
    let promisc = Message::new(Header::new(MsgType::X_PROMISC, SaType::AH, 1, PID)).encode();
    send(&mut e, WATCHER, &promisc, 0);
    let flow = messages(Action::Add).remove(0);
    let out = send(&mut e, CTL, &flow, 0);
    let seen: Vec<&Delivery> = out.iter().filter(|s| s.to == WATCHER).collect();
    // A wrapped copy of the request, and the broadcast reply.
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].bytes[1], MsgType::X_PROMISC.0);
    assert_eq!(&seen[0].bytes[16..], &flow[..]);
    assert_eq!(
        u32::from_ne_bytes(seen[0].bytes[8..12].try_into().unwrap()),
        PID
    );
    // Unicast replies reach a monitor wrapped.
    let ask = Message::new(Header::new(MsgType::X_SPDDUMP, SaType::UNSPEC, 2, PID)).encode();
    let out = send(&mut e, CTL, &ask, 0);
    assert!(
        out.iter()
            .any(|s| s.to == WATCHER && s.bytes[1] == MsgType::X_PROMISC.0)
    );
}

#[test]
fn monitors_see_only_messages() {
    // Found by fuzzing: garbage used to reach monitors, wrapped.
    let mut e = engine();
    let promisc = Message::new(Header::new(MsgType::X_PROMISC, SaType::AH, 1, PID)).encode();
    send(&mut e, WATCHER, &promisc, 0);
    let mut garbage =
        Message::new(Header::new(MsgType::X_PROMISC, SaType::UNSPEC, 0, PID)).encode();
    garbage.extend_from_slice(&[0x0b; 72]);
    garbage[4..6].copy_from_slice(&11u16.to_ne_bytes());
    let out = send(&mut e, CTL, &garbage, 0);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].to, errno(&out[0].bytes)), (CTL, Errno::EINVAL.0));
    let out = send(&mut e, CTL, &[2, 9, 0, 0, 1], 0);
    assert!(out.iter().all(|s| s.to == CTL));
    // A whole message inside is passed on to the others, as it is.
    let mut forward =
        Message::new(Header::new(MsgType::X_PROMISC, SaType::UNSPEC, 0, PID)).encode();
    let inner = Message::new(Header::new(MsgType::FLUSH, SaType::UNSPEC, 5, 99)).encode();
    forward.extend_from_slice(&inner);
    forward[4..6].copy_from_slice(&4u16.to_ne_bytes());
    let out = send(&mut e, CTL, &forward, 0);
    assert_eq!(
        out.iter().map(|s| s.to).collect::<Vec<_>>(),
        [KEYMGR, WATCHER]
    );
    assert!(out.iter().all(|s| s.bytes == forward));
}

#[test]
fn spis_say_nothing_of_the_key_behind_the_ivs() {
    // The IV generator's key is the first half of the entropy. An SPI
    // generator seeded from those bytes would give them away to anyone
    // who runs xorshift backwards from the SPIs seen on the wire.
    let entropy: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
    let (mut e, mut twin) = (Engine::new(entropy), Engine::new(entropy));
    let mut leaky = Rng(u64::from_ne_bytes(entropy[..8].try_into().unwrap()) | 1);
    let first = e.random.next_u32();
    assert_ne!(first, leaky.next_u32());
    // Still a function of the entropy alone: the core stays deterministic.
    assert_eq!(twin.random.next_u32(), first);
}

#[test]
fn full_tables_refuse_more_with_enobufs() {
    let mut e = engine();
    e.limits = Limits {
        sas: 2,
        larval: 1,
        flows: 2,
        acquires: 1,
    };
    // CONFIG is two flows (one pair and one single), three SAs and a bundle.
    let answers: Vec<u8> = messages(Action::Add)
        .iter()
        .map(|m| errno(&send(&mut e, CTL, m, 0)[0].bytes))
        .collect();
    // The third flow and the third SA do not fit; the bundle then names
    // an SA that is not there.
    assert_eq!(
        answers,
        [
            0,
            0,
            Errno::ENOBUFS.0,
            0,
            0,
            Errno::ENOBUFS.0,
            Errno::ESRCH.0
        ]
    );
    assert_eq!((e.spd.len(), e.sad.len()), (2, 2));
    // Replacing a flow that is there is no growth.
    let again = &messages(Action::Add)[0];
    assert_eq!(errno(&send(&mut e, CTL, again, 0)[0].bytes), 0);
    // GETSPI, with the SAD full.
    let getspi = getspi_to("192.0.2.9");
    let out = send(&mut e, KEYMGR, &getspi.encode(), 0);
    assert_eq!(errno(&out[0].bytes), Errno::ENOBUFS.0);
    assert_eq!(out.len(), 1, "to the sender alone");
    // Room in the SAD, but one reservation is all that may wait.
    e.limits.sas = 100;
    let reserve = |e: &mut Engine| errno(&send(e, KEYMGR, &getspi.encode(), 0)[0].bytes);
    assert_eq!(reserve(&mut e), 0);
    assert_eq!(reserve(&mut e), Errno::ENOBUFS.0);
    assert_eq!(e.sad.larval(), 1);
}

#[test]
fn ipv6_flows_are_refused_where_ipv6_cannot_be_steered() {
    let mut e = engine();
    e.refuse_ipv6_flows = true;
    let conf = "flow esp from 2001:db8:1::/48 to 2001:db8:2::/48 peer 2001:db8::2\n\
                flow esp from 10.1.0.0/16 to 10.2.0.0/16 peer 192.0.2.2\n";
    let answers: Vec<u8> = load_messages(conf)
        .iter()
        .map(|m| errno(&send(&mut e, CTL, m, 0)[0].bytes))
        .collect();
    let refused = Errno::EOPNOTSUPP.0;
    assert_eq!(answers, [refused, refused, 0, 0]);
}

#[test]
fn the_filter_dump_lists_each_rule_with_what_it_decided() {
    use crate::filter::{Action as Verdict, Endpoint, Packet, Rule, Ruleset, Way};
    use crate::spd::PacketKey;
    let mut e = engine();
    let ask = Message::new(Header::new(MsgType::X_FILTERDUMP, SaType::UNSPEC, 5, PID)).encode();
    let out = send(&mut e, CTL, &ask, 0);
    assert_eq!(out.len(), 1);
    assert_eq!(errno(&out[0].bytes), 2, "no rules: ENOENT");

    let rule = |line, text: &str, action, way, protos: Vec<u8>| Rule {
        line,
        text: text.into(),
        action,
        way: Some(way),
        log: false,
        quick: false,
        on: Some("enc0".into()),
        family: None,
        protos,
        from: Endpoint::ANY,
        to: Endpoint::ANY,
    };
    e.filter = Ruleset::new(
        "rules",
        vec![
            rule(1, "block in on enc0 all", Verdict::Block, Way::In, vec![]),
            rule(
                3,
                "pass out on enc0 proto icmp",
                Verdict::Pass,
                Way::Out,
                vec![1],
            ),
        ],
        vec![],
    );
    let key = |direction, proto| PacketKey {
        direction,
        src: "10.1.0.1".parse().unwrap(),
        dst: "10.2.0.1".parse().unwrap(),
        proto,
        sport: 0,
        dport: 0,
    };
    let (tcp_in, ping_out) = (key(Direction::In, 6), key(Direction::Out, 1));
    for (key, way, len) in [
        (&tcp_in, Way::In, 60),
        (&tcp_in, Way::In, 40),
        (&ping_out, Way::Out, 84),
    ] {
        e.filter.decide(&Packet {
            interface: "enc0",
            way,
            key,
            len,
        });
    }

    let out = send(&mut e, CTL, &ask, 0);
    assert!(out.iter().all(|s| s.to == CTL), "to the requester alone");
    let records = replies_to(&out, CTL);
    let seqs: Vec<u32> = records.iter().map(|m| m.header.seq).collect();
    assert_eq!(seqs, [5, 0]);
    let shown: Vec<(u32, u32, String, u64, u64, u64, u64)> = records
        .iter()
        .map(|m| {
            assert_eq!(pfkey::validate::check_reply(m), Ok(()));
            let (Some(Body::FilterRule(r)), Some(Body::Counter(c))) =
                (m.get(ExtType::X_FILTER_RULE), m.get(ExtType::X_COUNTER))
            else {
                panic!("{m:?}")
            };
            (
                r.number,
                r.line,
                r.text(),
                c.ipackets,
                c.ibytes,
                c.opackets,
                c.obytes,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (0, 1, "block in on enc0 all".into(), 2, 100, 0, 0),
            (1, 3, "pass out on enc0 proto icmp".into(), 0, 0, 1, 84),
        ]
    );
}
