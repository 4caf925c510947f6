//! The in-memory profile: nothing touches a disk.
//!
//! A node on [`MemoryStorage`] survives the loss of other nodes (their replicas hold the
//! log), but its own state dies with its process: if every node of the session stops at
//! once (a whole-cluster power cut, every player quitting together), the session is gone.
//! For many games that is the right trade: a casual match or a lobby has no value once all
//! its players are gone, and skipping fsync removes the slowest step from every tick's
//! commit path (see `docs/storage.md` for the figures). A node restarted on a fresh
//! `MemoryStorage` must rejoin as a new member (it has forgotten its votes), which the
//! session layer does by giving it a new identity.

use super::log_index::LogIndex;
use super::{Durability, PersistBatch, Storage, StorageError};
use baton_core::PersistedState;

/// Keeps the persisted state in memory, applying the same rules (and refusing the same
/// invalid batches) as [`FileStorage`](super::FileStorage).
#[derive(Debug, Default)]
pub struct MemoryStorage {
    initial: PersistedState,
    current: PersistedState,
    log: LogIndex,
}

impl MemoryStorage {
    /// An empty store (a node that has persisted nothing yet).
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// A store that already holds `state` (for example `PersistedState::bootstrap(..)`).
    pub fn with_state(state: PersistedState) -> MemoryStorage {
        let mut log = match &state.snapshot {
            Some(snapshot) => LogIndex::new(snapshot.meta.last_index, snapshot.meta.last_term),
            None => LogIndex::new(0, 0),
        };
        if let Some(first) = state.entries.first() {
            // A state whose entries do not follow its snapshot is taken as given: the first
            // entry defines where the log starts.
            if first.index != log.last_index() + 1 {
                log = LogIndex::new(first.index - 1, 0);
            }
        }
        for entry in &state.entries {
            log.append(entry.index, entry.term);
        }
        MemoryStorage {
            initial: state.clone(),
            current: state,
            log,
        }
    }

    /// What the store holds now (everything persisted so far).
    pub fn state(&self) -> &PersistedState {
        &self.current
    }
}

impl Storage for MemoryStorage {
    fn initial_state(&self) -> &PersistedState {
        &self.initial
    }

    fn persist(&mut self, batch: &PersistBatch<'_>) -> Result<(), StorageError> {
        let plan = self.log.plan(&self.current.hard_state, batch)?;
        if let Some(snapshot) = batch.snapshot {
            let meta = &snapshot.meta;
            self.log
                .apply_snapshot(meta.last_index, meta.last_term, plan.snapshot_keeps_log);
            if plan.snapshot_keeps_log {
                let start = self.current.entries.first().map_or(0, |entry| entry.index);
                let covered = (meta.last_index + 1).saturating_sub(start) as usize;
                self.current
                    .entries
                    .drain(..covered.min(self.current.entries.len()));
            } else {
                self.current.entries.clear();
            }
            self.current.snapshot = Some(snapshot.clone());
        }
        if let Some(first) = batch.entries.first() {
            // Entries are contiguous, so the truncation point is a subtraction, not a scan.
            let start = self
                .current
                .entries
                .first()
                .map_or(first.index, |entry| entry.index);
            self.current
                .entries
                .truncate(first.index.saturating_sub(start) as usize);
            for entry in batch.entries {
                self.log.append(entry.index, entry.term);
            }
            self.current.entries.extend_from_slice(batch.entries);
        }
        if let Some(hard_state) = batch.hard_state {
            self.current.hard_state = hard_state;
        }
        Ok(())
    }

    fn durability(&self) -> Durability {
        Durability::Memory
    }
}
