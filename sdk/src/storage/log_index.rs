//! The shape of the stored log (snapshot position and the term of every entry after it),
//! used to check a batch against the rules of [`Storage::persist`](super::Storage::persist)
//! before anything is written, and to apply it afterwards.

use super::{BatchError, PersistBatch};
use baton_core::{HardState, Index, Term};
use std::collections::VecDeque;

/// The stored log's shape, without the entries' payloads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogIndex {
    snapshot_index: Index,
    snapshot_term: Term,
    /// Term of entries `snapshot_index + 1 ..= last_index()`.
    terms: VecDeque<Term>,
}

/// What a valid batch will do, decided before it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// With a snapshot: whether the log after it survives (the log holds the snapshot's last
    /// entry with the same term) or is dropped whole.
    pub snapshot_keeps_log: bool,
}

impl LogIndex {
    /// A log that starts after a snapshot at (`snapshot_index`, `snapshot_term`), empty.
    pub fn new(snapshot_index: Index, snapshot_term: Term) -> LogIndex {
        LogIndex {
            snapshot_index,
            snapshot_term,
            terms: VecDeque::new(),
        }
    }

    /// Last index covered by the snapshot (0: none).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    /// Term of the snapshot's last entry.
    pub fn snapshot_term(&self) -> Term {
        self.snapshot_term
    }

    /// Index of the last entry (or of the snapshot, when the log after it is empty).
    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.terms.len() as u64
    }

    /// Term at `index`, if the snapshot or the log holds it.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        let offset = index.checked_sub(self.snapshot_index + 1)?;
        self.terms.get(usize::try_from(offset).ok()?).copied()
    }

    /// Checks `batch` against the stored state; nothing changes.
    pub fn plan(
        &self,
        hard_state: &HardState,
        batch: &PersistBatch<'_>,
    ) -> Result<BatchPlan, BatchError> {
        let mut plan = BatchPlan {
            snapshot_keeps_log: true,
        };
        let (mut base_index, mut base_term, mut last_index) =
            (self.snapshot_index, self.snapshot_term, self.last_index());
        if let Some(snapshot) = batch.snapshot {
            let meta = &snapshot.meta;
            if meta.last_index == 0 {
                return Err(BatchError::SnapshotAtIndexZero);
            }
            if meta.last_index < self.snapshot_index {
                return Err(BatchError::StaleSnapshot {
                    index: meta.last_index,
                    stored_index: self.snapshot_index,
                });
            }
            plan.snapshot_keeps_log = self.term_at(meta.last_index) == Some(meta.last_term);
            base_index = meta.last_index;
            base_term = meta.last_term;
            if !plan.snapshot_keeps_log {
                last_index = meta.last_index;
            }
        }
        if let Some(first) = batch.entries.first() {
            if first.index <= base_index {
                return Err(BatchError::BeforeSnapshot {
                    first: first.index,
                    snapshot_index: base_index,
                });
            }
            if first.index > last_index + 1 {
                return Err(BatchError::Gap {
                    first: first.index,
                    last_index,
                });
            }
            let previous_term = if first.index - 1 == base_index {
                base_term
            } else {
                // Inside the kept log: the term stored there.
                self.term_at(first.index - 1).unwrap_or(base_term)
            };
            if first.term < previous_term {
                return Err(BatchError::TermRegression {
                    index: first.index,
                    term: first.term,
                    previous_term,
                });
            }
            for pair in batch.entries.windows(2) {
                if pair[1].index != pair[0].index + 1 {
                    return Err(BatchError::NotContiguous {
                        previous: pair[0].index,
                        next: pair[1].index,
                    });
                }
                if pair[1].term < pair[0].term {
                    return Err(BatchError::TermRegression {
                        index: pair[1].index,
                        term: pair[1].term,
                        previous_term: pair[0].term,
                    });
                }
            }
        }
        if let Some(new_state) = batch.hard_state {
            if new_state.term < hard_state.term {
                return Err(BatchError::TermWentBack {
                    term: new_state.term,
                    stored_term: hard_state.term,
                });
            }
        }
        Ok(plan)
    }

    /// Installs a snapshot: drops the entries it covers, or the whole log.
    pub fn apply_snapshot(&mut self, last_index: Index, last_term: Term, log_kept: bool) {
        if log_kept && last_index <= self.last_index() {
            let covered = (last_index - self.snapshot_index) as usize;
            self.terms.drain(..covered.min(self.terms.len()));
        } else {
            self.terms.clear();
        }
        self.snapshot_index = last_index;
        self.snapshot_term = last_term;
    }

    /// Appends an entry at `index` (validated), truncating the log from `index` first.
    pub fn append(&mut self, index: Index, term: Term) {
        let keep = (index - self.snapshot_index - 1) as usize;
        self.terms.truncate(keep);
        self.terms.push_back(term);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::{Entry, EntryPayload, Snapshot, SnapshotMeta};

    fn entry(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: EntryPayload::Noop,
        }
    }

    fn batch<'a>(entries: &'a [Entry], snapshot: Option<&'a Snapshot>) -> PersistBatch<'a> {
        PersistBatch {
            hard_state: None,
            snapshot,
            entries,
        }
    }

    fn log_with(terms: &[Term]) -> LogIndex {
        let mut log = LogIndex::new(0, 0);
        for (offset, term) in terms.iter().enumerate() {
            log.append(offset as u64 + 1, *term);
        }
        log
    }

    #[test]
    fn entries_must_follow_the_log_without_a_hole() {
        let log = log_with(&[1, 1, 2]);
        let hs = HardState::default();
        assert!(log.plan(&hs, &batch(&[entry(4, 2)], None)).is_ok());
        assert!(log
            .plan(&hs, &batch(&[entry(2, 3), entry(3, 3)], None))
            .is_ok());
        assert_eq!(
            log.plan(&hs, &batch(&[entry(5, 2)], None)),
            Err(BatchError::Gap {
                first: 5,
                last_index: 3
            })
        );
        assert_eq!(
            log.plan(&hs, &batch(&[entry(4, 2), entry(6, 2)], None)),
            Err(BatchError::NotContiguous {
                previous: 4,
                next: 6
            })
        );
        assert_eq!(
            log.plan(&hs, &batch(&[entry(4, 1)], None)),
            Err(BatchError::TermRegression {
                index: 4,
                term: 1,
                previous_term: 2
            })
        );
    }

    #[test]
    fn a_matching_snapshot_keeps_the_log_and_a_foreign_one_drops_it() {
        let log = log_with(&[1, 1, 2, 2]);
        let hs = HardState::default();
        let matching = Snapshot {
            meta: SnapshotMeta {
                last_index: 3,
                last_term: 2,
                ..Default::default()
            },
            data: vec![],
        };
        let foreign = Snapshot {
            meta: SnapshotMeta {
                last_index: 3,
                last_term: 5,
                ..Default::default()
            },
            data: vec![],
        };
        assert!(
            log.plan(&hs, &batch(&[], Some(&matching)))
                .unwrap()
                .snapshot_keeps_log
        );
        assert!(
            !log.plan(&hs, &batch(&[], Some(&foreign)))
                .unwrap()
                .snapshot_keeps_log
        );
        // After a foreign snapshot the log is gone: entries must follow the snapshot itself.
        assert_eq!(
            log.plan(&hs, &batch(&[entry(5, 5)], Some(&foreign))),
            Err(BatchError::Gap {
                first: 5,
                last_index: 3
            })
        );
        assert!(log
            .plan(&hs, &batch(&[entry(4, 5)], Some(&foreign)))
            .is_ok());
        assert_eq!(
            log.plan(&hs, &batch(&[entry(3, 5)], Some(&foreign))),
            Err(BatchError::BeforeSnapshot {
                first: 3,
                snapshot_index: 3
            })
        );
        let mut applied = log.clone();
        applied.apply_snapshot(3, 2, true);
        assert_eq!(
            (
                applied.snapshot_index(),
                applied.last_index(),
                applied.term_at(4)
            ),
            (3, 4, Some(2))
        );
        let mut dropped = log;
        dropped.apply_snapshot(3, 5, false);
        assert_eq!((dropped.last_index(), dropped.term_at(3)), (3, Some(5)));
    }

    #[test]
    fn terms_and_snapshots_never_go_back() {
        let mut log = log_with(&[1, 1, 1]);
        log.apply_snapshot(2, 1, true);
        let mut old = Snapshot::default();
        assert_eq!(
            log.plan(&HardState::default(), &batch(&[], Some(&old))),
            Err(BatchError::SnapshotAtIndexZero)
        );
        old.meta.last_index = 1;
        old.meta.last_term = 1;
        assert_eq!(
            log.plan(&HardState::default(), &batch(&[], Some(&old))),
            Err(BatchError::StaleSnapshot {
                index: 1,
                stored_index: 2
            })
        );
        let stored = HardState {
            term: 3,
            vote: None,
            commit: 0,
        };
        let lower = PersistBatch {
            hard_state: Some(HardState {
                term: 2,
                vote: None,
                commit: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            log.plan(&stored, &lower),
            Err(BatchError::TermWentBack {
                term: 2,
                stored_term: 3
            })
        );
    }
}
