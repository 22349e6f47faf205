//! NAT detection (RFC 7296 §2.23): each side sends a hash of the SPIs
//! and of the addresses and ports as it sees them; a hash that does not
//! match what the receiver sees means a NAT between them.

use crate::wire::{Notify, NotifyType};
use sha1::{Digest, Sha1};
use std::net::{IpAddr, SocketAddr};

/// SHA-1(SPIi | SPIr | IP | port).
pub fn hash(spi_i: u64, spi_r: u64, at: SocketAddr) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match at.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(at.port().to_be_bytes());
    h.finalize().into()
}

/// The two notifications a sender at `local` adds for the peer at
/// `remote`.
pub fn notifications(spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr) -> [Notify; 2] {
    [
        Notify::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            hash(spi_i, spi_r, local).to_vec(),
        ),
        Notify::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            hash(spi_i, spi_r, remote).to_vec(),
        ),
    ]
}

/// What the peer's notifications say, received at `local` from `remote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nat {
    /// The peer is behind a NAT: no source hash matches what arrived.
    pub peer_behind: bool,
    /// This end is behind a NAT: the destination hash is not of `local`.
    pub local_behind: bool,
}

impl Nat {
    /// Reads the peer's NAT detection notifications; `None` when it sent
    /// none (it does not do NAT traversal).
    pub fn detect<'a>(
        notes: impl IntoIterator<Item = &'a Notify>,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<Nat> {
        let (mut sources, mut destination) = (Vec::new(), None);
        for n in notes {
            match n.kind {
                NotifyType::NAT_DETECTION_SOURCE_IP => sources.push(n.data.as_slice()),
                NotifyType::NAT_DETECTION_DESTINATION_IP => destination = Some(n.data.as_slice()),
                _ => {}
            }
        }
        let destination = destination?;
        let remote_hash = hash(spi_i, spi_r, remote);
        Some(Nat {
            peer_behind: !sources.iter().any(|s| *s == remote_hash),
            local_behind: destination != hash(spi_i, spi_r, local),
        })
    }

    /// Whether ESP must go in UDP: a NAT on either side.
    pub fn any(self) -> bool {
        self.peer_behind || self.local_behind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_hashes_say_no_nat_and_a_rewritten_address_says_which_side() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "192.0.2.1:500".parse().unwrap(),
            "198.51.100.2:500".parse().unwrap(),
        );
        let sent = notifications(1, 0, a, b);
        assert_eq!(Nat::detect(&sent, 1, 0, b, a), Some(Nat::default()));
        // A NAT rewrote A's address and port on the way.
        let seen: SocketAddr = "203.0.113.9:4500".parse().unwrap();
        let nat = Nat::detect(&sent, 1, 0, b, seen).unwrap();
        assert!(nat.peer_behind && !nat.local_behind && nat.any());
        // B is reached at another address than its own.
        let nat = Nat::detect(&sent, 1, 0, "10.0.0.2:500".parse().unwrap(), a).unwrap();
        assert!(!nat.peer_behind && nat.local_behind);
        assert_eq!(Nat::detect(&[], 1, 0, b, a), None);
        assert_ne!(hash(1, 0, a), hash(1, 2, a), "the SPIs count");
    }
}
