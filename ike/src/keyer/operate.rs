//! Operating the key manager by hand, as OpenBSD's ikectl does: what each
//! rule has (its IKE SAs, their Child SAs, algorithms and rekey times),
//! and taking a rule down or bringing it up.

use super::{Action, ChildSa, IkeSa, Keyer, Policy, State};
use rand_core::CryptoRngCore;
use std::net::SocketAddr;

/// One rule, as an operator sees it.
#[derive(Debug)]
pub struct RuleStatus<'a> {
    /// Counted from 1, in the order the rules were added.
    pub number: usize,
    pub policy: &'a Policy,
    /// Taken down by hand: no IKE SA until brought up.
    pub down: bool,
    pub sas: Vec<SaStatus>,
}

/// One IKE SA of a rule.
#[derive(Debug)]
pub struct SaStatus {
    /// "starting" (this end's first request not answered yet),
    /// "answering" (the peer's IKE_AUTH awaited), "up", or "replaced"
    /// (rekeyed, its delete under way).
    pub state: &'static str,
    pub spi_i: u64,
    pub spi_r: u64,
    pub initiator: bool,
    pub remote: SocketAddr,
    /// Seconds since the SA was made.
    pub age: u64,
    /// For an SA that is up: what protects the IKE SA (cipher, integrity
    /// check, PRF, group) and its Child SA.
    pub ike: Option<[String; 4]>,
    /// Its Child SAs: the first, then any the peer added.
    pub children: Vec<ChildStatus>,
}

#[derive(Debug)]
pub struct ChildStatus {
    /// The number of the rule it is for.
    pub rule: usize,
    pub spi_in: u32,
    pub spi_out: u32,
    /// Cipher, integrity check, PFS group.
    pub algorithms: [String; 3],
    /// Seconds since it went in, and until it is rekeyed (ipsecd's soft
    /// lifetime), if it will be.
    pub age: u64,
    pub rekey_in: Option<u64>,
}

/// Why a rule cannot be brought up or down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRule {
    /// No rule has that number.
    Number(usize),
}

impl Keyer {
    /// Every rule with its IKE SAs, at `now`.
    pub fn status(&self, now: u64) -> Vec<RuleStatus<'_>> {
        let now = now.max(self.now);
        self.policies
            .iter()
            .enumerate()
            .map(|(index, policy)| RuleStatus {
                number: index + 1,
                policy,
                down: self.held[index],
                sas: self
                    .sas
                    .iter()
                    .filter(|sa| sa.policy == index)
                    .map(|sa| sa_status(sa, now))
                    .collect(),
            })
            .collect()
    }

    /// Takes rule `number` down: its Child SAs go (the peer told), and so
    /// do the IKE SAs made for it, unless other rules' Child SAs live
    /// under them; its flows stay, so its traffic is held back, and it
    /// starts no IKE SA, nor answers one, until brought up.
    pub fn down(
        &mut self,
        number: usize,
        now: u64,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Action>, NoRule> {
        self.now = now;
        let index = self.rule_index(number)?;
        let mut out = Vec::new();
        self.held[index] = true;
        self.let_go(index, rng, &mut out);
        self.sweep_peer_flows(&mut out);
        out.push(Action::Log(format!(
            "{}: taken down by hand",
            self.policies[index].name
        )));
        Ok(out)
    }

    /// Brings rule `number` up: it may answer again and, whatever its
    /// start mode, starts an IKE SA with its peer now if it has none.
    pub fn up(
        &mut self,
        number: usize,
        now: u64,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Vec<Action>, NoRule> {
        self.now = now;
        let index = self.rule_index(number)?;
        let mut out = Vec::new();
        self.held[index] = false;
        self.initiate(index, rng, &mut out);
        Ok(out)
    }

    fn rule_index(&self, number: usize) -> Result<usize, NoRule> {
        (1..=self.policies.len())
            .contains(&number)
            .then(|| number - 1)
            .ok_or(NoRule::Number(number))
    }
}

/// What an operator sees of one IKE SA at `now`.
fn sa_status(sa: &IkeSa, now: u64) -> SaStatus {
    let child = |rule: usize, c: &ChildSa, since: u64, rekey_at: Option<u64>| ChildStatus {
        rule: rule + 1,
        spi_in: c.spi_in,
        spi_out: c.spi_out,
        algorithms: c.suite.names(),
        age: now.saturating_sub(since),
        rekey_in: rekey_at.map(|t| t.saturating_sub(now)),
    };
    let (state, spis, initiator, ike) = match &sa.state {
        State::Up(session) => {
            let e = &session.sa;
            let state = if sa.superseded { "replaced" } else { "up" };
            (
                state,
                (e.spi_i, e.spi_r),
                e.initiator,
                Some(e.suite.names()),
            )
        }
        State::Responding { .. } => ("answering", (sa.peer_spi, sa.spi), false, None),
        State::Reserving | State::Initiating(_) => ("starting", (sa.spi, 0), true, None),
    };
    let mut children = Vec::new();
    if let (State::Up(session), false, false) = (&sa.state, sa.child_gone, sa.superseded) {
        let c = &session.sa.child;
        children.push(child(sa.policy, c, sa.child_since, sa.child_rekey_at));
    }
    if !sa.superseded {
        children.extend(
            sa.extra
                .iter()
                .map(|e| child(e.policy, &e.child, e.since, e.rekey_at)),
        );
    }
    SaStatus {
        state,
        spi_i: spis.0,
        spi_r: spis.1,
        initiator,
        remote: sa.path.remote,
        age: now.saturating_sub(sa.created),
        ike,
        children,
    }
}
