//! Operating the key manager by hand, as OpenBSD's ikectl does: what each
//! rule has (its IKE SAs, their Child SAs, algorithms and rekey times),
//! and taking a rule down or bringing it up.

use super::{Action, Keyer, Policy, State};
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
    pub child: Option<ChildStatus>,
}

#[derive(Debug)]
pub struct ChildStatus {
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
                    .map(|sa| {
                        let (state, spis, initiator, ike, child) = match &sa.state {
                            State::Up(session) => {
                                let e = &session.sa;
                                let c = &e.child;
                                let child =
                                    (!sa.child_gone && !sa.superseded).then(|| ChildStatus {
                                        spi_in: c.spi_in,
                                        spi_out: c.spi_out,
                                        algorithms: c.suite.names(),
                                        age: now.saturating_sub(sa.child_since),
                                        rekey_in: sa.child_rekey_at.map(|t| t.saturating_sub(now)),
                                    });
                                (
                                    if sa.superseded { "replaced" } else { "up" },
                                    (e.spi_i, e.spi_r),
                                    e.initiator,
                                    Some(e.suite.names()),
                                    child,
                                )
                            }
                            State::Responding { .. } => {
                                ("answering", (sa.peer_spi, sa.spi), false, None, None)
                            }
                            State::Reserving | State::Initiating(_) => {
                                ("starting", (sa.spi, 0), true, None, None)
                            }
                        };
                        SaStatus {
                            state,
                            spi_i: spis.0,
                            spi_r: spis.1,
                            initiator,
                            remote: sa.path.remote,
                            age: now.saturating_sub(sa.created),
                            ike,
                            child,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Takes rule `number` down: its IKE SAs end (the peer told) and
    /// their Child SAs go; its flows stay, so its traffic is held back,
    /// and it starts no IKE SA, nor answers one, until brought up.
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
        self.retry[index] = 0;
        for at in 0..self.sas.len() {
            if self.sas[at].policy == index {
                self.end(at, rng, &mut out);
            }
        }
        let gone: Vec<u64> = self
            .sas
            .iter()
            .filter(|sa| sa.policy == index && !matches!(sa.state, State::Up(_)))
            .map(|sa| sa.spi)
            .collect();
        for spi in gone {
            // Half-made SAs give their reserved SPIs back.
            self.forget_half_open(spi, &mut out);
        }
        self.sas.retain(|sa| sa.policy != index);
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
