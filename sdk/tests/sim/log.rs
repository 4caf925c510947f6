//! The simulated storage of one node, and the shadow copy of its in-memory log.
//!
//! Both are kept as a [`PersistedState`]: the durable one is exactly what a restarted node
//! is rebuilt from, the volatile one mirrors what the core has asked to persist so far
//! (durable or not), which is the core's own view of its log. Every operation returns the
//! entries it removed so the checker can tell whether a committed entry was lost.

use baton::raft::{Entry, EntryPayload, Index, PersistedState, Snapshot, SnapshotMeta, Term};

/// FNV-1a, 64 bits: a digest that is stable across Rust releases, so a seed replays the
/// same way on every toolchain (std's `DefaultHasher` promises no such thing).
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// A digest of what an entry carries: two entries with equal digests are taken as equal.
pub fn payload_digest(payload: &EntryPayload) -> u64 {
    let mut hasher = Fnv::new();
    match payload {
        EntryPayload::Noop => hasher.write_u64(0),
        EntryPayload::Command { tag, data } => {
            hasher.write_u64(1);
            match tag {
                Some(tag) => {
                    hasher.write_u64(1);
                    hasher.write_u64(tag.client_id);
                    hasher.write_u64(tag.sequence);
                }
                None => hasher.write_u64(0),
            }
            hasher.write_u64(data.len() as u64);
            hasher.write(data);
        }
        EntryPayload::Membership(membership) => {
            hasher.write_u64(2);
            hasher.write_u64(membership.voters.len() as u64);
            for voter in &membership.voters {
                hasher.write_u64(*voter);
            }
            hasher.write_u64(membership.learners.len() as u64);
            for learner in &membership.learners {
                hasher.write_u64(*learner);
            }
        }
    }
    hasher.finish()
}

/// Index of the last entry covered by the snapshot (0 without one).
pub fn snapshot_index(state: &PersistedState) -> Index {
    state.snapshot.as_ref().map_or(0, |s| s.meta.last_index)
}

/// Index of the last entry held, in the log or in the snapshot.
pub fn last_index(state: &PersistedState) -> Index {
    state
        .entries
        .last()
        .map_or_else(|| snapshot_index(state), |e| e.index)
}

/// Term of the entry at `index`, if the log or the snapshot boundary knows it.
pub fn term_at(state: &PersistedState, index: Index) -> Option<Term> {
    if let Some(snapshot) = &state.snapshot {
        if index == snapshot.meta.last_index {
            return Some(snapshot.meta.last_term);
        }
    } else if index == 0 {
        return Some(0);
    }
    entry_at(state, index).map(|e| e.term)
}

/// The entry at `index`, if it is in the log (not compacted).
pub fn entry_at(state: &PersistedState, index: Index) -> Option<&Entry> {
    let first = state.entries.first()?.index;
    if index < first {
        return None;
    }
    let position = usize::try_from(index - first).ok()?;
    state.entries.get(position)
}

/// Whether the state holds the entry (`index`, `term`), either in its log or as part of
/// its snapshot (a snapshot at or past `index` covers a committed entry).
pub fn holds(state: &PersistedState, index: Index, term: Term) -> bool {
    if index < snapshot_index(state) {
        return true;
    }
    term_at(state, index) == Some(term)
}

/// Installs a snapshot received from a leader: as the Ready contract says, it replaces
/// the whole log. Returns the entries discarded.
pub fn install_snapshot(
    state: &mut PersistedState,
    snapshot: &Snapshot,
) -> Result<Vec<Entry>, String> {
    let meta = &snapshot.meta;
    if meta.last_index <= snapshot_index(state) && state.snapshot.is_some() {
        return Err(format!(
            "snapshot at {} is not newer than the stored one at {}",
            meta.last_index,
            snapshot_index(state)
        ));
    }
    let removed = std::mem::take(&mut state.entries);
    state.snapshot = Some(snapshot.clone());
    Ok(removed)
}

/// Records a snapshot the node made itself from applied state and drops the log before it.
pub fn compact(state: &mut PersistedState, snapshot: &Snapshot) -> Result<(), String> {
    let meta: &SnapshotMeta = &snapshot.meta;
    if meta.last_index <= snapshot_index(state) {
        return Err(format!(
            "compaction at {} is not past the stored snapshot at {}",
            meta.last_index,
            snapshot_index(state)
        ));
    }
    if term_at(state, meta.last_index) != Some(meta.last_term) {
        return Err(format!(
            "compaction at {} term {} does not match the log (term there: {:?})",
            meta.last_index,
            meta.last_term,
            term_at(state, meta.last_index)
        ));
    }
    state.entries.retain(|e| e.index > meta.last_index);
    state.snapshot = Some(snapshot.clone());
    Ok(())
}

/// Appends entries as the Ready contract says: if the first one is at or before the last
/// stored index, the log is truncated there first. Returns the entries truncated away.
pub fn append(state: &mut PersistedState, entries: &[Entry]) -> Result<Vec<Entry>, String> {
    let Some(first) = entries.first() else {
        return Ok(Vec::new());
    };
    for pair in entries.windows(2) {
        if pair[1].index != pair[0].index + 1 {
            return Err(format!(
                "entries to persist are not contiguous: {} then {}",
                pair[0].index, pair[1].index
            ));
        }
    }
    let snapshot_at = snapshot_index(state);
    if first.index <= snapshot_at {
        return Err(format!(
            "entries from {} overlap the snapshot at {}",
            first.index, snapshot_at
        ));
    }
    let last = last_index(state);
    if first.index > last + 1 {
        return Err(format!(
            "entries from {} leave a gap after the last stored index {}",
            first.index, last
        ));
    }
    let keep = state
        .entries
        .iter()
        .take_while(|e| e.index < first.index)
        .count();
    let removed = state.entries.split_off(keep);
    state.entries.extend_from_slice(entries);
    Ok(removed)
}
