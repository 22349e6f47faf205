//! Rules for any peer: a passive rule without `peer` answers whoever
//! proves itself as the rule asks (its key, its `dstid`), after the rules
//! that name that peer. Such a rule has no flows of its own, since it
//! cannot know where they would lead: each of its Child SAs brings the
//! flows of the selectors it was narrowed to, toward its peer, into
//! `ipsecd`, and they go out again with the last such Child SA.

use super::*;

/// The flows a rule for any peer put in for Child SAs with one peer.
#[derive(Debug)]
pub(super) struct PeerFlows {
    policy: usize,
    ends: Ends,
    ts_local: Vec<TrafficSelector>,
    ts_remote: Vec<TrafficSelector>,
}

impl Keyer {
    /// The rules that answer `remote` on `local`, none taken down: those
    /// that name it, then those for any peer.
    pub(super) fn answering(&self, local: IpAddr, remote: IpAddr) -> Vec<usize> {
        let up = |i: &usize| !self.held[*i] && self.policies[*i].local == local;
        let named = (0..self.policies.len())
            .filter(up)
            .filter(|&i| self.policies[i].peer == Some(remote));
        let any = (0..self.policies.len())
            .filter(up)
            .filter(|&i| self.policies[i].peer.is_none());
        named.chain(any).collect()
    }

    /// A Child SA of rule `policy` went in toward `path`'s peer: for a rule
    /// for any peer, its flows go in too, unless they are in already.
    pub(super) fn follow_child(
        &mut self,
        policy: usize,
        child: &ChildSa,
        path: Path,
        out: &mut Vec<Action>,
    ) {
        if self.policies[policy].peer.is_some() {
            return;
        }
        let ends = Ends {
            local: path.local.ip(),
            remote: path.remote.ip(),
        };
        let known = self.peer_flows.iter().any(|f| {
            f.policy == policy
                && f.ends == ends
                && f.ts_local == child.ts_local
                && f.ts_remote == child.ts_remote
        });
        if known {
            return;
        }
        // Another peer's Child SA has these selectors: its flows stay
        // (the newcomer's would take its traffic).
        let taken = self.peer_flows.iter().find(|f| {
            f.ends.remote != ends.remote
                && f.ts_local == child.ts_local
                && f.ts_remote == child.ts_remote
        });
        if let Some(f) = taken {
            out.push(Action::Log(format!(
                "{}: the selectors of the Child SA with {} lead to {} already: it gets no flows",
                self.policies[policy].name, ends.remote, f.ends.remote
            )));
            return;
        }
        let p = &self.policies[policy];
        let (protocol, name) = (p.config.child.protocol, p.name.clone());
        let between = (child.ts_local.as_slice(), child.ts_remote.as_slice());
        self.flows_between(protocol, ends, between, install::flows, &name, out);
        self.peer_flows.push(PeerFlows {
            policy,
            ends,
            ts_local: child.ts_local.clone(),
            ts_remote: child.ts_remote.clone(),
        });
    }

    /// Takes out the flows of rules for any peer that no current Child SA
    /// of theirs still needs.
    pub(super) fn sweep_peer_flows(&mut self, out: &mut Vec<Action>) {
        if self.peer_flows.is_empty() {
            return;
        }
        let needed = |f: &PeerFlows| {
            self.sas.iter().any(|sa| {
                !sa.superseded
                    && sa.path.remote.ip() == f.ends.remote
                    && sa.children().iter().any(|(p, c)| {
                        *p == f.policy && c.ts_local == f.ts_local && c.ts_remote == f.ts_remote
                    })
            })
        };
        let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.peer_flows)
            .into_iter()
            .partition(|f| needed(f));
        self.peer_flows = kept;
        for f in gone {
            let p = &self.policies[f.policy];
            let (protocol, name) = (p.config.child.protocol, p.name.clone());
            let between = (f.ts_local.as_slice(), f.ts_remote.as_slice());
            self.flows_between(protocol, f.ends, between, install::delflows, &name, out);
        }
    }

    /// Rule `index` is gone (its flows swept with its Child SAs): those
    /// of later rules follow its number down.
    pub(super) fn peer_flows_for_removed_rule(&mut self, index: usize) {
        self.peer_flows.retain(|f| f.policy != index);
        for f in &mut self.peer_flows {
            if f.policy > index {
                f.policy -= 1;
            }
        }
    }
}
