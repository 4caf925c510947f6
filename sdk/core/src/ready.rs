//! What the node hands to its driver: things to persist, send and apply.

use crate::message::Message;
use crate::status::Role;
use crate::types::{Entry, HardState, Index, NodeId, Snapshot, Term};

/// Everything the node produced since the previous [`Ready`].
///
/// The driver MUST, in this order per Ready (Readies are handled in the order produced):
/// 1. send `messages` (at once; they do not depend on this Ready's persistence);
/// 2. persist `hard_state`, `snapshot`, `compaction` and `entries` (truncating the stored
///    log from `entries[0].index` first);
/// 3. after that is durable, send `persisted_messages` and call `advance(number)`;
/// 4. restore from `snapshot` if any, then apply `committed_entries` in order and serve
///    `read_states` once applied up to their index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Sequence number (1, 2, ...) to pass to `advance`.
    pub number: u64,
    /// Role, leader or term changed since the previous Ready.
    pub soft_state: Option<SoftState>,
    /// PERSIST if `Some`.
    pub hard_state: Option<HardState>,
    /// Received from the leader: PERSIST (it replaces the log), then restore the app from it.
    pub snapshot: Option<Snapshot>,
    /// Made by `compact()`: PERSIST and drop the log before it; the app already has it.
    pub compaction: Option<Snapshot>,
    /// PERSIST: if `entries[0].index` <= last stored index, truncate from there, then append.
    pub entries: Vec<Entry>,
    /// May be sent at once.
    pub messages: Vec<Message>,
    /// Send only after this Ready (and every earlier one) is durable.
    pub persisted_messages: Vec<Message>,
    /// Apply in order; already durable locally; never handed out twice.
    pub committed_entries: Vec<Entry>,
    /// Answers to ReadIndex requests.
    pub read_states: Vec<ReadState>,
    /// Read requests that were dropped (leadership lost, leader unknown, timed out): retry.
    pub failed_reads: Vec<u64>,
}

impl Ready {
    /// True when the Ready asks to persist something.
    pub fn must_persist(&self) -> bool {
        self.hard_state.is_some()
            || self.snapshot.is_some()
            || self.compaction.is_some()
            || !self.entries.is_empty()
    }
}

/// Volatile state worth telling the application about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftState {
    /// Current role.
    pub role: Role,
    /// Current leader, if known.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: Term,
}

/// A confirmed ReadIndex: serve the read once the applied index reaches `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's request id.
    pub request_id: u64,
    /// Read index.
    pub index: Index,
}
