//! One SA's own data: where it is found, its state, its algorithms and
//! keys as PF_KEY gave them, its lifetimes and what it has carried. The
//! SAD ([`crate::sad`]) keeps them; the transforms ([`crate::xform`]) are
//! keyed from them. Neither depends on the other through this.

use pfkey::{Identity, Key, Lifetime, SaType};
use std::net::IpAddr;

/// Where an SA is found: its destination, SPI and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaId {
    pub dst: IpAddr,
    pub spi: u32,
    pub satype: SaType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Reserved by GETSPI, waiting for UPDATE; carries no traffic.
    Larval,
    Mature,
}

/// What an SA does, as PF_KEY describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityAssociation {
    pub id: SaId,
    pub state: State,
    pub src: IpAddr,
    /// Replay window in packets; 0 for none.
    pub replay: u8,
    pub auth: pfkey::AuthAlg,
    /// The cipher, or the compression algorithm for IPComp.
    pub encrypt: u8,
    pub flags: u32,
    pub auth_key: Option<Key>,
    pub enc_key: Option<Key>,
    pub hard: Option<Lifetime>,
    pub soft: Option<Lifetime>,
    pub src_id: Option<Identity>,
    pub dst_id: Option<Identity>,
    /// The peer's UDP port for NAT-T (0: the default).
    pub udpencap_port: Option<u16>,
    /// The outbound flow this SA serves, when its ADD named one (as
    /// OpenBSD's SA filter): only that flow's traffic takes it, so that
    /// several Child SAs to one peer each carry their own.
    pub flow: Option<crate::spd::Selector>,
    pub tag: Option<String>,
    pub tap: Option<u32>,
    /// The next SA of a bundle (applied after this one on output).
    pub next: Option<SaId>,
    pub prev: Option<SaId>,
    pub usage: Usage,
}

/// What an SA has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes both ways: what byte lifetimes count.
    pub bytes: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Packets the data path dropped on this SA, each way.
    pub drops_in: u64,
    pub drops_out: u64,
    /// When it was added (seconds).
    pub added: u64,
    /// Its place in the order SAs were added, over the whole SAD: of
    /// several SAs to one peer, a flow that needs one takes the oldest,
    /// the one the peer has most surely installed too.
    pub order: u64,
    pub first_use: Option<u64>,
    pub last_use: Option<u64>,
    /// The soft limit has been reported.
    pub soft_reported: bool,
}

impl SecurityAssociation {
    /// A mature SA with nothing set but its addresses and SPI.
    pub fn new(id: SaId, src: IpAddr, now: u64) -> SecurityAssociation {
        SecurityAssociation {
            id,
            state: State::Mature,
            src,
            replay: 0,
            auth: pfkey::AuthAlg::NONE,
            encrypt: 0,
            flags: 0,
            auth_key: None,
            enc_key: None,
            hard: None,
            soft: None,
            src_id: None,
            dst_id: None,
            udpencap_port: None,
            flow: None,
            tag: None,
            tap: None,
            next: None,
            prev: None,
            usage: Usage {
                added: now,
                ..Usage::default()
            },
        }
    }
}

/// Which limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Report it once; the SA stays.
    Soft,
    /// Report it; the SA is gone.
    Hard,
    /// A reserved SPI nobody keyed: gone without a word.
    Larval,
}
