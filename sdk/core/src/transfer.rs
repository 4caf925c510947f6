//! Leadership transfer (§3.10).
//!
//! The leader stops accepting proposals, brings the target's log up to date, then sends it
//! TimeoutNow; the target campaigns at once (no pre-vote) and voters grant despite having
//! heard from the leader recently. The transfer is abandoned after an election timeout so
//! the flag can never stay set (hashicorp/raft#493). Once a TimeoutNow was sent, the old
//! leader serves no lease read for the rest of its term, because a delayed TimeoutNow can
//! still start an election that ignores leases (tikv/raft-rs#234).

use crate::error::ProposeError;
use crate::message::MessageBody;
use crate::node::{RaftNode, State, Transfer};
use crate::types::NodeId;

impl RaftNode {
    pub(crate) fn start_transfer(&mut self, target: NodeId) -> Result<(), ProposeError> {
        if self.state != State::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if target == self.config.id {
            // Transferring to oneself cancels a transfer in progress (the TimeoutNow, if
            // sent, cannot be recalled: the lease stays forbidden for the term).
            self.transfer = None;
            return Ok(());
        }
        if let Some(transfer) = self.transfer {
            if transfer.target == target {
                return Ok(());
            }
            return Err(ProposeError::TransferInProgress {
                target: transfer.target,
            });
        }
        if self.membership.learners.contains(&target) {
            return Err(ProposeError::TargetIsLearner(target));
        }
        if !self.membership.voters.contains(&target) || !self.progress.contains_key(&target) {
            return Err(ProposeError::UnknownNode(target));
        }
        tracing::info!(id = self.config.id, target, "leadership transfer started");
        self.transfer = Some(Transfer {
            target,
            elapsed_ticks: 0,
            timeout_now_sent: false,
        });
        self.maybe_send_timeout_now();
        if self.transfer.is_some_and(|t| !t.timeout_now_sent) {
            self.send_appends(target);
        }
        Ok(())
    }

    /// Sends TimeoutNow once the target holds the whole log.
    pub(crate) fn maybe_send_timeout_now(&mut self) {
        let Some(transfer) = self.transfer else {
            return;
        };
        if transfer.timeout_now_sent {
            return;
        }
        let caught_up = self
            .progress
            .get(&transfer.target)
            .is_some_and(|pr| pr.match_index == self.log.last_index());
        if !caught_up {
            return;
        }
        self.transfer = Some(Transfer {
            timeout_now_sent: true,
            ..transfer
        });
        self.lease_forbidden = true;
        self.send(transfer.target, MessageBody::TimeoutNow);
    }

    pub(crate) fn tick_transfer(&mut self) {
        let Some(mut transfer) = self.transfer else {
            return;
        };
        transfer.elapsed_ticks += 1;
        if transfer.elapsed_ticks >= self.config.election_timeout_ticks_min {
            tracing::info!(
                id = self.config.id,
                target = transfer.target,
                "leadership transfer abandoned"
            );
            self.transfer = None;
        } else {
            self.transfer = Some(transfer);
        }
    }

    /// §3.10: the leader asks this node to campaign now, skipping pre-vote.
    pub(crate) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.state == State::Leader || !self.may_campaign() {
            return;
        }
        if self.leader.is_some_and(|leader| leader != from) {
            return;
        }
        tracing::info!(id = self.config.id, from, "TimeoutNow: campaigning");
        self.start_election(true);
    }
}
