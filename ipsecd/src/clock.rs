//! The daemon's time: seconds that read like the epoch's and never jump.
//!
//! The engine counts SA lifetimes from the moments an SA was added and
//! first used, and reports those moments to key managers as seconds since
//! the epoch. Taken from the wall clock, a step of that clock (an NTP
//! correction, an operator's `date -s`) would move every deadline at once:
//! a day forward expires every SA together, a day back keeps each a day
//! too long. So the wall clock is read once, when the daemon starts, and
//! time goes on from there by the boot-time clock, which only moves
//! forward and counts the time the host spends suspended, as keys age
//! then too.

use rustix::time::{ClockId, clock_gettime};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch as they were at start, moved on by the
/// boot-time clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch_at_start: u64,
    boot_at_start: u64,
}

impl Clock {
    /// Reads the wall clock, once.
    pub fn start() -> Clock {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Clock {
            epoch_at_start: epoch,
            boot_at_start: boot_seconds(),
        }
    }

    /// Now, in seconds since the epoch as this clock counts them.
    pub fn now(&self) -> u64 {
        self.at(boot_seconds())
    }

    /// The time when the boot-time clock reads `boot` seconds.
    fn at(&self, boot: u64) -> u64 {
        self.epoch_at_start
            .saturating_add(boot.saturating_sub(self.boot_at_start))
    }
}

fn boot_seconds() -> u64 {
    u64::try_from(clock_gettime(ClockId::Boottime).tv_sec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_with_the_boot_clock_from_the_wall_clock_at_start() {
        let clock = Clock {
            epoch_at_start: 1_800_000_000,
            boot_at_start: 500,
        };
        assert_eq!(clock.at(500), 1_800_000_000);
        assert_eq!(clock.at(3_100), 1_800_002_600);
        // A boot clock that reads less than at start (it cannot) does not
        // take time back.
        assert_eq!(clock.at(0), 1_800_000_000);
        // The real clocks: the first reading is the wall clock's.
        let real = Clock::start();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(real.now().abs_diff(wall) <= 1);
    }
}
