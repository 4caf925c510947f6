//! The Raft node: its state, its public inputs and outputs, and message dispatch.
//!
//! Method families (as in quinn-proto): inputs (`tick`, `step`, `propose*`,
//! `transfer_leadership`, `read_index`, `set_fitness`, `campaign`, `compact`) may be called
//! at any time, also between `ready()` and `advance()`; outputs are taken with `ready()`;
//! `advance()` reports durability. The rules live in modules named after the paper:
//! `election`, `replication`, `membership`, `transfer`, `read_index`, `snapshot`.

use crate::config::{Config, ConfigError};
use crate::detector::ArrivalEstimate;
use crate::error::{CompactError, ProposeError, StepError};
use crate::log::RaftLog;
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::read_index::Reads;
use crate::ready::{ReadState, Ready, SoftState};
use crate::status::{MembershipChange, PeerProgress, ProposalId, Role, Status};
use crate::types::{
    ClientTag, Entry, EntryPayload, Fitness, HardState, Index, Membership, NodeId, PersistedState,
    Snapshot, Term,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};

/// Largest snapshot a follower accepts to assemble in memory, in bytes.
pub const SNAPSHOT_BYTES_LIMIT: u64 = 1 << 30;
/// Largest InstallSnapshot chunk a follower accepts, in bytes.
pub const SNAPSHOT_CHUNK_BYTES_LIMIT: usize = 64 << 20;

/// What the node does, before membership is taken into account (see [`Role`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A leadership transfer in progress (§3.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transfer {
    pub(crate) target: NodeId,
    pub(crate) elapsed_ticks: u32,
    pub(crate) timeout_now_sent: bool,
}

/// A snapshot being received chunk by chunk.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    pub(crate) meta: crate::types::SnapshotMeta,
    pub(crate) total_bytes: u64,
    pub(crate) data: Vec<u8>,
}

/// Everything produced since the last `ready()`.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) messages: Vec<Message>,
    pub(crate) persisted_messages: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) failed_reads: Vec<u64>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) compaction: Option<Snapshot>,
}

/// A sans-IO Raft node. See the crate docs for the driving loop.
pub struct RaftNode {
    pub(crate) config: Config,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) leader: Option<NodeId>,
    pub(crate) state: State,
    pub(crate) log: RaftLog,
    /// Configuration in effect: the latest one in the log, or the snapshot's.
    pub(crate) membership: Membership,
    /// Membership entries of the log after the snapshot, in index order.
    pub(crate) membership_history: Vec<(Index, Membership)>,
    pub(crate) snapshot_membership: Membership,
    /// Latest snapshot (made or received), kept to stream it to followers.
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) incoming_snapshot: Option<IncomingSnapshot>,
    pub(crate) fitness: Fitness,
    /// Logical clock: ticks since the node was created.
    pub(crate) clock_ticks: u64,
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Ticks since the last heartbeat round that included the learners.
    pub(crate) learner_heartbeat_elapsed: u32,
    pub(crate) randomized_election_timeout: u32,
    /// Election timeouts that fired since a leader was last heard from (decays fitness bias).
    pub(crate) failed_rounds: u32,
    /// Place in the last leader's succession order.
    pub(crate) successor_rank: Option<u32>,
    /// Arrivals of the messages of the leader last followed, and its id: kept while it is
    /// suspected, so the silence that made it suspect is measured when it speaks again.
    pub(crate) leader_arrivals: Option<(NodeId, ArrivalEstimate)>,
    pub(crate) votes: BTreeMap<NodeId, bool>,
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    pub(crate) transfer: Option<Transfer>,
    /// A TimeoutNow was sent in this term: no lease reads for the rest of it.
    pub(crate) lease_forbidden: bool,
    pub(crate) reads: Reads,
    /// A candidate whose own vote is a quorum wins only once its new term and vote are
    /// durable: (term, number of the Ready that handed them out). Its appends leave at
    /// once, so a term that could be forgotten in a crash would let it lead the same term
    /// twice with different entries.
    pub(crate) self_election: Option<(Term, Option<u64>)>,
    pub(crate) out: Outbox,
    pub(crate) ready_number: u64,
    /// (Ready number, last index it asked to persist, term of that entry).
    pub(crate) pending_persist: VecDeque<(u64, Index, Term)>,
    pub(crate) last_soft: SoftState,
    pub(crate) last_hard: HardState,
}

impl RaftNode {
    /// Rebuilds a node from what storage holds (the runtime persists `bootstrap()` first).
    /// After a restart the application restores `persisted.snapshot` itself; the node then
    /// hands out the committed entries after it again in `committed_entries`.
    pub fn new(config: Config, persisted: PersistedState) -> Result<RaftNode, ConfigError> {
        config.validate()?;
        let PersistedState {
            hard_state,
            snapshot,
            entries,
        } = persisted;
        let snapshot_meta = snapshot.as_ref().map(|s| s.meta.clone());
        check_recovered_log(snapshot_meta.as_ref(), &entries, &hard_state)?;
        let snapshot_membership = snapshot_meta
            .as_ref()
            .map(|m| m.membership.clone())
            .unwrap_or_default();
        let membership_history: Vec<(Index, Membership)> = entries
            .iter()
            .filter_map(|e| match &e.payload {
                EntryPayload::Membership(m) => Some((e.index, m.clone())),
                _ => None,
            })
            .collect();
        let membership = membership_history
            .last()
            .map_or_else(|| snapshot_membership.clone(), |(_, m)| m.clone());
        if hard_state.commit
            > entries
                .last()
                .map_or(0, |e| e.index)
                .max(snapshot_meta.as_ref().map_or(0, |m| m.last_index))
        {
            tracing::warn!(
                commit = hard_state.commit,
                "persisted commit index beyond the log; clamped"
            );
        }
        let log = RaftLog::recovered(snapshot_meta.as_ref(), entries, hard_state.commit);
        let rng = ChaCha8Rng::seed_from_u64(config.rng_seed);
        let fitness = config.fitness;
        let mut node = RaftNode {
            rng,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            state: State::Follower,
            log,
            membership,
            membership_history,
            snapshot_membership,
            snapshot,
            incoming_snapshot: None,
            fitness,
            clock_ticks: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            learner_heartbeat_elapsed: 0,
            randomized_election_timeout: config.election_timeout_ticks_min,
            failed_rounds: 0,
            successor_rank: None,
            leader_arrivals: None,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            transfer: None,
            lease_forbidden: false,
            reads: Reads::default(),
            self_election: None,
            out: Outbox::default(),
            ready_number: 0,
            pending_persist: VecDeque::new(),
            last_soft: SoftState {
                role: Role::Follower,
                leader: None,
                term: 0,
            },
            last_hard: hard_state,
            config,
        };
        node.last_soft = node.soft_state();
        node.last_hard = node.hard_state();
        node.reset_election_timer();
        Ok(node)
    }

    // ---------------------------------------------------------------- inputs

    /// One logical clock tick: drives elections, heartbeats, check-quorum, transfer and
    /// snapshot-stream timeouts.
    pub fn tick(&mut self) {
        self.clock_ticks += 1;
        if self.state == State::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.tick_forwarded_reads();
    }

    /// Handles a message from a peer. A malformed or foreign message is refused with an
    /// error and changes nothing.
    pub fn step(&mut self, msg: Message) -> Result<(), StepError> {
        self.validate(&msg)?;
        if !self.step_term(&msg) {
            return Ok(());
        }
        let Message {
            from, term, body, ..
        } = msg;
        match body {
            MessageBody::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
                ..
            } => self.handle_request_vote(from, term, pre_vote, last_log_index, last_log_term),
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, term, pre_vote, granted)
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => {
                self.follow(from);
                self.handle_append(from, prev_log_index, prev_log_term, entries, leader_commit);
            }
            MessageBody::Heartbeat {
                leader_commit,
                read_context,
                successor_rank,
            } => {
                self.follow(from);
                self.handle_heartbeat(from, leader_commit, read_context, successor_rank);
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                total_bytes,
                data,
            } => {
                self.follow(from);
                self.handle_snapshot_chunk(from, meta, offset, total_bytes, data);
            }
            MessageBody::AppendEntriesResponse { outcome, fitness } => {
                if self.state == State::Leader {
                    self.heard_answer(from);
                    self.handle_append_response(from, outcome, fitness);
                }
            }
            MessageBody::HeartbeatResponse {
                read_context,
                fitness,
            } => {
                if self.state == State::Leader {
                    self.heard_answer(from);
                    self.handle_heartbeat_response(from, read_context, fitness);
                }
            }
            MessageBody::InstallSnapshotResponse {
                snapshot_index,
                next_offset,
                complete,
                fitness,
            } => {
                if self.state == State::Leader {
                    self.heard_answer(from);
                    self.handle_snapshot_response(
                        from,
                        snapshot_index,
                        next_offset,
                        complete,
                        fitness,
                    );
                }
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::ReadIndexRequest { request_id } => {
                self.handle_read_index_request(from, request_id)
            }
            MessageBody::ReadIndexResponse { request_id, index } => {
                self.handle_read_index_response(request_id, index)
            }
        }
        self.debug_check_invariants();
        Ok(())
    }

    /// Proposes application data (leader only). The entry is committed once a quorum of
    /// voters holds it; watch `committed_entries` for `ProposalId::index`.
    pub fn propose(
        &mut self,
        data: Vec<u8>,
        tag: Option<ClientTag>,
    ) -> Result<ProposalId, ProposeError> {
        self.check_can_propose()?;
        Ok(self.append_as_leader(EntryPayload::Command { tag, data }))
    }

    /// Proposes a single-server membership change (leader only); see `membership`.
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<ProposalId, ProposeError> {
        self.check_can_propose()?;
        let next = self.membership_after(change)?;
        let id = self.append_as_leader(EntryPayload::Membership(next));
        self.maybe_commit();
        Ok(id)
    }

    /// Hands leadership to the voter `target` (§3.10): it is brought up to date, then told
    /// to campaign at once. Proposals are refused meanwhile; the transfer is abandoned after
    /// an election timeout. `target == self` cancels a transfer in progress.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), ProposeError> {
        self.start_transfer(target)
    }

    /// Starts a linearizable read (§6.4). The answer comes in `Ready::read_states` (serve the
    /// read once applied up to its index) or, if it cannot be served, in
    /// `Ready::failed_reads`. On a follower or learner the read is forwarded to the leader.
    pub fn read_index(&mut self, request_id: u64) -> Result<(), ProposeError> {
        self.start_read_index(request_id)
    }

    /// Updates this node's fitness; it is reported to the leader in the next responses
    /// and biases this node's election timeout.
    pub fn set_fitness(&mut self, fitness: Fitness) {
        self.fitness = fitness.min(Fitness::MAX);
    }

    /// Starts an election now (with a pre-vote round if configured).
    pub fn campaign(&mut self) -> Result<(), ProposeError> {
        if self.state == State::Leader {
            return Ok(());
        }
        if !self.may_campaign() {
            return Err(ProposeError::NotAVoter(self.config.id));
        }
        self.start_election(false);
        Ok(())
    }

    /// The application has applied everything up to `applied_index` and hands its state as
    /// `data`: the core makes a snapshot there and drops the log before it.
    pub fn compact(&mut self, applied_index: Index, data: Vec<u8>) -> Result<(), CompactError> {
        self.compact_log(applied_index, data)
    }

    // ---------------------------------------------------------------- outputs

    /// Whether `ready()` has anything to hand out.
    pub fn has_ready(&self) -> bool {
        let out = &self.out;
        !out.messages.is_empty()
            || !out.persisted_messages.is_empty()
            || !out.read_states.is_empty()
            || !out.failed_reads.is_empty()
            || out.snapshot.is_some()
            || out.compaction.is_some()
            || self.log.has_unstable()
            || self.log.has_committed_to_apply()
            || self.hard_state() != self.last_hard
            || self.soft_state() != self.last_soft
            || matches!(self.self_election, Some((_, None)))
    }

    /// Takes everything pending. See [`Ready`] for what the caller must do with it.
    #[must_use]
    pub fn ready(&mut self) -> Ready {
        self.ready_number += 1;
        let number = self.ready_number;
        let soft = self.soft_state();
        let soft_state = (soft != self.last_soft).then_some(soft);
        self.last_soft = soft;
        let snapshot = self.out.snapshot.take();
        let compaction = self.out.compaction.take();
        let entries = self.log.take_unstable();
        if let Some(last) = entries.last() {
            self.pending_persist
                .push_back((number, last.index, last.term));
        } else if let Some(snapshot) = &snapshot {
            self.pending_persist.push_back((
                number,
                snapshot.meta.last_index,
                snapshot.meta.last_term,
            ));
        }
        let hard = self.hard_state();
        let hard_state = (hard != self.last_hard).then_some(hard);
        self.last_hard = hard;
        if let Some((term, None)) = self.self_election {
            self.self_election = Some((term, Some(number)));
        }
        let applied_before = self.log.applied;
        let committed_entries = self.log.take_committed();
        debug_assert!(
            committed_entries
                .iter()
                .zip(applied_before + 1..)
                .all(|(e, index)| e.index == index),
            "committed entries are handed out contiguously, once"
        );
        debug_assert!(
            entries
                .windows(2)
                .all(|w| w[1].index == w[0].index + 1 && w[1].term >= w[0].term),
            "entries to persist are contiguous with non-decreasing terms"
        );
        let out = std::mem::take(&mut self.out);
        Ready {
            number,
            soft_state,
            hard_state,
            snapshot,
            compaction,
            entries,
            messages: out.messages,
            persisted_messages: out.persisted_messages,
            committed_entries,
            read_states: out.read_states,
            failed_reads: out.failed_reads,
        }
    }

    /// Everything Ready number <= `ready_number` asked to persist is now durable.
    pub fn advance(&mut self, ready_number: u64) {
        if ready_number > self.ready_number {
            tracing::warn!(
                ready_number,
                handed_out = self.ready_number,
                "advance of a Ready never handed out"
            );
        }
        let ready_number = ready_number.min(self.ready_number);
        while let Some(&(number, index, term)) = self.pending_persist.front() {
            if number > ready_number {
                break;
            }
            self.pending_persist.pop_front();
            // Log matching (§5.3): same index and term means the same entry and prefix, so
            // what was written is still what the log holds up to `index`.
            if self.log.term(index) == Some(term) && index > self.log.persisted {
                self.log.persisted = index;
            }
        }
        debug_assert!(self.log.persisted <= self.log.last_index());
        if let Some((term, Some(number))) = self.self_election {
            if number <= ready_number && term == self.term && self.state == State::Candidate {
                self.self_election = None;
                self.become_leader();
            }
        }
        if self.state == State::Leader {
            self.maybe_commit();
        }
    }

    // ---------------------------------------------------------------- status

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// Current role.
    pub fn role(&self) -> Role {
        match self.state {
            State::Leader => Role::Leader,
            State::Candidate => Role::Candidate,
            State::PreCandidate => Role::PreCandidate,
            State::Follower if self.is_voter() => Role::Follower,
            State::Follower => Role::Learner,
        }
    }

    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader this node knows of.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.leader
    }

    /// Highest index known committed.
    pub fn commit_index(&self) -> Index {
        self.log.commit
    }

    /// Index of the last entry in the log.
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    /// The configuration in effect (the latest appended one, §4.1).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// This node's fitness.
    pub fn fitness(&self) -> Fitness {
        self.fitness
    }

    /// On the leader: every other member's replication state and reported fitness.
    /// Empty on other nodes.
    pub fn progress(&self) -> Vec<PeerProgress> {
        if self.state != State::Leader {
            return Vec::new();
        }
        self.progress
            .iter()
            .map(|(&id, pr)| PeerProgress {
                id,
                is_voter: self.membership.voters.contains(&id),
                match_index: pr.match_index,
                next_index: pr.next_index,
                fitness: pr.fitness,
                recently_active: pr.reported_active(),
                snapshot_in_flight: pr.snapshot_in_flight(),
            })
            .collect()
    }

    /// A snapshot of the node's state.
    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            role: self.role(),
            term: self.term,
            leader: self.leader,
            commit: self.log.commit,
            last_index: self.log.last_index(),
            membership: self.membership.clone(),
            committed_membership: self.membership_at(self.log.commit),
            fitness: self.fitness,
        }
    }

    /// The silence, in ticks, after which this node suspects its leader: measured on the
    /// leader's messages and bounded by the configured floor and ceiling, or `None` while
    /// it is not measured (the fixed election timeout range applies then).
    pub fn detection_timeout_ticks(&self) -> Option<u32> {
        self.detection_timeout()
    }

    /// The election timeout drawn for the current round, in ticks (detection timeout,
    /// fitness shift and jitter).
    pub fn election_timeout_ticks(&self) -> u32 {
        self.randomized_election_timeout
    }

    /// On a leader, the ticks between its heartbeat rounds as its followers' answers set it.
    pub fn heartbeat_interval_ticks(&self) -> u32 {
        self.heartbeat_interval()
    }

    /// Target of the leadership transfer in progress, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.target)
    }

    /// Term of the entry at `index`, if the log holds it (or it is the snapshot's last
    /// entry). For invariant checkers (log matching, leader completeness).
    pub fn entry_term(&self, index: Index) -> Option<Term> {
        self.log.term(index)
    }

    /// Index of the last entry covered by the latest snapshot (0 if none).
    pub fn snapshot_index(&self) -> Index {
        self.log.snapshot_index()
    }

    /// Highest index handed out in `committed_entries` (or restored from a snapshot).
    pub fn applied_index(&self) -> Index {
        self.log.applied
    }

    /// Highest index known durable locally.
    pub fn persisted_index(&self) -> Index {
        self.log.persisted
    }

    // ---------------------------------------------------------------- helpers

    pub(crate) fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role(),
            leader: self.leader,
            term: self.term,
        }
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.commit.min(self.log.last_index()),
        }
    }

    pub(crate) fn is_voter(&self) -> bool {
        self.membership.voters.contains(&self.config.id)
    }

    pub(crate) fn quorum(&self) -> usize {
        self.membership.voters.len() / 2 + 1
    }

    /// Queues a message that may leave at once.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_in_term(to, self.term, body);
    }

    pub(crate) fn send_in_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        debug_assert_ne!(to, self.config.id, "never message self");
        self.out.messages.push(Message {
            from: self.config.id,
            to,
            term,
            body,
        });
    }

    /// Queues a message that may leave only once the current Ready is durable.
    pub(crate) fn send_after_persist(&mut self, to: NodeId, body: MessageBody) {
        debug_assert_ne!(to, self.config.id, "never message self");
        self.out.persisted_messages.push(Message {
            from: self.config.id,
            to,
            term: self.term,
            body,
        });
    }

    fn check_can_propose(&self) -> Result<(), ProposeError> {
        if self.state != State::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(transfer) = self.transfer {
            return Err(ProposeError::TransferInProgress {
                target: transfer.target,
            });
        }
        Ok(())
    }

    pub(crate) fn has_committed_in_term(&self) -> bool {
        self.log.term(self.log.commit) == Some(self.term)
    }

    fn append_as_leader(&mut self, payload: EntryPayload) -> ProposalId {
        let index = self.log.last_index() + 1;
        let entry = Entry {
            term: self.term,
            index,
            payload,
        };
        if let EntryPayload::Membership(m) = &entry.payload {
            self.membership_history.push((index, m.clone()));
        }
        self.log.append_new(entry);
        self.on_membership_maybe_changed();
        self.broadcast_append();
        ProposalId {
            term: self.term,
            index,
        }
    }

    pub(crate) fn append_noop(&mut self) {
        let _ = self.append_as_leader(EntryPayload::Noop);
    }

    fn debug_check_invariants(&self) {
        debug_assert!(
            self.log.commit <= self.log.last_index(),
            "commit within the log"
        );
        debug_assert!(self.log.applied <= self.log.commit.max(self.log.snapshot_index()));
        debug_assert!(self.log.applied <= self.log.persisted.max(self.log.snapshot_index()));
        debug_assert!(
            self.log.last_term() <= self.term,
            "no entry from the future"
        );
        debug_assert!(self.state != State::Leader || self.leader == Some(self.config.id));
        debug_assert!(
            self.state == State::Leader || self.progress.is_empty(),
            "only a leader tracks progress"
        );
    }
}

/// Refuses a persisted state that contradicts itself.
fn check_recovered_log(
    snapshot: Option<&crate::types::SnapshotMeta>,
    entries: &[Entry],
    hard_state: &HardState,
) -> Result<(), ConfigError> {
    let (mut prev_index, mut prev_term) = snapshot.map_or((0, 0), |m| (m.last_index, m.last_term));
    for entry in entries {
        if entry.index != prev_index + 1 {
            return Err(ConfigError::PersistedState(
                "log entries are not contiguous after the snapshot",
            ));
        }
        if entry.term < prev_term {
            return Err(ConfigError::PersistedState("log terms decrease"));
        }
        prev_index = entry.index;
        prev_term = entry.term;
    }
    if prev_term > hard_state.term {
        return Err(ConfigError::PersistedState(
            "log holds an entry from a term after the hard state's",
        ));
    }
    Ok(())
}
