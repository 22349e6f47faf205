//! Algorithms: what one side offers for an IKE SA or a Child SA, as SA
//! payload proposals, and what the responder picks from an offer (RFC
//! 7296 §2.7, §3.3.6): the first proposal, in the initiator's order, in
//! which every kind of transform has one this side accepts.

use crate::crypto::dh::Group;
use crate::crypto::prf::Prf;
use crate::crypto::sk::Protection;
use crate::wire::{
    DhGroup, EncrId, EsnId, IntegId, PrfId, Proposal, ProtocolId, Transform, TransformType,
};

/// An encryption algorithm with its key length, where it has several.
pub type Encr = (EncrId, Option<u16>);

/// Whether a cipher brings its own integrity check.
pub fn is_aead(id: EncrId) -> bool {
    matches!(
        id,
        EncrId::AES_GCM_8 | EncrId::AES_GCM_12 | EncrId::AES_GCM_16 | EncrId::CHACHA20_POLY1305
    )
}

/// What a side offers or accepts for an IKE SA, each list in order of
/// preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeOffer {
    pub encr: Vec<Encr>,
    pub prf: Vec<PrfId>,
    /// Used with the ciphers that are not AEADs.
    pub integ: Vec<IntegId>,
    pub dh: Vec<DhGroup>,
}

/// An IKE SA's algorithms, agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub protection: Protection,
    pub prf: Prf,
    pub group: Group,
}

/// What a side offers or accepts for a Child SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOffer {
    pub protocol: ProtocolId,
    /// Empty for AH.
    pub encr: Vec<Encr>,
    pub integ: Vec<IntegId>,
    /// Groups for perfect forward secrecy; empty for none.
    pub dh: Vec<DhGroup>,
    pub esn: Vec<EsnId>,
}

/// A Child SA's algorithms, agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSuite {
    pub protocol: ProtocolId,
    pub encr: Option<Encr>,
    /// NONE with an AEAD.
    pub integ: IntegId,
    pub group: Option<Group>,
    pub esn: bool,
}

fn encr_transforms(encr: &[Encr], aead: bool) -> Vec<Transform> {
    encr.iter()
        .filter(|(id, _)| is_aead(*id) == aead)
        .map(|&(id, bits)| Transform::encr(id, bits))
        .collect()
}

impl IkeOffer {
    /// The SA payload's proposals: the AEAD ciphers in one, the others
    /// with their integrity algorithms in another (an AEAD proposal must
    /// not carry INTEG).
    pub fn proposals(&self) -> Vec<Proposal> {
        let rest: Vec<Transform> = self
            .prf
            .iter()
            .map(|&p| Transform::prf(p))
            .chain(self.dh.iter().map(|&g| Transform::dh(g)))
            .collect();
        let mut out = Vec::new();
        for aead in [true, false] {
            let encr = encr_transforms(&self.encr, aead);
            if encr.is_empty() {
                continue;
            }
            let mut transforms = encr;
            if !aead {
                transforms.extend(self.integ.iter().map(|&i| Transform::integ(i)));
            }
            transforms.extend(rest.iter().cloned());
            out.push(Proposal {
                number: out.len() as u8 + 1,
                protocol: ProtocolId::IKE,
                spi: Vec::new(),
                transforms,
            });
        }
        out
    }

    /// The first of `offered` this side accepts, as the one-transform-
    /// per-kind proposal to answer with, and its suite.
    pub fn choose(&self, offered: &[Proposal]) -> Option<(Proposal, IkeSuite)> {
        offered
            .iter()
            .filter(|p| p.protocol == ProtocolId::IKE)
            .find_map(|p| self.accept(p))
    }

    /// Whether a responder's answer is one of this side's proposals, cut
    /// to one transform of each kind; its suite if so.
    pub fn confirm(&self, answer: &[Proposal]) -> Option<IkeSuite> {
        let [p] = answer else { return None };
        let single = [TransformType::ENCR, TransformType::PRF, TransformType::DH]
            .iter()
            .all(|&k| p.transforms.iter().filter(|t| t.kind == k).count() == 1);
        if !single || p.protocol != ProtocolId::IKE {
            return None;
        }
        self.accept(p).map(|(_, suite)| suite)
    }

    fn accept(&self, p: &Proposal) -> Option<(Proposal, IkeSuite)> {
        let encr = p.transforms.iter().find(|t| {
            t.kind == TransformType::ENCR
                && self.encr.contains(&(EncrId(t.id), t.key_length()))
                && t.attributes.len() == usize::from(t.key_length().is_some())
        })?;
        let aead = is_aead(EncrId(encr.id));
        let prf = first(p, TransformType::PRF, |id| {
            self.prf.contains(&PrfId(id)) && Prf::of(PrfId(id)).is_some()
        })?;
        let dh = first(p, TransformType::DH, |id| {
            self.dh.contains(&DhGroup(id)) && Group::of(DhGroup(id)).is_some()
        })?;
        let offers_integ = p.transforms.iter().any(|t| t.kind == TransformType::INTEG);
        let integ = if aead {
            if offers_integ
                && !p
                    .transforms
                    .iter()
                    .any(|t| t.kind == TransformType::INTEG && t.id == IntegId::NONE.0)
            {
                return None;
            }
            IntegId::NONE
        } else {
            IntegId(first(p, TransformType::INTEG, |id| {
                self.integ.contains(&IntegId(id))
            })?)
        };
        let protection = Protection::of(EncrId(encr.id), encr.key_length(), integ)?;
        let suite = IkeSuite {
            protection,
            prf: Prf::of(PrfId(prf))?,
            group: Group::of(DhGroup(dh))?,
        };
        let mut transforms = vec![encr.clone(), Transform::prf(PrfId(prf))];
        if !aead {
            transforms.push(Transform::integ(integ));
        }
        transforms.push(Transform::dh(DhGroup(dh)));
        Some((
            Proposal {
                number: p.number,
                protocol: ProtocolId::IKE,
                spi: p.spi.clone(),
                transforms,
            },
            suite,
        ))
    }
}

/// The first transform of `kind` in `p` that `ok` accepts.
fn first(p: &Proposal, kind: TransformType, ok: impl Fn(u16) -> bool) -> Option<u16> {
    p.transforms
        .iter()
        .find(|t| t.kind == kind && t.attributes.is_empty() && ok(t.id))
        .map(|t| t.id)
}

impl ChildOffer {
    /// The SA payload's proposals, each carrying `spi` (the sender's
    /// inbound SPI).
    pub fn proposals(&self, spi: u32) -> Vec<Proposal> {
        let mut tail: Vec<Transform> = self.dh.iter().map(|&g| Transform::dh(g)).collect();
        tail.extend(self.esn.iter().map(|&e| Transform::esn(e)));
        let mut out = Vec::new();
        let push = |out: &mut Vec<Proposal>, mut transforms: Vec<Transform>| {
            transforms.extend(tail.iter().cloned());
            out.push(Proposal {
                number: out.len() as u8 + 1,
                protocol: self.protocol,
                spi: spi.to_be_bytes().to_vec(),
                transforms,
            });
        };
        if self.protocol == ProtocolId::AH {
            push(
                &mut out,
                self.integ.iter().map(|&i| Transform::integ(i)).collect(),
            );
            return out;
        }
        for aead in [true, false] {
            let mut transforms = encr_transforms(&self.encr, aead);
            if transforms.is_empty() {
                continue;
            }
            if !aead {
                transforms.extend(self.integ.iter().map(|&i| Transform::integ(i)));
            }
            push(&mut out, transforms);
        }
        out
    }

    /// The first of `offered` this side accepts: the answer (carrying
    /// `spi`, this side's inbound SPI), the suite, and the peer's SPI.
    pub fn choose(&self, offered: &[Proposal], spi: u32) -> Option<(Proposal, ChildSuite, u32)> {
        offered.iter().find_map(|p| {
            let (suite, peer_spi) = self.accept(p)?;
            let mut transforms = Vec::new();
            if let Some((id, bits)) = suite.encr {
                transforms.push(Transform::encr(id, bits));
            }
            if suite.integ != IntegId::NONE || suite.protocol == ProtocolId::AH {
                transforms.push(Transform::integ(suite.integ));
            }
            if let Some(g) = suite.group {
                transforms.push(Transform::dh(g.id()));
            }
            transforms.push(Transform::esn(if suite.esn {
                EsnId::YES
            } else {
                EsnId::NO
            }));
            let answer = Proposal {
                number: p.number,
                protocol: p.protocol,
                spi: spi.to_be_bytes().to_vec(),
                transforms,
            };
            Some((answer, suite, peer_spi))
        })
    }

    /// The responder's answer, if it is one of this side's proposals cut
    /// to one transform of each kind: its suite and the responder's SPI.
    pub fn confirm(&self, answer: &[Proposal]) -> Option<(ChildSuite, u32)> {
        let [p] = answer else { return None };
        let once = |k| p.transforms.iter().filter(|t| t.kind == k).count() <= 1;
        if ![
            TransformType::ENCR,
            TransformType::INTEG,
            TransformType::DH,
            TransformType::ESN,
        ]
        .into_iter()
        .all(once)
        {
            return None;
        }
        self.accept(p)
    }

    fn accept(&self, p: &Proposal) -> Option<(ChildSuite, u32)> {
        if p.protocol != self.protocol {
            return None;
        }
        let peer_spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
        let encr = if self.protocol == ProtocolId::ESP {
            let t = p.transforms.iter().find(|t| {
                t.kind == TransformType::ENCR
                    && self.encr.contains(&(EncrId(t.id), t.key_length()))
                    && t.attributes.len() == usize::from(t.key_length().is_some())
            })?;
            Some((EncrId(t.id), t.key_length()))
        } else {
            None
        };
        let aead = encr.is_some_and(|(id, _)| is_aead(id));
        let integ = if aead {
            IntegId::NONE
        } else {
            IntegId(first(p, TransformType::INTEG, |id| {
                self.integ.contains(&IntegId(id))
            })?)
        };
        let offered_dh: Vec<u16> = p
            .transforms
            .iter()
            .filter(|t| t.kind == TransformType::DH)
            .map(|t| t.id)
            .collect();
        let group = if self.dh.is_empty() {
            // No PFS here: the peer must allow none.
            if !offered_dh.is_empty() && !offered_dh.contains(&DhGroup::NONE.0) {
                return None;
            }
            None
        } else {
            let id = first(p, TransformType::DH, |id| {
                self.dh.contains(&DhGroup(id)) && Group::of(DhGroup(id)).is_some()
            })?;
            Group::of(DhGroup(id))
        };
        let offered_esn: Vec<u16> = p
            .transforms
            .iter()
            .filter(|t| t.kind == TransformType::ESN)
            .map(|t| t.id)
            .collect();
        let esn = if offered_esn.is_empty() {
            false
        } else {
            let id = first(p, TransformType::ESN, |id| self.esn.contains(&EsnId(id)))?;
            id == EsnId::YES.0
        };
        Some((
            ChildSuite {
                protocol: self.protocol,
                encr,
                integ,
                group,
                esn,
            },
            peer_spi,
        ))
    }
}

/// Names as `ipsec.conf` spells the algorithms, for operators.
fn cipher_name(c: crate::crypto::sk::Cipher) -> String {
    use crate::crypto::sk::Cipher;
    match c {
        Cipher::AesCbc(k) => format!("aes-{}", k * 8),
        Cipher::AesGcm16(k) => format!("aes-{}-gcm", k * 8),
        Cipher::ChaCha20Poly1305 => "chacha20-poly1305".into(),
    }
}

fn prf_name(p: Prf) -> &'static str {
    match p {
        Prf::HmacSha1 => "hmac-sha1",
        Prf::HmacSha256 => "hmac-sha2-256",
        Prf::HmacSha384 => "hmac-sha2-384",
        Prf::HmacSha512 => "hmac-sha2-512",
    }
}

fn group_name(g: Group) -> &'static str {
    match g {
        Group::Modp2048 => "modp2048",
        Group::Modp3072 => "modp3072",
        Group::Modp4096 => "modp4096",
        Group::Ecp256 => "ecp256",
        Group::Ecp384 => "ecp384",
        Group::Curve25519 => "curve25519",
    }
}

impl IkeSuite {
    /// The cipher, integrity check (none with an AEAD), PRF and group.
    pub fn names(&self) -> [String; 4] {
        use crate::crypto::sk::Integ;
        let integ = match self.protection.integ {
            None => "none",
            Some(Integ::HmacSha1_96) => "hmac-sha1-96",
            Some(Integ::HmacSha256_128) => "hmac-sha2-256-128",
            Some(Integ::HmacSha384_192) => "hmac-sha2-384-192",
            Some(Integ::HmacSha512_256) => "hmac-sha2-512-256",
        };
        [
            cipher_name(self.protection.cipher),
            integ.into(),
            prf_name(self.prf).into(),
            group_name(self.group).into(),
        ]
    }
}

impl ChildSuite {
    /// The cipher (none for AH), integrity check and PFS group (none).
    pub fn names(&self) -> [String; 3] {
        let encr = match self.encr {
            None => "none".into(),
            Some((id, bits)) => {
                let bits = bits.map_or(String::new(), |b| format!("-{b}"));
                match id {
                    EncrId::AES_CBC => format!("aes{bits}"),
                    EncrId::AES_GCM_16 => format!("aes{bits}-gcm"),
                    EncrId::CHACHA20_POLY1305 => "chacha20-poly1305".into(),
                    other => format!("{other}"),
                }
            }
        };
        let integ = if self.integ == IntegId::NONE {
            "none".into()
        } else {
            self.integ.to_string()
        };
        [encr, integ, self.group.map_or("none", group_name).into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike() -> IkeOffer {
        IkeOffer {
            encr: vec![
                (EncrId::AES_GCM_16, Some(256)),
                (EncrId::AES_CBC, Some(256)),
                (EncrId::AES_CBC, Some(128)),
            ],
            prf: vec![PrfId::HMAC_SHA2_256, PrfId::HMAC_SHA2_512],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![DhGroup::CURVE25519, DhGroup::ECP_256],
        }
    }

    #[test]
    fn an_ike_offer_is_an_aead_proposal_and_another_and_the_first_acceptable_wins() {
        let ours = ike();
        let proposals = ours.proposals();
        assert_eq!(proposals.len(), 2);
        assert_eq!(proposals[0].number, 1);
        assert!(
            !proposals[0]
                .transforms
                .iter()
                .any(|t| t.kind == TransformType::INTEG)
        );
        assert!(
            proposals[1]
                .transforms
                .iter()
                .any(|t| t.kind == TransformType::INTEG)
        );
        // A responder that takes only CBC-128 and ECP-256.
        let theirs = IkeOffer {
            encr: vec![(EncrId::AES_CBC, Some(128))],
            prf: vec![PrfId::HMAC_SHA2_512, PrfId::HMAC_SHA2_256],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![DhGroup::ECP_256],
        };
        let (answer, suite) = theirs.choose(&proposals).unwrap();
        assert_eq!(answer.number, 2);
        assert_eq!(
            answer.transforms,
            [
                Transform::encr(EncrId::AES_CBC, Some(128)),
                Transform::prf(PrfId::HMAC_SHA2_256),
                Transform::integ(IntegId::HMAC_SHA2_256_128),
                Transform::dh(DhGroup::ECP_256),
            ],
            "the initiator's order decides"
        );
        assert_eq!((suite.prf, suite.group), (Prf::HmacSha256, Group::Ecp256));
        assert_eq!(ours.confirm(std::slice::from_ref(&answer)), Some(suite));
        // An answer with two groups, or one we never offered, is refused.
        let mut two = answer.clone();
        two.transforms.push(Transform::dh(DhGroup::CURVE25519));
        assert_eq!(ours.confirm(&[two]), None);
        let mut other = answer;
        other.transforms[3] = Transform::dh(DhGroup::MODP_2048);
        assert_eq!(ours.confirm(&[other]), None);
        // Nothing in common.
        let none = IkeOffer {
            dh: vec![DhGroup::MODP_4096],
            ..theirs
        };
        assert_eq!(none.choose(&proposals), None);
    }

    #[test]
    fn a_child_offer_carries_its_spi_and_is_answered_with_the_responders() {
        let ours = ChildOffer {
            protocol: ProtocolId::ESP,
            encr: vec![
                (EncrId::AES_GCM_16, Some(128)),
                (EncrId::AES_CBC, Some(256)),
            ],
            integ: vec![IntegId::HMAC_SHA2_256_128],
            dh: vec![],
            esn: vec![EsnId::NO],
        };
        let proposals = ours.proposals(0x1234_5678);
        assert_eq!(proposals.len(), 2);
        assert!(proposals.iter().all(|p| p.spi == [0x12, 0x34, 0x56, 0x78]));
        let (answer, suite, peer) = ours.choose(&proposals, 0x9abc_def0).unwrap();
        assert_eq!(peer, 0x1234_5678);
        assert_eq!(answer.spi, [0x9a, 0xbc, 0xde, 0xf0]);
        assert_eq!(suite.encr, Some((EncrId::AES_GCM_16, Some(128))));
        assert_eq!(
            (suite.integ, suite.group, suite.esn),
            (IntegId::NONE, None, false)
        );
        assert_eq!(ours.confirm(&[answer]), Some((suite, 0x9abc_def0)));
        // Who insists on PFS is refused by who has none, and the other way.
        let pfs = ChildOffer {
            dh: vec![DhGroup::ECP_256],
            ..ours.clone()
        };
        assert_eq!(ours.choose(&pfs.proposals(1), 2), None);
        assert_eq!(pfs.choose(&ours.proposals(1), 2), None);
        let (_, suite, _) = pfs.choose(&pfs.proposals(1), 2).unwrap();
        assert_eq!(suite.group, Some(Group::Ecp256));
        // AH: integrity alone.
        let ah = ChildOffer {
            protocol: ProtocolId::AH,
            encr: vec![],
            integ: vec![IntegId::HMAC_SHA2_512_256],
            dh: vec![],
            esn: vec![EsnId::NO],
        };
        let (_, suite, _) = ah.choose(&ah.proposals(5), 6).unwrap();
        assert_eq!(
            (suite.encr, suite.integ),
            (None, IntegId::HMAC_SHA2_512_256)
        );
        assert_eq!(
            ours.choose(&ah.proposals(5), 6),
            None,
            "ESP does not take AH"
        );
    }
}
