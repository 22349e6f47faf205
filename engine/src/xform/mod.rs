//! What an SA does to packets: ESP, AH, IPComp and IP-in-IP, keyed from
//! the SA's PF_KEY material, with the sequence counter and replay window
//! that go with the keys. Pure: bytes in, bytes out.

pub mod ah;
pub mod esp;
pub mod ip;
pub mod ipcomp;
pub mod natt;

use crate::crypto::{KeyError, facts};
use crate::replay::ReplayWindow;
use crate::sa::SecurityAssociation;
use crate::sequence::SendSequence;
use pfkey::{AuthAlg, CompAlg, EncAlg, SaType, sa_flags};

/// Why a protected packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too short, misaligned, or a header that contradicts the SA.
    Malformed,
    /// The ICV did not match.
    Authentication,
    /// Decrypted padding that the sender cannot have written.
    Padding,
}

/// A keyed transform.
#[derive(Debug)]
pub enum Transform {
    // Boxed: keyed ciphers and MACs run to hundreds of bytes.
    Esp(Box<esp::Esp>),
    Ah(Box<ah::Ah>),
    IpComp(ipcomp::IpComp),
    /// IP-in-IP adds the tunnel header and nothing else.
    Ipip,
}

/// Key material, or none.
fn key(k: &Option<pfkey::Key>) -> &[u8] {
    k.as_ref().map_or(&[], |k| k.material())
}

impl Transform {
    /// Keys the transform an SA names. TCP-MD5 SAs sign TCP segments in
    /// the host's stack, so they have no transform here.
    pub fn new(sa: &SecurityAssociation) -> Result<Transform, KeyError> {
        match sa.id.satype {
            SaType::ESP => Ok(Transform::Esp(Box::new(esp::Esp::new(
                EncAlg(sa.encrypt),
                key(&sa.enc_key),
                sa.auth,
                key(&sa.auth_key),
            )?))),
            SaType::AH if sa.auth != AuthAlg::NONE => Ok(Transform::Ah(Box::new(ah::Ah::new(
                sa.auth,
                key(&sa.auth_key),
            )?))),
            SaType::X_IPCOMP => Ok(Transform::IpComp(ipcomp::IpComp::new(CompAlg(sa.encrypt))?)),
            SaType::X_IPIP => Ok(Transform::Ipip),
            _ => Err(KeyError::Unsupported),
        }
    }

    /// The IP protocol number of the header it adds.
    pub fn protocol(&self) -> u8 {
        match self {
            Transform::Esp(_) => ip::proto::ESP,
            Transform::Ah(_) => ip::proto::AH,
            Transform::IpComp(_) => ip::proto::IPCOMP,
            Transform::Ipip => ip::proto::IPV4,
        }
    }

    /// The most bytes it adds, not counting a tunnel header.
    pub fn overhead(&self) -> usize {
        match self {
            Transform::Esp(esp) => esp.overhead(),
            Transform::Ah(ah) => ah.overhead(),
            Transform::IpComp(_) => ipcomp::HEADER_LEN,
            Transform::Ipip => 0,
        }
    }
}

/// The most bytes an SA's transform adds to a packet (not counting a
/// tunnel header), from its algorithms alone: keying every SA to learn
/// this would cost a key schedule each.
pub fn overhead_of(sa: &SecurityAssociation) -> usize {
    match sa.id.satype {
        SaType::ESP => {
            // An algorithm not in the table is given AES-CBC's IV and
            // block, the largest.
            let (iv, block, combined) =
                facts::cipher(EncAlg(sa.encrypt)).map_or((16, 16, 0), |c| (c.iv, c.block, c.icv));
            let icv = if combined != 0 {
                combined
            } else {
                mac_len(sa.auth)
            };
            esp::overhead(iv, block, icv)
        }
        SaType::AH => ah::header_len(mac_len(sa.auth), true),
        SaType::X_IPCOMP => ipcomp::HEADER_LEN,
        _ => 0,
    }
}

/// An ICV of a MAC not in the table is taken to be the largest, 32.
fn mac_len(auth: AuthAlg) -> usize {
    match (auth, facts::mac(auth)) {
        (AuthAlg::NONE, _) => 0,
        (_, Some(mac)) => mac.icv,
        _ => 32,
    }
}

/// An SA's keyed state: made on first use, dropped (and the keys with it
/// zeroized) when the SA goes away.
#[derive(Debug)]
pub struct Live {
    pub transform: Transform,
    pub sequence: SendSequence,
    /// None when the SA asked for no replay protection.
    pub replay: Option<ReplayWindow>,
    pub esn: bool,
}

impl Live {
    pub fn new(sa: &SecurityAssociation) -> Result<Live, KeyError> {
        // Extended sequence numbers need the replay counter (OpenBSD).
        let esn = sa.flags & sa_flags::ESN != 0 && sa.replay != 0;
        Ok(Live {
            transform: Transform::new(sa)?,
            sequence: SendSequence::new(esn),
            replay: (sa.replay != 0).then(|| ReplayWindow::new(esn)),
            esn,
        })
    }
}
