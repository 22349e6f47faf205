//! Round trips: every message encodes and decodes back to itself, every
//! frame that decodes encodes back to the same bytes, and no input of any
//! length or content makes decoding panic.

use pfkey::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn sockaddr() -> impl Strategy<Value = SockAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(a, port)| SockAddr::V4 {
            addr: Ipv4Addr::from(a),
            port
        }),
        (any::<u128>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(a, port, flowinfo, scope_id)| {
                SockAddr::V6 {
                    addr: Ipv6Addr::from(a),
                    port,
                    flowinfo,
                    scope_id,
                }
            }
        ),
        // Families this crate does not read are kept as bytes.
        (1usize..4, any::<u8>()).prop_map(|(units, fill)| {
            let mut bytes = vec![fill; units * 8];
            bytes[0] = 8 * units as u8;
            bytes[1] = 17;
            SockAddr::Raw(bytes)
        }),
    ]
}

fn comb() -> impl Strategy<Value = Comb> {
    (
        any::<[u8; 2]>(),
        any::<[u16; 5]>(),
        any::<[u32; 3]>(),
        any::<[u64; 6]>(),
    )
        .prop_map(|(b, s, l, q)| Comb {
            auth: AuthAlg(b[0]),
            encrypt: b[1],
            flags: s[0],
            auth_minbits: s[1],
            auth_maxbits: s[2],
            encrypt_minbits: s[3],
            encrypt_maxbits: s[4],
            reserved: l[0],
            soft_allocations: l[1],
            hard_allocations: l[2],
            soft_bytes: q[0],
            hard_bytes: q[1],
            soft_addtime: q[2],
            hard_addtime: q[3],
            soft_usetime: q[4],
            hard_usetime: q[5],
        })
}

/// An extension type and a body of the layout it needs.
fn extension() -> impl Strategy<Value = Extension> {
    (1u16..=45).prop_flat_map(|t| {
        let t = ExtType(t);
        let body: BoxedStrategy<Body> = match t {
            ExtType::SA | ExtType::X_SA2 => any::<(u32, u8, u8, u8, u8, u32)>()
                .prop_map(|(spi, replay, state, auth, encrypt, flags)| {
                    Body::Sa(Sa {
                        spi,
                        replay,
                        state: SaState(state),
                        auth: AuthAlg(auth),
                        encrypt,
                        flags,
                    })
                })
                .boxed(),
            ExtType::LIFETIME_CURRENT
            | ExtType::LIFETIME_HARD
            | ExtType::LIFETIME_SOFT
            | ExtType::X_LIFETIME_LASTUSE => any::<(u32, u64, u64, u64)>()
                .prop_map(|(allocations, bytes, addtime, usetime)| {
                    Body::Lifetime(Lifetime {
                        allocations,
                        bytes,
                        addtime,
                        usetime,
                    })
                })
                .boxed(),
            ExtType::ADDRESS_SRC
            | ExtType::ADDRESS_DST
            | ExtType::ADDRESS_PROXY
            | ExtType::X_SRC_MASK
            | ExtType::X_DST_MASK
            | ExtType::X_SRC_FLOW
            | ExtType::X_DST_FLOW
            | ExtType::X_DST2 => (any::<u32>(), sockaddr())
                .prop_map(|(reserved, addr)| Body::Address(Address { reserved, addr }))
                .boxed(),
            ExtType::KEY_AUTH | ExtType::KEY_ENCRYPT => prop::collection::vec(any::<u8>(), 1..80)
                .prop_map(|k| Body::Key(Key::new(&k)))
                .boxed(),
            ExtType::IDENTITY_SRC | ExtType::IDENTITY_DST => (0u16..6, "[a-z0-9@.]{0,40}")
                .prop_map(|(kind, text)| Body::Identity(Identity::new(IdentType(kind), &text)))
                .boxed(),
            ExtType::SENSITIVITY => (
                any::<(u32, u8, u8, u32)>(),
                prop::collection::vec(any::<u64>(), 0..4),
                prop::collection::vec(any::<u64>(), 0..4),
            )
                .prop_map(
                    |((dpd, sens_level, integ_level, reserved), sens_bitmap, integ_bitmap)| {
                        Body::Sensitivity(Box::new(Sensitivity {
                            dpd,
                            sens_level,
                            integ_level,
                            reserved,
                            sens_bitmap,
                            integ_bitmap,
                        }))
                    },
                )
                .boxed(),
            ExtType::PROPOSAL => (any::<(u8, u8, u16)>(), prop::collection::vec(comb(), 0..3))
                .prop_map(|((num, replay, reserved), combs)| {
                    Body::Proposal(Proposal {
                        num,
                        replay,
                        reserved,
                        combs,
                    })
                })
                .boxed(),
            ExtType::SUPPORTED_AUTH | ExtType::SUPPORTED_ENCRYPT | ExtType::X_SUPPORTED_COMP => (
                any::<u32>(),
                prop::collection::vec(any::<(u8, u8, u16, u16, u16)>(), 0..6),
            )
                .prop_map(|(reserved, algs)| {
                    let algs = algs
                        .into_iter()
                        .map(|(id, ivlen, minbits, maxbits, reserved)| Alg {
                            id,
                            ivlen,
                            minbits,
                            maxbits,
                            reserved,
                        })
                        .collect();
                    Body::Supported(Supported { reserved, algs })
                })
                .boxed(),
            ExtType::SPIRANGE => any::<(u32, u32, u32)>()
                .prop_map(|(min, max, reserved)| Body::SpiRange(SpiRange { min, max, reserved }))
                .boxed(),
            ExtType::X_PROTOCOL | ExtType::X_FLOW_TYPE | ExtType::X_SATYPE2 => any::<[u8; 4]>()
                .prop_map(|b| {
                    Body::Protocol(Protocol {
                        proto: b[0],
                        direction: b[1],
                        flags: b[2],
                        reserved: b[3],
                    })
                })
                .boxed(),
            ExtType::X_POLICY => any::<u32>().prop_map(|seq| Body::Policy { seq }).boxed(),
            ExtType::X_UDPENCAP => any::<(u16, u16)>()
                .prop_map(|(port, reserved)| Body::UdpEncap(UdpEncap { port, reserved }))
                .boxed(),
            ExtType::X_TAG => "[a-z_]{0,30}"
                .prop_map(|name| Body::Tag(Tag::new(&name)))
                .boxed(),
            ExtType::X_TAP => any::<u32>().prop_map(|unit| Body::Tap { unit }).boxed(),
            ExtType::X_DATA => prop::collection::vec(any::<u8>(), 0..40)
                .prop_map(|bytes| Body::Data(Data::new(&bytes)))
                .boxed(),
            ExtType::X_FILTER_RULE => (any::<(u32, u32)>(), "[ -~]{0,80}")
                .prop_map(|((number, line), text)| {
                    Body::FilterRule(FilterRule::new(number, line, &text))
                })
                .boxed(),
            ExtType::X_COUNTER => (any::<u32>(), any::<[u64; 8]>())
                .prop_map(|(pad, c)| {
                    Body::Counter(Box::new(Counter {
                        pad,
                        ipackets: c[0],
                        opackets: c[1],
                        ibytes: c[2],
                        obytes: c[3],
                        idrops: c[4],
                        odrops: c[5],
                        idecompbytes: c[6],
                        ouncompbytes: c[7],
                    }))
                })
                .boxed(),
            ExtType::X_RDOMAIN => any::<(u16, u16)>()
                .prop_map(|(dom1, dom2)| Body::Rdomain { dom1, dom2 })
                .boxed(),
            ExtType::X_MTU => any::<u32>().prop_map(|mtu| Body::Mtu { mtu }).boxed(),
            ExtType::X_REPLAY => any::<(u32, u64)>()
                .prop_map(|(reserved, count)| Body::Replay { reserved, count })
                .boxed(),
            ExtType::X_IFACE => any::<(u32, u8, [u8; 7])>()
                .prop_map(|(unit, direction, reserved)| {
                    Body::Iface(Iface {
                        unit,
                        direction,
                        reserved,
                    })
                })
                .boxed(),
            _ => (0usize..4, any::<u8>())
                .prop_map(|(units, fill)| Body::Raw(vec![fill; units * 8 + 4]))
                .boxed(),
        };
        body.prop_map(move |body| Extension::new(t, body).expect("body suits its type"))
    })
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<(u8, u8, u8, u8, u16, u32, u32)>(),
        prop::collection::vec(extension(), 0..8),
    )
        .prop_map(
            |((version, t, errno, satype, reserved, seq, pid), extensions)| Message {
                header: Header {
                    version,
                    msg_type: MsgType(t),
                    errno,
                    satype: SaType(satype),
                    reserved,
                    seq,
                    pid,
                },
                extensions,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn messages_survive_encoding(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(bytes.len() % 8, 0);
        prop_assert_eq!(Message::peek_len(&bytes), Some(bytes.len()));
        prop_assert_eq!(Message::decode(&bytes), Ok(m));
    }

    #[test]
    fn decoded_frames_encode_to_the_same_bytes(m in message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)) {
        // Damage a valid frame a little; whatever still decodes must come
        // back byte for byte.
        let mut bytes = m.encode();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(decoded) = Message::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn any_bytes_decode_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = Message::decode(&bytes) {
            prop_assert_eq!(m.encode(), bytes.clone());
        }
        let _ = decode_stream(&bytes);
    }
}
