//! Log replication (§5.3), commitment (§5.4.2) and heartbeats.

use crate::message::{AppendOutcome, ConflictHint, MessageBody};
use crate::node::{RaftNode, State};
use crate::progress::ReplicationState;
use crate::types::{Entry, Fitness, Index, NodeId, Term};
use std::cmp::Reverse;

/// Heartbeat rounds remembered for lease reads (older acknowledgements are ignored).
pub const HEARTBEAT_ROUNDS_TRACKED_MAX: usize = 64;

impl RaftNode {
    /// Sends every member what it lacks, up to its pipelining window.
    pub(crate) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_appends(peer);
        }
    }

    /// Fills `peer`'s window (or sends one probe).
    pub(crate) fn send_appends(&mut self, peer: NodeId) {
        for _ in 0..self.config.max_inflight_appends {
            if !self.send_append(peer, false) {
                break;
            }
        }
    }

    /// Sends one AppendEntries to `peer`; with `allow_empty`, also when there is nothing
    /// new (to carry the commit index). Returns whether a message was sent.
    pub(crate) fn send_append(&mut self, peer: NodeId, allow_empty: bool) -> bool {
        let max_inflight = self.config.max_inflight_appends;
        let Some(pr) = self.progress.get(&peer) else {
            return false;
        };
        if pr.is_paused(max_inflight) {
            return false;
        }
        let next = pr.next_index;
        let probing = matches!(pr.state, ReplicationState::Probe { .. });
        let prev_log_index = next - 1;
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            // The entries this follower needs were compacted away: stream the snapshot.
            self.start_snapshot_stream(peer);
            return false;
        };
        let entries = self.log.slice(
            next,
            self.log.last_index(),
            self.config.max_entries_per_append,
            self.config.max_append_bytes,
        );
        if entries.is_empty() && !probing && !allow_empty {
            return false;
        }
        let last = entries.last().map(|e| e.index);
        if let Some(pr) = self.progress.get_mut(&peer) {
            pr.sent_append(last);
        }
        let body = MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.log.commit,
        };
        self.send(peer, body);
        last.is_some()
    }

    /// Follower side of AppendEntries (§5.3).
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: Index,
        prev_log_term: Term,
        mut entries: Vec<Entry>,
        leader_commit: Index,
    ) {
        let mut prev = prev_log_index;
        let mut prev_term = prev_log_term;
        let commit = self.log.commit;
        if prev < commit {
            // Committed entries are never overwritten and are in every later leader's log:
            // skip them and match from the commit point.
            let skip = ((commit - prev) as usize).min(entries.len());
            entries.drain(..skip);
            if entries.is_empty() {
                let outcome = AppendOutcome::Accepted {
                    match_index: commit,
                };
                self.send_after_persist(
                    from,
                    MessageBody::AppendEntriesResponse {
                        outcome,
                        fitness: self.fitness,
                    },
                );
                return;
            }
            prev = commit;
            prev_term = self.log.term(commit).unwrap_or(0);
        }
        match self.log.term(prev) {
            Some(term) if term == prev_term => {
                let last_new = prev + entries.len() as Index;
                let truncated = self.log.merge(&entries);
                self.on_log_appended(truncated, &entries);
                debug_assert_eq!(
                    self.log.term(last_new),
                    entries.last().map_or(Some(prev_term), |e| Some(e.term))
                );
                self.log.commit_to(leader_commit.min(last_new));
                let outcome = AppendOutcome::Accepted {
                    match_index: last_new,
                };
                // An acknowledgement promises durability: it leaves after persistence.
                self.send_after_persist(
                    from,
                    MessageBody::AppendEntriesResponse {
                        outcome,
                        fitness: self.fitness,
                    },
                );
            }
            other => {
                let hint = match other {
                    Some(term) => ConflictHint {
                        index: self.log.first_index_of_term_at(prev),
                        term: Some(term),
                    },
                    None => ConflictHint {
                        index: self.log.last_index() + 1,
                        term: None,
                    },
                };
                debug_assert!(hint.index <= prev_log_index + 1);
                tracing::trace!(
                    id = self.config.id,
                    prev_log_index,
                    ?hint,
                    "append rejected"
                );
                let outcome = AppendOutcome::Rejected {
                    prev_log_index,
                    hint,
                };
                self.send(
                    from,
                    MessageBody::AppendEntriesResponse {
                        outcome,
                        fitness: self.fitness,
                    },
                );
            }
        }
    }

    /// Leader side of an AppendEntries answer.
    pub(crate) fn handle_append_response(
        &mut self,
        from: NodeId,
        outcome: AppendOutcome,
        fitness: Fitness,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recently_active = true;
        pr.fitness = fitness;
        match outcome {
            AppendOutcome::Accepted { match_index } => {
                let was_streaming = pr.snapshot_in_flight();
                if let ReplicationState::Snapshot(send) = pr.state {
                    if match_index < send.index {
                        return;
                    }
                }
                let updated = pr.maybe_update(match_index);
                if was_streaming || matches!(pr.state, ReplicationState::Probe { .. }) {
                    pr.become_replicate();
                }
                if updated {
                    self.maybe_commit();
                }
                self.maybe_send_timeout_now();
                self.send_appends(from);
            }
            AppendOutcome::Rejected {
                prev_log_index,
                hint,
            } => {
                let stale = match pr.state {
                    ReplicationState::Replicate => prev_log_index < pr.match_index,
                    ReplicationState::Probe { .. } => prev_log_index + 1 != pr.next_index,
                    ReplicationState::Snapshot(_) => true,
                };
                if stale || prev_log_index < pr.match_index {
                    return;
                }
                let guess = match hint.term {
                    Some(term) => self
                        .log
                        .last_index_of_term(term, prev_log_index)
                        .map_or(hint.index, |i| i + 1),
                    None => hint.index,
                };
                let Some(pr) = self.progress.get_mut(&from) else {
                    return;
                };
                if hint.term.is_none() && hint.index <= pr.match_index {
                    // Its log ends before what it acknowledged: it lost its storage and
                    // came back under the same id. Raft takes acknowledged entries as
                    // kept; what this one held toward a commit is gone already, and
                    // probing above its log's end would only be refused again, at once,
                    // for ever. Replicate it from where its log ends.
                    tracing::warn!(
                        id = self.config.id,
                        peer = from,
                        acknowledged = pr.match_index,
                        log_ends = hint.index.saturating_sub(1),
                        "a follower lost entries it had acknowledged; replicating them again"
                    );
                    pr.match_index = hint.index.saturating_sub(1);
                }
                let next = guess.clamp(pr.match_index + 1, prev_log_index.max(pr.match_index + 1));
                pr.become_probe();
                pr.next_index = next;
                self.send_append(from, false);
            }
        }
    }

    /// §5.4.2: commit the highest index held by a quorum of voters, if it is of this term.
    pub(crate) fn maybe_commit(&mut self) {
        if self.state != State::Leader {
            return;
        }
        let mut matches: Vec<Index> = self
            .membership
            .voters
            .iter()
            .map(|&v| {
                if v == self.config.id {
                    // The leader's own entries count only once durable.
                    self.log.persisted
                } else {
                    self.progress.get(&v).map_or(0, |pr| pr.match_index)
                }
            })
            .collect();
        if matches.is_empty() {
            return;
        }
        matches.sort_unstable_by_key(|&m| Reverse(m));
        let candidate = matches[self.quorum() - 1];
        if candidate <= self.log.commit || self.log.term(candidate) != Some(self.term) {
            return;
        }
        let before = self.log.commit;
        self.log.commit_to(candidate);
        debug_assert!(self.log.commit > before, "commit is monotonic");
        tracing::trace!(id = self.config.id, commit = candidate, "committed");
        self.on_commit_advanced();
    }

    fn on_commit_advanced(&mut self) {
        self.release_reads_awaiting_commit();
        if self.leaves_after_commit() {
            return;
        }
        // Carry the new commit index to followers that have nothing else coming.
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            let idle = self.progress.get(&peer).is_some_and(|pr| {
                pr.state == ReplicationState::Replicate && pr.next_index > self.log.last_index()
            });
            if idle {
                self.send_append(peer, true);
            }
        }
    }

    /// Heartbeats carry the commit index (bounded by what each follower holds), a read
    /// context for ReadIndex, and each voter's place in the succession order. A round goes
    /// to every voter, and to the learners only with `learners` (only voters' answers
    /// count toward reads and check-quorum).
    pub(crate) fn broadcast_heartbeat(&mut self, learners: bool) -> u64 {
        if learners {
            self.learner_heartbeat_elapsed = 0;
        }
        self.reads.read_context += 1;
        let context = self.reads.read_context;
        self.reads
            .heartbeat_rounds
            .push_back((context, self.clock_ticks));
        while self.reads.heartbeat_rounds.len() > HEARTBEAT_ROUNDS_TRACKED_MAX {
            self.reads.heartbeat_rounds.pop_front();
        }
        let ranks = self.successor_ranks();
        let peers: Vec<(NodeId, Index)> = self
            .progress
            .iter()
            .filter(|(id, _)| learners || self.membership.voters.contains(id))
            .map(|(&id, pr)| (id, pr.match_index))
            .collect();
        for (peer, match_index) in peers {
            let successor_rank = ranks.iter().position(|&id| id == peer).map(|r| r as u32);
            let body = MessageBody::Heartbeat {
                leader_commit: self.log.commit.min(match_index),
                read_context: context,
                successor_rank,
            };
            self.send(peer, body);
        }
        context
    }

    /// Voters other than the leader, best successor first: caught up with the commit
    /// index, then by fitness, then by id.
    pub(crate) fn successor_ranks(&self) -> Vec<NodeId> {
        let commit = self.log.commit;
        let mut voters: Vec<(bool, Reverse<Fitness>, NodeId)> = self
            .progress
            .iter()
            .filter(|(id, _)| self.membership.voters.contains(id))
            .map(|(&id, pr)| (pr.match_index < commit, Reverse(pr.fitness), id))
            .collect();
        voters.sort_unstable();
        voters.into_iter().map(|(_, _, id)| id).collect()
    }

    pub(crate) fn handle_heartbeat(
        &mut self,
        from: NodeId,
        leader_commit: Index,
        read_context: u64,
        successor_rank: Option<u32>,
    ) {
        if self.successor_rank != successor_rank {
            self.successor_rank = successor_rank;
            self.reset_election_timer();
        }
        self.log.commit_to(leader_commit.min(self.log.last_index()));
        // Liveness only: nothing here depends on durability, so it leaves at once (an
        // fsync stall must not make the leader look unreachable).
        let body = MessageBody::HeartbeatResponse {
            read_context,
            fitness: self.fitness,
        };
        self.send(from, body);
    }

    pub(crate) fn handle_heartbeat_response(
        &mut self,
        from: NodeId,
        read_context: u64,
        fitness: Fitness,
    ) {
        let max_inflight = self.config.max_inflight_appends;
        let sent_tick = self
            .reads
            .heartbeat_rounds
            .iter()
            .find(|(context, _)| *context == read_context)
            .map(|&(_, tick)| tick);
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recently_active = true;
        pr.fitness = fitness;
        if let Some(tick) = sent_tick {
            pr.last_ack_sent_tick = Some(pr.last_ack_sent_tick.map_or(tick, |t| t.max(tick)));
        }
        match pr.state {
            ReplicationState::Probe { .. } => pr.state = ReplicationState::Probe { sent: false },
            // Frees one slot so a window whose appends were all lost is retried.
            ReplicationState::Replicate if pr.inflight.len() >= max_inflight => {
                pr.inflight.pop_front();
            }
            _ => {}
        }
        let lagging = pr.match_index < last_index;
        if lagging {
            // An empty append at `next_index` makes a follower that lost appends reject,
            // which sends the leader back to probing.
            self.send_append(from, true);
        }
        self.ack_reads(from, read_context);
    }
}
