//! Property tests: random sequences of appends, truncations, snapshots, hard states and
//! reopens against a plain model of the log; what a reopen recovers is always the model.

mod storage_common;

use baton::raft::{Entry, HardState, Index, PersistedState, Snapshot, Term};
use baton::storage::{Durability, FileStorage, MemoryStorage, PersistBatch, Storage};
use proptest::prelude::*;
use storage_common::*;

#[derive(Clone, Debug)]
enum Op {
    /// Append `sizes.len()` entries, first truncating `back` entries off the end (new term).
    Append { back: u8, sizes: Vec<usize> },
    /// Compact at `at` (fraction of the log, in 256ths): the log after it is kept.
    Compact { at: u8 },
    /// Install a leader's snapshot `ahead` entries past the end, with a new term: log dropped.
    Install { ahead: u8 },
    /// Only a hard state.
    Vote,
    /// Close and reopen the store.
    Reopen,
}

fn op(entry_size_max: usize, entries_per_append_max: usize) -> impl Strategy<Value = Op> {
    let size = prop_oneof![3 => Just(0usize), 10 => 0..200usize, 1 => 0..=entry_size_max];
    prop_oneof![
        10 => (0u8..4, prop::collection::vec(size, 1..=entries_per_append_max))
            .prop_map(|(back, sizes)| Op::Append { back, sizes }),
        2 => any::<u8>().prop_map(|at| Op::Compact { at }),
        1 => (0u8..4).prop_map(|ahead| Op::Install { ahead }),
        1 => Just(Op::Vote),
        2 => Just(Op::Reopen),
    ]
}

/// The reference: a snapshot position and a plain vector of entries.
#[derive(Default)]
struct Model {
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    hard_state: HardState,
    term: Term,
}

impl Model {
    fn snapshot_index(&self) -> Index {
        self.snapshot
            .as_ref()
            .map_or(0, |snapshot| snapshot.meta.last_index)
    }

    fn last_index(&self) -> Index {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |entry| entry.index)
    }

    fn state(&self) -> PersistedState {
        PersistedState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

fn run(ops: Vec<Op>, segment_bytes: u64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let open =
        || FileStorage::open(dir.path(), config(Durability::Durable, segment_bytes)).unwrap();
    let mut store = open();
    // The in-memory profile must agree with the model too (it shares only the validation).
    let mut memory = MemoryStorage::new();
    let mut model = Model {
        term: 1,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Append { back, sizes } => {
                let kept = model.entries.len().saturating_sub(usize::from(back));
                if kept < model.entries.len() {
                    model.term += 1;
                }
                let first = model.snapshot_index() + kept as u64 + 1;
                let items: Vec<Entry> = sizes
                    .iter()
                    .enumerate()
                    .map(|(offset, size)| entry(first + offset as u64, model.term, *size))
                    .collect();
                let batch = &PersistBatch {
                    hard_state: None,
                    snapshot: None,
                    entries: &items,
                };
                store.persist(batch).unwrap();
                memory.persist(batch).unwrap();
                model.entries.truncate(kept);
                model.entries.extend(items);
            }
            Op::Compact { at } => {
                if model.entries.is_empty() {
                    continue;
                }
                let position = (usize::from(at) * model.entries.len()) / 256;
                let last = &model.entries[position];
                let compaction = snapshot(last.index, last.term);
                let batch = &PersistBatch {
                    hard_state: None,
                    snapshot: Some(&compaction),
                    entries: &[],
                };
                store.persist(batch).unwrap();
                memory.persist(batch).unwrap();
                model.entries.drain(..=position);
                model.snapshot = Some(compaction);
            }
            Op::Install { ahead } => {
                model.term += 1;
                let installed = snapshot(model.last_index() + u64::from(ahead).max(1), model.term);
                let hard_state = HardState {
                    term: model.term,
                    vote: None,
                    commit: installed.meta.last_index,
                };
                let batch = &PersistBatch {
                    hard_state: Some(hard_state),
                    snapshot: Some(&installed),
                    entries: &[],
                };
                store.persist(batch).unwrap();
                memory.persist(batch).unwrap();
                model.entries.clear();
                model.snapshot = Some(installed);
                model.hard_state = hard_state;
            }
            Op::Vote => {
                let hard_state = HardState {
                    term: model.term,
                    vote: Some(model.term % 3),
                    commit: model.last_index(),
                };
                let batch = &PersistBatch {
                    hard_state: Some(hard_state),
                    snapshot: None,
                    entries: &[],
                };
                store.persist(batch).unwrap();
                memory.persist(batch).unwrap();
                model.hard_state = hard_state;
            }
            Op::Reopen => {
                drop(store);
                store = open();
                prop_assert_eq!(store.initial_state(), &model.state());
                prop_assert_eq!(memory.state(), &model.state());
            }
        }
    }
    drop(store);
    let store = open();
    prop_assert_eq!(store.initial_state(), &model.state());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn reopen_recovers_the_model_after_random_histories(
        ops in prop::collection::vec(op(3_000, 12), 1..40),
        segment_bytes in prop_oneof![Just(1024u64), Just(4096u64), Just(64 * 1024u64)],
    ) {
        run(ops, segment_bytes)?;
    }
}

proptest! {
    // Few cases: each writes several MiB.
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn large_entries_round_trip(
        sizes in prop::collection::vec(prop_oneof![Just(0usize), 4usize << 20..(5usize << 20)], 1..4),
    ) {
        let ops = vec![Op::Append { back: 0, sizes }, Op::Reopen, Op::Append { back: 1, sizes: vec![1 << 22] }, Op::Reopen];
        run(ops, 1 << 20)?;
    }
}
