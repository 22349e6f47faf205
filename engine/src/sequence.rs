//! The outbound sequence number of an SA (RFC 4303 §3.3.3): it starts at
//! 1 and never wraps. When the space is used up the SA can send no more;
//! the caller expires it so that a key manager negotiates a new one.

/// The next sequence number an SA will send.
#[derive(Debug, Clone)]
pub struct SendSequence {
    next: u64,
    last: u64,
}

impl SendSequence {
    /// A fresh counter; `esn` when the SA uses 64-bit sequence numbers.
    pub fn new(esn: bool) -> SendSequence {
        SendSequence {
            next: 1,
            last: if esn { u64::MAX } else { u64::from(u32::MAX) },
        }
    }

    /// A counter whose next number is `next`: tests start near the end.
    #[cfg(test)]
    pub fn starting_at(next: u64, esn: bool) -> SendSequence {
        SendSequence {
            next,
            ..SendSequence::new(esn)
        }
    }

    /// Takes the number for the next packet, or `None` once every number
    /// has been used.
    pub fn take(&mut self) -> Option<u64> {
        let seq = self.next;
        if seq > self.last || seq == 0 {
            return None;
        }
        // At u64::MAX this wraps to 0, which the check above refuses.
        self.next = seq.wrapping_add(1);
        Some(seq)
    }

    /// The last number taken (0 before the first packet), which PF_KEY
    /// reports as the SA's replay counter.
    pub fn last_sent(&self) -> u64 {
        self.next.wrapping_sub(1).min(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_one() {
        let mut sequence = SendSequence::new(false);
        assert_eq!(sequence.last_sent(), 0);
        assert_eq!(sequence.take(), Some(1));
        assert_eq!(sequence.take(), Some(2));
        assert_eq!(sequence.last_sent(), 2);
    }

    #[test]
    fn without_esn_it_stops_at_32_bits() {
        let mut sequence = SendSequence::new(false);
        sequence.next = u64::from(u32::MAX);
        assert_eq!(sequence.take(), Some(u64::from(u32::MAX)));
        assert_eq!(sequence.take(), None);
        assert_eq!(sequence.take(), None);
        assert_eq!(sequence.last_sent(), u64::from(u32::MAX));
    }

    #[test]
    fn with_esn_it_crosses_32_bits_and_stops_at_64() {
        let mut sequence = SendSequence::new(true);
        sequence.next = u64::from(u32::MAX);
        assert_eq!(sequence.take(), Some(u64::from(u32::MAX)));
        assert_eq!(sequence.take(), Some(1 << 32));
        sequence.next = u64::MAX;
        assert_eq!(sequence.take(), Some(u64::MAX));
        assert_eq!(sequence.take(), None);
        assert_eq!(sequence.last_sent(), u64::MAX);
    }
}
