//! The replicated application of the simulation: an append-only sequence of command
//! effects, deduplicated through the core's `ClientTable`, snapshotted with them.

use super::log::{payload_digest, Fnv};
use baton::raft::{ClientCheck, ClientTable, ClientTag, Entry, EntryPayload, Index};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One command whose effect was applied (a duplicate leaves no effect).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedCommand {
    /// Log index the effect came from.
    pub index: Index,
    /// Deduplication tag, if the command had one.
    pub tag: Option<ClientTag>,
    /// Digest of the entry's payload.
    pub digest: u64,
}

/// Everything a snapshot of the application holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AppState {
    /// Last log index applied (or restored from a snapshot).
    pub applied_index: Index,
    /// Exactly-once bookkeeping: part of the replicated state, so it is in snapshots.
    pub sessions: ClientTable,
    /// The effects, in order.
    pub sequence: Vec<AppliedCommand>,
    /// Running digest of every applied entry: equal at equal indexes on every replica.
    pub state_hash: u64,
}

/// What applying one entry did.
pub enum Applied {
    /// Not a command (no-op, membership).
    NotACommand,
    /// A new command: its effect is at this position of the sequence.
    New { result: Vec<u8> },
    /// A retry of a command already applied: the cached result, no new effect.
    Duplicate { result: Vec<u8> },
    /// An old retry of a client that has moved on: ignored.
    Stale,
}

/// The state machine of one node (volatile: rebuilt from the durable snapshot on restart).
#[derive(Default)]
pub struct StateMachine {
    pub state: AppState,
    applied_tags: BTreeSet<ClientTag>,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl StateMachine {
    /// Rebuilds the application from snapshot bytes.
    pub fn restore(data: &[u8]) -> Result<StateMachine, String> {
        let (state, _): (AppState, usize) =
            bincode::serde::decode_from_slice(data, bincode_config()).map_err(|e| e.to_string())?;
        let mut applied_tags = BTreeSet::new();
        for command in &state.sequence {
            if let Some(tag) = command.tag {
                if !applied_tags.insert(tag) {
                    return Err(format!("snapshot holds the effect of {tag:?} twice"));
                }
            }
        }
        Ok(StateMachine {
            state,
            applied_tags,
        })
    }

    /// Serializes the whole application state for `compact`.
    pub fn snapshot(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(&self.state, bincode_config())
            .unwrap_or_else(|e| panic!("the application state always encodes: {e}"))
    }

    /// Applies the next committed entry. Errors name a broken invariant.
    pub fn apply(&mut self, entry: &Entry) -> Result<Applied, (&'static str, String)> {
        if entry.index != self.state.applied_index + 1 {
            return Err((
                "ApplyInOrder",
                format!(
                    "applied {} then got entry {}",
                    self.state.applied_index, entry.index
                ),
            ));
        }
        let digest = payload_digest(&entry.payload);
        let mut hasher = Fnv::new();
        hasher.write_u64(self.state.state_hash);
        hasher.write_u64(entry.index);
        hasher.write_u64(digest);
        self.state.state_hash = hasher.finish();
        self.state.applied_index = entry.index;
        let EntryPayload::Command { tag, .. } = &entry.payload else {
            return Ok(Applied::NotACommand);
        };
        let Some(tag) = *tag else {
            self.push(entry.index, None, digest);
            return Ok(Applied::New { result: Vec::new() });
        };
        let outcome = match self.state.sessions.check(tag) {
            ClientCheck::New => None,
            ClientCheck::Duplicate(result) => Some(Applied::Duplicate {
                result: result.to_vec(),
            }),
            ClientCheck::Stale => Some(Applied::Stale),
        };
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
        if !self.applied_tags.insert(tag) {
            return Err((
                "DedupAppliedOnce",
                format!(
                    "ClientTable called {tag:?} new at {} but it was applied before",
                    entry.index
                ),
            ));
        }
        let result = (self.state.sequence.len() as u64).to_le_bytes().to_vec();
        self.push(entry.index, Some(tag), digest);
        self.state.sessions.record(tag, result.clone());
        Ok(Applied::New { result })
    }

    fn push(&mut self, index: Index, tag: Option<ClientTag>, digest: u64) {
        self.state
            .sequence
            .push(AppliedCommand { index, tag, digest });
    }
}
