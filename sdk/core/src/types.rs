//! Data that leaves the core: it is persisted by storage and carried by the transport,
//! so every type here is serde-serializable and its shape is part of the protocol.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Identity of a node in the cluster. The transport derives it from the node's public
/// key, so it cannot be claimed by another peer.
pub type NodeId = u64;
/// A Raft term (§5.1): a logical clock that only grows.
pub type Term = u64;
/// A position in the replicated log; the first entry has index 1, 0 means "none".
pub type Index = u64;

/// What must be durable before a vote or an acknowledgement depends on it (§5.1, Fig. 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this node has seen.
    pub term: Term,
    /// Candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// Highest index known committed. Not required for safety; it lets a restarted node
    /// re-apply what it already knows is committed without waiting for a leader.
    pub commit: Index,
}

/// Names a client proposal so that a retry (for example after a host migration) is
/// applied once: the pair (client, sequence) is unique per logical operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientTag {
    /// Stable identity of the proposing client (a player, a tool).
    pub client_id: u64,
    /// Strictly increasing per client; a retry reuses the number.
    pub sequence: u64,
}

/// The voting and non-voting members of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Members whose votes and acknowledgements count toward a quorum.
    pub voters: BTreeSet<NodeId>,
    /// Warm non-voting members: they receive the log and never count toward a quorum.
    pub learners: BTreeSet<NodeId>,
}

/// What one log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by a new leader so it can commit an entry of its own term (§5.4.2, §6.4).
    Noop,
    /// Application data, optionally tagged for exactly-once application.
    Command {
        /// Deduplication tag; `None` for proposals that need no retry protection.
        tag: Option<ClientTag>,
        /// Opaque application bytes (for Baton sessions: a tick record or an input).
        data: Vec<u8>,
    },
    /// A new cluster configuration; it takes effect as soon as it is appended (§4.1).
    Membership(Membership),
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Position of the entry in the log.
    pub index: Index,
    /// What the entry carries.
    pub payload: EntryPayload,
}

/// Describes the state a snapshot stands for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot includes.
    pub last_index: Index,
    /// Term of that entry.
    pub last_term: Term,
    /// The configuration in effect at `last_index`.
    pub membership: Membership,
}

/// A snapshot of the application state at `meta.last_index` (§5, log compaction).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// What the snapshot stands for.
    pub meta: SnapshotMeta,
    /// Opaque application state.
    pub data: Vec<u8>,
}

/// Everything a node recovers from its storage after a restart: the core is rebuilt from
/// this alone, so anything not in here was never promised to anyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistedState {
    /// Last durable hard state.
    pub hard_state: HardState,
    /// Last durable snapshot, if the log was ever compacted.
    pub snapshot: Option<Snapshot>,
    /// Durable entries after the snapshot, contiguous and in index order.
    pub entries: Vec<Entry>,
}

/// How well a node would host the session, in thousandths: 0 cannot host, 1000 is ideal.
/// Supplied from outside the core (link quality, load, battery, a game score); it biases
/// elections and transfer targets, and safety never depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fitness(pub u16);

impl Fitness {
    /// The best possible fitness.
    pub const MAX: Fitness = Fitness(1000);
    /// A node that must not host unless nobody else can.
    pub const MIN: Fitness = Fitness(0);

    /// Builds a fitness from a fraction in `[0, 1]`, clamping anything outside.
    pub fn from_fraction(fraction: f64) -> Fitness {
        let clamped = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        Fitness((clamped * 1000.0).round() as u16)
    }

    /// The fitness as a fraction in `[0, 1]`.
    pub fn as_fraction(self) -> f64 {
        f64::from(self.0.min(1000)) / 1000.0
    }
}

impl Default for Fitness {
    fn default() -> Self {
        Fitness(500)
    }
}
