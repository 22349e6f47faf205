//! Messages assembled by hand from RFC 7296's layouts, refused frames,
//! and round trips of generated messages.

use super::*;
use proptest::prelude::*;
use std::net::IpAddr;

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// An IKE_SA_INIT request: one proposal (AES-CBC-256, HMAC-SHA2-256 as
/// PRF and integrity, ECP-256), a KE payload, a nonce, and a NAT
/// detection notification.
fn sa_init() -> Vec<u8> {
    let mut bytes = hex("
        01 02 03 04 05 06 07 08  00 00 00 00 00 00 00 00
        21 20 22 08 00 00 00 00  00 00 00 d4
        22 00 00 30
          00 00 00 2c 01 01 00 04
            03 00 00 0c 01 00 00 0c 80 0e 01 00
            03 00 00 08 02 00 00 05
            03 00 00 08 03 00 00 0c
            00 00 00 08 04 00 00 13
        28 00 00 48 00 13 00 00");
    bytes.extend([0x11; 64]);
    bytes.extend(hex("29 00 00 24"));
    bytes.extend([0x22; 32]);
    bytes.extend(hex("00 00 00 1c 00 00 40 04"));
    bytes.extend([0x33; 20]);
    bytes
}

#[test]
fn an_ike_sa_init_request_reads_as_written() {
    let bytes = sa_init();
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.header.spi_i, 0x0102_0304_0506_0708);
    assert_eq!(m.header.exchange, ExchangeType::IKE_SA_INIT);
    assert!(m.header.flags.contains(Flags::INITIATOR));
    assert!(!m.header.flags.contains(Flags::RESPONSE));
    let kinds: Vec<PayloadType> = m.payloads.iter().map(Payload::kind).collect();
    assert_eq!(
        kinds,
        [
            PayloadType::SA,
            PayloadType::KE,
            PayloadType::NONCE,
            PayloadType::NOTIFY
        ]
    );
    let Body::Sa(proposals) = &m.payloads[0].body else {
        panic!()
    };
    assert_eq!(
        proposals,
        &[Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform::encr(EncrId::AES_CBC, Some(256)),
                Transform::prf(PrfId::HMAC_SHA2_256),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                Transform::dh(DhGroup::ECP_256),
            ],
        }]
    );
    assert_eq!(proposals[0].transforms[0].key_length(), Some(256));
    assert_eq!(
        m.payloads[1].body,
        Body::Ke {
            group: DhGroup::ECP_256,
            data: vec![0x11; 64]
        }
    );
    let nat: Vec<&Notify> = m
        .notifications(NotifyType::NAT_DETECTION_SOURCE_IP)
        .collect();
    assert_eq!(nat.len(), 1);
    assert_eq!(nat[0].data, [0x33; 20]);
    assert_eq!(m.encode().unwrap(), bytes);
}

#[test]
fn broken_frames_are_refused_by_reason() {
    let good = sa_init();
    let mut short = good.clone();
    short.pop();
    assert_eq!(Message::decode(&short), Err(DecodeError::Length("message")));
    let mut v3 = good.clone();
    v3[17] = 0x30;
    assert_eq!(Message::decode(&v3), Err(DecodeError::Version(0x30)));
    // The header is still readable, to answer INVALID_MAJOR_VERSION.
    assert_eq!(Header::peek(&v3).unwrap().major_version(), 3);
    // The only proposal says another follows.
    let mut more = good.clone();
    more[32] = 2;
    assert_eq!(
        Message::decode(&more),
        Err(DecodeError::Substructure("proposal"))
    );
    // The last transform says another follows.
    let mut transform = good.clone();
    transform[68] = 3;
    assert_eq!(
        Message::decode(&transform),
        Err(DecodeError::Substructure("transform"))
    );
    // A payload longer than the message.
    let mut long = good.clone();
    long[31] = 0xff;
    assert_eq!(
        Message::decode(&long),
        Err(DecodeError::Truncated("payload"))
    );
    // A payload length below its own header.
    let mut tiny = good.clone();
    tiny[31] = 3;
    assert_eq!(Message::decode(&tiny), Err(DecodeError::Length("payload")));
    assert_eq!(
        Message::decode(&good[..20]),
        Err(DecodeError::Truncated("message ID"))
    );
}

#[test]
fn the_encrypted_payload_ends_the_chain_and_holds_one_of_its_own() {
    let inner = vec![
        Payload::new(Body::IdI(Identification {
            id_type: IdType::FQDN,
            data: b"a.example".to_vec(),
        })),
        Payload::new(Body::Auth {
            method: AuthMethod::SHARED_KEY_MIC,
            data: vec![7; 32],
        }),
    ];
    let (first, plaintext) = encode_chain(&inner).unwrap();
    assert_eq!(first, PayloadType::IDI);
    let m = Message {
        header: Header {
            spi_i: 1,
            spi_r: 2,
            next: PayloadType::NONE,
            version: VERSION,
            exchange: ExchangeType::IKE_AUTH,
            flags: Flags::INITIATOR,
            message_id: 1,
            length: 0,
        },
        payloads: vec![Payload::new(Body::Sk {
            first,
            data: plaintext.clone(),
        })],
    };
    let bytes = m.encode().unwrap();
    // The header names SK; SK's next payload names what is inside.
    assert_eq!(bytes[16], PayloadType::SK.0);
    assert_eq!(bytes[28], PayloadType::IDI.0);
    let back = Message::decode(&bytes).unwrap();
    let Body::Sk { first, data } = &back.payloads[0].body else {
        panic!()
    };
    assert_eq!(decode_chain(*first, data).unwrap(), inner);
    // Nothing may follow it.
    let mut after = m.clone();
    after.payloads.push(Payload::new(Body::Nonce(vec![1; 16])));
    assert_eq!(after.encode(), Err(EncodeError::Inconsistent));
    let mut bytes = bytes;
    bytes.extend([0, 0, 0, 4]);
    let n = bytes.len() as u32;
    bytes[24..28].copy_from_slice(&n.to_be_bytes());
    assert_eq!(Message::decode(&bytes), Err(DecodeError::SkNotLast));
}

#[test]
fn an_unknown_critical_payload_is_kept_for_the_protocol_to_refuse() {
    let m = Message {
        header: Header::peek(&sa_init()).unwrap(),
        payloads: vec![Payload {
            critical: true,
            body: Body::Unknown {
                kind: PayloadType(200),
                data: vec![1, 2, 3],
            },
        }],
    };
    let back = Message::decode(&m.encode().unwrap()).unwrap();
    assert_eq!(back.payloads, m.payloads);
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn transform() -> impl Strategy<Value = Transform> {
    let attribute = (
        0u16..0x8000,
        prop_oneof![
            any::<u16>().prop_map(AttributeValue::Short),
            bytes(8).prop_map(AttributeValue::Long),
        ],
    )
        .prop_map(|(kind, value)| Attribute { kind, value });
    (
        any::<u8>(),
        any::<u16>(),
        prop::collection::vec(attribute, 0..3),
    )
        .prop_map(|(kind, id, attributes)| Transform {
            kind: TransformType(kind),
            id,
            attributes,
        })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u8>(),
        any::<u8>(),
        bytes(9),
        prop::collection::vec(transform(), 0..5),
    )
        .prop_map(|(number, protocol, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms,
        })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    prop_oneof![
        (any::<u8>(), any::<u16>(), any::<u16>(), any::<[u32; 2]>()).prop_map(
            |(protocol, start_port, end_port, a)| TrafficSelector::Range {
                protocol,
                start_port,
                end_port,
                start: IpAddr::from(a[0].to_be_bytes()),
                end: IpAddr::from(a[1].to_be_bytes()),
            }
        ),
        (any::<u8>(), any::<[u128; 2]>()).prop_map(|(protocol, a)| TrafficSelector::Range {
            protocol,
            start_port: 0,
            end_port: 65535,
            start: IpAddr::from(a[0].to_be_bytes()),
            end: IpAddr::from(a[1].to_be_bytes()),
        }),
        (9u8..=255, prop::collection::vec(any::<u8>(), 1..12)).prop_map(|(kind, data)| {
            TrafficSelector::Other {
                kind: TsType(kind),
                data,
            }
        }),
    ]
}

fn id() -> impl Strategy<Value = Identification> {
    (any::<u8>(), bytes(20)).prop_map(|(t, data)| Identification {
        id_type: IdType(t),
        data,
    })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        prop::collection::vec(proposal(), 1..3).prop_map(Body::Sa),
        (any::<u16>(), bytes(40)).prop_map(|(g, data)| Body::Ke {
            group: DhGroup(g),
            data
        }),
        id().prop_map(Body::IdI),
        id().prop_map(Body::IdR),
        (any::<u8>(), bytes(30)).prop_map(|(e, data)| Body::Cert {
            encoding: CertEncoding(e),
            data
        }),
        (any::<u8>(), bytes(30)).prop_map(|(e, data)| Body::CertReq {
            encoding: CertEncoding(e),
            data
        }),
        (any::<u8>(), bytes(30)).prop_map(|(m, data)| Body::Auth {
            method: AuthMethod(m),
            data
        }),
        bytes(64).prop_map(Body::Nonce),
        (any::<u8>(), bytes(9), any::<u16>(), bytes(20)).prop_map(|(p, spi, kind, data)| {
            Body::Notify(Notify {
                protocol: ProtocolId(p),
                spi,
                kind: NotifyType(kind),
                data,
            })
        }),
        (any::<u8>(), 0u8..9, 0usize..4).prop_map(|(p, size, n)| Body::Delete(Delete {
            protocol: ProtocolId(p),
            spi_size: size,
            spis: vec![vec![size; usize::from(size)]; n],
        })),
        bytes(20).prop_map(Body::Vendor),
        prop::collection::vec(selector(), 0..3).prop_map(Body::TsI),
        prop::collection::vec(selector(), 0..3).prop_map(Body::TsR),
        (
            any::<u8>(),
            prop::collection::vec((0u16..0x8000, bytes(8)), 0..3)
        )
            .prop_map(|(kind, attrs)| Body::Cp {
                kind: CfgType(kind),
                attributes: attrs
                    .into_iter()
                    .map(|(kind, value)| CfgAttribute { kind, value })
                    .collect(),
            }),
        (49u8..=52, bytes(20)).prop_map(|(k, data)| Body::Unknown {
            kind: PayloadType(k),
            data
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let tail = prop_oneof![
        Just(None),
        (any::<u8>(), bytes(40)).prop_map(|(first, data)| Some(Body::Sk {
            first: PayloadType(first),
            data
        })),
    ];
    (
        any::<(u64, u64, u8, u8, u32)>(),
        prop::collection::vec(
            (any::<bool>(), body()).prop_map(|(critical, body)| Payload { critical, body }),
            0..6,
        ),
        tail,
    )
        .prop_map(
            |((spi_i, spi_r, exchange, flags, message_id), mut payloads, sk)| {
                payloads.extend(sk.map(Payload::new));
                let next = payloads.first().map_or(PayloadType::NONE, Payload::kind);
                let mut m = Message {
                    header: Header {
                        spi_i,
                        spi_r,
                        next,
                        version: VERSION,
                        exchange: ExchangeType(exchange),
                        flags: Flags(flags),
                        message_id,
                        length: 0,
                    },
                    payloads,
                };
                m.header.length = m.encode().map_or(0, |b| b.len() as u32);
                m
            },
        )
}

proptest! {
    #[test]
    fn messages_survive_encoding(m in message()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn any_bytes_decode_without_panicking(data in bytes(600)) {
        let _ = Message::decode(&data);
        let _ = decode_chain(PayloadType(data.first().copied().unwrap_or(33)), &data);
    }
}
