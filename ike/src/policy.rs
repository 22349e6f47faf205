//! What an `ike` rule of `ipsec.conf` means to the key manager: IKEv2
//! with the rule's addresses, algorithms, identities and key. Where the
//! rule names no algorithm, a modern set is offered (AES-GCM and AES-CBC
//! with SHA-2, Curve25519, P-256 and MODP-2048); where it names one IKEv2
//! should no longer use (MODP-1024 and smaller, MD5) or one this daemon
//! lacks, the rule is refused with the reason.

use crate::crypto::pki::Pki;
use crate::exchange::auth::Credentials;
use crate::exchange::handshake::Config;
use crate::exchange::selectors::of_net;
use crate::exchange::suite::{ChildOffer, Encr, IkeOffer};
use crate::install::Lifetimes;
use crate::keyer::{Policy, Start};
use crate::wire::{DhGroup, EncrId, EsnId, IdType, Identification, IntegId, PrfId, ProtocolId};
use ipsec_compiler::rule::{ExchangeMode, Ike, IkeAuth, IkeMode, Mode, SaType};
use ipsec_compiler::xform::{Auth, Enc, Group};
use std::net::IpAddr;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The offer when a rule names no cipher, in order of preference: what
/// this end starts with is the first three; the rest are there so that
/// it takes them from a peer that prefers them (offer and acceptance are
/// one list).
const CIPHERS: [Encr; 5] = [
    (EncrId::AES_GCM_16, Some(256)),
    (EncrId::AES_GCM_16, Some(128)),
    (EncrId::AES_CBC, Some(256)),
    (EncrId::CHACHA20_POLY1305, None),
    (EncrId::AES_CBC, Some(128)),
];
const GROUPS: [DhGroup; 6] = [
    DhGroup::CURVE25519,
    DhGroup::ECP_256,
    DhGroup::MODP_2048,
    DhGroup::ECP_384,
    DhGroup::MODP_3072,
    DhGroup::MODP_4096,
];
const HASHES: [(PrfId, IntegId); 3] = [
    (PrfId::HMAC_SHA2_256, IntegId::HMAC_SHA2_256_128),
    (PrfId::HMAC_SHA2_512, IntegId::HMAC_SHA2_512_256),
    (PrfId::HMAC_SHA2_384, IntegId::HMAC_SHA2_384_192),
];

fn cipher(enc: Enc) -> Result<Vec<Encr>, String> {
    Ok(match enc {
        Enc::Aes | Enc::Aes128 => vec![(EncrId::AES_CBC, Some(128))],
        Enc::Aes192 => vec![(EncrId::AES_CBC, Some(192))],
        Enc::Aes256 => vec![(EncrId::AES_CBC, Some(256))],
        Enc::Aes128Gcm => vec![(EncrId::AES_GCM_16, Some(128))],
        Enc::Aes192Gcm => vec![(EncrId::AES_GCM_16, Some(192))],
        Enc::Aes256Gcm => vec![(EncrId::AES_GCM_16, Some(256))],
        Enc::Chacha20Poly1305 => vec![(EncrId::CHACHA20_POLY1305, None)],
        other => return Err(format!("iked does not offer {}", other.info().name)),
    })
}

fn hash(auth: Auth) -> Result<(PrfId, IntegId), String> {
    Ok(match auth {
        Auth::HmacSha1 => (PrfId::HMAC_SHA1, IntegId::HMAC_SHA1_96),
        Auth::HmacSha2_256 => (PrfId::HMAC_SHA2_256, IntegId::HMAC_SHA2_256_128),
        Auth::HmacSha2_384 => (PrfId::HMAC_SHA2_384, IntegId::HMAC_SHA2_384_192),
        Auth::HmacSha2_512 => (PrfId::HMAC_SHA2_512, IntegId::HMAC_SHA2_512_256),
        other => return Err(format!("iked does not offer {}", other.info().name)),
    })
}

fn group(g: Group) -> Result<DhGroup, String> {
    Ok(match g {
        Group::Modp2048 => DhGroup::MODP_2048,
        Group::Modp3072 => DhGroup::MODP_3072,
        Group::Modp4096 => DhGroup::MODP_4096,
        Group::Ecp256 => DhGroup::ECP_256,
        Group::Ecp384 => DhGroup::ECP_384,
        Group::Modp768 | Group::Modp1024 | Group::Modp1536 => {
            return Err("groups below MODP-2048 are too weak for iked".into());
        }
        _ => return Err("iked does not offer that group".into()),
    })
}

fn identity(text: &str) -> Identification {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return address_id(ip);
    }
    let id_type = if text.contains('@') {
        IdType::RFC822_ADDR
    } else {
        IdType::FQDN
    };
    Identification {
        id_type,
        data: text.as_bytes().to_vec(),
    }
}

fn address_id(ip: IpAddr) -> Identification {
    match ip {
        IpAddr::V4(a) => Identification {
            id_type: IdType::IPV4_ADDR,
            data: a.octets().to_vec(),
        },
        IpAddr::V6(a) => Identification {
            id_type: IdType::IPV6_ADDR,
            data: a.octets().to_vec(),
        },
    }
}

/// The policy for `rule`, named `name`. `local_for` gives this host's
/// address toward a peer, for a rule that names no `local`; `pki` this
/// host's key, certificate and trusted authorities, for a rule that
/// authenticates with them (`rsa`, the default).
pub fn policy(
    rule: &Ike,
    name: String,
    local_for: &dyn Fn(IpAddr) -> Option<IpAddr>,
    pki: &dyn Fn() -> Result<Arc<Pki>, String>,
) -> Result<Policy, String> {
    let start = match rule.mode {
        IkeMode::Active => Start::Active,
        IkeMode::Passive => Start::Passive,
        IkeMode::Dynamic => Start::OnDemand,
    };
    let protocol = match rule.satype {
        SaType::Esp => ProtocolId::ESP,
        SaType::Ah => ProtocolId::AH,
        _ => return Err("iked keys ESP and AH only".into()),
    };
    // What only IKEv1 (isakmpd) or the kernel's extras mean.
    if rule.phase1.exchange == ExchangeMode::Aggressive {
        return Err("aggressive mode is IKEv1's; iked speaks IKEv2 (write main)".into());
    }
    if rule.phase2.transforms.comp.is_some() {
        return Err("IPComp is not negotiated by this version of iked".into());
    }
    if rule.tag.is_some() {
        return Err("tag is not in this version of iked".into());
    }
    if rule.iface.is_some() {
        return Err("sec(4) interfaces are not in this version of iked".into());
    }
    if rule.src.nat.is_some() {
        return Err("a NAT'd source address is not in this version of iked".into());
    }
    // Without one, a passive rule answers any peer (its flows go in with
    // each Child SA); a rule that starts needs someone to start with.
    let peer = rule.peer.as_ref().map(|p| p.ip);
    if peer.is_none() && start != Start::Passive {
        return Err(
            "an active or dynamic rule needs a peer (only a passive rule answers any)".into(),
        );
    }
    let local = rule
        .local
        .as_ref()
        .map(|l| l.ip)
        .or_else(|| peer.and_then(local_for))
        .ok_or(match peer {
            Some(_) => "no local address toward the peer (give one with local)",
            None => "a rule for any peer needs its local address (give one with local)",
        })?;
    let credentials = match &rule.auth {
        IkeAuth::Psk(secret) => Credentials::Psk(Zeroizing::new(secret.as_bytes().to_vec())),
        IkeAuth::Rsa => Credentials::Certificate(pki()?),
    };
    let p1 = &rule.phase1.transforms;
    let hashes = match p1.auth {
        Some(a) => vec![hash(a)?],
        None => HASHES.to_vec(),
    };
    let ike = IkeOffer {
        encr: p1.enc.map_or(Ok(CIPHERS.to_vec()), cipher)?,
        prf: hashes.iter().map(|h| h.0).collect(),
        integ: hashes.iter().map(|h| h.1).collect(),
        dh: p1
            .group
            .map_or(Ok(GROUPS.to_vec()), |g| group(g).map(|g| vec![g]))?,
    };
    let p2 = &rule.phase2.transforms;
    let child = ChildOffer {
        protocol,
        encr: if protocol == ProtocolId::AH {
            Vec::new()
        } else {
            p2.enc.map_or(Ok(CIPHERS.to_vec()), cipher)?
        },
        integ: match p2.auth {
            Some(a) => vec![hash(a)?.1],
            None => HASHES.iter().map(|h| h.1).collect(),
        },
        dh: match p2.group {
            None | Some(Group::None) => Vec::new(),
            Some(g) => vec![group(g)?],
        },
        esn: vec![EsnId::NO],
    };
    let lifetime = rule.phase2.lifetime.unwrap_or(0).max(0) as u64;
    let ike_lifetime = rule.phase1.lifetime.unwrap_or(0).max(0) as u64;
    let config = Config {
        ike,
        child,
        local_id: rule
            .srcid
            .as_ref()
            .map_or_else(|| address_id(local), |id| identity(&id.id)),
        remote_id: rule.dstid.as_ref().map(|id| identity(&id.id)),
        credentials,
        unix: 0,
        ts_local: vec![of_net(rule.src.ip, rule.src.bits, rule.proto, rule.sport)],
        ts_remote: vec![of_net(rule.dst.ip, rule.dst.bits, rule.proto, rule.dport)],
        transport: rule.tmode == Mode::Transport,
    };
    Ok(Policy {
        name,
        start,
        local,
        peer,
        config,
        ike_lifetime,
        lifetimes: Lifetimes {
            // The warning is the key manager's to place (see keyer).
            soft_seconds: 0,
            hard_seconds: lifetime,
            ..Lifetimes::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsec_compiler::Fixed;
    use ipsec_compiler::rule::RuleKind;

    fn rules(conf: &str) -> Vec<Ike> {
        let out = ipsec_compiler::compile_text("-", conf, &Fixed::standard(), &Default::default());
        assert!(out.ok(), "{:?}", out.diagnostics);
        out.rules
            .into_iter()
            .filter_map(|r| match r.kind {
                RuleKind::Ike(ike) => Some(*ike),
                _ => None,
            })
            .collect()
    }

    fn no_route(_: IpAddr) -> Option<IpAddr> {
        None
    }

    fn no_pki() -> Result<Arc<Pki>, String> {
        Err("no certificates here".into())
    }

    #[test]
    fn a_rule_becomes_a_policy_with_modern_defaults() {
        let r = &rules(
            "ike active esp from 10.1.0.0/24 to 10.2.0.0/24 local 192.0.2.1 peer 192.0.2.2 \
             srcid a.example psk \"secret\"\n",
        )[0];
        let p = policy(r, "rule 1".into(), &no_route, &no_pki).unwrap();
        assert_eq!(p.start, Start::Active);
        assert_eq!(p.local, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(p.peer, Some("192.0.2.2".parse::<IpAddr>().unwrap()));
        assert_eq!(p.config.ike.dh, GROUPS);
        assert_eq!(p.config.child.encr, CIPHERS);
        assert!(matches!(&p.config.credentials, Credentials::Psk(k) if **k == *b"secret"));
        assert_eq!(p.config.local_id, identity("a.example"));
        assert_eq!(p.config.remote_id, None);
        assert_eq!(
            p.config.ts_local,
            [of_net("10.1.0.0".parse().unwrap(), 24, 0, 0)]
        );
        assert!(!p.config.transport);
    }

    #[test]
    fn named_algorithms_are_offered_alone_and_weak_ones_refused() {
        let r = &rules(
            "ike dynamic esp transport from 192.0.2.1 to 192.0.2.2 \
             main auth hmac-sha2-384 enc aes-256 group ecp384 \
             quick enc aes-128-gcm group modp3072 lifetime 600 psk \"k\"\n",
        )[0];
        let p = policy(
            r,
            "rule".into(),
            &|_| Some("192.0.2.1".parse().unwrap()),
            &no_pki,
        )
        .unwrap();
        assert_eq!(p.start, Start::OnDemand);
        assert_eq!(p.config.ike.encr, [(EncrId::AES_CBC, Some(256))]);
        assert_eq!(p.config.ike.prf, [PrfId::HMAC_SHA2_384]);
        assert_eq!(p.config.ike.dh, [DhGroup::ECP_384]);
        assert_eq!(p.config.child.encr, [(EncrId::AES_GCM_16, Some(128))]);
        assert_eq!(p.config.child.dh, [DhGroup::MODP_3072]);
        assert!(p.config.transport);
        assert_eq!(p.lifetimes.hard_seconds, 600);
        let weak = &rules("ike esp from 192.0.2.1 to 192.0.2.2 main group modp1024 psk \"k\"\n")[0];
        let here = |_: IpAddr| Some("192.0.2.1".parse().unwrap());
        let err = policy(weak, "rule".into(), &here, &no_pki).unwrap_err();
        assert!(err.contains("too weak"), "{err}");
        let aggressive = &rules("ike esp from 192.0.2.1 to 192.0.2.2 aggressive psk \"k\"\n")[0];
        let err = policy(aggressive, "rule".into(), &here, &no_pki).unwrap_err();
        assert!(err.contains("IKEv1"), "{err}");
        // Any peer: only for a passive rule, and with its local address.
        let anyone = &rules("ike passive esp from 10.1.0.0/16 to any psk \"k\"\n")[0];
        let err = policy(anyone, "rule".into(), &here, &no_pki).unwrap_err();
        assert!(err.contains("needs its local address"), "{err}");
        let anyone =
            &rules("ike passive esp from 10.1.0.0/16 to any local 192.0.2.1 psk \"k\"\n")[0];
        let p = policy(anyone, "rule".into(), &here, &no_pki).unwrap();
        assert_eq!((p.peer, p.start), (None, Start::Passive));
        let starts =
            &rules("ike dynamic esp from 10.1.0.0/16 to any local 192.0.2.1 psk \"k\"\n")[0];
        let err = policy(starts, "rule".into(), &here, &no_pki).unwrap_err();
        assert!(err.contains("needs a peer"), "{err}");
        // Without psk, the host's certificates; when it has none, why.
        let rsa = &rules("ike esp from 192.0.2.1 to 192.0.2.2 main lifetime 3600\n")[0];
        assert_eq!(
            policy(rsa, "rule".into(), &here, &no_pki).unwrap_err(),
            "no certificates here"
        );
        assert!(
            policy(rsa, "rule".into(), &no_route, &no_pki)
                .unwrap_err()
                .contains("local"),
            "no route to the peer"
        );
    }
}
