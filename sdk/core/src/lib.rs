//! Sans-IO Raft consensus core of Baton: no sockets, no clock, no threads, no global
//! randomness. The caller feeds ticks, peer messages and proposals in, and takes out what
//! to persist, what to send and what to apply. The reference is Ongaro's dissertation
//! (2014); modules are named after its rule families (`election`, `replication`,
//! `membership`, `transfer`, `read_index`, `snapshot`). Design notes: `docs/raft-core.md`.
//!
//! # Recipe
//!
//! 1. Persist [`PersistedState::bootstrap`] once per founding member (a joining node
//!    starts from `PersistedState::default()`), then create the node with
//!    [`RaftNode::new`] from what storage holds.
//! 2. Call [`RaftNode::tick`] at a steady rate and [`RaftNode::step`] for every message
//!    from a peer (an `Err` means a bad message: log it and drop it).
//! 3. When [`RaftNode::has_ready`], take a [`Ready`]: send `messages` at once; persist
//!    `hard_state`, `snapshot`, `compaction` and `entries`; once durable send
//!    `persisted_messages` and call [`RaftNode::advance`] with its number.
//! 4. Restore from `snapshot` if any, apply `committed_entries` in order, and serve the
//!    `read_states` once applied up to their index.
//!
//! ```
//! use baton_core::{Config, EntryPayload, Membership, PersistedState, RaftNode, Role};
//!
//! // 1. A single-node cluster (tests and local games); storage is a Vec here.
//! let membership = Membership { voters: [1].into(), learners: Default::default() };
//! let mut durable = PersistedState::bootstrap(membership);
//! let mut node = RaftNode::new(Config::new(1, 42), durable.clone()).unwrap();
//! let mut applied = Vec::new();
//!
//! // 3. + 4. The driving loop, run after every input.
//! let mut drive = |node: &mut RaftNode, durable: &mut PersistedState, applied: &mut Vec<Vec<u8>>| {
//!     while node.has_ready() {
//!         let ready = node.ready();
//!         assert!(ready.messages.is_empty(), "a single node has no peer to send to");
//!         if let Some(hard_state) = ready.hard_state {
//!             durable.hard_state = hard_state;
//!         }
//!         if let Some(first) = ready.entries.first() {
//!             durable.entries.retain(|e| e.index < first.index);
//!         }
//!         durable.entries.extend(ready.entries.iter().cloned());
//!         node.advance(ready.number);
//!         for entry in ready.committed_entries {
//!             if let EntryPayload::Command { data, .. } = entry.payload {
//!                 applied.push(data);
//!             }
//!         }
//!     }
//! };
//!
//! // 2. Tick until the node elects itself (or call `campaign`).
//! while node.role() != Role::Leader {
//!     node.tick();
//!     drive(&mut node, &mut durable, &mut applied);
//! }
//! let id = node.propose(b"move pawn".to_vec(), None).unwrap();
//! drive(&mut node, &mut durable, &mut applied);
//! assert_eq!(node.commit_index(), id.index);
//! assert_eq!(applied, vec![b"move pawn".to_vec()]);
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod client_sessions;
mod config;
mod detector;
mod election;
mod error;
mod log;
mod membership;
mod message;
mod node;
mod progress;
mod read_index;
mod ready;
mod replication;
mod snapshot;
mod status;
mod step;
mod transfer;
pub mod types;

pub use client_sessions::{
    ClientCheck, ClientTable, CLIENT_SESSIONS_MAX_DEFAULT, CLIENT_WINDOW_LEN_DEFAULT,
};
pub use config::{Config, ConfigError, DETECTION_DEVIATIONS_MAX, ELECTION_TIMEOUT_TICKS_LIMIT};
pub use detector::{ARRIVAL_GAPS_MEASURED_MIN, ARRIVAL_GAPS_TRACKED_MAX};
pub use election::FAILED_ROUNDS_DECAY_MAX;
pub use error::{CompactError, ProposeError, StepError};
pub use message::{AppendOutcome, ConflictHint, Message, MessageBody};
pub use node::{RaftNode, SNAPSHOT_BYTES_LIMIT, SNAPSHOT_CHUNK_BYTES_LIMIT};
pub use read_index::READS_PENDING_MAX;
pub use ready::{ReadState, Ready, SoftState};
pub use replication::HEARTBEAT_ROUNDS_TRACKED_MAX;
pub use status::{MembershipChange, PeerProgress, ProposalId, Role, Status};
pub use types::*;

impl PersistedState {
    /// Durable state of a founding member of a new cluster: entry 1 (term 0) holds
    /// `membership`, and it is committed. Every founding member must start from the
    /// identical value. A node that joins an existing cluster starts from
    /// `PersistedState::default()` and learns the log from the leader.
    pub fn bootstrap(membership: Membership) -> PersistedState {
        PersistedState {
            hard_state: HardState {
                term: 0,
                vote: None,
                commit: 1,
            },
            snapshot: None,
            entries: vec![Entry {
                term: 0,
                index: 1,
                payload: EntryPayload::Membership(membership),
            }],
        }
    }
}
