//! Messages exchanged between nodes. The transport carries them as opaque values.

use crate::types::{Entry, Fitness, Index, NodeId, SnapshotMeta, Term};
use serde::{Deserialize, Serialize};

/// One message from `from` to `to`, sent in term `term` of its sender.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Addressee.
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term the sender would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of messages of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Asks for a vote (§5.2) or, with `pre_vote`, whether a vote would be granted (§9.6).
    RequestVote {
        /// A pre-vote: the receiver changes no state.
        pre_vote: bool,
        /// Index of the candidate's last entry.
        last_log_index: Index,
        /// Term of the candidate's last entry.
        last_log_term: Term,
        /// The election was started by a leadership transfer (TimeoutNow): voters ignore
        /// their "heard from a leader recently" rule (§3.10).
        leader_transfer: bool,
    },
    /// Answer to `RequestVote`.
    RequestVoteResponse {
        /// Answers a pre-vote.
        pre_vote: bool,
        /// The vote is granted.
        granted: bool,
    },
    /// Replicates entries (§5.3).
    AppendEntries {
        /// Index of the entry just before `entries`.
        prev_log_index: Index,
        /// Term of that entry.
        prev_log_term: Term,
        /// Contiguous entries starting at `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: Index,
    },
    /// Answer to `AppendEntries`; carries the follower's fitness.
    AppendEntriesResponse {
        /// Accepted or rejected, with a back-off hint.
        outcome: AppendOutcome,
        /// The follower's current fitness.
        fitness: Fitness,
    },
    /// Leader liveness, commit propagation and ReadIndex confirmation (§6.4).
    Heartbeat {
        /// min(leader commit, the follower's match index).
        leader_commit: Index,
        /// Identifies the read round this heartbeat confirms; 0 when none.
        read_context: u64,
        /// The follower's place in the leader's succession order (0 = fittest caught-up
        /// voter); it biases the follower's election timeout.
        successor_rank: Option<u32>,
    },
    /// Answer to `Heartbeat`; carries the follower's fitness.
    HeartbeatResponse {
        /// Echo of the heartbeat's read context.
        read_context: u64,
        /// The follower's current fitness.
        fitness: Fitness,
    },
    /// One chunk of a snapshot. The last chunk has `offset + data.len() == total_bytes`.
    InstallSnapshot {
        /// What the snapshot stands for.
        meta: SnapshotMeta,
        /// Byte offset of `data` in the snapshot data.
        offset: u64,
        /// Size of the whole snapshot data.
        total_bytes: u64,
        /// The chunk.
        data: Vec<u8>,
    },
    /// Answer to an `InstallSnapshot` chunk.
    InstallSnapshotResponse {
        /// `meta.last_index` of the snapshot being received.
        snapshot_index: Index,
        /// Bytes received in order so far: the next offset the follower wants.
        next_offset: u64,
        /// The whole snapshot is installed (durable) on the follower.
        complete: bool,
        /// The follower's current fitness.
        fitness: Fitness,
    },
    /// Tells the transfer target to start an election at once (§3.10).
    TimeoutNow,
    /// A follower forwards a linearizable read to the leader.
    ReadIndexRequest {
        /// The follower's request id.
        request_id: u64,
    },
    /// The leader's answer to `ReadIndexRequest`.
    ReadIndexResponse {
        /// The follower's request id.
        request_id: u64,
        /// The read index, or `None` when the leader could not serve it.
        index: Option<Index>,
    },
}

/// Result of an `AppendEntries` on the follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log matches the leader's up to `match_index` (durably).
    Accepted {
        /// Last index covered by the accepted message.
        match_index: Index,
    },
    /// The follower has no entry matching `prev_log_index`/`prev_log_term`.
    Rejected {
        /// The `prev_log_index` that did not match.
        prev_log_index: Index,
        /// Where the leader should look next.
        hint: ConflictHint,
    },
}

/// Fast back-off hint of a rejected append (§5.3, "the follower can include the term of
/// the conflicting entry and the first index it stores for that term").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHint {
    /// First index of `term` in the follower's log, or its last index + 1 when its log is
    /// shorter than `prev_log_index`.
    pub index: Index,
    /// Term of the follower's entry at `prev_log_index`, if it has one.
    pub term: Option<Term>,
}
