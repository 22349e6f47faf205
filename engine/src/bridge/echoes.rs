//! Frames the bridge sent a moment ago. Two of its ports on one segment,
//! or a loop through other bridges, bring every frame it sends back to
//! it; forwarded again, it would circle at the speed of the machine for
//! ever. A frame that comes back within [`WINDOW_MS`] of being sent,
//! byte for byte, is an echo and is dropped, so each frame crosses the
//! bridge at most once per port it arrives on.
//!
//! The price is that a host's own identical frame sent again within the
//! window is dropped too. IPv4 gives every packet a new identification
//! and TCP timestamps move each millisecond, so such twins are rare.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// How long a sent frame is remembered. A loop through the kernel and
/// back takes microseconds.
pub const WINDOW_MS: u64 = 20;

/// Frames remembered. At 100,000 frames a second the window spans more
/// frames than this; an echo whose slot was taken meanwhile goes round
/// once more and is caught then, as a loop's round takes microseconds.
const SLOTS: usize = 256;

#[derive(Debug, Clone)]
pub struct Echoes {
    /// Randomly keyed: who sends frames cannot make two collide at will.
    hasher: RandomState,
    slots: Vec<(u64, u64)>,
    next: usize,
}

impl Default for Echoes {
    fn default() -> Echoes {
        Echoes {
            hasher: RandomState::new(),
            slots: vec![(0, 0); SLOTS],
            next: 0,
        }
    }
}

impl Echoes {
    /// Whether `frame` was sent within the window before `now_ms`.
    pub fn is_echo(&self, frame: &[u8], now_ms: u64) -> bool {
        let hash = self.hasher.hash_one(frame);
        self.slots
            .iter()
            .any(|&(h, at)| h == hash && at != 0 && now_ms.saturating_sub(at) < WINDOW_MS)
    }

    /// Remembers that `frame` is being sent at `now_ms`.
    pub fn sent(&mut self, frame: &[u8], now_ms: u64) {
        let hash = self.hasher.hash_one(frame);
        // 0 marks an empty slot; a clock that starts at 0 loses nothing
        // but the first millisecond's memory.
        self.slots[self.next] = (hash, now_ms.max(1));
        self.next = (self.next + 1) % SLOTS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_sent_is_an_echo_for_the_window_only() {
        let mut e = Echoes::default();
        e.sent(b"frame one", 1000);
        assert!(e.is_echo(b"frame one", 1000));
        assert!(e.is_echo(b"frame one", 1000 + WINDOW_MS - 1));
        assert!(!e.is_echo(b"frame one", 1000 + WINDOW_MS));
        assert!(!e.is_echo(b"frame two", 1000));
        // Older frames give way to newer ones.
        for n in 0..SLOTS as u32 {
            e.sent(&n.to_be_bytes(), 1001);
        }
        assert!(!e.is_echo(b"frame one", 1001));
    }
}
