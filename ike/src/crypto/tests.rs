//! The key schedule against NIST's IKEv2 KDF samples (CAVP, SP 800-135,
//! HMAC-SHA-256), and the key exchanges against RFC 5903 §8.1 (P-256),
//! RFC 7748 §6.1 (Curve25519), and, for MODP-2048, against Python's own
//! `pow` (the vector below was computed with it from the seeds named).

use super::dh::{DhError, Group, KeyPair};
use super::keys::{IkeKeys, KeyLengths, child_keymat, rekey_skeyseed, skeyseed};
use super::prf::Prf;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

const NI: &str = "3f302be1abcb28e1";
const NR: &str = "8c332ee006064c9b";
const SPI_I: u64 = 0x40da_c39e_1e1a_8640;
const SPI_R: u64 = 0x8619_a1cf_9a6e_4c07;
const G_IR: &str = "0f4d257d7a58fc4545c7d7a88119eee5d5c9690c5b4c989171d3abbfd99d1d29";
const SKEYSEED: &str = "5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe";
const DKM: &str = "
    0b137d669b0947d7d026d593f0305ad401ff0c471357d695778a9c7f4b4869ec
    e98aca531188d16041b3bb936d2dbb3b4993a6e768a809160de45d0283f273a6
    cdf6854379e31be72b8d3d1fa990cf9c5b015ca9f918a7df6253c958114a09d4
    e1c19bdcd4db14b29d98db1a74ad405c588662c14a04d0d36aa4ab55e90f8986
    d12d4aad";

#[test]
fn skeyseed_and_the_ike_sa_keys_match_nist() {
    let seed = skeyseed(Prf::HmacSha256, &hex(NI), &hex(NR), &hex(G_IR));
    assert_eq!(*seed, hex(SKEYSEED));
    let stream = Prf::HmacSha256.prf_plus(
        &seed,
        &[
            &hex(NI),
            &hex(NR),
            &SPI_I.to_be_bytes(),
            &SPI_R.to_be_bytes(),
        ],
        132,
    );
    assert_eq!(*stream, hex(DKM));
    // The same stream, cut into the seven keys: 32 + 2 * 16 + 2 * 2 + 2 * 32.
    let lengths = KeyLengths { integ: 16, encr: 2 };
    let keys = IkeKeys::derive(
        Prf::HmacSha256,
        lengths,
        &seed,
        &hex(NI),
        &hex(NR),
        SPI_I,
        SPI_R,
    );
    let dkm = hex(DKM);
    assert_eq!(*keys.d, dkm[..32]);
    assert_eq!(*keys.ai, dkm[32..48]);
    assert_eq!(*keys.ar, dkm[48..64]);
    assert_eq!(*keys.ei, dkm[64..66]);
    assert_eq!(*keys.er, dkm[66..68]);
    assert_eq!(*keys.pi, dkm[68..100]);
    assert_eq!(*keys.pr, dkm[100..132]);
}

#[test]
fn a_rekeyed_ike_sa_seed_matches_nist() {
    let old_d = hex("0b137d669b0947d7d026d593f0305ad401ff0c471357d695778a9c7f4b4869ec");
    let new_g = hex("25f3b12d6f282739256e39bf54eda53b60ffcf379bb7bcc90c27b4c4c578616c");
    let seed = rekey_skeyseed(Prf::HmacSha256, &old_d, &new_g, &hex(NI), &hex(NR));
    assert_eq!(
        *seed,
        hex("2d63f6debc92048b4fef3889c4c99ca67d6496e0fac14a2bca9a2d6566ff2398")
    );
}

#[test]
fn child_keymat_is_prf_plus_over_the_new_secret_and_the_nonces() {
    let d = [7u8; 32];
    let (ni, nr, g) = ([1u8; 16], [2u8; 16], [3u8; 32]);
    let plain = child_keymat(Prf::HmacSha256, &d, None, &ni, &nr, 72);
    assert_eq!(*plain, *Prf::HmacSha256.prf_plus(&d, &[&ni, &nr], 72));
    let pfs = child_keymat(Prf::HmacSha256, &d, Some(&g), &ni, &nr, 72);
    assert_eq!(*pfs, *Prf::HmacSha256.prf_plus(&d, &[&g, &ni, &nr], 72));
    assert_ne!(plain, pfs);
    // prf+'s blocks chain: the second starts from the first.
    let t1 = Prf::HmacSha256.prf(&d, &[&ni, &nr, &[1]]);
    let t2 = Prf::HmacSha256.prf(&d, &[&t1, &ni, &nr, &[2]]);
    assert_eq!(plain[..32], t1[..]);
    assert_eq!(plain[32..64], t2[..]);
}

#[test]
fn p256_matches_rfc_5903() {
    let i = hex("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433");
    let r = hex("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53");
    let gi = hex(
        "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180
         5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
    );
    let gr = hex(
        "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63
         56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
    );
    let girx = hex("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE");
    let initiator = KeyPair::from_private(Group::Ecp256, &i).unwrap();
    let responder = KeyPair::from_private(Group::Ecp256, &r).unwrap();
    assert_eq!(initiator.public(), gi);
    assert_eq!(responder.public(), gr);
    assert_eq!(*initiator.shared(&gr).unwrap(), girx);
    assert_eq!(*responder.shared(&gi).unwrap(), girx);
    // A point off the curve, and a value of the wrong length.
    let mut off = gr.clone();
    off[63] ^= 1;
    assert_eq!(initiator.shared(&off), Err(DhError::Invalid));
    assert_eq!(initiator.shared(&gr[..63]), Err(DhError::Length));
}

#[test]
fn curve25519_matches_rfc_7748() {
    let alice = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let bob = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let a = KeyPair::from_private(Group::Curve25519, &alice).unwrap();
    let b = KeyPair::from_private(Group::Curve25519, &bob).unwrap();
    assert_eq!(
        a.public(),
        hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    );
    assert_eq!(
        b.public(),
        hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    );
    let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(*a.shared(b.public()).unwrap(), shared);
    assert_eq!(*b.shared(a.public()).unwrap(), shared);
    // A small-order point gives an all-zero secret: refused (RFC 8031).
    assert_eq!(a.shared(&[0; 32]), Err(DhError::Invalid));
}

#[test]
fn modp_2048_matches_an_independent_computation() {
    let seed = |s: &[u8]| sha2::Sha512::digest(s).to_vec();
    let a = KeyPair::from_private(Group::Modp2048, &seed(b"iked modp test a")).unwrap();
    let b = KeyPair::from_private(Group::Modp2048, &seed(b"iked modp test b")).unwrap();
    let digest = |v: &[u8]| Sha256::digest(v).to_vec();
    assert_eq!(a.public().len(), 256);
    assert_eq!(
        digest(a.public()),
        hex("d4b4496d2fe1ae9b8c9a6796c223898959174908a996f6db507e571442101fe4")
    );
    assert_eq!(
        digest(b.public()),
        hex("c5620c4aa7d8fd42dd8a1e2098e670950677ae0f3aabeda18209f7b6b2cf88bf")
    );
    let shared = a.shared(b.public()).unwrap();
    assert_eq!(*shared, *b.shared(a.public()).unwrap());
    assert_eq!(
        digest(&shared),
        hex("92b027d10207c8c7d1461a8430f3df3dcb396a8460ca4cfbe581e28935f4ae22")
    );
    // 1 and p - 1 would fix the secret: refused.
    let mut one = vec![0u8; 256];
    one[255] = 1;
    assert_eq!(a.shared(&one), Err(DhError::Invalid));
    let mut p_minus_1 = vec![0xff; 256];
    let p = hex(super::modp::P2048);
    p_minus_1.copy_from_slice(&p);
    p_minus_1[255] -= 1;
    assert_eq!(a.shared(&p_minus_1), Err(DhError::Invalid));
}

#[test]
fn every_group_agrees_with_itself() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    for group in [
        Group::Modp2048,
        Group::Modp3072,
        Group::Modp4096,
        Group::Ecp256,
        Group::Ecp384,
        Group::Curve25519,
    ] {
        let a = group.generate(&mut rng);
        let b = group.generate(&mut rng);
        assert_eq!(a.public().len(), group.public_len(), "{group:?}");
        assert_ne!(a.public(), b.public());
        assert_eq!(
            *a.shared(b.public()).unwrap(),
            *b.shared(a.public()).unwrap(),
            "{group:?}"
        );
        assert_eq!(Group::of(group.id()), Some(group));
    }
}

mod encrypted_payload {
    use super::super::sk::{Cipher, Integ, OpenError, Protection};
    use crate::wire::*;
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use rand_core::{RngCore, SeedableRng};

    fn header() -> Header {
        Header {
            spi_i: 0x1111_2222_3333_4444,
            spi_r: 0x5555_6666_7777_8888,
            next: PayloadType::NONE,
            version: VERSION,
            exchange: ExchangeType::IKE_AUTH,
            flags: Flags::INITIATOR,
            message_id: 1,
            length: 0,
        }
    }

    fn inner() -> Vec<Payload> {
        vec![
            Payload::new(Body::IdI(Identification {
                id_type: IdType::FQDN,
                data: b"left.example".to_vec(),
            })),
            Payload::new(Body::Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: vec![0xa5; 32],
            }),
        ]
    }

    fn all() -> Vec<Protection> {
        let mut out = Vec::new();
        for k in [16, 24, 32] {
            for integ in [
                Integ::HmacSha1_96,
                Integ::HmacSha256_128,
                Integ::HmacSha384_192,
                Integ::HmacSha512_256,
            ] {
                out.push(Protection {
                    cipher: Cipher::AesCbc(k),
                    integ: Some(integ),
                });
            }
            out.push(Protection {
                cipher: Cipher::AesGcm16(k),
                integ: None,
            });
        }
        out.push(Protection {
            cipher: Cipher::ChaCha20Poly1305,
            integ: None,
        });
        out
    }

    fn keys(p: &Protection, rng: &mut rand_chacha::ChaCha20Rng) -> (Vec<u8>, Vec<u8>) {
        let lengths = p.key_lengths();
        let mut e = vec![0u8; lengths.encr];
        let mut a = vec![0u8; lengths.integ];
        rng.fill_bytes(&mut e);
        rng.fill_bytes(&mut a);
        (e, a)
    }

    #[test]
    fn every_protection_seals_what_it_opens_and_refuses_any_change() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for p in all() {
            let (e, a) = keys(&p, &mut rng);
            let sealed = p.seal(header(), &inner(), &e, &a, &mut rng).unwrap();
            assert_eq!(p.open(&sealed, &e, &a).unwrap(), inner(), "{p:?}");
            let m = Message::decode(&sealed).unwrap();
            assert_eq!(m.header.length as usize, sealed.len());
            assert_eq!(m.header.next, PayloadType::SK);
            // Any byte changed, header included, and it is refused.
            for at in [0, 19, 27, 28, 33, sealed.len() / 2, sealed.len() - 1] {
                let mut bad = sealed.clone();
                bad[at] ^= 0x40;
                let refused = p.open(&bad, &e, &a);
                assert!(refused.is_err(), "{p:?}: byte {at} changed and accepted");
            }
            // The key that checks: SK_a with CBC, SK_e with an AEAD.
            let (mut wrong_e, mut wrong_a) = (e.clone(), a.clone());
            match p.integ {
                Some(_) => wrong_a[0] ^= 1,
                None => wrong_e[0] ^= 1,
            }
            assert_eq!(
                p.open(&sealed, &wrong_e, &wrong_a),
                Err(OpenError::Integrity)
            );
            // Cut short.
            assert!(p.open(&sealed[..sealed.len() - 1], &e, &a).is_err());
        }
    }

    #[test]
    fn an_aead_payload_is_salt_and_iv_as_nonce_and_the_headers_as_additional_data() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let p = Protection {
            cipher: Cipher::ChaCha20Poly1305,
            integ: None,
        };
        let (e, a) = keys(&p, &mut rng);
        let sealed = p.seal(header(), &inner(), &e, &a, &mut rng).unwrap();
        // Read back by hand: header (28) and SK header (4) as AAD, then
        // the 8-byte IV, the ciphertext and a 16-byte tag.
        let (aad, rest) = sealed.split_at(32);
        let (iv, rest) = rest.split_at(8);
        let (ciphertext, tag) = rest.split_at(rest.len() - 16);
        let nonce = [&e[32..], iv].concat();
        let aead = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&e[..32]).unwrap();
        let mut plain = ciphertext.to_vec();
        aead.decrypt_in_place_detached(nonce.as_slice().into(), aad, &mut plain, tag.into())
            .unwrap();
        let (first, chain) = encode_chain(&inner()).unwrap();
        assert_eq!(aad[28], first.0, "SK names the first inner payload");
        // No padding: just the pad length, 0.
        assert_eq!(plain, [chain, vec![0]].concat());
    }

    #[test]
    fn a_cbc_payload_is_whole_blocks_and_a_check_over_the_whole_message() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let p = Protection {
            cipher: Cipher::AesCbc(16),
            integ: Some(Integ::HmacSha256_128),
        };
        let (e, a) = keys(&p, &mut rng);
        let sealed = p.seal(header(), &inner(), &e, &a, &mut rng).unwrap();
        let (signed, icv) = sealed.split_at(sealed.len() - 16);
        assert_eq!(Integ::HmacSha256_128.mac(&a, signed), icv);
        let body = &signed[32..];
        assert_eq!(body.len() % 16, 0, "IV and whole blocks");
        let (_, chain) = encode_chain(&inner()).unwrap();
        assert_eq!(body.len() - 16, (chain.len() + 1).div_ceil(16) * 16);
    }

    #[test]
    fn only_sensible_pairs_are_protections() {
        assert_eq!(
            Protection::of(EncrId::AES_GCM_16, Some(256), IntegId::NONE),
            Some(Protection {
                cipher: Cipher::AesGcm16(32),
                integ: None
            })
        );
        assert_eq!(
            Protection::of(EncrId::AES_GCM_16, Some(256), IntegId::HMAC_SHA2_256_128),
            None
        );
        assert_eq!(
            Protection::of(EncrId::AES_CBC, Some(128), IntegId::NONE),
            None
        );
        assert_eq!(
            Protection::of(EncrId::AES_CBC, None, IntegId::HMAC_SHA2_256_128),
            None
        );
        assert_eq!(
            Protection::of(EncrId::AES_CBC, Some(100), IntegId::HMAC_SHA2_256_128),
            None
        );
        let gcm = Protection::of(EncrId::AES_GCM_16, Some(128), IntegId::NONE).unwrap();
        assert_eq!((gcm.key_lengths().encr, gcm.key_lengths().integ), (20, 0));
        let chacha = Protection::of(EncrId::CHACHA20_POLY1305, None, IntegId::NONE).unwrap();
        assert_eq!(chacha.key_lengths().encr, 36);
    }
}
