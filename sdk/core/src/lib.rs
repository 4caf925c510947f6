//! Sans-IO Raft consensus core of Baton.
#![warn(missing_docs)]

mod client_sessions;
mod config;
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

pub use client_sessions::{ClientSessions, SessionCheck, CLIENT_SESSIONS_MAX_DEFAULT};
pub use config::{Config, ConfigError, ELECTION_TIMEOUT_TICKS_LIMIT};
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
