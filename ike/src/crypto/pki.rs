//! Certificates and signatures (RFC 7296 §3.6–3.8, RFC 7427): this end's
//! private key and certificate, the certificate authorities it trusts,
//! checking a peer's certificate chain against them for a time and an
//! identity, and the signatures of the Digital Signature AUTH method.
//!
//! X.509 is parsed with `x509-cert`; every signature is made and checked
//! by `ring` (constant time; its ECDSA and RSA blinding draw on the
//! operating system's randomness, as its interface requires).

use crate::wire::{IdType, Identification};
use der::{Decode, Encode};
use ring::signature::{self as sig, KeyPair};
use sha1::{Digest, Sha1};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, SubjectAltName};

/// How far a chain may go from the peer's certificate to a trusted one.
const MAX_DEPTH: usize = 4;

/// Why a key, a certificate or a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiError {
    /// Not PEM or DER, or not the structure expected; what was read.
    Malformed(&'static str),
    /// A key type or algorithm this daemon does not use.
    Unsupported(&'static str),
    /// The certificate is outside its validity period.
    Expired,
    /// No chain leads to a trusted authority.
    Untrusted,
    /// The certificate does not name the identity the peer claims.
    WrongIdentity,
    /// The signature does not verify.
    BadSignature,
}

/// This end's private key, of a kind `ring` signs with.
pub enum PrivateKey {
    Rsa(sig::RsaKeyPair),
    EcdsaP256(sig::EcdsaKeyPair),
    EcdsaP384(sig::EcdsaKeyPair),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrivateKey::Rsa(_) => "PrivateKey::Rsa(..)",
            PrivateKey::EcdsaP256(_) => "PrivateKey::EcdsaP256(..)",
            PrivateKey::EcdsaP384(_) => "PrivateKey::EcdsaP384(..)",
        })
    }
}

/// RFC 7427's AlgorithmIdentifiers, DER: what the AUTH data says it
/// signed with.
const SHA256_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
const SHA384_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
const SHA512_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];
const ECDSA_WITH_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ECDSA_WITH_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
const ECDSA_WITH_SHA512: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
];

/// The OIDs of the same algorithms, as certificates name them.
const OID_SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const OID_SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const OID_SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
const OID_ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_WITH_SHA512: &str = "1.2.840.10045.4.3.4";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// A public key's kind, which with a signature algorithm picks `ring`'s
/// verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

/// A public key as a certificate carries it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    kind: KeyKind,
    /// The subjectPublicKey bits: RSAPublicKey DER, or an EC point.
    bits: Vec<u8>,
}

impl PublicKey {
    fn of(cert: &Certificate) -> Result<PublicKey, PkiError> {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or(PkiError::Malformed("public key bits"))?
            .to_vec();
        let kind = match spki.algorithm.oid.to_string().as_str() {
            OID_RSA => KeyKind::Rsa,
            OID_EC => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
                    .ok_or(PkiError::Malformed("EC parameters"))?;
                match curve.to_string().as_str() {
                    OID_P256 => KeyKind::P256,
                    OID_P384 => KeyKind::P384,
                    _ => {
                        return Err(PkiError::Unsupported(
                            "an EC curve other than P-256 and P-384",
                        ));
                    }
                }
            }
            _ => return Err(PkiError::Unsupported("a public key neither RSA nor ECDSA")),
        };
        Ok(PublicKey { kind, bits })
    }

    /// Checks `signature` of `message` made with the algorithm `oid`.
    fn verify_oid(&self, oid: &str, message: &[u8], signature: &[u8]) -> Result<(), PkiError> {
        let algorithm: &dyn sig::VerificationAlgorithm = match (self.kind, oid) {
            (KeyKind::Rsa, OID_SHA256_WITH_RSA) => &sig::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, OID_SHA384_WITH_RSA) => &sig::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, OID_SHA512_WITH_RSA) => &sig::RSA_PKCS1_2048_8192_SHA512,
            (KeyKind::P256, OID_ECDSA_WITH_SHA256) => &sig::ECDSA_P256_SHA256_ASN1,
            (KeyKind::P256, OID_ECDSA_WITH_SHA384) => &sig::ECDSA_P256_SHA384_ASN1,
            (KeyKind::P384, OID_ECDSA_WITH_SHA256) => &sig::ECDSA_P384_SHA256_ASN1,
            (KeyKind::P384, OID_ECDSA_WITH_SHA384) => &sig::ECDSA_P384_SHA384_ASN1,
            _ => {
                return Err(PkiError::Unsupported(
                    "a signature algorithm not taken here",
                ));
            }
        };
        sig::UnparsedPublicKey::new(algorithm, &self.bits)
            .verify(message, signature)
            .map_err(|_| PkiError::BadSignature)
    }

    /// Checks RFC 7427 AUTH data (the AlgorithmIdentifier's length, the
    /// AlgorithmIdentifier, the signature) over `octets`.
    pub fn verify_auth(&self, octets: &[u8], auth: &[u8]) -> Result<(), PkiError> {
        let (&len, rest) = auth.split_first().ok_or(PkiError::Malformed("AUTH data"))?;
        let len = usize::from(len);
        if rest.len() < len {
            return Err(PkiError::Malformed("AUTH data"));
        }
        let (algorithm, signature) = rest.split_at(len);
        let oid = match algorithm {
            SHA256_WITH_RSA => OID_SHA256_WITH_RSA,
            SHA384_WITH_RSA => OID_SHA384_WITH_RSA,
            SHA512_WITH_RSA => OID_SHA512_WITH_RSA,
            ECDSA_WITH_SHA256 => OID_ECDSA_WITH_SHA256,
            ECDSA_WITH_SHA384 => OID_ECDSA_WITH_SHA384,
            ECDSA_WITH_SHA512 => OID_ECDSA_WITH_SHA512,
            _ => {
                return Err(PkiError::Unsupported(
                    "an AUTH signature algorithm not taken here",
                ));
            }
        };
        self.verify_oid(oid, octets, signature)
    }
}

/// The DER inside PEM text, with its label; or the bytes, if DER.
fn der_of(bytes: &[u8]) -> Result<(String, Vec<u8>), PkiError> {
    if bytes.starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(bytes).map_err(|_| PkiError::Malformed("PEM"))?;
        Ok((label.to_owned(), der))
    } else {
        Ok((String::new(), bytes.to_vec()))
    }
}

/// Every PEM block of `bytes` (a file of several certificates).
fn pem_blocks(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PkiError::Malformed("PEM"))?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN") {
        let end_marker = rest[start..]
            .find("-----END")
            .ok_or(PkiError::Malformed("PEM"))?;
        let after = rest[start + end_marker..]
            .find("\n")
            .map_or(rest.len(), |n| start + end_marker + n + 1);
        let (_, der) = der_of(&rest.as_bytes()[start..after])?;
        out.push(der);
        rest = &rest[after..];
    }
    if out.is_empty() {
        // One certificate in DER.
        out.push(bytes.to_vec());
    }
    Ok(out)
}

impl PrivateKey {
    /// Reads a PKCS#8 private key (RSA, or ECDSA on P-256 or P-384), or
    /// a PKCS#1 RSA key, in PEM or DER.
    pub fn from_bytes(bytes: &[u8]) -> Result<PrivateKey, PkiError> {
        let (label, der) = der_of(bytes)?;
        let der = zeroize::Zeroizing::new(der);
        let rng = ring::rand::SystemRandom::new();
        if label == "EC PRIVATE KEY" {
            return Err(PkiError::Unsupported(
                "a SEC1 EC key: convert it with openssl pkcs8 -topk8 -nocrypt",
            ));
        }
        if label == "RSA PRIVATE KEY" {
            return sig::RsaKeyPair::from_der(&der)
                .map(PrivateKey::Rsa)
                .map_err(|_| PkiError::Malformed("RSA private key"));
        }
        if let Ok(k) = sig::RsaKeyPair::from_pkcs8(&der) {
            return Ok(PrivateKey::Rsa(k));
        }
        if let Ok(k) =
            sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
        {
            return Ok(PrivateKey::EcdsaP256(k));
        }
        if let Ok(k) =
            sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_ASN1_SIGNING, &der, &rng)
        {
            return Ok(PrivateKey::EcdsaP384(k));
        }
        Err(PkiError::Unsupported(
            "a private key that is not PKCS#8 RSA, ECDSA P-256 or ECDSA P-384",
        ))
    }

    /// RFC 7427 AUTH data over `octets`.
    pub fn sign_auth(&self, octets: &[u8]) -> Result<Vec<u8>, PkiError> {
        let rng = ring::rand::SystemRandom::new();
        let (algorithm, signature) = match self {
            PrivateKey::Rsa(k) => {
                let mut s = vec![0; k.public().modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA256, &rng, octets, &mut s)
                    .map_err(|_| PkiError::BadSignature)?;
                (SHA256_WITH_RSA, s)
            }
            PrivateKey::EcdsaP256(k) => (
                ECDSA_WITH_SHA256,
                k.sign(&rng, octets)
                    .map_err(|_| PkiError::BadSignature)?
                    .as_ref()
                    .to_vec(),
            ),
            PrivateKey::EcdsaP384(k) => (
                ECDSA_WITH_SHA384,
                k.sign(&rng, octets)
                    .map_err(|_| PkiError::BadSignature)?
                    .as_ref()
                    .to_vec(),
            ),
        };
        let mut out = Vec::with_capacity(1 + algorithm.len() + signature.len());
        out.push(algorithm.len() as u8);
        out.extend_from_slice(algorithm);
        out.extend_from_slice(&signature);
        Ok(out)
    }

    /// The public key's bits, to match it with a certificate.
    fn public_bits(&self) -> &[u8] {
        match self {
            PrivateKey::Rsa(k) => k.public().as_ref(),
            PrivateKey::EcdsaP256(k) | PrivateKey::EcdsaP384(k) => k.public_key().as_ref(),
        }
    }
}

/// A certificate authority this end trusts.
#[derive(Debug, Clone)]
struct Anchor {
    cert: Certificate,
    key: PublicKey,
    /// SHA-1 of its SubjectPublicKeyInfo: how CERTREQ names it.
    keyid: [u8; 20],
}

/// This end's credentials for certificate authentication: its key and
/// certificate, and the authorities whose certificates it takes.
#[derive(Debug)]
pub struct Pki {
    key: PrivateKey,
    /// This end's certificate, DER.
    cert: Vec<u8>,
    anchors: Vec<Anchor>,
}

impl Pki {
    /// From a private key, this end's certificate (PEM or DER), and the
    /// trusted authorities' certificates (PEM files of one or more).
    pub fn new(key: PrivateKey, cert: &[u8], authorities: &[&[u8]]) -> Result<Pki, PkiError> {
        let (_, cert) = der_of(cert)?;
        let parsed = Certificate::from_der(&cert)
            .map_err(|_| PkiError::Malformed("this end's certificate"))?;
        if PublicKey::of(&parsed)?.bits != key.public_bits() {
            return Err(PkiError::Malformed("a certificate for another key"));
        }
        let mut anchors = Vec::new();
        for file in authorities {
            for der in pem_blocks(file)? {
                let cert = Certificate::from_der(&der)
                    .map_err(|_| PkiError::Malformed("an authority's certificate"))?;
                let spki = cert
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(|_| PkiError::Malformed("an authority's public key"))?;
                anchors.push(Anchor {
                    key: PublicKey::of(&cert)?,
                    keyid: Sha1::digest(&spki).into(),
                    cert,
                });
            }
        }
        if anchors.is_empty() {
            return Err(PkiError::Untrusted);
        }
        Ok(Pki { key, cert, anchors })
    }

    /// This end's certificate, for its CERT payload.
    pub fn certificate(&self) -> &[u8] {
        &self.cert
    }

    /// The CERTREQ payload's data: the trusted authorities' key IDs.
    pub fn authorities(&self) -> Vec<u8> {
        self.anchors.iter().flat_map(|a| a.keyid).collect()
    }

    /// RFC 7427 AUTH data over `octets`, with this end's key.
    pub fn sign_auth(&self, octets: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.key.sign_auth(octets)
    }

    /// The public key of a peer whose certificate is `certs[0]` (the
    /// others may be intermediate authorities), if a chain leads from it
    /// to a trusted authority at `unix` seconds and it names `id`.
    pub fn verify_peer(
        &self,
        certs: &[Vec<u8>],
        id: &Identification,
        unix: u64,
    ) -> Result<PublicKey, PkiError> {
        let parsed: Vec<Certificate> = certs
            .iter()
            .take(MAX_DEPTH + 1)
            .map(|der| Certificate::from_der(der).map_err(|_| PkiError::Malformed("certificate")))
            .collect::<Result<_, _>>()?;
        let leaf = parsed
            .first()
            .ok_or(PkiError::Malformed("no certificate"))?;
        check_time(leaf, unix)?;
        if !names(leaf, id) {
            return Err(PkiError::WrongIdentity);
        }
        let key = PublicKey::of(leaf)?;
        let mut current = leaf;
        for _ in 0..MAX_DEPTH {
            // Signed by a trusted authority?
            for anchor in &self.anchors {
                if anchor.cert.tbs_certificate.subject == current.tbs_certificate.issuer
                    && signed_by(current, &anchor.key).is_ok()
                {
                    check_time(&anchor.cert, unix)?;
                    return Ok(key);
                }
            }
            // Or by an intermediate the peer sent, itself an authority.
            let next = parsed.iter().skip(1).find(|c| {
                c.tbs_certificate.subject == current.tbs_certificate.issuer
                    && is_authority(c)
                    && PublicKey::of(c).is_ok_and(|k| signed_by(current, &k).is_ok())
            });
            match next {
                Some(c) => {
                    check_time(c, unix)?;
                    current = c;
                }
                None => break,
            }
        }
        Err(PkiError::Untrusted)
    }
}

/// Whether `cert` is within its validity period at `unix` seconds.
fn check_time(cert: &Certificate, unix: u64) -> Result<(), PkiError> {
    let v = &cert.tbs_certificate.validity;
    let from = v.not_before.to_unix_duration().as_secs();
    let until = v.not_after.to_unix_duration().as_secs();
    if (from..=until).contains(&unix) {
        Ok(())
    } else {
        Err(PkiError::Expired)
    }
}

/// Whether `cert`'s signature verifies under `key`.
fn signed_by(cert: &Certificate, key: &PublicKey) -> Result<(), PkiError> {
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|_| PkiError::Malformed("certificate"))?;
    let signature = cert
        .signature
        .as_bytes()
        .ok_or(PkiError::Malformed("certificate signature"))?;
    key.verify_oid(&cert.signature_algorithm.oid.to_string(), &tbs, signature)
}

/// Whether `cert` may sign certificates (basicConstraints cA).
fn is_authority(cert: &Certificate) -> bool {
    extension::<BasicConstraints>(cert, "2.5.29.19").is_some_and(|b| b.ca)
}

fn extension<'a, T: Decode<'a>>(cert: &'a Certificate, oid: &str) -> Option<T> {
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
        .and_then(|e| T::from_der(e.extn_value.as_bytes()).ok())
}

/// Whether `cert` names `id`: its subject for a distinguished name, its
/// subjectAltName for an address, a host name or a mail address.
fn names(cert: &Certificate, id: &Identification) -> bool {
    if id.id_type == IdType::DER_ASN1_DN {
        return cert
            .tbs_certificate
            .subject
            .to_der()
            .is_ok_and(|dn| dn == id.data);
    }
    let Some(SubjectAltName(alt)) = extension::<SubjectAltName>(cert, "2.5.29.17") else {
        return false;
    };
    alt.iter().any(|name| match (id.id_type, name) {
        (IdType::FQDN, GeneralName::DnsName(n)) => n.as_bytes().eq_ignore_ascii_case(&id.data),
        (IdType::RFC822_ADDR, GeneralName::Rfc822Name(n)) => {
            n.as_bytes().eq_ignore_ascii_case(&id.data)
        }
        (IdType::IPV4_ADDR | IdType::IPV6_ADDR, GeneralName::IpAddress(a)) => {
            a.as_bytes() == id.data
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests;
