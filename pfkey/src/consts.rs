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
        pub struct $name(pub $repr);

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
        RESERVED = 0, "reserved";
        GETSPI = 1, "getspi";
        UPDATE = 2, "update";
        ADD = 3, "add";
        DELETE = 4, "delete";
        GET = 5, "get";
        ACQUIRE = 6, "acquire";
        REGISTER = 7, "register";
        EXPIRE = 8, "expire";
        FLUSH = 9, "flush";
        DUMP = 10, "dump";
        X_PROMISC = 11, "x_promisc";
        X_ADDFLOW = 12, "x_addflow";
        X_DELFLOW = 13, "x_delflow";
        X_GRPSPIS = 14, "x_grpspis";
        X_ASKPOLICY = 15, "x_askpolicy";
        /// Only in the SPD dump; also `SADB_MAX`.
        X_SPDDUMP = 16, "x_spddump";
    }
}

numbers! {
    /// `sadb_ext_type`: what an extension holds.
    ExtType(u16) {
        SA = 1, "sa";
        LIFETIME_CURRENT = 2, "lifetime_cur";
        LIFETIME_HARD = 3, "lifetime_hard";
        LIFETIME_SOFT = 4, "lifetime_soft";
        ADDRESS_SRC = 5, "address_src";
        ADDRESS_DST = 6, "address_dst";
        ADDRESS_PROXY = 7, "address_proxy";
        KEY_AUTH = 8, "key_auth";
        KEY_ENCRYPT = 9, "key_encrypt";
        IDENTITY_SRC = 10, "identity_src";
        IDENTITY_DST = 11, "identity_dst";
        SENSITIVITY = 12, "sensitivity";
        PROPOSAL = 13, "proposal";
        SUPPORTED_AUTH = 14, "supported_auth";
        SUPPORTED_ENCRYPT = 15, "supported_encrypt";
        SPIRANGE = 16, "spirange";
        X_SRC_MASK = 17, "src_mask";
        X_DST_MASK = 18, "dst_mask";
        X_PROTOCOL = 19, "protocol";
        X_FLOW_TYPE = 20, "flow_type";
        X_SRC_FLOW = 21, "src_flow";
        X_DST_FLOW = 22, "dst_flow";
        X_SA2 = 23, "sa2";
        X_DST2 = 24, "dst2";
        X_POLICY = 25, "policy";
        X_LOCAL_CREDENTIALS = 26, "local_credentials";
        X_REMOTE_CREDENTIALS = 27, "remote_credentials";
        X_LOCAL_AUTH = 28, "local_auth";
        X_REMOTE_AUTH = 29, "remote_auth";
        X_SUPPORTED_COMP = 30, "supported_comp";
        X_UDPENCAP = 31, "udpencap";
        X_LIFETIME_LASTUSE = 32, "lifetime_lastuse";
        X_TAG = 33, "tag";
        X_TAP = 34, "tap";
        X_SATYPE2 = 35, "satype2";
        X_COUNTER = 36, "counter";
        X_RDOMAIN = 37, "rdomain";
        X_MTU = 38, "mtu";
        X_REPLAY = 39, "replay";
        X_IFACE = 40, "interface";
    }
}

impl ExtType {
    /// The highest extension type (`SADB_EXT_MAX`).
    pub const MAX: u16 = 40;
}

numbers! {
    /// `sadb_msg_satype`: the security protocol.
    SaType(u8) {
        UNSPEC = 0, "unspec";
        AH = 1, "ah";
        ESP = 2, "esp";
        RSVP = 3, "rsvp";
        OSPFV2 = 4, "ospfv2";
        RIPV2 = 5, "ripv2";
        MIP = 6, "mip";
        X_IPIP = 7, "ipip";
        X_TCPSIGNATURE = 8, "tcpmd5";
        X_IPCOMP = 9, "ipcomp";
    }
}

numbers! {
    /// `sadb_sa_state`.
    SaState(u8) {
        LARVAL = 0, "larval";
        MATURE = 1, "mature";
        DYING = 2, "dying";
        DEAD = 3, "dead";
    }
}

numbers! {
    /// `sadb_sa_auth`.
    AuthAlg(u8) {
        NONE = 0, "none";
        MD5HMAC = 2, "hmac-md5";
        SHA1HMAC = 3, "hmac-sha1";
        X_SHA2_256 = 5, "hmac-sha2-256";
        X_SHA2_384 = 6, "hmac-sha2-384";
        X_SHA2_512 = 7, "hmac-sha2-512";
        X_RIPEMD160HMAC = 8, "hmac-ripemd160";
        X_AES128GMAC = 9, "gmac-aes-128";
        X_AES192GMAC = 10, "gmac-aes-192";
        X_AES256GMAC = 11, "gmac-aes-256";
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
        NONE = 0, "none";
        TRIPLE_DES_CBC = 3, "3des-cbc";
        X_CAST = 6, "cast128";
        X_BLF = 7, "blowfish";
        NULL = 11, "null";
        X_AES = 12, "aes";
        X_AESCTR = 13, "aesctr";
        X_AESGCM8 = 18, "aes-gcm-8";
        X_AESGCM12 = 19, "aes-gcm-12";
        X_AESGCM16 = 20, "aes-gcm";
        X_AESGMAC = 21, "aes-gmac";
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
        NONE = 0, "none";
        OUI = 1, "oui";
        DEFLATE = 2, "deflate";
    }
}

numbers! {
    /// The kind of policy a flow sets (`X_FLOW_TYPE`'s protocol byte).
    FlowType(u8) {
        USE = 1, "use";
        ACQUIRE = 2, "acquire";
        REQUIRE = 3, "require";
        BYPASS = 4, "bypass";
        DENY = 5, "deny";
        DONTACQ = 6, "dontacq";
    }
}

numbers! {
    /// The direction of a flow (`X_FLOW_TYPE`'s direction byte).
    FlowDirection(u8) {
        IN = 1, "in";
        OUT = 2, "out";
    }
}

numbers! {
    /// `sadb_ident_type`.
    IdentType(u16) {
        RESERVED = 0, "reserved";
        PREFIX = 1, "prefix";
        FQDN = 2, "fqdn";
        USERFQDN = 3, "ufqdn";
        ASN1_DN = 4, "asn1_dn";
    }
}

/// `sadb_sa_flags` bits.
pub mod sa_flags {
    /// Ask the key manager for perfect forward secrecy.
    pub const PFS: u32 = 0x001;
    /// Tunnel mode: always encapsulate in IP.
    pub const TUNNEL: u32 = 0x004;
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
    pub const UNSPEC: u8 = 0;
    pub const INET: u8 = 2;
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
        assert_eq!(ExtType::KNOWN.len(), ExtType::MAX as usize);
    }
}
