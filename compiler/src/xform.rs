//! The transform tables: every algorithm name the language accepts, with
//! its key sizes and its names in isakmpd's vocabulary.
//!
//! Names are matched by prefix against each table in order, as OpenBSD
//! does, so `3des` selects `3des-cbc` and `hmac-sha2` selects
//! `hmac-sha2-256`.

/// An authentication algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    Unknown,
    None,
    HmacMd5,
    HmacRipemd160,
    HmacSha1,
    HmacSha2_256,
    HmacSha2_384,
    HmacSha2_512,
}

/// An encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enc {
    Unknown,
    None,
    TripleDesCbc,
    Aes,
    Aes128,
    Aes192,
    Aes256,
    AesCtr,
    Aes128Ctr,
    Aes192Ctr,
    Aes256Ctr,
    Aes128Gcm,
    Aes192Gcm,
    Aes256Gcm,
    Aes128Gmac,
    Aes192Gmac,
    Aes256Gmac,
    Blowfish,
    Cast128,
    Chacha20Poly1305,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comp {
    Unknown,
    Deflate,
}

/// A Diffie-Hellman group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Unknown,
    None,
    Modp768,
    Modp1024,
    Modp1536,
    Modp2048,
    Modp3072,
    Modp4096,
    Modp6144,
    Modp8192,
    Ecp256,
    Ecp384,
    Ecp521,
    Ecp224,
    Bp224,
    Bp256,
    Bp384,
    Bp512,
}

/// isakmpd's name for a cipher and the key length text it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeCipher {
    pub name: &'static str,
    pub key_length: Option<&'static str>,
}

const fn ike(name: &'static str, key_length: Option<&'static str>) -> Option<IkeCipher> {
    Some(IkeCipher { name, key_length })
}

#[derive(Debug)]
pub struct AuthInfo {
    pub name: &'static str,
    pub alg: Auth,
    /// Exact key length in bytes for manual SAs.
    pub key_len: usize,
    pub phase1: Option<&'static str>,
    pub phase2: Option<&'static str>,
}

#[derive(Debug)]
pub struct EncInfo {
    pub name: &'static str,
    pub alg: Enc,
    pub key_min: usize,
    pub key_max: usize,
    /// Authentication is part of the cipher (AEAD).
    pub noauth: bool,
    /// Needs a fresh nonce per key: never with manual keys.
    pub nostatic: bool,
    pub phase1: Option<IkeCipher>,
    pub phase2: Option<IkeCipher>,
}

#[derive(Debug)]
pub struct GroupInfo {
    pub name: &'static str,
    pub group: Group,
    pub ike: Option<&'static str>,
}

const fn auth(
    name: &'static str,
    alg: Auth,
    key_len: usize,
    phase1: Option<&'static str>,
    phase2: Option<&'static str>,
) -> AuthInfo {
    AuthInfo {
        name,
        alg,
        key_len,
        phase1,
        phase2,
    }
}

pub static AUTH: &[AuthInfo] = &[
    auth("unknown", Auth::Unknown, 0, None, None),
    auth("none", Auth::None, 0, None, None),
    auth("hmac-md5", Auth::HmacMd5, 16, Some("MD5"), Some("MD5")),
    auth(
        "hmac-ripemd160",
        Auth::HmacRipemd160,
        20,
        None,
        Some("RIPEMD"),
    ),
    auth("hmac-sha1", Auth::HmacSha1, 20, Some("SHA"), Some("SHA")),
    auth(
        "hmac-sha2-256",
        Auth::HmacSha2_256,
        32,
        Some("SHA2_256"),
        Some("SHA2_256"),
    ),
    auth(
        "hmac-sha2-384",
        Auth::HmacSha2_384,
        48,
        Some("SHA2_384"),
        Some("SHA2_384"),
    ),
    auth(
        "hmac-sha2-512",
        Auth::HmacSha2_512,
        64,
        Some("SHA2_512"),
        Some("SHA2_512"),
    ),
];

#[allow(clippy::too_many_arguments)]
const fn enc(
    name: &'static str,
    alg: Enc,
    key_min: usize,
    key_max: usize,
    noauth: bool,
    nostatic: bool,
    phase1: Option<IkeCipher>,
    phase2: Option<IkeCipher>,
) -> EncInfo {
    EncInfo {
        name,
        alg,
        key_min,
        key_max,
        noauth,
        nostatic,
        phase1,
        phase2,
    }
}

const AES_ANY: Option<&str> = Some("128,128:256");
const K128: Option<&str> = Some("128,128:128");
const K192: Option<&str> = Some("192,192:192");
const K256: Option<&str> = Some("256,256:256");

pub static ENC: &[EncInfo] = &[
    enc("unknown", Enc::Unknown, 0, 0, false, false, None, None),
    enc("none", Enc::None, 0, 0, false, false, None, None),
    enc(
        "3des-cbc",
        Enc::TripleDesCbc,
        24,
        24,
        false,
        false,
        ike("3DES", None),
        ike("3DES", None),
    ),
    enc(
        "aes",
        Enc::Aes,
        16,
        32,
        false,
        false,
        ike("AES", AES_ANY),
        ike("AES", AES_ANY),
    ),
    enc(
        "aes-128",
        Enc::Aes128,
        16,
        16,
        false,
        false,
        ike("AES", K128),
        ike("AES", K128),
    ),
    enc(
        "aes-192",
        Enc::Aes192,
        24,
        24,
        false,
        false,
        ike("AES", K192),
        ike("AES", K192),
    ),
    enc(
        "aes-256",
        Enc::Aes256,
        32,
        32,
        false,
        false,
        ike("AES", K256),
        ike("AES", K256),
    ),
    // OpenBSD negotiates plain `aesctr` with a 128-bit key only.
    enc(
        "aesctr",
        Enc::AesCtr,
        20,
        36,
        false,
        true,
        None,
        ike("AES_CTR", K128),
    ),
    enc(
        "aes-128-ctr",
        Enc::Aes128Ctr,
        20,
        20,
        false,
        true,
        None,
        ike("AES_CTR", K128),
    ),
    enc(
        "aes-192-ctr",
        Enc::Aes192Ctr,
        28,
        28,
        false,
        true,
        None,
        ike("AES_CTR", K192),
    ),
    enc(
        "aes-256-ctr",
        Enc::Aes256Ctr,
        36,
        36,
        false,
        true,
        None,
        ike("AES_CTR", K256),
    ),
    enc(
        "aes-128-gcm",
        Enc::Aes128Gcm,
        20,
        20,
        true,
        true,
        None,
        ike("AES_GCM_16", K128),
    ),
    enc(
        "aes-192-gcm",
        Enc::Aes192Gcm,
        28,
        28,
        true,
        true,
        None,
        ike("AES_GCM_16", K192),
    ),
    enc(
        "aes-256-gcm",
        Enc::Aes256Gcm,
        36,
        36,
        true,
        true,
        None,
        ike("AES_GCM_16", K256),
    ),
    enc(
        "aes-128-gmac",
        Enc::Aes128Gmac,
        20,
        20,
        true,
        true,
        None,
        ike("AES_GMAC", K128),
    ),
    enc(
        "aes-192-gmac",
        Enc::Aes192Gmac,
        28,
        28,
        true,
        true,
        None,
        ike("AES_GMAC", K192),
    ),
    enc(
        "aes-256-gmac",
        Enc::Aes256Gmac,
        36,
        36,
        true,
        true,
        None,
        ike("AES_GMAC", K256),
    ),
    enc(
        "blowfish",
        Enc::Blowfish,
        5,
        56,
        false,
        false,
        ike("BLOWFISH", Some("128,96:192")),
        ike("BLOWFISH", Some("128,96:192")),
    ),
    enc(
        "cast128",
        Enc::Cast128,
        5,
        16,
        false,
        false,
        ike("CAST", None),
        ike("CAST", None),
    ),
    // isakmpd has no name for it, so it cannot be negotiated either.
    enc(
        "chacha20-poly1305",
        Enc::Chacha20Poly1305,
        36,
        36,
        true,
        true,
        None,
        None,
    ),
    enc(
        "null",
        Enc::Null,
        0,
        0,
        false,
        false,
        None,
        ike("NULL", None),
    ),
];

pub static COMP: &[(&str, Comp)] = &[("unknown", Comp::Unknown), ("deflate", Comp::Deflate)];

const fn group(name: &'static str, group: Group, ike: Option<&'static str>) -> GroupInfo {
    GroupInfo { name, group, ike }
}

pub static GROUP: &[GroupInfo] = &[
    group("unknown", Group::Unknown, None),
    group("none", Group::None, None),
    group("modp768", Group::Modp768, Some("MODP_768")),
    group("grp1", Group::Modp768, Some("MODP_768")),
    group("modp1024", Group::Modp1024, Some("MODP_1024")),
    group("grp2", Group::Modp1024, Some("MODP_1024")),
    group("modp1536", Group::Modp1536, Some("MODP_1536")),
    group("grp5", Group::Modp1536, Some("MODP_1536")),
    group("modp2048", Group::Modp2048, Some("MODP_2048")),
    group("grp14", Group::Modp2048, Some("MODP_2048")),
    group("modp3072", Group::Modp3072, Some("MODP_3072")),
    group("grp15", Group::Modp3072, Some("MODP_3072")),
    group("modp4096", Group::Modp4096, Some("MODP_4096")),
    group("grp16", Group::Modp4096, Some("MODP_4096")),
    group("modp6144", Group::Modp6144, Some("MODP_6144")),
    group("grp17", Group::Modp6144, Some("MODP_6144")),
    group("modp8192", Group::Modp8192, Some("MODP_8192")),
    group("grp18", Group::Modp8192, Some("MODP_8192")),
    group("ecp256", Group::Ecp256, Some("ECP_256")),
    group("grp19", Group::Ecp256, Some("ECP_256")),
    group("ecp384", Group::Ecp384, Some("ECP_384")),
    group("grp20", Group::Ecp384, Some("ECP_384")),
    group("ecp521", Group::Ecp521, Some("ECP_521")),
    group("grp21", Group::Ecp521, Some("ECP_521")),
    group("ecp224", Group::Ecp224, Some("ECP_224")),
    group("grp26", Group::Ecp224, Some("ECP_224")),
    group("bp224", Group::Bp224, Some("BP_224")),
    group("grp27", Group::Bp224, Some("BP_224")),
    group("bp256", Group::Bp256, Some("BP_256")),
    group("grp28", Group::Bp256, Some("BP_256")),
    group("bp384", Group::Bp384, Some("BP_384")),
    group("grp29", Group::Bp384, Some("BP_384")),
    group("bp512", Group::Bp512, Some("BP_512")),
    group("grp30", Group::Bp512, Some("BP_512")),
];

/// The first entry whose name starts with `prefix`.
fn by_prefix<'a, T>(table: &'a [T], name: impl Fn(&T) -> &str, prefix: &str) -> Option<&'a T> {
    table.iter().find(|entry| name(entry).starts_with(prefix))
}

pub fn find_auth(prefix: &str) -> Option<&'static AuthInfo> {
    by_prefix(AUTH, |e| e.name, prefix)
}

pub fn find_enc(prefix: &str) -> Option<&'static EncInfo> {
    by_prefix(ENC, |e| e.name, prefix)
}

pub fn find_comp(prefix: &str) -> Option<Comp> {
    by_prefix(COMP, |e| e.0, prefix).map(|e| e.1)
}

pub fn find_group(prefix: &str) -> Option<&'static GroupInfo> {
    by_prefix(GROUP, |e| e.name, prefix)
}

impl Auth {
    pub fn info(self) -> &'static AuthInfo {
        AUTH.iter().find(|e| e.alg == self).unwrap_or(&AUTH[0])
    }
}

impl Enc {
    pub fn info(self) -> &'static EncInfo {
        ENC.iter().find(|e| e.alg == self).unwrap_or(&ENC[0])
    }
}

impl Comp {
    pub fn name(self) -> &'static str {
        COMP.iter().find(|e| e.1 == self).map_or("unknown", |e| e.0)
    }
}

impl Group {
    pub fn info(self) -> &'static GroupInfo {
        GROUP.iter().find(|e| e.group == self).unwrap_or(&GROUP[0])
    }
}

/// Every name of one kind of transform, for "did you mean" notes.
pub fn names(kind: ipsec_grammar::ast::TransformKind) -> Vec<&'static str> {
    use ipsec_grammar::ast::TransformKind as K;
    match kind {
        K::Auth => AUTH.iter().skip(1).map(|e| e.name).collect(),
        K::Enc => ENC.iter().skip(1).map(|e| e.name).collect(),
        K::Comp => COMP.iter().skip(1).map(|e| e.0).collect(),
        K::Group => GROUP.iter().skip(1).map(|e| e.name).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_pick_the_first_match() {
        assert_eq!(find_enc("3des").unwrap().alg, Enc::TripleDesCbc);
        assert_eq!(find_enc("aes").unwrap().alg, Enc::Aes);
        assert_eq!(find_enc("aes-1").unwrap().alg, Enc::Aes128);
        assert_eq!(find_enc("n").unwrap().alg, Enc::None);
        assert_eq!(find_enc("c").unwrap().alg, Enc::Cast128);
        assert_eq!(find_enc("").unwrap().alg, Enc::Unknown);
        assert!(find_enc("des").is_none());
        assert_eq!(find_auth("hmac-sha2").unwrap().alg, Auth::HmacSha2_256);
        assert_eq!(find_auth("hmac").unwrap().alg, Auth::HmacMd5);
        assert_eq!(find_group("grp1").unwrap().group, Group::Modp768);
        assert_eq!(find_group("grp14").unwrap().group, Group::Modp2048);
        assert_eq!(find_comp("d"), Some(Comp::Deflate));
    }

    #[test]
    fn every_algorithm_has_one_entry() {
        for e in ENC {
            assert!(std::ptr::eq(e.alg.info(), e));
        }
        for a in AUTH {
            assert!(std::ptr::eq(a.alg.info(), a));
        }
    }
}
