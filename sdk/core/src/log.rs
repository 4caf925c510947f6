//! The in-memory log (§5.3): entries after the last snapshot, plus the bookkeeping of
//! what was handed out for persistence, what is durable, committed and applied.

use crate::types::{Entry, EntryPayload, Index, Snapshot, SnapshotMeta, Term};

/// Entries after the snapshot; `entries[i].index == snapshot_index + 1 + i`.
#[derive(Debug)]
pub(crate) struct RaftLog {
    snapshot_index: Index,
    snapshot_term: Term,
    entries: Vec<Entry>,
    /// Highest index known committed (§5.3). Only grows.
    pub(crate) commit: Index,
    /// Highest index known durable locally (by `advance`).
    pub(crate) persisted: Index,
    /// Highest index handed out in `committed_entries` (or restored from a snapshot).
    pub(crate) applied: Index,
    /// First index not yet handed out for persistence.
    pub(crate) unstable_from: Index,
}

/// Payload size of an entry, for batching limits.
pub(crate) fn entry_bytes(entry: &Entry) -> usize {
    const ENTRY_HEADER_BYTES: usize = 24;
    ENTRY_HEADER_BYTES
        + match &entry.payload {
            EntryPayload::Noop => 0,
            EntryPayload::Command { data, .. } => data.len(),
            EntryPayload::Membership(m) => 8 * (m.voters.len() + m.learners.len()),
        }
}

impl RaftLog {
    /// A log recovered from storage: everything given is durable.
    pub(crate) fn recovered(
        snapshot: Option<&SnapshotMeta>,
        entries: Vec<Entry>,
        commit: Index,
    ) -> RaftLog {
        let (snapshot_index, snapshot_term) =
            snapshot.map_or((0, 0), |m| (m.last_index, m.last_term));
        let mut log = RaftLog {
            snapshot_index,
            snapshot_term,
            entries,
            commit: 0,
            persisted: 0,
            applied: snapshot_index,
            unstable_from: 0,
        };
        log.persisted = log.last_index();
        log.unstable_from = log.last_index() + 1;
        log.commit = commit.clamp(snapshot_index, log.last_index());
        log
    }

    pub(crate) fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    pub(crate) fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }

    pub(crate) fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// Term of the entry at `index`, if the log still knows it.
    pub(crate) fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        if index < self.snapshot_index || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - self.snapshot_index - 1) as usize].term)
    }

    /// Entries in `[from, to]`, at most `max_count` and about `max_bytes` (at least one).
    pub(crate) fn slice(
        &self,
        from: Index,
        to: Index,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Entry> {
        if from > to || from <= self.snapshot_index || to > self.last_index() {
            return Vec::new();
        }
        let start = (from - self.snapshot_index - 1) as usize;
        let end = (to - self.snapshot_index) as usize;
        let mut bytes = 0usize;
        let mut out = Vec::new();
        for entry in &self.entries[start..end] {
            bytes += entry_bytes(entry);
            if !out.is_empty() && (out.len() >= max_count || bytes > max_bytes) {
                break;
            }
            out.push(entry.clone());
        }
        out
    }

    /// §5.4.1: is a log ending at (`last_index`, `last_term`) at least as up to date as ours?
    pub(crate) fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Appends the leader's entry on the leader.
    pub(crate) fn append_new(&mut self, entry: Entry) {
        debug_assert_eq!(
            entry.index,
            self.last_index() + 1,
            "leader appends contiguously"
        );
        debug_assert!(
            entry.term >= self.last_term(),
            "terms never decrease along the log"
        );
        self.entries.push(entry);
    }

    /// Index of the first entry of `entries` that is not already in the log, truncating a
    /// conflicting suffix (§5.3). Returns the truncation point if one happened.
    /// `entries` must start right after a matching entry.
    pub(crate) fn merge(&mut self, entries: &[Entry]) -> Option<Index> {
        let mut truncated = None;
        for (position, entry) in entries.iter().enumerate() {
            match self.term(entry.index) {
                Some(term) if term == entry.term => continue,
                Some(_) => {
                    debug_assert!(
                        entry.index > self.commit,
                        "a committed entry is never overwritten"
                    );
                    self.truncate_from(entry.index);
                    truncated = Some(entry.index);
                }
                None => {}
            }
            for new_entry in &entries[position..] {
                debug_assert_eq!(
                    new_entry.index,
                    self.last_index() + 1,
                    "log matching: contiguous append"
                );
                self.entries.push(new_entry.clone());
            }
            break;
        }
        debug_assert!(
            entries.iter().all(|e| self.term(e.index) == Some(e.term)),
            "log matching: after a merge the log holds every entry sent"
        );
        truncated
    }

    fn truncate_from(&mut self, index: Index) {
        debug_assert!(index > self.snapshot_index);
        self.entries
            .truncate((index - self.snapshot_index - 1) as usize);
        self.unstable_from = self.unstable_from.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    /// First index of the run of entries sharing the term of the entry at `index`.
    pub(crate) fn first_index_of_term_at(&self, index: Index) -> Index {
        let Some(term) = self.term(index) else {
            return index;
        };
        let mut first = index;
        while first > self.first_index() && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// Last index holding an entry of `term` (at most `upto`), if any.
    pub(crate) fn last_index_of_term(&self, term: Term, upto: Index) -> Option<Index> {
        let mut index = upto.min(self.last_index());
        while index >= self.snapshot_index {
            match self.term(index) {
                Some(t) if t == term => return Some(index),
                Some(t) if t < term => return None,
                Some(_) => {}
                None => return None,
            }
            if index == 0 {
                break;
            }
            index -= 1;
        }
        None
    }

    pub(crate) fn commit_to(&mut self, index: Index) -> bool {
        if index <= self.commit {
            return false;
        }
        debug_assert!(index <= self.last_index(), "commit within the log");
        self.commit = index;
        true
    }

    /// Entries ready to apply: committed and durable locally.
    pub(crate) fn take_committed(&mut self) -> Vec<Entry> {
        let upto = self.commit.min(self.persisted);
        if upto <= self.applied {
            return Vec::new();
        }
        let out = self.slice(self.applied + 1, upto, usize::MAX, usize::MAX);
        debug_assert_eq!(
            out.len() as Index,
            upto - self.applied,
            "committed entries are in the log"
        );
        self.applied = upto;
        out
    }

    pub(crate) fn has_committed_to_apply(&self) -> bool {
        self.commit.min(self.persisted) > self.applied
    }

    /// Entries not yet handed out for persistence.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        if self.unstable_from > self.last_index() {
            return Vec::new();
        }
        let from = self.unstable_from.max(self.first_index());
        let out = self.slice(from, self.last_index(), usize::MAX, usize::MAX);
        self.unstable_from = self.last_index() + 1;
        out
    }

    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Drops the log up to `index` (kept in a snapshot).
    pub(crate) fn compact_to(&mut self, index: Index) {
        debug_assert!(index > self.snapshot_index && index <= self.applied);
        let Some(term) = self.term(index) else { return };
        let drop = (index - self.snapshot_index) as usize;
        self.entries.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Replaces the whole log by a snapshot received from the leader.
    pub(crate) fn restore(&mut self, snapshot: &Snapshot) {
        let meta = &snapshot.meta;
        debug_assert!(
            meta.last_index > self.commit,
            "a snapshot only moves forward"
        );
        self.entries.clear();
        self.snapshot_index = meta.last_index;
        self.snapshot_term = meta.last_term;
        self.persisted = self.persisted.min(self.commit);
        self.commit = meta.last_index;
        self.applied = meta.last_index;
        self.unstable_from = meta.last_index + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(from: Index, terms: &[Term]) -> Vec<Entry> {
        terms
            .iter()
            .enumerate()
            .map(|(i, &term)| Entry {
                term,
                index: from + i as Index,
                payload: EntryPayload::Noop,
            })
            .collect()
    }

    #[test]
    fn s5_3_merge_skips_matching_entries_and_truncates_conflicts() {
        let mut log = RaftLog::recovered(None, entries(1, &[1, 1, 2, 2]), 2);
        assert_eq!(log.merge(&entries(2, &[1, 2])), None, "already there");
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.merge(&entries(3, &[3, 3, 3])), Some(3));
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.term(3), Some(3));
        assert_eq!(
            log.persisted, 2,
            "the truncation forgets durability beyond it"
        );
        assert_eq!(log.take_unstable().len(), 3);
    }

    #[test]
    fn s5_3_conflict_hint_helpers() {
        let log = RaftLog::recovered(None, entries(1, &[1, 1, 2, 2, 2, 4]), 0);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.last_index_of_term(2, 6), Some(5));
        assert_eq!(log.last_index_of_term(3, 6), None);
        assert!(log.is_up_to_date(6, 4));
        assert!(!log.is_up_to_date(7, 3));
    }

    #[test]
    fn s5_compaction_keeps_terms_at_the_boundary() {
        let mut log = RaftLog::recovered(None, entries(1, &[1, 1, 2, 2]), 4);
        let _ = log.take_committed();
        log.compact_to(3);
        assert_eq!(log.term(3), Some(2));
        assert_eq!(log.term(2), None);
        assert_eq!(log.first_index(), 4);
        assert_eq!(log.slice(4, 4, 10, 1000).len(), 1);
    }

    #[test]
    fn committed_entries_stop_at_the_durable_index() {
        let mut log = RaftLog::recovered(None, entries(1, &[1]), 1);
        log.append_new(Entry {
            term: 1,
            index: 2,
            payload: EntryPayload::Noop,
        });
        log.commit_to(2);
        assert_eq!(log.take_committed().len(), 1);
        assert!(!log.has_committed_to_apply());
        log.persisted = 2;
        assert_eq!(log.take_committed()[0].index, 2);
    }
}
