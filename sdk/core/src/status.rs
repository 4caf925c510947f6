//! Roles, status snapshots and small public value types.

use crate::types::{Fitness, Index, Membership, NodeId, Term};
use serde::{Deserialize, Serialize};

/// What a node currently does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A voter following a leader (or waiting for one).
    Follower,
    /// A voter polling for a pre-vote quorum (§9.6).
    PreCandidate,
    /// A voter asking for votes in a new term (§5.2).
    Candidate,
    /// The leader of the current term.
    Leader,
    /// Not a voter in its current configuration (a learner, a node that has not joined
    /// yet, or a removed node): it never campaigns.
    Learner,
}

/// Identifies a proposal. If the entry later committed at `index` has another term, the
/// proposal was lost: retry it (with the same `ClientTag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProposalId {
    /// Term of the leader that appended it.
    pub term: Term,
    /// Index it was appended at.
    pub index: Index,
}

/// A single-server membership change (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Adds a non-voting member.
    AddLearner(NodeId),
    /// Turns a learner into a voter.
    PromoteLearner(NodeId),
    /// Turns a voter into a learner.
    DemoteVoter(NodeId),
    /// Removes a voter or a learner.
    RemoveNode(NodeId),
}

/// The leader's view of one other member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerProgress {
    /// The member.
    pub id: NodeId,
    /// Whether it votes.
    pub is_voter: bool,
    /// Highest index known replicated (durably) on it.
    pub match_index: Index,
    /// Next index to send it.
    pub next_index: Index,
    /// Last fitness it reported.
    pub fitness: Fitness,
    /// It answered in the current check-quorum round or the previous one (§6.2: a round
    /// lasts `election_timeout_ticks_min` ticks), so within the last one to two minimum
    /// election timeouts. Stable across the start of a round, unlike the flag check-quorum
    /// counts, which is cleared then.
    pub recently_active: bool,
    /// A snapshot is being streamed to it.
    pub snapshot_in_flight: bool,
}

/// A snapshot of a node's state for display and decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// Leader it knows of.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit: Index,
    /// Its last log index.
    pub last_index: Index,
    /// The configuration in effect (latest appended).
    pub membership: Membership,
    /// The latest configuration at or below the commit index: the same as `membership`
    /// except while a change is in flight, when a crash may leave the others holding
    /// this one instead (§4.1: a configuration takes effect on append, not on commit).
    pub committed_membership: Membership,
    /// Its fitness.
    pub fitness: Fitness,
}
