//! The inbound anti-replay window (RFC 4303 §3.4.3 and Appendix A), with
//! extended sequence numbers.
//!
//! As on OpenBSD, the window is a fixed 2100 packets and the PF_KEY replay
//! byte only switches it on. The bitmap is a ring of 64-bit blocks with
//! one spare block (RFC 6479), so advancing clears whole blocks instead of
//! shifting bits. Checking and committing are separate steps: a packet is
//! checked before its ICV is verified (cheap rejection) and committed only
//! after, so a forged packet can never move the window.

/// How many packets behind the highest one the window still accepts.
pub const WINDOW: u64 = 2100;

const BLOCK_BITS: u64 = 64;
// Enough blocks to hold the window, plus one that may be partly stale.
const BLOCKS: usize = WINDOW.div_ceil(BLOCK_BITS) as usize + 1;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Replay {
    /// Sequence number zero, which senders never use, or one whose 64-bit
    /// form would wrap around.
    Zero,
    /// Older than the window.
    TooOld,
    /// Seen already.
    Duplicate,
}

/// The receive window of one SA.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    esn: bool,
    /// The highest sequence number committed so far (0 before the first).
    top: u64,
    blocks: [u64; BLOCKS],
}

impl ReplayWindow {
    /// An empty window; `esn` when the SA uses 64-bit sequence numbers.
    pub fn new(esn: bool) -> ReplayWindow {
        ReplayWindow {
            esn,
            top: 0,
            blocks: [0; BLOCKS],
        }
    }

    /// The highest sequence number committed so far.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Checks the low 32 bits a packet carries, without changing anything.
    /// On success returns the full sequence number, which with ESN includes
    /// the inferred high bits that the ICV covers.
    pub fn check(&self, low: u32) -> Result<u64, Replay> {
        let seq = if self.esn {
            self.infer(low)?
        } else {
            u64::from(low)
        };
        self.check_full(seq)?;
        Ok(seq)
    }

    /// Marks a sequence number (from [`ReplayWindow::check`]) as received,
    /// once the packet proved authentic. It is checked again: another
    /// packet with the same number may have been committed in between.
    pub fn commit(&mut self, seq: u64) -> Result<(), Replay> {
        self.check_full(seq)?;
        if seq > self.top {
            self.advance(seq);
        }
        let (block, bit) = position(seq);
        self.blocks[block] |= bit;
        Ok(())
    }

    fn check_full(&self, seq: u64) -> Result<(), Replay> {
        if seq == 0 {
            return Err(Replay::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= WINDOW {
            return Err(Replay::TooOld);
        }
        let (block, bit) = position(seq);
        if self.blocks[block] & bit != 0 {
            return Err(Replay::Duplicate);
        }
        Ok(())
    }

    /// Clears the blocks between the old top and `seq`, whose block may
    /// hold bits of numbers a whole ring ago.
    fn advance(&mut self, seq: u64) {
        let old = self.top / BLOCK_BITS;
        let new = seq / BLOCK_BITS;
        if new - old >= BLOCKS as u64 {
            self.blocks = [0; BLOCKS];
        } else {
            for index in old + 1..=new {
                self.blocks[(index % BLOCKS as u64) as usize] = 0;
            }
        }
        self.top = seq;
    }

    /// RFC 4303 Appendix A2.1: which 2^32 subspace a low half belongs to,
    /// judged from where the window sits.
    fn infer(&self, low: u32) -> Result<u64, Replay> {
        let top_low = self.top as u32;
        let top_high = (self.top >> 32) as u32;
        // The low half of the window's bottom edge, modulo 2^32.
        let bottom = top_low.wrapping_sub(WINDOW as u32 - 1);
        let high = if u64::from(top_low) >= WINDOW - 1 {
            // The window lies within one subspace: anything below it must
            // come from the next one.
            if low >= bottom {
                Some(top_high)
            } else {
                top_high.checked_add(1)
            }
        } else if low >= bottom {
            // The window straddles a subspace boundary, and this number
            // falls in the part before it.
            top_high.checked_sub(1)
        } else {
            Some(top_high)
        };
        match high {
            Some(high) => Ok((u64::from(high) << 32) | u64::from(low)),
            // Before the first subspace (too old) or past the last (wrapped).
            None if top_high == 0 => Err(Replay::TooOld),
            None => Err(Replay::Zero),
        }
    }
}

fn position(seq: u64) -> (usize, u64) {
    let block = ((seq / BLOCK_BITS) % BLOCKS as u64) as usize;
    (block, 1 << (seq % BLOCK_BITS))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn receive(window: &mut ReplayWindow, low: u32) -> Result<u64, Replay> {
        let seq = window.check(low)?;
        window.commit(seq)?;
        Ok(seq)
    }

    #[test]
    fn first_packet_is_one_and_zero_is_refused() {
        let mut window = ReplayWindow::new(false);
        assert_eq!(receive(&mut window, 0), Err(Replay::Zero));
        assert_eq!(receive(&mut window, 1), Ok(1));
        assert_eq!(receive(&mut window, 1), Err(Replay::Duplicate));
        assert_eq!(window.top(), 1);
    }

    #[test]
    fn late_packets_inside_the_window_are_taken_once() {
        let mut window = ReplayWindow::new(false);
        assert_eq!(receive(&mut window, 3000), Ok(3000));
        assert_eq!(receive(&mut window, 901), Ok(901));
        assert_eq!(receive(&mut window, 901), Err(Replay::Duplicate));
        // Exactly a window behind the top is too old.
        assert_eq!(receive(&mut window, 900), Err(Replay::TooOld));
        assert_eq!(receive(&mut window, 2999), Ok(2999));
        assert_eq!(window.top(), 3000);
    }

    #[test]
    fn check_does_not_commit() {
        let mut window = ReplayWindow::new(false);
        assert_eq!(window.check(5), Ok(5));
        assert_eq!(window.check(5), Ok(5));
        assert_eq!(window.top(), 0);
        window.commit(5).unwrap();
        assert_eq!(window.check(5), Err(Replay::Duplicate));
        // A second commit of the same number, checked before the first
        // landed, is refused.
        assert_eq!(window.commit(5), Err(Replay::Duplicate));
    }

    #[test]
    fn a_jump_of_a_whole_ring_leaves_no_stale_bits() {
        let mut window = ReplayWindow::new(false);
        let ring = BLOCKS as u32 * 64;
        assert_eq!(receive(&mut window, 10), Ok(10));
        // The same bit position one ring later, and just past the top.
        assert_eq!(receive(&mut window, 10 + ring), Ok(u64::from(10 + ring)));
        assert_eq!(
            receive(&mut window, 11 + ring - 64),
            Ok(u64::from(11 + ring - 64))
        );
        assert_eq!(receive(&mut window, 10), Err(Replay::TooOld));
    }

    #[test]
    fn esn_crosses_into_the_next_subspace() {
        let mut window = ReplayWindow::new(true);
        // Far enough into subspace 0 for the window not to straddle zero.
        window.top = u64::from(u32::MAX - 100);
        assert_eq!(
            receive(&mut window, u32::MAX - 9),
            Ok(u64::from(u32::MAX - 9))
        );
        // The low half wrapped: this is 2^32 + 5.
        assert_eq!(receive(&mut window, 5), Ok((1 << 32) + 5));
        // A late packet from before the wrap still belongs to subspace 0.
        assert_eq!(
            receive(&mut window, u32::MAX - 20),
            Ok(u64::from(u32::MAX - 20))
        );
        assert_eq!(receive(&mut window, u32::MAX - 9), Err(Replay::Duplicate));
        // Zero is an ordinary number in subspace 1.
        assert_eq!(receive(&mut window, 0), Ok(1 << 32));
    }

    #[test]
    fn a_late_packet_does_not_see_bits_from_a_ring_ago() {
        let mut window = ReplayWindow::new(false);
        let ring = BLOCKS as u32 * 64;
        assert_eq!(receive(&mut window, 10), Ok(10));
        assert_eq!(receive(&mut window, 2000), Ok(2000));
        // Into the ring slot that held 10, by a jump shorter than the ring.
        assert_eq!(receive(&mut window, ring + 20), Ok(u64::from(ring + 20)));
        assert_eq!(receive(&mut window, ring + 10), Ok(u64::from(ring + 10)));
    }

    #[test]
    fn esn_window_ending_exactly_at_a_subspace_start() {
        // The window's bottom edge is the first number of subspace 1, so
        // everything belongs to subspace 1 or later.
        let mut window = ReplayWindow::new(true);
        window.top = (1 << 32) + WINDOW - 1;
        assert_eq!(window.check(100), Ok((1 << 32) + 100));
        assert_eq!(window.check(0), Ok(1 << 32));
        // One step lower and the window straddles the boundary.
        window.top -= 1;
        assert_eq!(window.check(u32::MAX), Ok(u64::from(u32::MAX)));
    }

    #[test]
    fn esn_start_refuses_the_end_of_the_first_subspace() {
        // With nothing received, the window straddles zero; numbers just
        // below 2^32 would belong to a subspace before the first.
        let window = ReplayWindow::new(true);
        assert_eq!(window.check(u32::MAX), Err(Replay::TooOld));
        assert_eq!(window.check(1), Ok(1));
    }

    #[test]
    fn without_esn_there_is_no_next_subspace() {
        let mut window = ReplayWindow::new(false);
        assert_eq!(receive(&mut window, u32::MAX), Ok(u64::from(u32::MAX)));
        assert_eq!(receive(&mut window, 5), Err(Replay::TooOld));
    }

    #[test]
    fn esn_refuses_to_wrap_the_64_bit_space() {
        let mut window = ReplayWindow::new(true);
        window.top = u64::MAX - 10;
        assert_eq!(window.check(5), Err(Replay::Zero));
    }

    /// What the window must do, with no bitmap: every number ever taken.
    struct Model {
        top: u64,
        seen: HashSet<u64>,
    }

    impl Model {
        fn receive(&mut self, seq: u64) -> Result<(), Replay> {
            if seq == 0 {
                return Err(Replay::Zero);
            }
            if seq <= self.top && self.top - seq >= WINDOW {
                return Err(Replay::TooOld);
            }
            if !self.seen.insert(seq) {
                return Err(Replay::Duplicate);
            }
            self.top = self.top.max(seq);
            Ok(())
        }
    }

    fn start() -> impl Strategy<Value = u64> {
        // Near the edges of a subspace, where inference is hardest, or
        // anywhere.
        let low = prop_oneof![0u64..5000, (1u64 << 32) - 5000..(1 << 32), 0u64..(1 << 32)];
        (0u64..3, low).prop_map(|(high, low)| (high << 32) | low)
    }

    fn step() -> impl Strategy<Value = i64> {
        // Mostly small moves, so that late packets land on bits set a
        // ring ago; sometimes jumps past the whole window.
        prop_oneof![3 => -300i64..300, 1 => -2500i64..4000]
    }

    proptest! {
        #[test]
        fn matches_the_model(esn: bool, start in start(), steps in prop::collection::vec(step(), 1..600)) {
            let mut window = ReplayWindow::new(esn);
            // Without ESN only the first subspace exists.
            let start = if esn { start } else { start % (1 << 32) };
            window.top = start;
            let mut model = Model { top: start, seen: HashSet::new() };
            for step in steps {
                let Some(seq) = model.top.checked_add_signed(step) else { continue };
                if !esn && seq > u64::from(u32::MAX) {
                    continue;
                }
                // With ESN, numbers further back than the window cannot be
                // told from future ones (that is the protocol's premise);
                // the model knows the truth, so compare only where the low
                // half is unambiguous.
                if esn && seq + (WINDOW - 1) < model.top {
                    continue;
                }
                if esn && model.top < WINDOW - 1 && seq == 0 {
                    continue;
                }
                let expected = model.receive(seq);
                let got = receive(&mut window, seq as u32).map(|full| {
                    assert_eq!(full, seq);
                });
                prop_assert_eq!(got, expected, "seq {}", seq);
            }
        }
    }
}
