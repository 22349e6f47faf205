//! What the data path counts: packets by fate, drops by reason.

use std::fmt;

/// Why the data path dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Drop {
    /// Not a packet that can be read: truncated, bad header, bad length.
    Malformed,
    /// No SA for the SPI it carries, or none for a flow that requires one.
    NoSa,
    /// A tunnel-mode packet that no inbound flow selects.
    NoPolicy,
    /// Came through an SA that its inbound flow does not allow.
    PolicyMismatch,
    /// Selected by a `deny` flow.
    Denied,
    /// Seen before, or older than the replay window.
    Replay,
    /// The ICV did not match.
    Authentication,
    /// Decrypted padding that the sender cannot have written.
    Padding,
    /// Too big to send once protected.
    TooBig,
    /// Refused by the enc filter.
    Filtered,
    /// The SA used up its sequence numbers or its byte lifetime.
    Expired,
    /// The SA's keys name an algorithm this runtime lacks.
    Unkeyed,
    /// ESP in UDP for an SA without NAT-T, or the other way round.
    EncapMismatch,
    /// Sent on in the clear until its TTL or hop limit ran out: a route
    /// that leads back into enc0.
    HopLimit,
}

impl Drop {
    pub const ALL: [Drop; 14] = [
        Drop::Malformed,
        Drop::NoSa,
        Drop::NoPolicy,
        Drop::PolicyMismatch,
        Drop::Denied,
        Drop::Replay,
        Drop::Authentication,
        Drop::Padding,
        Drop::TooBig,
        Drop::Filtered,
        Drop::Expired,
        Drop::Unkeyed,
        Drop::EncapMismatch,
        Drop::HopLimit,
    ];

    /// A short name for logs and the statistics dump.
    pub fn name(self) -> &'static str {
        match self {
            Drop::Malformed => "malformed",
            Drop::NoSa => "no SA",
            Drop::NoPolicy => "no policy",
            Drop::PolicyMismatch => "policy mismatch",
            Drop::Denied => "denied",
            Drop::Replay => "replay",
            Drop::Authentication => "authentication failed",
            Drop::Padding => "bad padding",
            Drop::TooBig => "too big",
            Drop::Filtered => "filtered",
            Drop::Expired => "SA expired",
            Drop::Unkeyed => "unusable keys",
            Drop::EncapMismatch => "encapsulation mismatch",
            Drop::HopLimit => "hop limit reached",
        }
    }
}

impl fmt::Display for Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Totals since the runtime started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets protected and sent to peers.
    pub protected_out: u64,
    /// Packets opened and delivered.
    pub protected_in: u64,
    /// Packets sent in the clear because no flow, or a bypass or use flow
    /// without an SA, asked otherwise.
    pub clear_out: u64,
    drops_in: [u64; Drop::ALL.len()],
    drops_out: [u64; Drop::ALL.len()],
}

impl Counters {
    pub fn drop(&mut self, reason: Drop, inbound: bool) {
        let table = if inbound {
            &mut self.drops_in
        } else {
            &mut self.drops_out
        };
        table[reason as usize] += 1;
    }

    /// Drops of one reason, one way.
    pub fn dropped(&self, reason: Drop, inbound: bool) -> u64 {
        if inbound {
            self.drops_in[reason as usize]
        } else {
            self.drops_out[reason as usize]
        }
    }

    /// Every reason with a count, as (reason, inbound, outbound).
    pub fn drops(&self) -> impl Iterator<Item = (Drop, u64, u64)> + '_ {
        Drop::ALL
            .iter()
            .map(|&d| (d, self.drops_in[d as usize], self.drops_out[d as usize]))
            .filter(|&(_, i, o)| i + o != 0)
    }
}

/// What one flow has carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowUsage {
    pub packets: u64,
    pub bytes: u64,
    pub last_use: Option<u64>,
}

impl FlowUsage {
    pub fn count(&mut self, bytes: usize, now: u64) {
        self.packets += 1;
        self.bytes = self.bytes.saturating_add(bytes as u64);
        self.last_use = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_per_reason_and_direction() {
        let mut c = Counters::default();
        c.drop(Drop::Replay, true);
        c.drop(Drop::Replay, true);
        c.drop(Drop::NoSa, false);
        assert_eq!(c.dropped(Drop::Replay, true), 2);
        assert_eq!(c.dropped(Drop::Replay, false), 0);
        let all: Vec<_> = c.drops().collect();
        assert_eq!(all, vec![(Drop::NoSa, 0, 1), (Drop::Replay, 2, 0)]);
        // Every reason has its own slot.
        for (i, d) in Drop::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
    }
}
