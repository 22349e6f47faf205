//! Two ends of the initial exchanges, in memory: the IKE SA and its
//! first Child SA come up with matching keys; a group the responder
//! does not take is tried again, a cookie is returned, a wrong key and a
//! forged message are refused.

use super::*;
use crate::exchange::auth::Credentials;
use crate::exchange::selectors::of_net;
use crate::wire::{EncrId, EsnId, IdType, IntegId, PrfId, ProtocolId};
use rand_core::SeedableRng;

fn id(name: &str) -> Identification {
    Identification {
        id_type: IdType::FQDN,
        data: name.as_bytes().to_vec(),
    }
}

fn net(s: &str) -> TrafficSelector {
    let (a, p) = s.split_once('/').unwrap();
    of_net(a.parse().unwrap(), p.parse().unwrap(), 0, 0)
}

fn config(me: &str, peer: &str, mine: &str, theirs: &str) -> Config {
    Config {
        ike: IkeOffer {
            encr: vec![
                (EncrId::AES_GCM_16, Some(256)),
                (EncrId::AES_CBC, Some(128)),
            ],
            prf: vec![PrfId::HMAC_SHA2_256],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![DhGroup::CURVE25519, DhGroup::ECP_256],
        },
        child: ChildOffer {
            protocol: ProtocolId::ESP,
            encr: vec![
                (EncrId::AES_GCM_16, Some(128)),
                (EncrId::AES_CBC, Some(256)),
            ],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![],
            esn: vec![EsnId::NO],
        },
        local_id: id(me),
        remote_id: Some(id(peer)),
        credentials: Credentials::Psk(Zeroizing::new(b"correct horse battery staple".to_vec())),
        unix: 0,
        ts_local: vec![net(mine)],
        ts_remote: vec![net(theirs)],
        transport: false,
    }
}

fn paths() -> (Path, Path) {
    let (a, b): (SocketAddr, SocketAddr) = (
        "192.0.2.1:500".parse().unwrap(),
        "192.0.2.2:500".parse().unwrap(),
    );
    (
        Path {
            local: a,
            remote: b,
        },
        Path {
            local: b,
            remote: a,
        },
    )
}

/// What became of each end.
type Outcome = (Result<Established, Failure>, Result<Established, Failure>);

/// Runs the exchanges between an initiator set up with `left` and a
/// responder with `right`.
fn run(left: Config, right: Config) -> Outcome {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let (pa, pb) = paths();
    let (mut init, mut msg) = Initiator::start(left, pa, 0x1111, &mut rng).unwrap();
    // IKE_SA_INIT, perhaps more than once.
    let resp = loop {
        match Responder::start(right.clone(), pb, &msg, 0x2222, &mut rng).unwrap() {
            Answer::Go(answer, resp) => {
                match init.receive(&answer, 0xa1, &mut rng) {
                    Ok(Next::Send(auth)) => msg = auth,
                    other => panic!("{other:?}"),
                }
                break resp;
            }
            Answer::Refuse(answer, why) => match init.receive(&answer, 0xa1, &mut rng) {
                Ok(Next::Send(again)) => msg = again,
                Err(e) => return (Err(e), Err(why)),
                Ok(Next::Established(_)) => panic!("up without an exchange"),
            },
        }
    };
    match resp.auth(&msg, 0xb2, &mut rng).unwrap() {
        Answer::Go(answer, established) => match init.receive(&answer, 0xa1, &mut rng) {
            Ok(Next::Established(e)) => (Ok(*e), Ok(established)),
            Ok(Next::Send(_)) => panic!("another request"),
            Err(e) => (Err(e), Ok(established)),
        },
        Answer::Refuse(answer, why) => match init.receive(&answer, 0xa1, &mut rng) {
            Err(e) => (Err(e), Err(why)),
            Ok(next) => panic!("accepted a refusal: {next:?}"),
        },
    }
}

fn left() -> Config {
    config("a.example", "b.example", "10.1.0.0/16", "10.2.0.0/16")
}

fn right() -> Config {
    config("b.example", "a.example", "10.2.0.0/16", "10.1.0.0/16")
}

#[test]
fn both_ends_come_up_with_the_same_keys() {
    let (a, b) = run(left(), right());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.initiator && !b.initiator);
    assert_eq!((a.spi_i, a.spi_r), (0x1111, 0x2222));
    assert_eq!((b.spi_i, b.spi_r), (0x1111, 0x2222));
    assert_eq!(*a.keys.d, *b.keys.d);
    assert_eq!(a.peer_id, id("b.example"));
    assert_eq!(b.peer_id, id("a.example"));
    assert_eq!(a.nat.map(|n| n.any()), Some(false));
    // The Child SA: each sends with the SPI the other receives on, and
    // the keys cross over.
    assert_eq!((a.child.spi_in, a.child.spi_out), (0xa1, 0xb2));
    assert_eq!((b.child.spi_in, b.child.spi_out), (0xb2, 0xa1));
    assert_eq!(*a.child.out_keys.0, *b.child.in_keys.0);
    assert_eq!(*a.child.in_keys.0, *b.child.out_keys.0);
    assert_ne!(*a.child.out_keys.0, *a.child.in_keys.0);
    assert_eq!(a.child.out_keys.0.len(), 20, "AES-GCM-128 and its salt");
    assert_eq!(a.child.suite.encr, Some((EncrId::AES_GCM_16, Some(128))));
    assert_eq!(a.child.ts_local, [net("10.1.0.0/16")]);
    assert_eq!(b.child.ts_remote, [net("10.1.0.0/16")]);
}

#[test]
fn a_group_the_responder_does_not_take_is_tried_again() {
    let mut r = right();
    r.ike.dh = vec![DhGroup::ECP_256];
    let (a, b) = run(left(), r);
    assert_eq!(a.unwrap().suite.group, crate::crypto::dh::Group::Ecp256);
    assert!(b.is_ok());
}

#[test]
fn the_responder_narrows_and_the_mode_is_agreed() {
    let mut l = config("a.example", "b.example", "10.0.0.0/8", "10.2.0.0/16");
    l.transport = true;
    let mut r = right();
    r.transport = true;
    let (a, b) = run(l, r);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.child.ts_local, [net("10.1.0.0/16")]);
    assert!(a.child.transport && b.child.transport);
}

#[test]
fn a_wrong_key_or_identity_fails_on_both_sides() {
    let mut r = right();
    r.credentials = Credentials::Psk(Zeroizing::new(b"another key".to_vec()));
    let (a, b) = run(left(), r);
    assert_eq!(b.unwrap_err(), Failure::Authentication);
    assert_eq!(
        a.unwrap_err(),
        Failure::Refused(NotifyType::AUTHENTICATION_FAILED)
    );
    // The right key from an identity the responder does not expect.
    let mut r = right();
    r.remote_id = Some(id("c.example"));
    let (a, b) = run(left(), r);
    assert_eq!(b.unwrap_err(), Failure::Authentication);
    assert!(a.is_err());
}

#[test]
fn nothing_in_common_is_said_so() {
    let mut r = right();
    r.ike.prf = vec![PrfId::HMAC_SHA2_512];
    let (a, b) = run(left(), r);
    assert_eq!(
        a.unwrap_err(),
        Failure::Refused(NotifyType::NO_PROPOSAL_CHOSEN)
    );
    assert_eq!(b.unwrap_err(), Failure::NoProposal);
    let r = config("b.example", "a.example", "10.2.0.0/16", "172.16.0.0/12");
    let (a, b) = run(left(), r);
    assert_eq!(b.unwrap_err(), Failure::Selectors);
    assert_eq!(
        a.unwrap_err(),
        Failure::Refused(NotifyType::TS_UNACCEPTABLE)
    );
}

#[test]
fn a_forged_auth_request_is_dropped_and_a_cookie_is_returned() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let (pa, pb) = paths();
    let (mut init, first) = Initiator::start(left(), pa, 7, &mut rng).unwrap();
    // A responder short of state asks for a cookie: the same request
    // comes back with it first.
    let cookie = Message {
        header: header(7, 0, ExchangeType::IKE_SA_INIT, Flags::RESPONSE, 0),
        payloads: vec![Payload::new(Body::Notify(Notify::new(
            NotifyType::COOKIE,
            vec![0xc0; 16],
        )))],
    }
    .encode()
    .unwrap();
    let Ok(Next::Send(again)) = init.receive(&cookie, 1, &mut rng) else {
        panic!()
    };
    let m = Message::decode(&again).unwrap();
    assert!(matches!(
        &m.payloads[0].body,
        Body::Notify(n) if n.kind == NotifyType::COOKIE && n.data == [0xc0; 16]
    ));
    assert_eq!(
        m.payloads[1..],
        Message::decode(&first).unwrap().payloads[..]
    );
    let Answer::Go(answer, resp) = Responder::start(right(), pb, &again, 9, &mut rng).unwrap()
    else {
        panic!()
    };
    let Ok(Next::Send(mut auth)) = init.receive(&answer, 1, &mut rng) else {
        panic!()
    };
    let at = auth.len() - 20;
    auth[at] ^= 1;
    assert!(matches!(
        resp.auth(&auth, 2, &mut rng),
        Err(Failure::Unprotected(_))
    ));
}
