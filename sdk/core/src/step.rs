//! Validation of peer input and the term rules every message goes through (§5.1).

use crate::error::StepError;
use crate::message::{AppendOutcome, ConflictHint, Message, MessageBody};
use crate::node::{RaftNode, State, SNAPSHOT_BYTES_LIMIT, SNAPSHOT_CHUNK_BYTES_LIMIT};
use crate::progress::ReplicationState;
use crate::types::{Fitness, NodeId};

fn malformed(reason: &'static str) -> StepError {
    StepError::Malformed(reason)
}

impl RaftNode {
    /// Checks a message without changing anything: an error here means the peer is broken
    /// or hostile, and the message is dropped.
    pub(crate) fn validate(&self, msg: &Message) -> Result<(), StepError> {
        if msg.to != self.config.id {
            return Err(StepError::WrongRecipient { to: msg.to });
        }
        if msg.from == self.config.id {
            return Err(StepError::FromSelf);
        }
        let leader_message = matches!(
            msg.body,
            MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
        );
        let needs_a_term = leader_message
            || matches!(
                msg.body,
                MessageBody::RequestVote { .. } | MessageBody::TimeoutNow
            );
        if needs_a_term && msg.term == 0 {
            return Err(malformed("term 0 has no leader and no election"));
        }
        if leader_message && msg.term == self.term {
            if self.state == State::Leader {
                return Err(malformed("a second leader in this node's term"));
            }
            if self.leader.is_some_and(|leader| leader != msg.from) {
                return Err(malformed("two leaders claim the same term"));
            }
        }
        match &msg.body {
            MessageBody::RequestVote { last_log_term, .. } => {
                if *last_log_term > msg.term {
                    return Err(malformed(
                        "candidate's last entry is from a later term than its own",
                    ));
                }
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                ..
            } => {
                self.validate_append(msg, *prev_log_index, *prev_log_term, entries)?;
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                total_bytes,
                data,
            } => {
                if meta.last_term > msg.term || meta.last_index == 0 {
                    return Err(malformed("snapshot meta out of range"));
                }
                if meta.membership.voters.is_empty() {
                    return Err(malformed("snapshot configuration has no voter"));
                }
                if *total_bytes > SNAPSHOT_BYTES_LIMIT || data.len() > SNAPSHOT_CHUNK_BYTES_LIMIT {
                    return Err(malformed("snapshot too large"));
                }
                let end = offset
                    .checked_add(data.len() as u64)
                    .ok_or(malformed("chunk offset overflows"))?;
                if end > *total_bytes {
                    return Err(malformed("chunk beyond the snapshot's end"));
                }
            }
            MessageBody::AppendEntriesResponse { outcome, fitness } => {
                self.validate_fitness(*fitness)?;
                if self.is_response_to_me_as_leader(msg)? {
                    let last = self.log.last_index();
                    match outcome {
                        AppendOutcome::Accepted { match_index } if *match_index > last => {
                            return Err(malformed("acknowledges entries the leader never sent"));
                        }
                        AppendOutcome::Rejected {
                            prev_log_index,
                            hint,
                        } => {
                            validate_hint(*prev_log_index, *hint, last, msg.term)?;
                        }
                        AppendOutcome::Accepted { .. } => {}
                    }
                }
            }
            MessageBody::HeartbeatResponse { fitness, .. } => {
                self.validate_fitness(*fitness)?;
                self.is_response_to_me_as_leader(msg)?;
            }
            MessageBody::InstallSnapshotResponse {
                snapshot_index,
                next_offset,
                fitness,
                ..
            } => {
                self.validate_fitness(*fitness)?;
                if self.is_response_to_me_as_leader(msg)? {
                    let streaming = self.progress.get(&msg.from).and_then(|pr| match pr.state {
                        ReplicationState::Snapshot(send) => Some(send.index),
                        _ => None,
                    });
                    let size = self
                        .snapshot
                        .as_ref()
                        .filter(|s| Some(s.meta.last_index) == streaming);
                    if let Some(snapshot) = size {
                        if *snapshot_index == snapshot.meta.last_index
                            && *next_offset > snapshot.data.len() as u64
                        {
                            return Err(malformed("acknowledges snapshot bytes never sent"));
                        }
                    }
                }
            }
            MessageBody::RequestVoteResponse { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::TimeoutNow
            | MessageBody::ReadIndexRequest { .. }
            | MessageBody::ReadIndexResponse { .. } => {}
        }
        Ok(())
    }

    fn validate_append(
        &self,
        msg: &Message,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: &[crate::types::Entry],
    ) -> Result<(), StepError> {
        if prev_log_term > msg.term {
            return Err(malformed(
                "previous entry from a later term than the leader's",
            ));
        }
        let mut expected_index = prev_log_index;
        let mut previous_term = prev_log_term;
        for entry in entries {
            expected_index = expected_index
                .checked_add(1)
                .ok_or(malformed("entry index overflows"))?;
            if entry.index != expected_index {
                return Err(malformed("entries are not contiguous after prev_log_index"));
            }
            if entry.term < previous_term || entry.term > msg.term {
                return Err(malformed("entry terms out of order"));
            }
            if let crate::types::EntryPayload::Membership(m) = &entry.payload {
                if m.voters.is_empty() || !m.voters.is_disjoint(&m.learners) {
                    return Err(malformed("configuration entry is not a valid membership"));
                }
            }
            previous_term = entry.term;
        }
        Ok(())
    }

    fn validate_fitness(&self, fitness: Fitness) -> Result<(), StepError> {
        if fitness > Fitness::MAX {
            return Err(malformed("fitness above 1000"));
        }
        Ok(())
    }

    /// True when this node leads the message's term and must check it in detail; an error
    /// when such a response comes from a node this leader does not replicate to.
    fn is_response_to_me_as_leader(&self, msg: &Message) -> Result<bool, StepError> {
        if self.state != State::Leader || msg.term != self.term {
            return Ok(false);
        }
        if !self.progress.contains_key(&msg.from) {
            return Err(StepError::UnknownPeer(msg.from));
        }
        Ok(true)
    }

    /// Applies the term rules (§5.1, §4.2.3, §9.6). Returns false when the message must go
    /// no further.
    pub(crate) fn step_term(&mut self, msg: &Message) -> bool {
        if msg.term > self.term {
            match &msg.body {
                MessageBody::RequestVote {
                    pre_vote,
                    leader_transfer,
                    ..
                } => {
                    // §4.2.3: while a leader is heard from, a vote request is ignored (this
                    // is what keeps a removed or flapping node from deposing the leader),
                    // unless the leader itself asked for the election (§3.10).
                    if !leader_transfer && self.in_lease() {
                        tracing::debug!(
                            id = self.config.id,
                            from = msg.from,
                            "vote request ignored: leader lease"
                        );
                        return false;
                    }
                    if !pre_vote {
                        // §5.2: only a granted vote resets the election timer. Keeping it
                        // running here lets a voter with a better log (but a later timer,
                        // e.g. from its fitness rank) eventually campaign instead of being
                        // held back forever by a candidate it keeps refusing.
                        let timer = (self.election_elapsed, self.randomized_election_timeout);
                        let was_leader = self.state == State::Leader;
                        self.become_follower(msg.term, None);
                        if !was_leader {
                            (self.election_elapsed, self.randomized_election_timeout) = timer;
                        }
                    }
                }
                // A granted pre-vote carries the term the pre-candidate would use.
                MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::TimeoutNow => self.become_follower(msg.term, Some(msg.from)),
                _ => self.become_follower(msg.term, None),
            }
            return true;
        }
        if msg.term < self.term {
            match &msg.body {
                // A stale leader (or a leader of a cluster whose term is behind this node's,
                // etcd#9586) learns the higher term and steps down, so the cluster's term can
                // catch up instead of being stuck.
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. }
                    if self.config.check_quorum || self.config.pre_vote =>
                {
                    let outcome = AppendOutcome::Rejected {
                        prev_log_index: 0,
                        hint: ConflictHint {
                            index: 0,
                            term: None,
                        },
                    };
                    self.send(
                        msg.from,
                        MessageBody::AppendEntriesResponse {
                            outcome,
                            fitness: self.fitness,
                        },
                    );
                }
                MessageBody::RequestVote { pre_vote: true, .. } => {
                    let body = MessageBody::RequestVoteResponse {
                        pre_vote: true,
                        granted: false,
                    };
                    self.send(msg.from, body);
                }
                _ => {}
            }
            return false;
        }
        true
    }

    /// A message from the leader of the current term: follow it.
    pub(crate) fn follow(&mut self, leader: NodeId) {
        self.heard_leader(leader);
        if self.state != State::Follower || self.leader != Some(leader) {
            self.become_follower(self.term, Some(leader));
        }
        self.failed_rounds = 0;
        self.reset_election_timer();
    }
}

fn validate_hint(
    prev_log_index: u64,
    hint: ConflictHint,
    last: u64,
    term: u64,
) -> Result<(), StepError> {
    if prev_log_index > last {
        return Err(malformed("rejects an index the leader never sent"));
    }
    if hint.index > prev_log_index.saturating_add(1) || hint.term.is_some_and(|t| t > term) {
        return Err(malformed("conflict hint out of range"));
    }
    Ok(())
}
