//! The numbers of PF_KEY v2 as OpenBSD defines them.
//!
//! Each kind of number is a newtype over its wire type, with the known
//! values as associated constants. Unknown values are kept as they are:
//! decoding never turns a number it does not know into an error.

use std::fmt;

macro_rules! numbers {
    ($(#[$doc:meta])* $name:ident($repr:ty) { $($(#[$vdoc:meta])* $konst:ident = $value:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(
            /// The number itself, as the wire field holds it.
            pub $repr,
        );

        impl $name {
            $($(#[$vdoc])* pub const $konst: $name = $name($value);)*

            /// Every known value, in numeric order.
            pub const KNOWN: &'static [$name] = &[$($name($value),)*];

            /// The conventional lower-case name, if the value is known.
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

/// `PF_KEY_V2`, the only version there is.
pub const PF_KEY_V2: u8 = 2;

/// The largest message a process may send (`EMSGSIZE` beyond).
pub const MAX_MESSAGE: usize = 4096;

numbers! {
    /// `sadb_msg_type`.
    MsgType(u8) {
        /// Not a request; the kernel refuses type 0.
        RESERVED = 0, "reserved";
        /// Reserve an unused SPI toward a destination; the reply holds a LARVAL SA.
        GETSPI = 1, "getspi";
        /// Complete a LARVAL SA from GETSPI, or change a MATURE one.
        UPDATE = 2, "update";
        /// Install a new MATURE SA.
        ADD = 3, "add";
        /// Remove the SA found by destination, SPI and SA type.
        DELETE = 4, "delete";
        /// Read back one SA in full, keys included.
        GET = 5, "get";
        /// From the kernel: asks registered key managers for an SA a policy needs.
        ACQUIRE = 6, "acquire";
        /// Register as key manager for an SA type; the reply lists the supported algorithms.
        REGISTER = 7, "register";
        /// From the kernel: an SA reached its soft or hard lifetime.
        EXPIRE = 8, "expire";
        /// Delete every SA of an SA type; with UNSPEC, every SA and every flow.
        FLUSH = 9, "flush";
        /// List the SAs of an SA type (0 = all), one message each, to the requester only.
        DUMP = 10, "dump";
        /// Turn promiscuous mode on or off, or forward a message to the other sockets.
        X_PROMISC = 11, "x_promisc";
        /// Add or replace a flow (an SPD entry).
        X_ADDFLOW = 12, "x_addflow";
        /// Remove a flow (an SPD entry).
        X_DELFLOW = 13, "x_delflow";
        /// Link two SAs into a bundle.
        X_GRPSPIS = 14, "x_grpspis";
        /// Ask for the policy behind a pending acquire, by its sequence number.
        X_ASKPOLICY = 15, "x_askpolicy";
        /// Only in the SPD dump; also `SADB_MAX`.
        X_SPDDUMP = 16, "x_spddump";
        /// This runtime's own, beyond OpenBSD's `SADB_MAX`: the filter
        /// rules of `ipsecd -p`, one message per rule, with its counters.
        X_FILTERDUMP = 17, "x_filterdump";
        /// This runtime's own: an IKE message on the NAT traversal port,
        /// from `ipsecd` to key managers as it arrived, or from a key
        /// manager for `ipsecd` to send (RFC 3948's non-ESP marker is
        /// `ipsecd`'s to add and take off).
        X_DATAGRAM = 18, "x_datagram";
    }
}

numbers! {
    /// `sadb_ext_type`: what an extension holds.
    ExtType(u16) {
        /// The SA itself: SPI, replay window, state, algorithms and flags.
        SA = 1, "sa";
        /// What an SA has used so far.
        LIFETIME_CURRENT = 2, "lifetime_cur";
        /// The limits at which an SA is deleted.
        LIFETIME_HARD = 3, "lifetime_hard";
        /// The limits at which the kernel sends an EXPIRE warning.
        LIFETIME_SOFT = 4, "lifetime_soft";
        /// The SA's source, or a flow's local address.
        ADDRESS_SRC = 5, "address_src";
        /// The SA's destination, or a flow's remote gateway.
        ADDRESS_DST = 6, "address_dst";
        /// A proxy address; in UPDATE of a MATURE SA, its new destination.
        ADDRESS_PROXY = 7, "address_proxy";
        /// The authentication key.
        KEY_AUTH = 8, "key_auth";
        /// The encryption key.
        KEY_ENCRYPT = 9, "key_encrypt";
        /// The source identity.
        IDENTITY_SRC = 10, "identity_src";
        /// The destination identity.
        IDENTITY_DST = 11, "identity_dst";
        /// Sensitivity and integrity labels.
        SENSITIVITY = 12, "sensitivity";
        /// The algorithm combinations an ACQUIRE proposes.
        PROPOSAL = 13, "proposal";
        /// The authentication algorithms the kernel supports (REGISTER reply).
        SUPPORTED_AUTH = 14, "supported_auth";
        /// The ciphers the kernel supports (REGISTER reply).
        SUPPORTED_ENCRYPT = 15, "supported_encrypt";
        /// The range GETSPI picks an SPI from.
        SPIRANGE = 16, "spirange";
        /// The mask of a flow's source address and port.
        X_SRC_MASK = 17, "src_mask";
        /// The mask of a flow's destination address and port.
        X_DST_MASK = 18, "dst_mask";
        /// A flow's transport protocol (0 = any).
        X_PROTOCOL = 19, "protocol";
        /// A flow's type, direction and static flag.
        X_FLOW_TYPE = 20, "flow_type";
        /// A flow's source address and port.
        X_SRC_FLOW = 21, "src_flow";
        /// A flow's destination address and port.
        X_DST_FLOW = 22, "dst_flow";
        /// The second SA of a bundle.
        X_SA2 = 23, "sa2";
        /// The destination of a bundle's second SA.
        X_DST2 = 24, "dst2";
        /// The sequence number of a pending acquire, for ASKPOLICY.
        X_POLICY = 25, "policy";
        /// Obsolete; the kernel refuses it.
        X_LOCAL_CREDENTIALS = 26, "local_credentials";
        /// Obsolete; the kernel refuses it.
        X_REMOTE_CREDENTIALS = 27, "remote_credentials";
        /// Obsolete; the kernel refuses it.
        X_LOCAL_AUTH = 28, "local_auth";
        /// Obsolete; the kernel refuses it.
        X_REMOTE_AUTH = 29, "remote_auth";
        /// The compression algorithms the kernel supports (REGISTER reply).
        X_SUPPORTED_COMP = 30, "supported_comp";
        /// The peer's UDP port for ESP in UDP (NAT-T).
        X_UDPENCAP = 31, "udpencap";
        /// When an SA last carried traffic.
        X_LIFETIME_LASTUSE = 32, "lifetime_lastuse";
        /// The pf tag put on the SA's packets.
        X_TAG = 33, "tag";
        /// The enc(4) interface the SA's traffic shows on.
        X_TAP = 34, "tap";
        /// The SA type of a bundle's second SA.
        X_SATYPE2 = 35, "satype2";
        /// An SA's traffic counters.
        X_COUNTER = 36, "counter";
        /// The routing domains of an SA and of its inner traffic.
        X_RDOMAIN = 37, "rdomain";
        /// The path MTU known for an SA.
        X_MTU = 38, "mtu";
        /// An SA's current replay counter.
        X_REPLAY = 39, "replay";
        /// The sec(4) interface an SA belongs to, and its direction.
        X_IFACE = 40, "interface";
        /// This runtime's own, beyond `SADB_EXT_MAX`: one filter rule of
        /// `ipsecd -p`, in an `X_FILTERDUMP` record.
        X_FILTER_RULE = 41, "filter_rule";
        /// This runtime's own: the payload of an `X_DATAGRAM`.
        X_DATA = 42, "data";
    }
}

impl ExtType {
    /// The highest extension type OpenBSD defines (`SADB_EXT_MAX`); a
    /// request may carry no type above it.
    pub const MAX: u16 = 40;
}

numbers! {
    /// `sadb_msg_satype`: the security protocol.
    SaType(u8) {
        /// No particular type; FLUSH with it removes every SA and flow.
        UNSPEC = 0, "unspec";
        /// Authentication Header (IP protocol 51).
        AH = 1, "ah";
        /// Encapsulating Security Payload (IP protocol 50).
        ESP = 2, "esp";
        /// RSVP; not supported by OpenBSD.
        RSVP = 3, "rsvp";
        /// OSPFv2; not supported by OpenBSD.
        OSPFV2 = 4, "ospfv2";
        /// RIPv2; not supported by OpenBSD.
        RIPV2 = 5, "ripv2";
        /// Mobile IP; not supported by OpenBSD.
        MIP = 6, "mip";
        /// IP-in-IP encapsulation without protection (IP protocol 4).
        X_IPIP = 7, "ipip";
        /// TCP MD5 signatures (RFC 2385).
        X_TCPSIGNATURE = 8, "tcpmd5";
        /// IP payload compression (IP protocol 108).
        X_IPCOMP = 9, "ipcomp";
    }
}

numbers! {
    /// `sadb_sa_state`.
    SaState(u8) {
        /// Reserved by GETSPI, not yet usable.
        LARVAL = 0, "larval";
        /// Complete and usable.
        MATURE = 1, "mature";
        /// Past its soft lifetime.
        DYING = 2, "dying";
        /// Past its hard lifetime; never accepted from a process.
        DEAD = 3, "dead";
    }
}

numbers! {
    /// `sadb_sa_auth`.
    AuthAlg(u8) {
        /// No authentication.
        NONE = 0, "none";
        /// HMAC-MD5-96: 16-byte key, 12-byte ICV.
        MD5HMAC = 2, "hmac-md5";
        /// HMAC-SHA1-96: 20-byte key, 12-byte ICV.
        SHA1HMAC = 3, "hmac-sha1";
        /// HMAC-SHA2-256-128: 32-byte key, 16-byte ICV.
        X_SHA2_256 = 5, "hmac-sha2-256";
        /// HMAC-SHA2-384-192: 48-byte key, 24-byte ICV.
        X_SHA2_384 = 6, "hmac-sha2-384";
        /// HMAC-SHA2-512-256: 64-byte key, 32-byte ICV.
        X_SHA2_512 = 7, "hmac-sha2-512";
        /// HMAC-RIPEMD-160-96: 20-byte key, 12-byte ICV.
        X_RIPEMD160HMAC = 8, "hmac-ripemd160";
        /// AES-128-GMAC: 20-byte key (16 + 4 salt), 16-byte ICV.
        X_AES128GMAC = 9, "gmac-aes-128";
        /// AES-192-GMAC: 28-byte key (24 + 4 salt), 16-byte ICV.
        X_AES192GMAC = 10, "gmac-aes-192";
        /// AES-256-GMAC: 36-byte key (32 + 4 salt), 16-byte ICV.
        X_AES256GMAC = 11, "gmac-aes-256";
        /// The Poly1305 tag of ChaCha20-Poly1305: 36-byte key (32 + 4 salt), 16-byte ICV.
        X_CHACHA20POLY1305 = 12, "chacha20-poly1305";
    }
}

impl AuthAlg {
    /// `SADB_AALG_MAX`.
    pub const MAX: u8 = 12;
}

numbers! {
    /// `sadb_sa_encrypt` for ESP.
    EncAlg(u8) {
        /// No encryption.
        NONE = 0, "none";
        /// 3DES-CBC: 24-byte key, 8-byte block and IV.
        TRIPLE_DES_CBC = 3, "3des-cbc";
        /// CAST-128-CBC: 5 to 16-byte key, 8-byte block and IV.
        X_CAST = 6, "cast128";
        /// Blowfish-CBC: 5 to 56-byte key, 8-byte block and IV.
        X_BLF = 7, "blowfish";
        /// The null cipher: no confidentiality, no IV, 0 to 256-byte key.
        NULL = 11, "null";
        /// AES-CBC: 16 to 32-byte key, 16-byte block and IV.
        X_AES = 12, "aes";
        /// AES-CTR: 20 to 36-byte key (key + 4-byte nonce), 8-byte IV.
        X_AESCTR = 13, "aesctr";
        /// AES-GCM with an 8-byte ICV; defined, but ESP refuses it.
        X_AESGCM8 = 18, "aes-gcm-8";
        /// AES-GCM with a 12-byte ICV; defined, but ESP refuses it.
        X_AESGCM12 = 19, "aes-gcm-12";
        /// AES-GCM with a 16-byte ICV: 20 to 36-byte key (key + 4-byte salt), 8-byte IV.
        X_AESGCM16 = 20, "aes-gcm";
        /// AES-GMAC, authentication only: 20 to 36-byte key (key + 4-byte salt), 8-byte IV.
        X_AESGMAC = 21, "aes-gmac";
        /// ChaCha20-Poly1305: 36-byte key (32 + 4-byte salt), 8-byte IV.
        X_CHACHA20POLY1305 = 22, "chacha20-poly1305";
    }
}

impl EncAlg {
    /// `SADB_EALG_MAX`.
    pub const MAX: u8 = 22;
}

numbers! {
    /// The compression algorithm, carried in `sadb_sa_encrypt` for IPComp.
    CompAlg(u8) {
        /// No compression.
        NONE = 0, "none";
        /// A vendor-specific (OUI) algorithm.
        OUI = 1, "oui";
        /// Deflate; packets under 90 bytes are sent uncompressed.
        DEFLATE = 2, "deflate";
    }
}

numbers! {
    /// The kind of policy a flow sets (`X_FLOW_TYPE`'s protocol byte).
    FlowType(u8) {
        /// Protect with an SA if there is one, else send in the clear without an acquire.
        USE = 1, "use";
        /// Protect with an SA if there is one, else acquire one and send in the clear meanwhile.
        ACQUIRE = 2, "acquire";
        /// Protect with an SA; without one, acquire one and drop the packet.
        REQUIRE = 3, "require";
        /// Send and accept in the clear.
        BYPASS = 4, "bypass";
        /// Drop (`EHOSTUNREACH` on output).
        DENY = 5, "deny";
        /// Protect with an SA if there is one, else drop without an acquire.
        DONTACQ = 6, "dontacq";
    }
}

numbers! {
    /// The direction of a flow (`X_FLOW_TYPE`'s direction byte).
    FlowDirection(u8) {
        /// Inbound traffic.
        IN = 1, "in";
        /// Outbound traffic.
        OUT = 2, "out";
    }
}

numbers! {
    /// `sadb_ident_type`.
    IdentType(u16) {
        /// No identity type.
        RESERVED = 0, "reserved";
        /// An address prefix.
        PREFIX = 1, "prefix";
        /// A fully qualified domain name.
        FQDN = 2, "fqdn";
        /// A user at a domain (user FQDN).
        USERFQDN = 3, "ufqdn";
        /// An ASN.1 distinguished name.
        ASN1_DN = 4, "asn1_dn";
    }
}

/// `sadb_sa_flags` bits.
pub mod sa_flags {
    /// Ask the key manager for perfect forward secrecy.
    pub const PFS: u32 = 0x001;
    /// Tunnel mode: always encapsulate in IP.
    pub const TUNNEL: u32 = 0x004;
    /// Delete the SAs bundled with this one too; defined, but the kernel ignores it.
    pub const CHAINDEL: u32 = 0x008;
    /// ESP in UDP (NAT-T).
    pub const UDPENCAP: u32 = 0x200;
    /// 64-bit extended sequence numbers.
    pub const ESN: u32 = 0x400;

    /// Names of the bits, in the order pfkdump lists them.
    pub const NAMES: &[(u32, &str)] = &[
        (PFS, "pfs"),
        (TUNNEL, "tunnel"),
        (CHAINDEL, "chaindel"),
        (UDPENCAP, "udpencap"),
        (ESN, "esn"),
    ];
}

/// Address families as OpenBSD numbers them inside sockaddrs.
pub mod family {
    /// No family (`AF_UNSPEC`): an empty address.
    pub const UNSPEC: u8 = 0;
    /// IPv4 (`AF_INET`).
    pub const INET: u8 = 2;
    /// IPv6 (`AF_INET6`, which is 24 on OpenBSD).
    pub const INET6: u8 = 24;
}

/// The flag in `X_FLOW_TYPE`'s flags byte that marks a static policy.
pub const POLICY_FLAG_STATIC: u8 = 0x01;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unknowns() {
        assert_eq!(MsgType::X_ADDFLOW.name(), Some("x_addflow"));
        assert_eq!(format!("{:?}", ExtType(99)), "ExtType(99)");
        assert_eq!(SaType::X_IPCOMP.to_string(), "ipcomp");
        assert_eq!(EncAlg(200).to_string(), "200");
        assert!(MsgType::KNOWN.windows(2).all(|w| w[0] < w[1]));
        // OpenBSD's 1..=MAX, then this runtime's two.
        assert_eq!(ExtType::KNOWN.len(), ExtType::MAX as usize + 2);
    }
}
