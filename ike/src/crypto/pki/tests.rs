use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/pki/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

/// 2026-12-03, inside every test certificate's validity.
const NOW: u64 = 1_796_300_000;

fn pki(who: &str) -> Pki {
    let key = PrivateKey::from_bytes(&fixture(&format!("{who}.key"))).unwrap();
    Pki::new(key, &fixture(&format!("{who}.crt")), &[&fixture("ca.crt")]).unwrap()
}

fn der(name: &str) -> Vec<u8> {
    der_of(&fixture(name)).unwrap().1
}

fn fqdn(name: &str) -> Identification {
    Identification {
        id_type: IdType::FQDN,
        data: name.as_bytes().to_vec(),
    }
}

#[test]
fn keys_of_each_kind_sign_and_their_certificates_verify() {
    let octets = b"what the AUTH payload covers";
    for (who, kind) in [
        ("a", KeyKind::P256),
        ("b", KeyKind::Rsa),
        ("c", KeyKind::P384),
    ] {
        let key = PrivateKey::from_bytes(&fixture(&format!("{who}.key"))).unwrap();
        let auth = key.sign_auth(octets).unwrap();
        let cert = Certificate::from_der(&der(&format!("{who}.crt"))).unwrap();
        let public = PublicKey::of(&cert).unwrap();
        assert_eq!(public.kind, kind);
        assert_eq!(public.verify_auth(octets, &auth), Ok(()));
        assert_eq!(
            public.verify_auth(b"something else", &auth),
            Err(PkiError::BadSignature)
        );
        // RFC 7427: the AlgorithmIdentifier's length, then it (a SEQUENCE).
        assert_eq!(auth[1], 0x30);
        assert_eq!(usize::from(auth[2]) + 2, usize::from(auth[0]));
    }
}

#[test]
fn a_peer_certificate_is_taken_when_a_trusted_authority_signed_it_for_that_identity() {
    let a = pki("a");
    let b_cert = vec![der("b.crt")];
    a.verify_peer(&b_cert, &fqdn("b.example"), NOW).unwrap();
    let ip = Identification {
        id_type: IdType::IPV4_ADDR,
        data: vec![192, 0, 2, 2],
    };
    assert!(a.verify_peer(&b_cert, &ip, NOW).is_ok());
    // Another name, a certificate out of its time, an unknown authority.
    assert_eq!(
        a.verify_peer(&b_cert, &fqdn("a.example"), NOW).unwrap_err(),
        PkiError::WrongIdentity
    );
    assert_eq!(
        a.verify_peer(&b_cert, &fqdn("b.example"), 4_102_444_800 * 2)
            .unwrap_err(),
        PkiError::Expired
    );
    assert_eq!(
        a.verify_peer(&[der("c.crt")], &fqdn("c.example"), NOW)
            .unwrap_err(),
        PkiError::Untrusted
    );
    // A distinguished name ID is the certificate's subject.
    let cert = Certificate::from_der(&der("b.crt")).unwrap();
    let dn = Identification {
        id_type: IdType::DER_ASN1_DN,
        data: cert.tbs_certificate.subject.to_der().unwrap(),
    };
    assert!(a.verify_peer(&b_cert, &dn, NOW).is_ok());
    // A self-signed certificate is not its own authority.
    assert_eq!(
        a.verify_peer(&[der("other-ca.crt")], &fqdn("c.example"), NOW)
            .unwrap_err(),
        PkiError::WrongIdentity
    );
}

#[test]
fn a_certificate_for_another_key_and_bad_input_are_refused() {
    let key = PrivateKey::from_bytes(&fixture("a.key")).unwrap();
    assert_eq!(
        Pki::new(key, &fixture("b.crt"), &[&fixture("ca.crt")]).unwrap_err(),
        PkiError::Malformed("a certificate for another key")
    );
    assert!(PrivateKey::from_bytes(b"not a key").is_err());
    let a = pki("a");
    assert!(
        a.verify_peer(&[b"junk".to_vec()], &fqdn("b.example"), NOW)
            .is_err()
    );
    assert!(a.verify_peer(&[], &fqdn("b.example"), NOW).is_err());
    // CERTREQ names the one authority by its key's SHA-1.
    assert_eq!(a.authorities().len(), 20);
    // AUTH data too short for its own length byte.
    let cert = Certificate::from_der(&der("b.crt")).unwrap();
    let public = PublicKey::of(&cert).unwrap();
    assert!(public.verify_auth(b"x", &[200, 1, 2]).is_err());
    assert!(public.verify_auth(b"x", &[]).is_err());
}
