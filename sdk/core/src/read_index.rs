//! Linearizable reads (§6.4): ReadIndex with a heartbeat round, forwarding from followers,
//! and opt-in lease reads.
//!
//! A leader answers a read with its commit index once a quorum of voters acknowledged a
//! heartbeat sent after the read arrived, and only after it has committed an entry of its
//! own term (reads wait for that). A follower forwards the read to its leader and gets the
//! index back. With `lease_reads`, a leader answers at once while a quorum acknowledged a
//! heartbeat sent less than `election_timeout_ticks_min - margin` ago, never during a
//! transfer nor after having sent TimeoutNow in the term.

use crate::error::ProposeError;
use crate::message::MessageBody;
use crate::node::{RaftNode, State};
use crate::ready::ReadState;
use crate::types::{Index, NodeId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most reads waiting on one node (leader-side plus forwarded).
pub const READS_PENDING_MAX: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadRequester {
    Local(u64),
    Forwarded { from: NodeId, request_id: u64 },
}

#[derive(Debug)]
pub(crate) struct PendingRead {
    context: u64,
    index: Index,
    requester: ReadRequester,
    acks: BTreeSet<NodeId>,
}

#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// Context of the last heartbeat round.
    pub(crate) read_context: u64,
    /// (context, tick sent) of recent heartbeat rounds.
    pub(crate) heartbeat_rounds: VecDeque<(u64, u64)>,
    pending: VecDeque<PendingRead>,
    /// Reads that wait for the leader's first commit in its term.
    awaiting_commit: Vec<ReadRequester>,
    /// Reads forwarded to the leader: request id -> ticks waited.
    forwarded: BTreeMap<u64, u32>,
}

impl RaftNode {
    pub(crate) fn start_read_index(&mut self, request_id: u64) -> Result<(), ProposeError> {
        if self.state == State::Leader {
            return self.leader_read(ReadRequester::Local(request_id));
        }
        let Some(leader) = self.leader else {
            return Err(ProposeError::NotLeader { leader: None });
        };
        if self.reads.forwarded.len() >= READS_PENDING_MAX {
            return Err(ProposeError::TooManyPendingReads {
                limit: READS_PENDING_MAX,
            });
        }
        self.reads.forwarded.insert(request_id, 0);
        self.send(leader, MessageBody::ReadIndexRequest { request_id });
        Ok(())
    }

    fn leader_read(&mut self, requester: ReadRequester) -> Result<(), ProposeError> {
        if self.reads.pending.len() + self.reads.awaiting_commit.len() >= READS_PENDING_MAX {
            return Err(ProposeError::TooManyPendingReads {
                limit: READS_PENDING_MAX,
            });
        }
        if !self.has_committed_in_term() {
            self.reads.awaiting_commit.push(requester);
            return Ok(());
        }
        self.start_confirmed_read(requester);
        Ok(())
    }

    fn start_confirmed_read(&mut self, requester: ReadRequester) {
        let index = self.log.commit;
        let alone = self.membership.voters.len() == 1 && self.is_voter();
        if alone || self.lease_valid() {
            self.resolve_read(requester, index);
            return;
        }
        let context = self.broadcast_heartbeat(false);
        let mut acks = BTreeSet::new();
        if self.is_voter() {
            acks.insert(self.config.id);
        }
        self.reads.pending.push_back(PendingRead {
            context,
            index,
            requester,
            acks,
        });
    }

    /// Whether the leader may answer from its lease (opt-in): a quorum of voters answered
    /// heartbeats sent recently enough that none of them can have voted for another leader.
    fn lease_valid(&self) -> bool {
        if !self.config.lease_reads || self.lease_forbidden || self.transfer.is_some() {
            return false;
        }
        let min = u64::from(self.config.election_timeout_ticks_min);
        let drift_margin_ticks = (min / 4).max(1);
        let lease_ticks = min.saturating_sub(drift_margin_ticks);
        let mut sent_ticks: Vec<u64> = self
            .membership
            .voters
            .iter()
            .filter_map(|&v| {
                if v == self.config.id {
                    Some(self.clock_ticks)
                } else {
                    self.progress.get(&v).and_then(|pr| pr.last_ack_sent_tick)
                }
            })
            .collect();
        if sent_ticks.len() < self.quorum() {
            return false;
        }
        sent_ticks.sort_unstable_by_key(|&t| Reverse(t));
        let lease_start = sent_ticks[self.quorum() - 1];
        self.clock_ticks < lease_start + lease_ticks
    }

    pub(crate) fn release_reads_awaiting_commit(&mut self) {
        if !self.has_committed_in_term() || self.reads.awaiting_commit.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.reads.awaiting_commit);
        for requester in waiting {
            self.start_confirmed_read(requester);
        }
    }

    pub(crate) fn ack_reads(&mut self, from: NodeId, context: u64) {
        if !self.membership.voters.contains(&from) {
            return;
        }
        for read in self
            .reads
            .pending
            .iter_mut()
            .filter(|r| r.context <= context)
        {
            read.acks.insert(from);
        }
        self.confirm_reads();
    }

    /// Resolves, oldest first, the reads whose acks are a quorum of the voters in effect.
    /// Also run when the configuration changes: a read that counted on a voter since
    /// removed is confirmed by the acks of the rest (the leader's own, when it is left
    /// alone), which no later heartbeat answer would otherwise bring.
    pub(crate) fn confirm_reads(&mut self) {
        let quorum = self.quorum();
        while let Some(read) = self.reads.pending.front() {
            let confirmed = read
                .acks
                .iter()
                .filter(|id| self.membership.voters.contains(id))
                .count()
                >= quorum;
            if !confirmed {
                break;
            }
            if let Some(read) = self.reads.pending.pop_front() {
                self.resolve_read(read.requester, read.index);
            }
        }
    }

    fn resolve_read(&mut self, requester: ReadRequester, index: Index) {
        match requester {
            ReadRequester::Local(request_id) => {
                self.out.read_states.push(ReadState { request_id, index })
            }
            ReadRequester::Forwarded { from, request_id } => self.send(
                from,
                MessageBody::ReadIndexResponse {
                    request_id,
                    index: Some(index),
                },
            ),
        }
    }

    fn fail_read(&mut self, requester: ReadRequester) {
        match requester {
            ReadRequester::Local(request_id) => self.out.failed_reads.push(request_id),
            ReadRequester::Forwarded { from, request_id } => self.send(
                from,
                MessageBody::ReadIndexResponse {
                    request_id,
                    index: None,
                },
            ),
        }
    }

    /// Leadership is lost: nothing pending can be confirmed any more.
    pub(crate) fn fail_leader_reads(&mut self) {
        let pending: Vec<ReadRequester> =
            self.reads.pending.drain(..).map(|r| r.requester).collect();
        let waiting = std::mem::take(&mut self.reads.awaiting_commit);
        for requester in pending.into_iter().chain(waiting) {
            self.fail_read(requester);
        }
    }

    /// The leader changed: reads forwarded to the old one will not be answered.
    pub(crate) fn fail_forwarded_reads(&mut self) {
        let forwarded = std::mem::take(&mut self.reads.forwarded);
        self.out.failed_reads.extend(forwarded.into_keys());
    }

    pub(crate) fn tick_forwarded_reads(&mut self) {
        let limit = self.config.election_timeout_ticks_max;
        let mut expired = Vec::new();
        for (&request_id, waited) in self.reads.forwarded.iter_mut() {
            *waited += 1;
            if *waited >= limit {
                expired.push(request_id);
            }
        }
        for request_id in expired {
            self.reads.forwarded.remove(&request_id);
            self.out.failed_reads.push(request_id);
        }
    }

    pub(crate) fn handle_read_index_request(&mut self, from: NodeId, request_id: u64) {
        let requester = ReadRequester::Forwarded { from, request_id };
        if self.state != State::Leader || self.leader_read(requester).is_err() {
            self.fail_read(requester);
        }
    }

    pub(crate) fn handle_read_index_response(&mut self, request_id: u64, index: Option<Index>) {
        if self.reads.forwarded.remove(&request_id).is_none() {
            return;
        }
        match index {
            Some(index) => self.out.read_states.push(ReadState { request_id, index }),
            None => self.out.failed_reads.push(request_id),
        }
    }
}
