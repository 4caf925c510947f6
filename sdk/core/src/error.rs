//! Typed errors of the node's inputs.

use crate::types::{Index, NodeId};
use thiserror::Error;

/// Why a proposal, a membership change, a transfer, a read or a campaign was refused.
/// Nothing changed in the node when one of these is returned.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// Only the leader accepts this; `leader` is the one this node knows, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader as far as this node knows.
        leader: Option<NodeId>,
    },
    /// A leadership transfer is under way; retry after it ends.
    #[error("leadership transfer to {target} in progress")]
    TransferInProgress {
        /// Target of the transfer.
        target: NodeId,
    },
    /// Another membership change is not yet committed.
    #[error("a membership change is already in progress")]
    MembershipChangeInProgress,
    /// The leader has not yet committed an entry of its own term.
    #[error("leader has not committed an entry of its term yet")]
    LeaderNotReady,
    /// The node is not a member of the cluster.
    #[error("node {0} is not a member")]
    UnknownNode(NodeId),
    /// Leadership can only go to a voter.
    #[error("node {0} is a learner")]
    TargetIsLearner(NodeId),
    /// The node must first catch up with the leader's log.
    #[error("node {0} has not caught up with the log")]
    TargetNotCaughtUp(NodeId),
    /// The node is already a member.
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    /// The node is not a learner (for a promotion).
    #[error("node {0} is not a learner")]
    NotALearner(NodeId),
    /// The node is not a voter (for a demotion, or for campaigning).
    #[error("node {0} is not a voter")]
    NotAVoter(NodeId),
    /// The change would leave the cluster without voters.
    #[error("the change would leave no voter")]
    WouldLeaveNoVoters,
    /// Too many reads are waiting for confirmation; retry later.
    #[error("too many pending reads (limit {limit})")]
    TooManyPendingReads {
        /// The limit in force.
        limit: usize,
    },
}

/// Why a message from a peer was refused. The node's state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StepError {
    /// The message is addressed to another node.
    #[error("message addressed to {to}, not to this node")]
    WrongRecipient {
        /// The addressee written in the message.
        to: NodeId,
    },
    /// The message claims to come from this node itself.
    #[error("message claims to come from this node")]
    FromSelf,
    /// A response from a node this node is not tracking (not a member, or not its leader).
    #[error("unexpected message from {0}")]
    UnknownPeer(NodeId),
    /// The message contradicts itself or this node's log in a way no correct peer produces.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

/// Why `compact` was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CompactError {
    /// The index has not been handed out as committed (and applied) yet.
    #[error("index {index} not applied yet (applied: {applied})")]
    NotApplied {
        /// Requested index.
        index: Index,
        /// Highest index handed out in `committed_entries`.
        applied: Index,
    },
    /// The log is already compacted at or beyond this index.
    #[error("already compacted up to {snapshot_index}")]
    AlreadyCompacted {
        /// Requested index.
        index: Index,
        /// Last index of the current snapshot.
        snapshot_index: Index,
    },
}
