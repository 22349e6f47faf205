//! From negotiation to packets, with no I/O: two ends agree on an IKE SA
//! and a Child SA with a shared key, each installs what it agreed in its
//! own PF_KEY engine (the `ipsecd` core) through GETSPI, UPDATE, ADD and
//! X_ADDFLOW, and a packet sealed by one engine opens in the other, both
//! ways.

use ipsec_engine::engine::{Delivery, Engine, Events, Verdict};
use ipsec_engine::packet::PacketBuf;
use ipsec_ike::exchange::handshake::{Answer, Config, Initiator, Next, Path, Responder};
use ipsec_ike::exchange::selectors::of_net;
use ipsec_ike::exchange::suite::{ChildOffer, IkeOffer};
use ipsec_ike::install::{self, Ends, Lifetimes};
use ipsec_ike::wire::{
    DhGroup, EncrId, EsnId, IdType, Identification, IntegId, PrfId, ProtocolId, TrafficSelector,
};
use pfkey::{FlowDirection, FlowType, Message};
use rand_core::SeedableRng;
use std::net::{IpAddr, SocketAddr};
use zeroize::Zeroizing;

const PID: u32 = 77;
const CLIENT: u64 = 1;

fn net(s: &str) -> TrafficSelector {
    let (a, p) = s.split_once('/').unwrap();
    of_net(a.parse().unwrap(), p.parse().unwrap(), 0, 0)
}

fn config(me: &str, mine: &str, theirs: &str, child_encr: (EncrId, Option<u16>)) -> Config {
    Config {
        ike: IkeOffer {
            encr: vec![(EncrId::AES_CBC, Some(256))],
            prf: vec![PrfId::HMAC_SHA2_256],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![DhGroup::ECP_256],
        },
        child: ChildOffer {
            protocol: ProtocolId::ESP,
            encr: vec![child_encr],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![],
            esn: vec![EsnId::NO],
        },
        local_id: Identification {
            id_type: IdType::IPV4_ADDR,
            data: me.parse::<std::net::Ipv4Addr>().unwrap().octets().to_vec(),
        },
        remote_id: None,
        credentials: ipsec_ike::exchange::auth::Credentials::Psk(Zeroizing::new(
            b"a key both ends hold".to_vec(),
        )),
        unix: 0,
        ts_local: vec![net(mine)],
        ts_remote: vec![net(theirs)],
        transport: false,
    }
}

fn engine(seed: u8) -> Engine {
    let mut e = Engine::new([seed; 32]);
    e.connect(CLIENT);
    e
}

/// Sends `m` to the engine; returns its reply to this client, which must
/// not be an error.
fn ask(e: &mut Engine, m: &Message) -> Message {
    let replies: Vec<Delivery> = e.handle(CLIENT, PID, &m.encode(), 0);
    let mine = replies
        .iter()
        .find(|d| d.to == CLIENT)
        .expect("a reply to the sender");
    let reply = Message::decode(&mine.bytes).unwrap();
    assert_eq!(
        reply.header.errno, 0,
        "{:?} refused: {reply:?}",
        m.header.msg_type
    );
    reply
}

/// An IPv4 UDP packet with a good header checksum.
fn udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (s, d): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let total = 20 + 8 + payload.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    let sum = p
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

fn run(child_encr: (EncrId, Option<u16>)) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let (ga, gb): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let (sa, sb) = (SocketAddr::new(ga, 500), SocketAddr::new(gb, 500));
    let ends_a = Ends {
        local: ga,
        remote: gb,
    };
    let ends_b = Ends {
        local: gb,
        remote: ga,
    };
    let (mut ea, mut eb) = (engine(1), engine(2));

    // Each end reserves its inbound SPI first.
    let spi_a = install::reserved_spi(&ask(
        &mut ea,
        &install::getspi(ProtocolId::ESP, ends_a, 1, PID).unwrap(),
    ))
    .unwrap();
    let spi_b = install::reserved_spi(&ask(
        &mut eb,
        &install::getspi(ProtocolId::ESP, ends_b, 1, PID).unwrap(),
    ))
    .unwrap();

    let left = config("192.0.2.1", "10.1.0.0/16", "10.2.0.0/16", child_encr);
    let right = config("192.0.2.2", "10.2.0.0/16", "10.1.0.0/16", child_encr);
    let (mut init, request) = Initiator::start(
        left,
        Path {
            local: sa,
            remote: sb,
        },
        0xaaaa,
        &mut rng,
    )
    .unwrap();
    let path_b = Path {
        local: sb,
        remote: sa,
    };
    let Answer::Go(response, resp) =
        Responder::start(right, path_b, &request, 0xbbbb, &mut rng).unwrap()
    else {
        panic!("IKE_SA_INIT refused")
    };
    let Next::Send(auth) = init.receive(&response, spi_a, &mut rng).unwrap() else {
        panic!()
    };
    let Answer::Go(auth_response, b) = resp.auth(&auth, spi_b, &mut rng).unwrap() else {
        panic!("IKE_AUTH refused")
    };
    let Next::Established(a) = init.receive(&auth_response, spi_a, &mut rng).unwrap() else {
        panic!()
    };

    // Install: both SAs and the flows each way, on each end.
    for (e, est, ends) in [(&mut ea, &a.child, ends_a), (&mut eb, &b.child, ends_b)] {
        for m in install::sa_messages(est, ends, Lifetimes::default(), None, 2, PID).unwrap() {
            ask(e, &m);
        }
        let (mine, theirs) = (&est.ts_local[0], &est.ts_remote[0]);
        for (dir, from, to) in [
            (FlowDirection::OUT, mine, theirs),
            (FlowDirection::IN, theirs, mine),
        ] {
            let spec = install::FlowSpec {
                protocol: ProtocolId::ESP,
                direction: dir,
                flow_type: FlowType::REQUIRE,
                from,
                to,
            };
            for m in install::flows(&spec, ends, 3, PID).unwrap() {
                ask(e, &m);
            }
        }
    }

    // A packet each way: sealed by one engine, opened by the other.
    crosses(&mut ea, &mut eb, "10.1.0.5", "10.2.0.7");
    crosses(&mut eb, &mut ea, "10.2.0.7", "10.1.0.5");
}

/// A packet from `src` to `dst`, sealed by `from` and opened by `to`.
fn crosses(from: &mut Engine, to: &mut Engine, src: &str, dst: &str) {
    let packet = udp(src, dst, b"keyed by IKE");
    let mut buf = PacketBuf::from_slice(&packet);
    let mut events = Events::default();
    assert_eq!(from.outbound(&mut buf, 1, &mut events), Verdict::Wire);
    let wire = buf.as_slice().to_vec();
    assert_eq!(wire[9], 50, "ESP on the wire");
    let mut buf = PacketBuf::from_slice(&wire);
    assert_eq!(to.inbound(&mut buf, None, 1, &mut events), Verdict::Enc);
    assert_eq!(buf.as_slice(), packet);
}

#[test]
fn an_aes_gcm_child_sa_carries_packets_between_two_engines() {
    run((EncrId::AES_GCM_16, Some(128)));
}

#[test]
fn an_aes_cbc_child_sa_carries_packets_between_two_engines() {
    run((EncrId::AES_CBC, Some(256)));
}

#[test]
fn a_chacha20_poly1305_child_sa_carries_packets_between_two_engines() {
    run((EncrId::CHACHA20_POLY1305, None));
}
