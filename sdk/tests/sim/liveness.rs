//! The heal phase: faults off, then progress is demanded within a bound, then the
//! client oracle.

use super::check::Violation;
use super::network::Weather;
use super::world::{Event, World, CONVERGENCE_BOUND_MS, LIVENESS_BOUND_MS};
use baton::raft::NodeId;

impl World {
    // ---------------------------------------------------------------- heal and liveness

    pub(super) fn on_heal(&mut self) -> Result<(), Violation> {
        self.heal_at_ms = Some(self.now_ms);
        self.network.heal();
        // The link's own latency stays (the detector scenario's Internet): only faults end.
        self.network.weather = Weather {
            latency_ms: self.network.weather.latency_ms,
            ..Weather::default()
        };
        trace!(self, "HEAL all faults off; crashed nodes restart");
        for id in self.all_ids() {
            if !self.up(id) {
                self.boot(id)?;
            }
        }
        let probe = self.probe_client;
        self.schedule(self.now_ms, Event::Client(probe));
        Ok(())
    }

    pub(super) fn liveness_deadlines(&self) -> Result<(), Violation> {
        let Some(heal_at) = self.heal_at_ms else {
            return Ok(());
        };
        if self.probe_index.is_none() && self.now_ms > heal_at + LIVENESS_BOUND_MS {
            let leader = self.current_leader();
            return Err(Violation::new(
                "Liveness",
                format!(
                    "no fresh proposal committed within {LIVENESS_BOUND_MS} ms of the heal (leader now: {leader:?}; {})",
                    self.describe_nodes()
                ),
            ));
        }
        if self.now_ms > heal_at + LIVENESS_BOUND_MS + CONVERGENCE_BOUND_MS {
            return Err(Violation::new(
                "Liveness",
                format!(
                    "members did not all apply the fresh proposal within {CONVERGENCE_BOUND_MS} ms ({})",
                    self.describe_nodes()
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn describe_nodes(&self) -> String {
        let mut parts = Vec::new();
        for node in &self.nodes {
            match node.raft.as_ref() {
                Some(r) => parts.push(format!(
                    "{}: {:?} term {} commit {} last {} applied {} voters {:?} learners {:?}",
                    node.id,
                    r.role(),
                    r.term(),
                    r.commit_index(),
                    r.last_index(),
                    node.app.state.applied_index,
                    r.membership().voters,
                    r.membership().learners
                )),
                None => parts.push(format!("{}: down", node.id)),
            }
        }
        parts.join("; ")
    }

    /// The members of the final configuration that must all hold the fresh proposal.
    pub(super) fn final_members(&self) -> Option<Vec<NodeId>> {
        let leader = self.current_leader()?;
        let raft = self.nodes[self.slot(leader)?].raft.as_ref()?;
        let membership = raft.membership();
        Some(
            membership
                .voters
                .iter()
                .chain(membership.learners.iter())
                .copied()
                .collect(),
        )
    }

    pub(super) fn converged(&self) -> bool {
        let Some(probe_index) = self.probe_index else {
            return false;
        };
        let Some(members) = self.final_members() else {
            return false;
        };
        members.iter().all(|id| {
            self.slot(*id).is_some_and(|s| {
                self.nodes[s].raft.is_some()
                    && self.nodes[s].app.state.applied_index
                        >= probe_index.max(self.acked_index_max)
            })
        })
    }

    /// The client oracle: every acknowledged proposal is in every member's applied
    /// sequence, exactly once, at the position its client was told.
    pub(super) fn final_oracle(&self) -> Result<(), Violation> {
        let members = self.final_members().unwrap_or_default();
        for id in &members {
            let Some(slot) = self.slot(*id) else { continue };
            let sequence = &self.nodes[slot].app.state.sequence;
            for (tag, result) in &self.acked {
                let position = result
                    .as_slice()
                    .try_into()
                    .map(u64::from_le_bytes)
                    .ok()
                    .and_then(|p| usize::try_from(p).ok());
                let found = position
                    .and_then(|p| sequence.get(p))
                    .is_some_and(|c| c.tag == Some(*tag));
                if !found {
                    return Err(Violation::new(
                        "AckedProposalLost",
                        format!("acknowledged {tag:?} (result {result:?}) is not where promised in node {id}'s applied sequence"),
                    ));
                }
            }
        }
        trace!(
            self,
            "END {} acknowledged proposals found in members {members:?}; {}",
            self.acked.len(),
            self.describe_nodes()
        );
        Ok(())
    }
}
