//! What the data path counts: packets by fate, drops by reason.

use std::fmt;

/// Why the data path dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Not a packet that can be read for another reason than those below:
    /// a bundle nested too deep, an inner packet of the wrong family,
    /// compressed data that does not inflate.
    Malformed,
    /// The packet ends before a header, or the length it declares, does.
    Truncated,
    /// A length field contradicts itself or the packet.
    BadLength,
    /// An IP version field that names neither IPv4 nor IPv6.
    BadVersion,
    /// An IPv4 header checksum that does not match.
    BadChecksum,
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

impl DropReason {
    pub const ALL: [DropReason; 18] = [
        DropReason::Malformed,
        DropReason::Truncated,
        DropReason::BadLength,
        DropReason::BadVersion,
        DropReason::BadChecksum,
        DropReason::NoSa,
        DropReason::NoPolicy,
        DropReason::PolicyMismatch,
        DropReason::Denied,
        DropReason::Replay,
        DropReason::Authentication,
        DropReason::Padding,
        DropReason::TooBig,
        DropReason::Filtered,
        DropReason::Expired,
        DropReason::Unkeyed,
        DropReason::EncapMismatch,
        DropReason::HopLimit,
    ];

    /// A short name for logs and the statistics dump.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Truncated => "truncated",
            DropReason::BadLength => "bad length",
            DropReason::BadVersion => "bad IP version",
            DropReason::BadChecksum => "bad header checksum",
            DropReason::NoSa => "no SA",
            DropReason::NoPolicy => "no policy",
            DropReason::PolicyMismatch => "policy mismatch",
            DropReason::Denied => "denied",
            DropReason::Replay => "replay",
            DropReason::Authentication => "authentication failed",
            DropReason::Padding => "bad padding",
            DropReason::TooBig => "too big",
            DropReason::Filtered => "filtered",
            DropReason::Expired => "SA expired",
            DropReason::Unkeyed => "unusable keys",
            DropReason::EncapMismatch => "encapsulation mismatch",
            DropReason::HopLimit => "hop limit reached",
        }
    }
}

impl fmt::Display for DropReason {
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
    drops_in: [u64; DropReason::ALL.len()],
    drops_out: [u64; DropReason::ALL.len()],
}

impl Counters {
    pub fn drop(&mut self, reason: DropReason, inbound: bool) {
        let table = if inbound {
            &mut self.drops_in
        } else {
            &mut self.drops_out
        };
        table[reason as usize] += 1;
    }

    /// Drops of one reason, one way.
    pub fn dropped(&self, reason: DropReason, inbound: bool) -> u64 {
        if inbound {
            self.drops_in[reason as usize]
        } else {
            self.drops_out[reason as usize]
        }
    }

    /// Every reason with a count, as (reason, inbound, outbound).
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64, u64)> + '_ {
        DropReason::ALL
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
        c.drop(DropReason::Replay, true);
        c.drop(DropReason::Replay, true);
        c.drop(DropReason::NoSa, false);
        assert_eq!(c.dropped(DropReason::Replay, true), 2);
        assert_eq!(c.dropped(DropReason::Replay, false), 0);
        let all: Vec<_> = c.drops().collect();
        assert_eq!(
            all,
            vec![(DropReason::NoSa, 0, 1), (DropReason::Replay, 2, 0)]
        );
        // Every reason has its own slot.
        for (i, d) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
    }
}
