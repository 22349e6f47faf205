//! Repeated failures, told to the person on call: one line per SA and
//! cause every [`INTERVAL`] seconds at most, naming the SA, the
//! addresses, how many packets, and what most likely causes it (an
//! authentication failure on one SPI means the two ends hold different
//! keys or transforms). A line per packet would drown the log under the
//! very traffic that is failing.
//!
//! The table is bounded: packets with forged SPIs make new subjects at
//! will, so past [`MAX_SUBJECTS`] they are only counted together.

use super::counters::DropReason;
use pfkey::SaType;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Seconds between two lines about the same subject.
pub const INTERVAL: u64 = 10;

/// Subjects tracked one by one.
pub const MAX_SUBJECTS: usize = 256;

/// What failed: the cause, the direction, and the SA or the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subject {
    pub reason: DropReason,
    pub inbound: bool,
    pub satype: SaType,
    /// 0 when no SA was found, or for a flow that has none.
    pub spi: u32,
    /// The outer source of an arrival; none outbound.
    pub src: Option<IpAddr>,
    /// The SA's destination (the peer, outbound).
    pub dst: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// Since the last line about it.
    count: u64,
    /// When the last line about it was given.
    said: Option<u64>,
}

/// The failures seen and not yet told.
#[derive(Debug, Default)]
pub struct Complaints {
    open: BTreeMap<Subject, Tally>,
    /// Failures past the bound, by cause.
    others: u64,
}

impl Complaints {
    /// One more packet dropped for `subject`.
    pub fn note(&mut self, subject: Subject) {
        if self.open.len() >= MAX_SUBJECTS && !self.open.contains_key(&subject) {
            self.others += 1;
            return;
        }
        self.open.entry(subject).or_default().count += 1;
    }

    /// The lines due at `now`: each subject with failures since its last
    /// line, if that line is [`INTERVAL`] seconds old (or there was none).
    /// Subjects quiet for an interval are forgotten.
    pub fn report(&mut self, now: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let due = |said: Option<u64>| said.is_none_or(|t| now >= t + INTERVAL);
        for (subject, tally) in &mut self.open {
            if tally.count > 0 && due(tally.said) {
                lines.push(line(subject, tally.count, tally.said.map(|t| now - t)));
                tally.count = 0;
                tally.said = Some(now);
            }
        }
        self.open
            .retain(|_, t| t.count > 0 || t.said.is_some_and(|s| now < s + INTERVAL));
        if self.others > 0 {
            lines.push(format!(
                "{} more packets dropped for other SAs and addresses than those above \
                 (too many to tell apart)",
                self.others
            ));
            self.others = 0;
        }
        lines
    }
}

/// One line: what, where, how many, and the likely cause.
fn line(s: &Subject, count: u64, since: Option<u64>) -> String {
    let mut text = String::new();
    let protocol = match s.satype {
        SaType::AH => "ah",
        SaType::X_IPCOMP => "ipcomp",
        SaType::X_IPIP => "ipip",
        _ => "esp",
    };
    let direction = if s.inbound { "in" } else { "out" };
    let _ = write!(text, "{protocol} {direction}");
    if s.spi != 0 {
        let _ = write!(text, " spi {:#010x}", s.spi);
    }
    if let Some(src) = s.src {
        let _ = write!(text, " from {src}");
    }
    if let Some(dst) = s.dst {
        let _ = write!(text, " to {dst}");
    }
    let plural = if count == 1 { "" } else { "s" };
    let _ = write!(text, ": {count} packet{plural} dropped ({})", s.reason);
    match since {
        Some(seconds) => {
            let _ = write!(text, " in the last {seconds} s");
        }
        None => text.push_str(" since the last report"),
    }
    let _ = write!(text, "; {}", cause(s));
    text
}

/// What most likely makes packets fail this way.
fn cause(s: &Subject) -> &'static str {
    match (s.reason, s.inbound) {
        (DropReason::Authentication, _) => {
            "the two ends hold different keys or transforms for this SA"
        }
        (DropReason::Padding, _) => {
            "the two ends hold different encryption keys or ciphers for this SA"
        }
        (DropReason::NoSa, true) => {
            "the peer sends on an SA this host does not have: not loaded here, \
             or deleted here and not there"
        }
        (DropReason::NoSa, false) => {
            "a flow requires an SA to this peer and there is none: load the SAs, \
             or check that the key manager is running"
        }
        (DropReason::Replay, _) => {
            "replayed, or delayed beyond the replay window; a peer that restarted \
             with the same SA reuses sequence numbers and must be given new SAs"
        }
        (DropReason::PolicyMismatch, _) => {
            "it came from another address than the SA's peer, or no inbound flow \
             allows it through this SA"
        }
        (DropReason::NoPolicy, _) => "what came out of the tunnel matches no inbound flow",
        (DropReason::EncapMismatch, _) => "the ends disagree on ESP in UDP (NAT traversal)",
        (DropReason::Unkeyed, _) => "the SA names an algorithm or key this host cannot use",
        (DropReason::Expired, _) => "the SA ran out of sequence numbers or bytes: it needs new SAs",
        (DropReason::TooBig, _) => "packets do not fit the path once protected",
        (DropReason::Denied, _) => "a deny flow selects them",
        (DropReason::HopLimit, _) => "a route leads them back into the enc interface",
        (DropReason::Filtered, _) => "the enc filter refuses them",
        (DropReason::Malformed, _) => "they cannot be read: damaged or not IPsec",
        (DropReason::Truncated | DropReason::BadLength, _) => {
            "they end before their headers say: cut short on the way, or forged"
        }
        (DropReason::BadVersion | DropReason::BadChecksum, _) => {
            "their IP headers are damaged, or not IP at all"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_failure(spi: u32) -> Subject {
        Subject {
            reason: DropReason::Authentication,
            inbound: true,
            satype: SaType::ESP,
            spi,
            src: Some("192.0.2.2".parse().unwrap()),
            dst: Some("192.0.2.1".parse().unwrap()),
        }
    }

    #[test]
    fn one_line_per_subject_and_interval_naming_the_cause() {
        let mut c = Complaints::default();
        for _ in 0..57 {
            c.note(auth_failure(0x1001));
        }
        let lines = c.report(100);
        assert_eq!(
            lines,
            [
                "esp in spi 0x00001001 from 192.0.2.2 to 192.0.2.1: 57 packets dropped \
              (authentication failed) since the last report; the two ends hold different \
              keys or transforms for this SA"
            ]
        );
        // More failures within the interval wait for it.
        c.note(auth_failure(0x1001));
        assert!(c.report(105).is_empty());
        let later = c.report(110);
        assert_eq!(later.len(), 1);
        assert!(later[0].contains(": 1 packet dropped (authentication failed) in the last 10 s"));
        // Quiet subjects are forgotten.
        assert!(c.report(130).is_empty());
        assert!(c.open.is_empty());
    }

    #[test]
    fn forged_spis_cannot_grow_the_table() {
        let mut c = Complaints::default();
        for spi in 0..10_000 {
            c.note(auth_failure(spi));
        }
        assert_eq!(c.open.len(), MAX_SUBJECTS);
        let lines = c.report(0);
        assert_eq!(lines.len(), MAX_SUBJECTS + 1);
        assert!(lines[MAX_SUBJECTS].starts_with("9744 more packets dropped"));
    }
}
