//! The SA database: SAs by (destination, SPI, protocol), with the other
//! ways the kernel finds them (by destination or source, for policy
//! checks), SPI reservation for key managers, bundles, and lifetimes.
//!
//! Time is passed in (seconds); nothing here reads a clock.

use crate::crypto::KeyError;
use crate::hash::FastHash;
pub use crate::sa::{Expiry, SaId, SecurityAssociation, State, Usage};
use crate::spd::Selector;
use crate::xform::Live;
use pfkey::validate::Errno;
use pfkey::{Lifetime, SaType};
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::IpAddr;

/// How long a reserved SPI waits for its key (OpenBSD's embryonic SA
/// lifetime).
pub const LARVAL_LIFETIME: u64 = 60;

/// SPIs 1 to 255 are reserved; 0 means none.
pub const SPI_RESERVED_MAX: u32 = 255;

/// A timer: when, which SA, which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: u64,
    id: SaId,
    kind: TimerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    SoftAdd,
    HardAdd,
    SoftUse,
    HardUse,
    Larval,
}

#[derive(Debug, Default)]
pub struct Sad {
    sas: HashMap<SaId, SecurityAssociation, FastHash>,
    /// SAs by (destination, protocol), for outbound policy checks.
    by_dst: HashMap<(IpAddr, SaType), HashSet<SaId, FastHash>, FastHash>,
    /// Earliest first; stale timers are skipped when they come up.
    timers: BinaryHeap<Reverse<Timer>>,
    /// The keyed state of SAs that have carried packets. It goes (and its
    /// keys are zeroized) with the SA.
    live: HashMap<SaId, Live, FastHash>,
    /// How many SAs were ever added: the source of [`Usage::order`].
    added: u64,
    /// How many are larval (reserved by GETSPI, not keyed yet).
    larval: usize,
}

impl Sad {
    pub fn new() -> Sad {
        Sad::default()
    }

    pub fn len(&self) -> usize {
        self.sas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    /// How many SAs are reserved and not keyed yet.
    pub fn larval(&self) -> usize {
        self.larval
    }

    pub fn get(&self, id: &SaId) -> Option<&SecurityAssociation> {
        self.sas.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SecurityAssociation> {
        self.sas.values()
    }

    /// A mature SA with its keyed state, which is made on first use.
    /// `Err` when the keys are unusable here (an algorithm this runtime
    /// does not have).
    pub fn live_mut(
        &mut self,
        id: &SaId,
    ) -> Option<Result<(&mut SecurityAssociation, &mut Live), KeyError>> {
        let sa = self
            .sas
            .get_mut(id)
            .filter(|sa| sa.state == State::Mature)?;
        let live = match self.live.entry(*id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => match Live::new(sa) {
                Ok(live) => e.insert(live),
                Err(err) => return Some(Err(err)),
            },
        };
        Some(Ok((sa, live)))
    }

    /// The SA's replay counter as PF_KEY reports it: the last sequence
    /// number sent, or the highest received (an SA carries one way).
    pub fn replay_count(&self, id: &SaId) -> u64 {
        self.live.get(id).map_or(0, |l| {
            let received = l.replay.as_ref().map_or(0, |w| w.top());
            l.sequence.last_sent().max(received)
        })
    }

    /// Counts a packet the data path dropped on an SA.
    pub fn count_drop(&mut self, id: &SaId, inbound: bool) {
        if let Some(sa) = self.sas.get_mut(id) {
            if inbound {
                sa.usage.drops_in += 1;
            } else {
                sa.usage.drops_out += 1;
            }
        }
    }

    /// The keyed state of an SA that has carried packets.
    pub fn live(&self, id: &SaId) -> Option<&Live> {
        self.live.get(id)
    }

    /// Reserves an SPI in `[min, max]` toward `dst` for a key manager
    /// (GETSPI): a larval SA that goes away after [`LARVAL_LIFETIME`]
    /// unless updated. `random` supplies candidates.
    pub fn reserve_spi(
        &mut self,
        satype: SaType,
        src: IpAddr,
        dst: IpAddr,
        (min, max): (u32, u32),
        now: u64,
        mut random: impl FnMut() -> u32,
    ) -> Result<SaId, Errno> {
        let (mut min, mut max) = (min.min(max), min.max(max));
        if satype == SaType::X_IPCOMP {
            // CPIs are 16 bits, and 61440 and up are private.
            max = max.min(61439);
        }
        min = min.max(SPI_RESERVED_MAX + 1);
        if min > max {
            return Err(Errno::EINVAL);
        }
        let span = u64::from(max - min) + 1;
        let tries = if min == max { 1 } else { 100 };
        for _ in 0..tries {
            let spi = if min == max {
                min
            } else {
                min + (u64::from(random()) % span) as u32
            };
            let id = SaId { dst, spi, satype };
            if self.sas.contains_key(&id) {
                continue;
            }
            let mut sa = SecurityAssociation::new(id, src, now);
            sa.state = State::Larval;
            self.larval += 1;
            self.index(id);
            self.sas.insert(id, sa);
            self.arm(now + LARVAL_LIFETIME, id, TimerKind::Larval);
            return Ok(id);
        }
        Err(Errno::EEXIST)
    }

    /// Adds a mature SA (ADD); `EEXIST` if its (dst, SPI, protocol) is
    /// taken.
    pub fn add(&mut self, sa: SecurityAssociation, now: u64) -> Result<(), Errno> {
        if self.sas.contains_key(&sa.id) {
            return Err(Errno::EEXIST);
        }
        self.insert(sa, now);
        Ok(())
    }

    fn insert(&mut self, mut sa: SecurityAssociation, now: u64) {
        sa.usage.added = now;
        self.added += 1;
        sa.usage.order = self.added;
        let id = sa.id;
        self.live.remove(&id);
        for (limit, kind) in [
            (&sa.soft, TimerKind::SoftAdd),
            (&sa.hard, TimerKind::HardAdd),
        ] {
            if let Some(l) = limit
                && l.addtime != 0
            {
                let at = now.saturating_add(l.addtime);
                self.timers.push(Reverse(Timer { at, id, kind }));
            }
        }
        self.index(id);
        self.sas.insert(id, sa);
    }

    fn index(&mut self, id: SaId) {
        self.by_dst
            .entry((id.dst, id.satype))
            .or_default()
            .insert(id);
    }

    fn unindex(&mut self, id: &SaId) {
        let key = (id.dst, id.satype);
        if let Some(set) = self.by_dst.get_mut(&key) {
            set.remove(id);
            if set.is_empty() {
                self.by_dst.remove(&key);
            }
        }
    }

    fn arm(&mut self, at: u64, id: SaId, kind: TimerKind) {
        self.timers.push(Reverse(Timer { at, id, kind }));
    }

    /// Keys a reserved SPI, or changes a mature SA's lifetimes (UPDATE).
    /// A larval SA is replaced by `sa` whole; a mature one may not change
    /// its keys.
    pub fn update(&mut self, sa: SecurityAssociation, now: u64) -> Result<(), Errno> {
        let existing = self.sas.get_mut(&sa.id).ok_or(Errno::ESRCH)?;
        match existing.state {
            State::Larval => {
                self.sas.remove(&sa.id);
                self.larval -= 1;
                self.insert(sa, now);
            }
            State::Mature => {
                if sa.auth_key.is_some()
                    || sa.enc_key.is_some()
                    || sa.src_id.is_some()
                    || sa.dst_id.is_some()
                {
                    return Err(Errno::EINVAL);
                }
                existing.hard = sa.hard.or(existing.hard);
                existing.soft = sa.soft.or(existing.soft);
                if sa.udpencap_port.is_some() {
                    existing.udpencap_port = sa.udpencap_port;
                }
                let (soft, hard) = (existing.soft, existing.hard);
                // Lifetimes count from when the SA was added, whenever
                // they are set (RFC 2367 §2.3.4), as expiry checks them.
                let added = existing.usage.added;
                let id = sa.id;
                for (limit, kind) in [(soft, TimerKind::SoftAdd), (hard, TimerKind::HardAdd)] {
                    if let Some(l) = limit
                        && l.addtime != 0
                    {
                        self.arm(added.saturating_add(l.addtime), id, kind);
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes an SA (DELETE, or a hard expiry), unlinking its bundle.
    pub fn delete(&mut self, id: &SaId) -> Option<SecurityAssociation> {
        let sa = self.sas.remove(id)?;
        if sa.state == State::Larval {
            self.larval -= 1;
        }
        self.live.remove(id);
        self.unindex(id);
        if let Some(next) = sa.next.and_then(|n| self.sas.get_mut(&n)) {
            next.prev = None;
        }
        if let Some(prev) = sa.prev.and_then(|p| self.sas.get_mut(&p)) {
            prev.next = None;
        }
        self.compact();
        Some(sa)
    }

    /// Gives memory back once the tables are mostly empty: maps keep
    /// their largest size otherwise, and a burst of SAs that came and went
    /// would hold on to it for the life of the daemon.
    fn compact(&mut self) {
        fn shrink<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V, FastHash>) {
            if map.capacity() > 64 && map.len() * 4 < map.capacity() {
                map.shrink_to(map.len() * 2);
            }
        }
        shrink(&mut self.sas);
        shrink(&mut self.live);
        shrink(&mut self.by_dst);
        // Timers of SAs that are gone are skipped when they come due; drop
        // them before they outnumber the SAs.
        if self.timers.len() > 64 && self.timers.len() > 8 * self.sas.len() {
            let sas = &self.sas;
            self.timers.retain(|Reverse(t)| sas.contains_key(&t.id));
            self.timers.shrink_to(self.timers.len() * 2);
        }
    }

    /// Removes every SA, or those of one type (FLUSH).
    pub fn flush(&mut self, satype: Option<SaType>) {
        match satype {
            None => {
                self.sas.clear();
                self.live.clear();
                self.by_dst.clear();
                self.timers.clear();
                self.larval = 0;
                self.compact();
            }
            Some(t) => {
                let doomed: Vec<SaId> = self
                    .sas
                    .keys()
                    .filter(|id| id.satype == t)
                    .copied()
                    .collect();
                for id in doomed {
                    self.delete(&id);
                }
            }
        }
    }

    /// Chains `second` after `first` (GRPSPIS). `ESRCH` if either is
    /// missing or the link would close a loop.
    pub fn group(&mut self, first: SaId, second: SaId) -> Result<(), Errno> {
        if !self.sas.contains_key(&first) || !self.sas.contains_key(&second) || first == second {
            return Err(Errno::ESRCH);
        }
        // Following `second`'s chain must not lead back to `first`.
        let mut cursor = Some(second);
        while let Some(id) = cursor {
            if id == first {
                return Err(Errno::ESRCH);
            }
            cursor = self.sas.get(&id).and_then(|sa| sa.next);
        }
        let old_next = self.sas.get(&first).and_then(|sa| sa.next);
        if let Some(sa) = old_next.and_then(|n| self.sas.get_mut(&n)) {
            sa.prev = None;
        }
        let old_prev = self.sas.get(&second).and_then(|sa| sa.prev);
        if let Some(sa) = old_prev.and_then(|p| self.sas.get_mut(&p)) {
            sa.next = None;
        }
        if let Some(sa) = self.sas.get_mut(&first) {
            sa.next = Some(second);
        }
        if let Some(sa) = self.sas.get_mut(&second) {
            sa.prev = Some(first);
        }
        Ok(())
    }

    /// Counts a packet of `bytes` through an SA, in or out. Returns the
    /// expiry it caused, with the SA as it was: a hard byte limit deletes
    /// the SA, a soft one is reported once. The first use arms the
    /// first-use timers.
    pub fn account(
        &mut self,
        id: &SaId,
        bytes: u64,
        inbound: bool,
        now: u64,
    ) -> Option<(SecurityAssociation, Expiry)> {
        let sa = self.sas.get_mut(id)?;
        if sa.state != State::Mature {
            return None;
        }
        let first = sa.usage.first_use.is_none();
        sa.usage.first_use.get_or_insert(now);
        sa.usage.last_use = Some(now);
        sa.usage.bytes = sa.usage.bytes.saturating_add(bytes);
        if inbound {
            sa.usage.packets_in += 1;
            sa.usage.bytes_in = sa.usage.bytes_in.saturating_add(bytes);
        } else {
            sa.usage.packets_out += 1;
            sa.usage.bytes_out = sa.usage.bytes_out.saturating_add(bytes);
        }
        let used = sa.usage.bytes;
        let hard_bytes = sa.hard.map_or(0, |l| l.bytes);
        let soft_bytes = sa.soft.map_or(0, |l| l.bytes);
        let (soft_use, hard_use) = (
            sa.soft.map_or(0, |l| l.usetime),
            sa.hard.map_or(0, |l| l.usetime),
        );
        let soft_reported = sa.usage.soft_reported;
        if first {
            if soft_use != 0 {
                self.arm(now.saturating_add(soft_use), *id, TimerKind::SoftUse);
            }
            if hard_use != 0 {
                self.arm(now.saturating_add(hard_use), *id, TimerKind::HardUse);
            }
        }
        if hard_bytes != 0 && used >= hard_bytes {
            return self.delete(id).map(|sa| (sa, Expiry::Hard));
        }
        if soft_bytes != 0 && used >= soft_bytes && !soft_reported {
            let sa = self.sas.get_mut(id)?;
            sa.usage.soft_reported = true;
            return Some((sa.clone(), Expiry::Soft));
        }
        None
    }

    /// The limits that ran out by `now`: soft ones are reported once, hard
    /// ones (and unkeyed reservations) remove their SA.
    pub fn expire(&mut self, now: u64) -> Vec<(SecurityAssociation, Expiry)> {
        let mut out = Vec::new();
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if t.at > now {
                break;
            }
            self.timers.pop();
            let Some(sa) = self.sas.get_mut(&t.id) else {
                continue;
            };
            // A timer from an SA's earlier life (say, before an UPDATE) is
            // stale if its limit no longer says so.
            let limit_at = |l: Option<Lifetime>, start: u64, field: fn(&Lifetime) -> u64| {
                l.map(|l| field(&l))
                    .filter(|&v| v != 0)
                    .map(|v| start.saturating_add(v))
            };
            let started_use = sa.usage.first_use.unwrap_or(u64::MAX);
            let due = match t.kind {
                TimerKind::Larval => sa.state == State::Larval,
                TimerKind::SoftAdd => {
                    limit_at(sa.soft, sa.usage.added, |l| l.addtime) == Some(t.at)
                }
                TimerKind::HardAdd => {
                    limit_at(sa.hard, sa.usage.added, |l| l.addtime) == Some(t.at)
                }
                TimerKind::SoftUse => limit_at(sa.soft, started_use, |l| l.usetime) == Some(t.at),
                TimerKind::HardUse => limit_at(sa.hard, started_use, |l| l.usetime) == Some(t.at),
            };
            if !due {
                continue;
            }
            match t.kind {
                TimerKind::SoftAdd | TimerKind::SoftUse => {
                    if !sa.usage.soft_reported {
                        sa.usage.soft_reported = true;
                        out.push((sa.clone(), Expiry::Soft));
                    }
                }
                TimerKind::HardAdd | TimerKind::HardUse => {
                    if let Some(sa) = self.delete(&t.id) {
                        out.push((sa, Expiry::Hard));
                    }
                }
                TimerKind::Larval => {
                    if let Some(sa) = self.delete(&t.id) {
                        out.push((sa, Expiry::Larval));
                    }
                }
            }
        }
        out
    }

    /// The SA toward `dst` of a protocol that a flow takes when it needs
    /// one: the oldest that is not larval. When SAs are replaced by
    /// generations, each retired in turn, that is the next generation,
    /// which the peer has had longest (the newest may be only a moment
    /// old on this side, and not there yet on the other).
    /// Of those that serve a flow, only the ones for `flow`.
    pub fn oldest_to(&self, dst: IpAddr, satype: SaType, flow: &Selector) -> Option<SaId> {
        self.by_dst(dst, satype)
            .filter(|sa| sa.flow.is_none_or(|f| f == *flow))
            .min_by_key(|sa| sa.usage.order)
            .map(|sa| sa.id)
    }

    /// SAs toward `dst` of a protocol, not larval: what an outbound policy
    /// can use.
    pub fn by_dst(
        &self,
        dst: IpAddr,
        satype: SaType,
    ) -> impl Iterator<Item = &SecurityAssociation> {
        self.by_dst
            .get(&(dst, satype))
            .into_iter()
            .flatten()
            .filter_map(|id| self.sas.get(id))
            .filter(|sa| sa.state == State::Mature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pfkey::Key;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn id(spi: u32) -> SaId {
        SaId {
            dst: ip("192.0.2.2"),
            spi,
            satype: SaType::ESP,
        }
    }

    fn sa(spi: u32) -> SecurityAssociation {
        SecurityAssociation::new(id(spi), ip("192.0.2.1"), 0)
    }

    fn life(bytes: u64, addtime: u64, usetime: u64) -> Option<Lifetime> {
        Some(Lifetime {
            allocations: 0,
            bytes,
            addtime,
            usetime,
        })
    }

    #[test]
    fn spi_reservation() {
        let mut sad = Sad::new();
        let (src, dst) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let mut n = 0;
        let mut counter = || {
            n += 1;
            n
        };
        let a = sad
            .reserve_spi(SaType::ESP, src, dst, (0x1000, 0x1003), 0, &mut counter)
            .unwrap();
        let b = sad
            .reserve_spi(SaType::ESP, src, dst, (0x1000, 0x1003), 0, &mut counter)
            .unwrap();
        assert_ne!(a.spi, b.spi);
        assert!((0x1000..=0x1003).contains(&a.spi));
        // A single value, taken: EEXIST. Reserved values are skipped.
        assert_eq!(
            sad.reserve_spi(SaType::ESP, src, dst, (a.spi, a.spi), 0, || 0),
            Err(Errno::EEXIST)
        );
        let low = sad
            .reserve_spi(SaType::ESP, src, dst, (1, 256), 0, || 7)
            .unwrap();
        assert_eq!(low.spi, 256);
        assert_eq!(
            sad.reserve_spi(SaType::X_IPCOMP, src, dst, (61440, 65535), 0, || 0),
            Err(Errno::EINVAL)
        );
        // Larval SAs carry nothing and vanish silently.
        assert_eq!(sad.by_dst(dst, SaType::ESP).count(), 0);
        let gone = sad.expire(LARVAL_LIFETIME);
        assert_eq!(gone.len(), 3);
        assert!(gone.iter().all(|(_, e)| *e == Expiry::Larval));
        assert!(sad.is_empty());
    }

    #[test]
    fn add_update_delete() {
        let mut sad = Sad::new();
        sad.add(sa(0x1000), 0).unwrap();
        assert_eq!(sad.add(sa(0x1000), 0), Err(Errno::EEXIST));
        assert_eq!(sad.update(sa(0x2000), 0), Err(Errno::ESRCH));
        // A mature SA may change its lifetimes, never its keys.
        let mut keyed = sa(0x1000);
        keyed.auth_key = Some(Key::new(&[1; 32]));
        assert_eq!(sad.update(keyed, 0), Err(Errno::EINVAL));
        let mut longer = sa(0x1000);
        longer.hard = life(0, 100, 0);
        sad.update(longer, 10).unwrap();
        assert_eq!(sad.get(&id(0x1000)).unwrap().hard.unwrap().addtime, 100);
        assert_eq!(sad.by_dst(ip("192.0.2.2"), SaType::ESP).count(), 1);
        assert!(sad.delete(&id(0x1000)).is_some());
        assert!(sad.delete(&id(0x1000)).is_none());
        assert_eq!(sad.by_dst(ip("192.0.2.2"), SaType::ESP).count(), 0);
    }

    #[test]
    fn a_lifetime_given_later_counts_from_when_the_sa_was_added() {
        let mut sad = Sad::new();
        sad.add(sa(0x1000), 100).unwrap();
        // At 130, the SA (30 s old) is told to live 35 s: it goes at 135.
        let mut retiring = sa(0x1000);
        retiring.hard = life(0, 35, 0);
        sad.update(retiring, 130).unwrap();
        assert!(sad.expire(134).is_empty());
        let gone = sad.expire(135);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1, Expiry::Hard);
        assert!(sad.is_empty());
    }

    #[test]
    fn a_burst_of_sas_that_went_leaves_no_tables_behind() {
        let mut sad = Sad::new();
        for spi in 0..10_000 {
            let mut a = sa(0x10_0000 + spi);
            a.hard = life(0, 3600, 0);
            sad.add(a, 0).unwrap();
        }
        for spi in 0..10_000 {
            sad.delete(&id(0x10_0000 + spi));
        }
        assert!(sad.sas.capacity() < 1000, "{}", sad.sas.capacity());
        assert!(sad.by_dst.capacity() < 1000);
        // The timers of the deleted SAs went with them.
        assert!(sad.timers.len() <= 64, "{}", sad.timers.len());
        assert!(sad.timers.capacity() < 1000, "{}", sad.timers.capacity());
    }

    fn flow(dst: &str) -> Selector {
        Selector {
            direction: crate::spd::Direction::Out,
            src: ip("10.1.0.0"),
            src_mask: ip("255.255.255.0"),
            dst: ip(dst),
            dst_mask: ip("255.255.255.0"),
            proto: 0,
            sport: 0,
            sport_mask: 0,
            dport: 0,
            dport_mask: 0,
        }
    }

    #[test]
    fn a_flow_takes_the_oldest_sa_to_a_peer() {
        let mut sad = Sad::new();
        sad.add(sa(0x2000), 0).unwrap();
        // A lower SPI added later does not win: age does.
        sad.add(sa(0x1000), 5).unwrap();
        sad.add(sa(0x3000), 6).unwrap();
        let any = flow("10.2.0.0");
        let oldest = |sad: &Sad| sad.oldest_to(ip("192.0.2.2"), SaType::ESP, &any);
        assert_eq!(oldest(&sad), Some(id(0x2000)));
        sad.delete(&id(0x2000));
        assert_eq!(oldest(&sad), Some(id(0x1000)));
        assert_eq!(sad.oldest_to(ip("192.0.2.9"), SaType::ESP, &any), None);
    }

    #[test]
    fn an_sa_for_one_flow_carries_no_other() {
        let mut sad = Sad::new();
        let mut first = sa(0x1000);
        first.flow = Some(flow("10.2.0.0"));
        sad.add(first, 0).unwrap();
        let mut second = sa(0x2000);
        second.flow = Some(flow("10.3.0.0"));
        sad.add(second, 1).unwrap();
        let peer = ip("192.0.2.2");
        assert_eq!(
            sad.oldest_to(peer, SaType::ESP, &flow("10.3.0.0")),
            Some(id(0x2000))
        );
        assert_eq!(
            sad.oldest_to(peer, SaType::ESP, &flow("10.2.0.0")),
            Some(id(0x1000))
        );
        assert_eq!(sad.oldest_to(peer, SaType::ESP, &flow("10.4.0.0")), None);
        // An SA that names no flow serves any.
        sad.add(sa(0x3000), 2).unwrap();
        assert_eq!(
            sad.oldest_to(peer, SaType::ESP, &flow("10.4.0.0")),
            Some(id(0x3000))
        );
    }

    #[test]
    fn keying_a_reservation() {
        let mut sad = Sad::new();
        let got = sad
            .reserve_spi(
                SaType::ESP,
                ip("192.0.2.1"),
                ip("192.0.2.2"),
                (0x5000, 0x5000),
                0,
                || 0,
            )
            .unwrap();
        let mut keyed = SecurityAssociation::new(got, ip("192.0.2.1"), 0);
        keyed.enc_key = Some(Key::new(&[2; 16]));
        sad.update(keyed, 5).unwrap();
        assert_eq!(sad.get(&got).unwrap().state, State::Mature);
        // The reservation's timer no longer applies.
        assert!(sad.expire(LARVAL_LIFETIME + 5).is_empty());
        assert_eq!(sad.len(), 1);
    }

    #[test]
    fn bundles_refuse_loops_and_unlink_on_delete() {
        let mut sad = Sad::new();
        for spi in [0x1000, 0x1001, 0x1002] {
            sad.add(sa(spi), 0).unwrap();
        }
        sad.group(id(0x1000), id(0x1001)).unwrap();
        sad.group(id(0x1001), id(0x1002)).unwrap();
        assert_eq!(sad.group(id(0x1002), id(0x1000)), Err(Errno::ESRCH));
        assert_eq!(sad.group(id(0x1000), id(0x9999)), Err(Errno::ESRCH));
        sad.delete(&id(0x1001));
        assert_eq!(sad.get(&id(0x1000)).unwrap().next, None);
        assert_eq!(sad.get(&id(0x1002)).unwrap().prev, None);
    }

    #[test]
    fn lifetimes() {
        let mut sad = Sad::new();
        let mut a = sa(0x1000);
        a.soft = life(1000, 50, 0);
        a.hard = life(2000, 100, 0);
        sad.add(a, 0).unwrap();
        assert_eq!(sad.account(&id(0x1000), 600, false, 1), None);
        assert_eq!(
            sad.account(&id(0x1000), 600, false, 2).map(|e| e.1),
            Some(Expiry::Soft)
        );
        // Soft is reported once, by bytes or by time.
        assert_eq!(sad.account(&id(0x1000), 10, false, 3), None);
        assert!(sad.expire(60).is_empty());
        assert_eq!(
            sad.account(&id(0x1000), 1000, false, 4).map(|e| e.1),
            Some(Expiry::Hard)
        );
        assert!(sad.get(&id(0x1000)).is_none());

        let mut b = sa(0x2000);
        b.soft = life(0, 0, 30);
        b.hard = life(0, 100, 60);
        sad.add(b, 0).unwrap();
        // First-use timers start at first use.
        assert!(sad.expire(50).is_empty());
        sad.account(&id(0x2000), 1, false, 50);
        let soft = sad.expire(80);
        assert_eq!(soft.len(), 1);
        assert_eq!(soft[0].1, Expiry::Soft);
        let hard = sad.expire(101);
        assert_eq!(hard.len(), 1);
        assert_eq!(hard[0].1, Expiry::Hard);
        assert!(sad.is_empty());
    }

    #[test]
    fn flush_by_type() {
        let mut sad = Sad::new();
        sad.add(sa(0x1000), 0).unwrap();
        let mut ah = sa(0x1001);
        ah.id.satype = SaType::AH;
        sad.add(ah, 0).unwrap();
        sad.flush(Some(SaType::ESP));
        assert_eq!(sad.len(), 1);
        sad.flush(None);
        assert!(sad.is_empty());
    }
}
