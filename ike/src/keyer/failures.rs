//! The log of failed negotiations, held to a line a minute for each peer:
//! a peer that keeps failing (a wrong key, a rule that does not match, an
//! attacker) must not flood the log, yet the operator learns how often
//! it happened.

use std::collections::HashMap;
use std::net::IpAddr;

/// Seconds between two lines about one peer.
pub const EVERY: u64 = 60;
/// Peers remembered at once; past it, new peers' lines are only counted.
const PEERS: usize = 1024;

#[derive(Debug, Default)]
pub struct FailureLog {
    /// By peer: when its last line went out, and how many were held
    /// back since.
    peers: HashMap<IpAddr, (u64, u64)>,
    /// Lines dropped because too many peers failed within a minute.
    pub unlogged: u64,
}

impl FailureLog {
    /// The line to log for `peer` at `now`, if one is due: `what`, with
    /// how many were held back since the last.
    pub fn line(&mut self, peer: IpAddr, now: u64, what: String) -> Option<String> {
        if self.peers.len() >= PEERS && !self.peers.contains_key(&peer) {
            self.peers.retain(|_, (at, _)| now < *at + EVERY);
            if self.peers.len() >= PEERS {
                self.unlogged += 1;
                return None;
            }
        }
        let (at, held) = self.peers.entry(peer).or_insert((0, 0));
        if *at != 0 && now < *at + EVERY {
            *held += 1;
            return None;
        }
        let line = match std::mem::take(held) {
            0 => what,
            n => format!("{what} (and {n} more from this peer since the last line)"),
        };
        // 0 means never: a line at time 0 counts from 1.
        *at = now.max(1);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_a_line_a_minute_with_the_count_of_what_was_held_back() {
        let mut log = FailureLog::default();
        let peer: IpAddr = "192.0.2.9".parse().unwrap();
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            log.line(peer, 100, "failed".into()).as_deref(),
            Some("failed")
        );
        for t in 101..110 {
            assert_eq!(log.line(peer, t, "failed".into()), None);
        }
        // Another peer is not held back by the first.
        assert!(log.line(other, 105, "failed".into()).is_some());
        assert_eq!(
            log.line(peer, 100 + EVERY, "failed".into()).as_deref(),
            Some("failed (and 9 more from this peer since the last line)")
        );
        assert_eq!(log.line(peer, 100 + EVERY + 1, "failed".into()), None);
    }

    #[test]
    fn a_flood_of_peers_leaves_the_log_and_the_memory_bounded() {
        let mut log = FailureLog::default();
        let lines = (0..5000u32)
            .filter_map(|n| log.line(IpAddr::from(n.to_be_bytes()), 7, "failed".into()))
            .count();
        assert_eq!(lines, PEERS);
        assert_eq!(log.unlogged, 5000 - PEERS as u64);
        assert!(log.peers.len() <= PEERS);
        // A minute on, the old entries make room.
        assert!(
            log.line("192.0.2.1".parse().unwrap(), 7 + EVERY, "failed".into())
                .is_some()
        );
    }
}
