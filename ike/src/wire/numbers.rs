//! The numbers of IKEv2 from IANA's registries: each kind a newtype over
//! its wire type, the values this daemon knows as associated constants.
//! An unknown value is kept as it came, so that a message decodes
//! whatever numbers a peer uses and the protocol decides what they mean.

use std::fmt;

macro_rules! numbers {
    ($(#[$doc:meta])* $name:ident($repr:ty) { $($(#[$vdoc:meta])* $konst:ident = $value:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(
            /// The number as the wire field holds it.
            pub $repr,
        );

        impl $name {
            $($(#[$vdoc])* pub const $konst: $name = $name($value);)*

            /// Every known value, in numeric order.
            pub const KNOWN: &'static [$name] = &[$($name($value),)*];

            /// The registry's name, if the value is known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}({})", stringify!($name), name),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}", self.0),
                }
            }
        }
    };
}

numbers! {
    /// The exchange a message belongs to.
    ExchangeType(u8) {
        /// Negotiates the IKE SA's algorithms and does Diffie-Hellman.
        IKE_SA_INIT = 34, "IKE_SA_INIT";
        /// Authenticates both ends and sets up the first Child SA.
        IKE_AUTH = 35, "IKE_AUTH";
        /// Another Child SA, or the rekey of one or of the IKE SA.
        CREATE_CHILD_SA = 36, "CREATE_CHILD_SA";
        /// Deletes, errors and liveness checks.
        INFORMATIONAL = 37, "INFORMATIONAL";
    }
}

numbers! {
    /// What a payload is (the "Next Payload" fields).
    PayloadType(u8) {
        /// No next payload.
        NONE = 0, "none";
        /// Security Association: the proposals.
        SA = 33, "SA";
        /// Key Exchange: a Diffie-Hellman public value.
        KE = 34, "KE";
        /// The initiator's identity.
        IDI = 35, "IDi";
        /// The responder's identity.
        IDR = 36, "IDr";
        /// A certificate.
        CERT = 37, "CERT";
        /// Which certificate authorities the sender trusts.
        CERTREQ = 38, "CERTREQ";
        /// Authentication data.
        AUTH = 39, "AUTH";
        /// A nonce.
        NONCE = 40, "Ni, Nr";
        /// A notification: an error or a status.
        NOTIFY = 41, "N";
        /// SAs to delete.
        DELETE = 42, "D";
        /// A vendor's identifier.
        VENDOR = 43, "V";
        /// The initiator's traffic selectors.
        TSI = 44, "TSi";
        /// The responder's traffic selectors.
        TSR = 45, "TSr";
        /// Encrypted and authenticated payloads.
        SK = 46, "SK";
        /// Configuration (addresses handed to a remote client).
        CP = 47, "CP";
        /// EAP.
        EAP = 48, "EAP";
        /// One fragment of an encrypted message (RFC 7383).
        SKF = 53, "SKF";
    }
}

numbers! {
    /// The protocol a proposal, a notification or a delete is about.
    ProtocolId(u8) {
        /// Nothing in particular (notifications about the message).
        NONE = 0, "none";
        /// The IKE SA.
        IKE = 1, "IKE";
        /// An AH Child SA.
        AH = 2, "AH";
        /// An ESP Child SA.
        ESP = 3, "ESP";
    }
}

numbers! {
    /// What kind of algorithm a transform names.
    TransformType(u8) {
        /// Encryption (ENCR).
        ENCR = 1, "ENCR";
        /// Pseudorandom function (PRF).
        PRF = 2, "PRF";
        /// Integrity (INTEG).
        INTEG = 3, "INTEG";
        /// Key exchange: the Diffie-Hellman group (D-H).
        DH = 4, "D-H";
        /// Extended sequence numbers (ESN).
        ESN = 5, "ESN";
    }
}

numbers! {
    /// Encryption algorithms (transform type 1).
    EncrId(u16) {
        /// 3DES in CBC mode.
        DES3 = 3, "3des";
        /// AES in CBC mode; the key length is an attribute.
        AES_CBC = 12, "aes-cbc";
        /// AES in counter mode.
        AES_CTR = 13, "aes-ctr";
        /// AES-GCM with an 8-byte ICV.
        AES_GCM_8 = 18, "aes-gcm-8";
        /// AES-GCM with a 12-byte ICV.
        AES_GCM_12 = 19, "aes-gcm-12";
        /// AES-GCM with a 16-byte ICV.
        AES_GCM_16 = 20, "aes-gcm-16";
        /// ChaCha20 with Poly1305 (RFC 7634).
        CHACHA20_POLY1305 = 28, "chacha20-poly1305";
    }
}

numbers! {
    /// Pseudorandom functions (transform type 2).
    PrfId(u16) {
        /// HMAC-SHA1.
        HMAC_SHA1 = 2, "hmac-sha1";
        /// HMAC-SHA2-256.
        HMAC_SHA2_256 = 5, "hmac-sha2-256";
        /// HMAC-SHA2-384.
        HMAC_SHA2_384 = 6, "hmac-sha2-384";
        /// HMAC-SHA2-512.
        HMAC_SHA2_512 = 7, "hmac-sha2-512";
    }
}

numbers! {
    /// Integrity algorithms (transform type 3).
    IntegId(u16) {
        /// None: an AEAD cipher brings its own.
        NONE = 0, "none";
        /// HMAC-SHA1, truncated to 96 bits.
        HMAC_SHA1_96 = 2, "hmac-sha1-96";
        /// HMAC-SHA2-256, truncated to 128 bits.
        HMAC_SHA2_256_128 = 12, "hmac-sha2-256-128";
        /// HMAC-SHA2-384, truncated to 192 bits.
        HMAC_SHA2_384_192 = 13, "hmac-sha2-384-192";
        /// HMAC-SHA2-512, truncated to 256 bits.
        HMAC_SHA2_512_256 = 14, "hmac-sha2-512-256";
    }
}

numbers! {
    /// Diffie-Hellman groups (transform type 4).
    DhGroup(u16) {
        /// None: a Child SA without perfect forward secrecy.
        NONE = 0, "none";
        /// 2048-bit MODP (RFC 3526).
        MODP_2048 = 14, "modp2048";
        /// 3072-bit MODP (RFC 3526).
        MODP_3072 = 15, "modp3072";
        /// 4096-bit MODP (RFC 3526).
        MODP_4096 = 16, "modp4096";
        /// NIST P-256 (RFC 5903).
        ECP_256 = 19, "ecp256";
        /// NIST P-384 (RFC 5903).
        ECP_384 = 20, "ecp384";
        /// Curve25519 (RFC 8031).
        CURVE25519 = 31, "curve25519";
    }
}

numbers! {
    /// Extended sequence numbers (transform type 5).
    EsnId(u16) {
        /// 32-bit sequence numbers.
        NO = 0, "no-esn";
        /// 64-bit sequence numbers.
        YES = 1, "esn";
    }
}

numbers! {
    /// How an identification payload's data is to be read.
    IdType(u8) {
        /// An IPv4 address, 4 bytes.
        IPV4_ADDR = 1, "ipv4";
        /// A fully qualified domain name.
        FQDN = 2, "fqdn";
        /// An e-mail address (user FQDN).
        RFC822_ADDR = 3, "ufqdn";
        /// An IPv6 address, 16 bytes.
        IPV6_ADDR = 5, "ipv6";
        /// An X.500 distinguished name, DER.
        DER_ASN1_DN = 9, "asn1_dn";
        /// Opaque bytes.
        KEY_ID = 11, "keyid";
    }
}

numbers! {
    /// How an AUTH payload authenticates.
    AuthMethod(u8) {
        /// RSA signature (PKCS #1 v1.5 with SHA-1).
        RSA_SIG = 1, "rsa";
        /// A MAC keyed by a shared secret.
        SHARED_KEY_MIC = 2, "psk";
        /// ECDSA with SHA-256 on P-256.
        ECDSA_SHA256_P256 = 9, "ecdsa-p256";
        /// ECDSA with SHA-384 on P-384.
        ECDSA_SHA384_P384 = 10, "ecdsa-p384";
        /// ECDSA with SHA-512 on P-521.
        ECDSA_SHA512_P521 = 11, "ecdsa-p521";
        /// A signature whose algorithm the data names (RFC 7427).
        DIGITAL_SIGNATURE = 14, "signature";
    }
}

numbers! {
    /// How a CERT or CERTREQ payload encodes certificates.
    CertEncoding(u8) {
        /// An X.509 certificate, DER.
        X509_SIGNATURE = 4, "x509";
        /// A certificate revocation list.
        CRL = 7, "crl";
        /// A hash and URL of an X.509 certificate.
        HASH_URL_X509 = 12, "hash-url-x509";
    }
}

numbers! {
    /// A traffic selector's kind.
    TsType(u8) {
        /// A range of IPv4 addresses.
        IPV4_ADDR_RANGE = 7, "ipv4-range";
        /// A range of IPv6 addresses.
        IPV6_ADDR_RANGE = 8, "ipv6-range";
    }
}

numbers! {
    /// Notifications: below 16384 errors, from 16384 status.
    NotifyType(u16) {
        /// A critical payload the receiver does not support.
        UNSUPPORTED_CRITICAL_PAYLOAD = 1, "UNSUPPORTED_CRITICAL_PAYLOAD";
        /// An IKE SPI the receiver does not know.
        INVALID_IKE_SPI = 4, "INVALID_IKE_SPI";
        /// A major version the receiver does not speak.
        INVALID_MAJOR_VERSION = 5, "INVALID_MAJOR_VERSION";
        /// Bad syntax.
        INVALID_SYNTAX = 7, "INVALID_SYNTAX";
        /// A message ID outside the window.
        INVALID_MESSAGE_ID = 9, "INVALID_MESSAGE_ID";
        /// An SPI the receiver does not know.
        INVALID_SPI = 11, "INVALID_SPI";
        /// None of the proposals is acceptable.
        NO_PROPOSAL_CHOSEN = 14, "NO_PROPOSAL_CHOSEN";
        /// The KE payload's group is not the one wanted.
        INVALID_KE_PAYLOAD = 17, "INVALID_KE_PAYLOAD";
        /// Authentication failed.
        AUTHENTICATION_FAILED = 24, "AUTHENTICATION_FAILED";
        /// One address, one selector.
        SINGLE_PAIR_REQUIRED = 34, "SINGLE_PAIR_REQUIRED";
        /// No more Child SAs.
        NO_ADDITIONAL_SAS = 35, "NO_ADDITIONAL_SAS";
        /// No internal address could be given.
        INTERNAL_ADDRESS_FAILURE = 36, "INTERNAL_ADDRESS_FAILURE";
        /// A configuration payload was required and missing.
        FAILED_CP_REQUIRED = 37, "FAILED_CP_REQUIRED";
        /// The traffic selectors are not acceptable.
        TS_UNACCEPTABLE = 38, "TS_UNACCEPTABLE";
        /// A packet came over a Child SA whose selectors do not admit it.
        INVALID_SELECTORS = 39, "INVALID_SELECTORS";
        /// A rekey collided, or an exchange is already under way.
        TEMPORARY_FAILURE = 43, "TEMPORARY_FAILURE";
        /// The Child SA to rekey is gone.
        CHILD_SA_NOT_FOUND = 44, "CHILD_SA_NOT_FOUND";
        /// The sender keeps no other IKE SA with the receiver: older ones may go.
        INITIAL_CONTACT = 16384, "INITIAL_CONTACT";
        /// How many requests the sender takes at once.
        SET_WINDOW_SIZE = 16385, "SET_WINDOW_SIZE";
        /// The selectors were narrowed; another Child SA may cover the rest.
        ADDITIONAL_TS_POSSIBLE = 16386, "ADDITIONAL_TS_POSSIBLE";
        /// IPComp is supported (and how).
        IPCOMP_SUPPORTED = 16387, "IPCOMP_SUPPORTED";
        /// A hash of the sender's address and port, for NAT detection.
        NAT_DETECTION_SOURCE_IP = 16388, "NAT_DETECTION_SOURCE_IP";
        /// A hash of the receiver's address and port, for NAT detection.
        NAT_DETECTION_DESTINATION_IP = 16389, "NAT_DETECTION_DESTINATION_IP";
        /// Repeat the request with this cookie.
        COOKIE = 16390, "COOKIE";
        /// Transport mode is asked for.
        USE_TRANSPORT_MODE = 16391, "USE_TRANSPORT_MODE";
        /// An HTTP certificate lookup is supported.
        HTTP_CERT_LOOKUP_SUPPORTED = 16392, "HTTP_CERT_LOOKUP_SUPPORTED";
        /// The SPI of the Child SA this CREATE_CHILD_SA rekeys.
        REKEY_SA = 16393, "REKEY_SA";
        /// TFC padding is not supported.
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394, "ESP_TFC_PADDING_NOT_SUPPORTED";
        /// Non-first fragments go over the Child SA too.
        NON_FIRST_FRAGMENTS_ALSO = 16395, "NON_FIRST_FRAGMENTS_ALSO";
        /// IKE fragmentation is supported (RFC 7383).
        IKEV2_FRAGMENTATION_SUPPORTED = 16430, "IKEV2_FRAGMENTATION_SUPPORTED";
        /// The hash algorithms for signatures the sender supports (RFC 7427).
        SIGNATURE_HASH_ALGORITHMS = 16431, "SIGNATURE_HASH_ALGORITHMS";
    }
}

impl NotifyType {
    /// Whether the notification reports an error (types below 16384).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

numbers! {
    /// What a configuration payload is.
    CfgType(u8) {
        /// A request.
        REQUEST = 1, "CFG_REQUEST";
        /// A reply.
        REPLY = 2, "CFG_REPLY";
        /// A set.
        SET = 3, "CFG_SET";
        /// An acknowledgement.
        ACK = 4, "CFG_ACK";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_unknown_values() {
        assert_eq!(ExchangeType::IKE_AUTH.to_string(), "IKE_AUTH");
        assert_eq!(format!("{:?}", PayloadType(99)), "PayloadType(99)");
        assert_eq!(DhGroup(31).name(), Some("curve25519"));
        assert!(NotifyType::NO_PROPOSAL_CHOSEN.is_error());
        assert!(!NotifyType::COOKIE.is_error());
        for known in [
            ExchangeType::KNOWN.windows(2).all(|w| w[0] < w[1]),
            PayloadType::KNOWN.windows(2).all(|w| w[0] < w[1]),
            NotifyType::KNOWN.windows(2).all(|w| w[0] < w[1]),
        ] {
            assert!(known, "registries in numeric order");
        }
    }
}
