//! Single-server membership changes (§4.1–§4.3).
//!
//! A configuration takes effect as soon as its entry is appended (on every node) and is
//! reverted if the entry is truncated. One change is in flight at a time, and a leader
//! proposes one only after committing an entry of its own term (the fix for the
//! single-server change bug described on the raft-dev list, 2015). A leader that removes
//! or demotes itself keeps leading, without counting itself, until the change commits,
//! then hands off (TimeoutNow to the best caught-up voter) and steps down.

use crate::error::ProposeError;
use crate::message::MessageBody;
use crate::node::{RaftNode, State};
use crate::progress::Progress;
use crate::status::MembershipChange;
use crate::types::{Entry, EntryPayload, Index, Membership, NodeId};

impl RaftNode {
    /// The configuration `change` leads to, or why it is refused now.
    pub(crate) fn membership_after(
        &self,
        change: MembershipChange,
    ) -> Result<Membership, ProposeError> {
        if self.pending_membership_index() > self.log.commit {
            return Err(ProposeError::MembershipChangeInProgress);
        }
        if !self.has_committed_in_term() {
            return Err(ProposeError::LeaderNotReady);
        }
        let mut next = self.membership.clone();
        let is_voter = |id: NodeId| next.voters.contains(&id);
        let is_learner = |id: NodeId| next.learners.contains(&id);
        match change {
            MembershipChange::AddLearner(id) => {
                if is_voter(id) || is_learner(id) {
                    return Err(ProposeError::AlreadyMember(id));
                }
                next.learners.insert(id);
            }
            MembershipChange::PromoteLearner(id) => {
                if !is_learner(id) {
                    return Err(if is_voter(id) {
                        ProposeError::NotALearner(id)
                    } else {
                        ProposeError::UnknownNode(id)
                    });
                }
                let caught_up = self.progress.get(&id).is_some_and(|pr| {
                    pr.match_index + self.config.promotion_lag_entries_max >= self.log.commit
                });
                if !caught_up {
                    return Err(ProposeError::TargetNotCaughtUp(id));
                }
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            MembershipChange::DemoteVoter(id) => {
                if !is_voter(id) {
                    return Err(if is_learner(id) {
                        ProposeError::NotAVoter(id)
                    } else {
                        ProposeError::UnknownNode(id)
                    });
                }
                if next.voters.len() == 1 {
                    return Err(ProposeError::WouldLeaveNoVoters);
                }
                next.voters.remove(&id);
                next.learners.insert(id);
            }
            MembershipChange::RemoveNode(id) => {
                if is_voter(id) {
                    if next.voters.len() == 1 {
                        return Err(ProposeError::WouldLeaveNoVoters);
                    }
                    next.voters.remove(&id);
                } else if !next.learners.remove(&id) {
                    return Err(ProposeError::UnknownNode(id));
                }
            }
        }
        debug_assert!(next.voters.is_disjoint(&next.learners));
        Ok(next)
    }

    /// Index of the entry defining the configuration in effect (0 when it comes from the
    /// snapshot or there is none).
    pub(crate) fn pending_membership_index(&self) -> Index {
        self.membership_history
            .last()
            .map_or(0, |(index, _)| *index)
    }

    /// The configuration in effect at `index`.
    pub(crate) fn membership_at(&self, index: Index) -> Membership {
        self.membership_history
            .iter()
            .rev()
            .find(|(at, _)| *at <= index)
            .map_or_else(|| self.snapshot_membership.clone(), |(_, m)| m.clone())
    }

    /// Keeps the configuration history in step with the log after a follower append.
    pub(crate) fn on_log_appended(&mut self, truncated_from: Option<Index>, entries: &[Entry]) {
        if let Some(from) = truncated_from {
            // §4.1: a configuration whose entry is gone no longer applies.
            self.membership_history.retain(|(index, _)| *index < from);
        }
        let newest = self.pending_membership_index();
        for entry in entries {
            if let EntryPayload::Membership(m) = &entry.payload {
                if entry.index > newest {
                    self.membership_history.push((entry.index, m.clone()));
                }
            }
        }
        self.on_membership_maybe_changed();
    }

    /// Applies the configuration in effect to the node's role and progress tracking.
    pub(crate) fn on_membership_maybe_changed(&mut self) {
        let current = self.membership_at(Index::MAX);
        if current == self.membership {
            return;
        }
        tracing::info!(id = self.config.id, ?current, "configuration changed");
        self.membership = current;
        match self.state {
            State::Leader => {
                let next = self.log.last_index() + 1;
                let members = self.members_except_self();
                self.progress.retain(|id, _| members.contains(id));
                for id in members {
                    self.progress
                        .entry(id)
                        .or_insert_with(|| Progress::new(next));
                }
                if self
                    .transfer
                    .is_some_and(|t| !self.membership.voters.contains(&t.target))
                {
                    self.transfer = None;
                }
                self.maybe_commit();
                self.confirm_reads();
            }
            State::Candidate | State::PreCandidate if !self.may_campaign() => {
                self.become_follower(self.term, None);
            }
            _ => {}
        }
    }

    /// §4.2.2: once the configuration that removes or demotes the leader is committed, the
    /// leader hands off and steps down. Returns true if it stepped down.
    pub(crate) fn leaves_after_commit(&mut self) -> bool {
        if self.state != State::Leader
            || self.is_voter()
            || self.log.commit < self.pending_membership_index()
        {
            return false;
        }
        let last = self.log.last_index();
        let successor = self.successor_ranks().into_iter().find(|id| {
            self.progress
                .get(id)
                .is_some_and(|pr| pr.match_index == last)
        });
        tracing::info!(
            id = self.config.id,
            ?successor,
            "leaving the voters: stepping down"
        );
        if let Some(successor) = successor {
            self.lease_forbidden = true;
            self.send(successor, MessageBody::TimeoutNow);
        }
        self.become_follower(self.term, None);
        true
    }
}
