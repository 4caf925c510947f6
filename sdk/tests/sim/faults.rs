//! The fault scheduler of the fault phase: what breaks, when.

use super::check::Violation;
use super::log::snapshot_index;
use super::network::Weather;
use super::profile::Fault;
use super::world::{
    Event, World, DOWNTIME_MS_MAX, DOWNTIME_MS_MIN, NEW_LEADER_CRASH_DELAY_MS_MAX, VOTERS_MIN,
};
use baton::raft::{Fitness, MembershipChange, NodeId, Role};
use rand::Rng;
use std::collections::BTreeSet;

impl World {
    // ---------------------------------------------------------------- faults

    pub(super) fn on_chaos(&mut self) -> Result<(), Violation> {
        if self.heal_at_ms.is_some() {
            return Ok(());
        }
        if let Some(fault) = self.profile.pick_fault(&mut self.chaos_rng) {
            self.inject(fault)?;
        }
        let mean = self.profile.chaos_interval_ms;
        let at = self.now_ms + self.chaos_rng.random_range(1..=2 * mean);
        self.schedule(at, Event::Chaos);
        Ok(())
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        Some(items[self.chaos_rng.random_range(0..items.len())])
    }

    /// The leader of the highest term among the running nodes.
    pub(super) fn current_leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|n| n.raft.as_ref().map(|r| (n.id, r)))
            .filter(|(_, r)| r.role() == Role::Leader)
            .max_by_key(|(_, r)| r.term())
            .map(|(id, _)| id)
    }

    pub(super) fn inject(&mut self, fault: Fault) -> Result<(), Violation> {
        let all = self.all_ids();
        match fault {
            Fault::Crash => {
                // Half of the crashes hit the leader: that is where the interesting
                // interleavings (Figure 8 of the paper) come from.
                let target = match self.current_leader() {
                    Some(leader) if self.chaos_rng.random_bool(0.5) => Some(leader),
                    _ => self.pick(&self.up_ids()),
                };
                if let Some(id) = target {
                    self.crash_for_a_while(id);
                }
            }
            Fault::PartitionSymmetric => {
                let side: BTreeSet<NodeId> = all
                    .iter()
                    .copied()
                    .filter(|_| self.chaos_rng.random_bool(0.5))
                    .collect();
                self.network.partition(&side, &all);
                self.stats.partitions += 1;
                trace!(self, "FAULT partition {side:?} | rest");
            }
            Fault::PartitionAsymmetric => {
                let (Some(from), Some(to)) = (self.pick(&all), self.pick(&all)) else {
                    return Ok(());
                };
                if from != to {
                    self.network.blocked.insert((from, to));
                    self.stats.partitions += 1;
                    trace!(self, "FAULT one-way partition: {from} cannot reach {to}");
                }
            }
            Fault::IsolateLeader => {
                if let Some(leader) = self.current_leader() {
                    self.network.partition(&BTreeSet::from([leader]), &all);
                    self.stats.partitions += 1;
                    trace!(self, "FAULT isolate leader {leader}");
                }
            }
            Fault::HealPartitions => {
                self.network.heal();
                trace!(self, "FAULT heal partitions");
            }
            Fault::Weather => {
                let p = &self.profile;
                let (drop_max, dup_max, delay_max, reorder) = (
                    p.drop_ppm_max,
                    p.duplicate_ppm_max,
                    p.long_delay_ppm_max,
                    p.reorder,
                );
                self.network.weather = Weather {
                    drop_ppm: self.chaos_rng.random_range(0..=drop_max),
                    duplicate_ppm: self.chaos_rng.random_range(0..=dup_max),
                    long_delay_ppm: self.chaos_rng.random_range(0..=delay_max),
                    reorder: reorder && self.chaos_rng.random_bool(0.5),
                    ..Weather::default()
                };
                trace!(self, "FAULT network weather {:?}", self.network.weather);
            }
            Fault::Membership => self.change_membership()?,
            Fault::Transfer => {
                let Some(leader) = self.current_leader() else {
                    return Ok(());
                };
                let slot = self.slot(leader).unwrap_or(0);
                let voters: Vec<NodeId> = self.nodes[slot]
                    .raft
                    .as_ref()
                    .map(|r| {
                        r.membership()
                            .voters
                            .iter()
                            .copied()
                            .filter(|v| *v != leader)
                            .collect()
                    })
                    .unwrap_or_default();
                // Mostly a voter (a real transfer); sometimes anyone, to exercise refusals.
                let candidates = if self.chaos_rng.random_bool(0.8) && !voters.is_empty() {
                    voters
                } else {
                    all.clone()
                };
                let Some(target) = self.pick(&candidates) else {
                    return Ok(());
                };
                if let Some(raft) = self.nodes[slot].raft.as_mut() {
                    let result = raft.transfer_leadership(target);
                    if result.is_ok() {
                        self.stats.transfers += 1;
                    }
                    trace!(
                        self,
                        "FAULT leader {leader} transfers to {target}: {result:?}"
                    );
                    self.drain(leader)?;
                }
            }
            Fault::Compact => {
                let Some(id) = self.pick(&self.up_ids()) else {
                    return Ok(());
                };
                self.compact(id)?;
            }
            Fault::Fitness => {
                let Some(id) = self.pick(&self.up_ids()) else {
                    return Ok(());
                };
                let fitness = Fitness(self.chaos_rng.random_range(0..=1000));
                let slot = self.slot(id).unwrap_or(0);
                self.nodes[slot].fitness = fitness;
                if let Some(raft) = self.nodes[slot].raft.as_mut() {
                    raft.set_fitness(fitness);
                }
                trace!(self, "FAULT node {id} fitness {}", fitness.0);
                self.drain(id)?;
            }
            Fault::Drift => {
                let Some(id) = self.pick(&all) else {
                    return Ok(());
                };
                let tick_ms = self
                    .chaos_rng
                    .random_range(self.profile.tick_ms_min..=self.profile.tick_ms_max);
                let slot = self.slot(id).unwrap_or(0);
                self.nodes[slot].tick_ms = tick_ms;
                trace!(self, "FAULT node {id} clock now ticks every {tick_ms} ms");
            }
            Fault::Campaign => {
                let Some(id) = self.pick(&self.up_ids()) else {
                    return Ok(());
                };
                let slot = self.slot(id).unwrap_or(0);
                if let Some(raft) = self.nodes[slot].raft.as_mut() {
                    let result = raft.campaign();
                    trace!(self, "FAULT node {id} campaigns: {result:?}");
                    self.drain(id)?;
                }
            }
        }
        Ok(())
    }

    /// Crashes a running node (within the per-seed limit of nodes down) and schedules its
    /// restart.
    pub(super) fn crash_for_a_while(&mut self, id: NodeId) {
        let down = self.nodes.len() - self.up_ids().len();
        if down >= self.profile.crashed_max || !self.up(id) {
            return;
        }
        self.crash(id);
        let slot = self.slot(id).unwrap_or(0);
        let incarnation = self.nodes[slot].incarnation;
        let downtime = self
            .chaos_rng
            .random_range(DOWNTIME_MS_MIN..=DOWNTIME_MS_MAX);
        self.schedule(self.now_ms + downtime, Event::Restart(id, incarnation));
    }

    /// A reactive nemesis: some new leaders are crashed soon after their election,
    /// before their first entries are replicated.
    pub(super) fn maybe_doom_new_leader(&mut self, id: NodeId) {
        if self.heal_at_ms.is_some() || self.profile.doomed_leader_per_mille == 0 {
            return;
        }
        if self.chaos_rng.random_range(0..1000) >= self.profile.doomed_leader_per_mille {
            return;
        }
        let slot = self.slot(id).unwrap_or(0);
        let incarnation = self.nodes[slot].incarnation;
        let delay = self
            .chaos_rng
            .random_range(0..=NEW_LEADER_CRASH_DELAY_MS_MAX);
        self.schedule(self.now_ms + delay, Event::CrashLeader(id, incarnation));
    }

    /// A reactive nemesis: some nodes are crashed just after granting a vote, while the
    /// vote may still be on its way to the disk (a vote must survive that).
    pub(super) fn maybe_doom_voter(&mut self, id: NodeId) {
        if self.heal_at_ms.is_some() || self.profile.doomed_voter_per_mille == 0 {
            return;
        }
        if self.chaos_rng.random_range(0..1000) >= self.profile.doomed_voter_per_mille {
            return;
        }
        let slot = self.slot(id).unwrap_or(0);
        let incarnation = self.nodes[slot].incarnation;
        let delay = self.chaos_rng.random_range(0..=self.profile.persist_ms_max);
        self.schedule(self.now_ms + delay, Event::CrashVoter(id, incarnation));
    }

    pub(super) fn change_membership(&mut self) -> Result<(), Violation> {
        let Some(leader) = self.current_leader() else {
            return Ok(());
        };
        let slot = self.slot(leader).unwrap_or(0);
        let Some(membership) = self.nodes[slot]
            .raft
            .as_ref()
            .map(|r| r.membership().clone())
        else {
            return Ok(());
        };
        let mut options = Vec::new();
        for id in self.all_ids() {
            let voter = membership.voters.contains(&id);
            let learner = membership.learners.contains(&id);
            let can_lose_voter = membership.voters.len() > VOTERS_MIN;
            if !voter && !learner {
                options.push(MembershipChange::AddLearner(id));
            }
            if learner {
                options.push(MembershipChange::PromoteLearner(id));
                options.push(MembershipChange::RemoveNode(id));
            }
            if voter && can_lose_voter {
                options.push(MembershipChange::DemoteVoter(id));
                options.push(MembershipChange::RemoveNode(id));
            }
        }
        let Some(change) = self.pick(&options) else {
            return Ok(());
        };
        let Some(raft) = self.nodes[slot].raft.as_mut() else {
            return Ok(());
        };
        let result = raft.propose_membership(change);
        if result.is_ok() {
            self.stats.membership_changes += 1;
        }
        trace!(
            self,
            "FAULT leader {leader} proposes {change:?}: {result:?}"
        );
        self.drain(leader)
    }

    pub(super) fn compact(&mut self, id: NodeId) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        let node = &mut self.nodes[slot];
        let applied = node.app.state.applied_index;
        let current = (applied, node.app.snapshot());
        let older = node.checkpoint.take();
        let use_older = older.is_some() && self.chaos_rng.random_bool(0.5);
        let node = &mut self.nodes[slot];
        let (index, data) = match older {
            Some(older) if use_older => {
                node.checkpoint = Some(current);
                older
            }
            _ => {
                node.checkpoint = Some(current.clone());
                current
            }
        };
        if index <= snapshot_index(&node.volatile) {
            return Ok(());
        }
        let Some(raft) = node.raft.as_mut() else {
            return Ok(());
        };
        let result = raft.compact(index, data);
        if result.is_ok() {
            self.stats.compactions += 1;
        }
        trace!(
            self,
            "FAULT node {id} compacts at {index} (applied {applied}): {result:?}"
        );
        self.drain(id)
    }
}
