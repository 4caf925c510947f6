//! The invariants checked after every step, over all running nodes.

use super::check::Violation;
use super::log::{self, holds, snapshot_index};
use super::world::World;
use baton::raft::{Index, NodeId, Role, Term};

impl World {
    // ---------------------------------------------------------------- invariants per step

    pub(super) fn check_step(&mut self) -> Result<(), Violation> {
        for slot in 0..self.nodes.len() {
            let id = self.nodes[slot].id;
            let Some(raft) = self.nodes[slot].raft.as_ref() else {
                continue;
            };
            let (role, term, commit) = (raft.role(), raft.term(), raft.commit_index());
            if role == Role::Leader {
                self.checker.observe_leader(term, id)?;
                if self.nodes[slot].leader_term != Some(term) {
                    self.nodes[slot].leader_term = Some(term);
                    self.stats.elections_won += 1;
                    trace!(self, "ROLE node {id} leads term {term}");
                    self.checker
                        .check_leader_completeness(id, term, &self.nodes[slot].volatile)?;
                    self.maybe_doom_new_leader(id);
                }
            } else {
                self.nodes[slot].leader_term = None;
            }
            let last_commit = self.nodes[slot].last_commit;
            if commit < last_commit {
                return Err(Violation::new(
                    "CommitIndexMonotonic",
                    format!("node {id} commit index went from {last_commit} to {commit}"),
                ));
            }
            if role == Role::Leader && commit > last_commit && self.options.white_box {
                self.check_commit_in_term(slot, term, commit)?;
            }
            for index in last_commit + 1..=commit {
                let newly =
                    self.checker
                        .observe_commit(id, &self.nodes[slot].volatile, index, term)?;
                if role == Role::Leader && self.options.white_box {
                    self.check_commit_quorum(slot, index)?;
                }
                if newly {
                    self.check_leaders_hold(index)?;
                }
            }
            self.nodes[slot].last_commit = commit;
        }
        Ok(())
    }

    /// CommitOnlyCurrentTerm (§5.4.2): a leader moves its commit index only onto an entry
    /// of its own term; older entries become committed only as a consequence.
    pub(super) fn check_commit_in_term(
        &self,
        leader_slot: usize,
        term: Term,
        commit: Index,
    ) -> Result<(), Violation> {
        let leader = &self.nodes[leader_slot];
        if commit <= snapshot_index(&leader.volatile) {
            return Ok(());
        }
        let entry_term = log::term_at(&leader.volatile, commit);
        if entry_term != Some(term) {
            return Err(Violation::new(
                "CommitOnlyCurrentTerm",
                format!(
                    "leader {} of term {term} advanced its commit index to {commit}, an entry of term {entry_term:?}",
                    leader.id
                ),
            ));
        }
        Ok(())
    }

    /// CommittedDurableOnQuorum: when a leader commits an index, a majority of its voters
    /// hold that entry durably (so no crash can lose it).
    pub(super) fn check_commit_quorum(
        &self,
        leader_slot: usize,
        index: Index,
    ) -> Result<(), Violation> {
        let leader = &self.nodes[leader_slot];
        let Some(raft) = leader.raft.as_ref() else {
            return Ok(());
        };
        if index <= snapshot_index(&leader.volatile) {
            return Ok(());
        }
        let Some(term) = log::term_at(&leader.volatile, index) else {
            return Ok(());
        };
        let voters = &raft.membership().voters;
        let holders: Vec<NodeId> = voters
            .iter()
            .filter(|v| {
                self.slot(**v)
                    .is_some_and(|s| holds(&self.nodes[s].durable, index, term))
            })
            .copied()
            .collect();
        if holders.len() * 2 <= voters.len() {
            return Err(Violation::new(
                "CommittedDurableOnQuorum",
                format!(
                    "leader {} commits {index} (term {term}) but only {holders:?} of voters {voters:?} hold it durably",
                    leader.id
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn check_leaders_hold(&self, index: Index) -> Result<(), Violation> {
        for node in &self.nodes {
            if let (Some(raft), Some(term)) = (node.raft.as_ref(), node.leader_term) {
                if raft.role() == Role::Leader {
                    self.checker
                        .check_leader_holds(node.id, term, &node.volatile, index)?;
                }
            }
        }
        Ok(())
    }
}
