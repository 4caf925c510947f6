//! Round trips of the file store: what persist() accepted is what a reopen recovers.

mod storage_common;

use baton::raft::{Entry, EntryPayload, PersistedState};
use baton::storage::snapshot_file::write_snapshot;
use baton::storage::{
    open_storage, BatchError, Durability, FileStorage, FileStorageConfig, MemoryStorage,
    PersistBatch, Storage, StorageError,
};
use std::time::Duration;
use storage_common::*;

#[test]
fn a_fresh_store_recovers_empty_and_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_small(dir.path());
    assert_eq!(store.initial_state(), &PersistedState::default());
    drop(store);
    assert_eq!(reopen(dir.path()), PersistedState::default());
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn entries_and_hard_state_survive_reopen_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_small(dir.path());
    let written = entries(1..=200, 1, 40);
    for chunk in written.chunks(7) {
        let hs = hard_state(1, Some(2), chunk[0].index);
        store
            .persist(&PersistBatch {
                hard_state: Some(hs),
                snapshot: None,
                entries: chunk,
            })
            .unwrap();
    }
    assert!(store.segment_count() > 5, "small segments must rotate");
    drop(store);
    let state = reopen(dir.path());
    assert_eq!(state.entries, written);
    assert_eq!(state.hard_state, hard_state(1, Some(2), 197));
    assert_eq!(state.snapshot, None);
}

#[test]
fn a_conflicting_append_truncates_the_suffix_even_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_small(dir.path());
    append(&mut store, &entries(1..=60, 1, 50));
    append(&mut store, &entries(20..=25, 2, 50));
    drop(store);
    let state = reopen(dir.path());
    let mut expected = entries(1..=19, 1, 50);
    expected.extend(entries(20..=25, 2, 50));
    assert_eq!(state.entries, expected);
    // And the truncated store keeps accepting appends that follow it.
    let mut store = open_small(dir.path());
    append(&mut store, &entries(26..=30, 2, 50));
    assert_eq!(store.last_index(), 30);
}

#[test]
fn a_compaction_keeps_the_log_after_it_and_deletes_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_small(dir.path());
    for chunk in entries(1..=200, 1, 40).chunks(10) {
        append(&mut store, chunk);
    }
    let before = store.segment_count();
    let compaction = snapshot(150, 1);
    store
        .persist(&PersistBatch {
            hard_state: None,
            snapshot: Some(&compaction),
            entries: &[],
        })
        .unwrap();
    assert!(
        store.segment_count() < before,
        "{} segments before, {} after",
        before,
        store.segment_count()
    );
    assert_eq!(segment_files(dir.path()).len(), store.segment_count());
    drop(store);
    let state = reopen(dir.path());
    assert_eq!(state.snapshot, Some(compaction));
    assert_eq!(state.entries, entries(151..=200, 1, 40));
}

#[test]
fn a_snapshot_from_the_leader_that_does_not_match_drops_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_small(dir.path());
    append(&mut store, &entries(1..=100, 1, 40));
    let installed = snapshot(80, 3);
    let follow = entries(81..=90, 3, 40);
    store
        .persist(&PersistBatch {
            hard_state: Some(hard_state(3, None, 80)),
            snapshot: Some(&installed),
            entries: &follow,
        })
        .unwrap();
    drop(store);
    let state = reopen(dir.path());
    assert_eq!(state.snapshot, Some(installed.clone()));
    assert_eq!(state.entries, follow);
    assert_eq!(state.hard_state, hard_state(3, None, 80));
    // A snapshot beyond the end of the log works the same way.
    let mut store = open_small(dir.path());
    let ahead = snapshot(500, 4);
    store
        .persist(&PersistBatch {
            hard_state: None,
            snapshot: Some(&ahead),
            entries: &[],
        })
        .unwrap();
    append(&mut store, &entries(501..=505, 4, 10));
    drop(store);
    let state = reopen(dir.path());
    assert_eq!(state.snapshot, Some(ahead));
    assert_eq!(state.entries, entries(501..=505, 4, 10));
}

#[test]
fn invalid_batches_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_small(dir.path());
    append(&mut store, &entries(1..=10, 2, 8));
    store
        .persist(&PersistBatch {
            hard_state: Some(hard_state(2, None, 3)),
            ..Default::default()
        })
        .unwrap();
    let refused = |store: &mut FileStorage, batch: PersistBatch<'_>| match store.persist(&batch) {
        Err(StorageError::InvalidBatch(reason)) => reason,
        other => panic!("expected a refused batch, got {other:?}"),
    };
    let gap = entries(12..=12, 2, 8);
    assert_eq!(
        refused(
            &mut store,
            PersistBatch {
                entries: &gap,
                ..Default::default()
            }
        ),
        BatchError::Gap {
            first: 12,
            last_index: 10
        }
    );
    let holes = vec![entry(11, 2, 8), entry(13, 2, 8)];
    assert_eq!(
        refused(
            &mut store,
            PersistBatch {
                hard_state: Some(hard_state(9, None, 0)),
                entries: &holes,
                ..Default::default()
            }
        ),
        BatchError::NotContiguous {
            previous: 11,
            next: 13
        }
    );
    let older = entries(11..=11, 1, 8);
    assert!(matches!(
        refused(
            &mut store,
            PersistBatch {
                entries: &older,
                ..Default::default()
            }
        ),
        BatchError::TermRegression { .. }
    ));
    assert!(matches!(
        refused(
            &mut store,
            PersistBatch {
                hard_state: Some(hard_state(1, None, 0)),
                ..Default::default()
            }
        ),
        BatchError::TermWentBack { .. }
    ));
    let compaction = snapshot(5, 2);
    store
        .persist(&PersistBatch {
            snapshot: Some(&compaction),
            ..Default::default()
        })
        .unwrap();
    let inside = entries(5..=6, 2, 8);
    assert!(matches!(
        refused(
            &mut store,
            PersistBatch {
                entries: &inside,
                ..Default::default()
            }
        ),
        BatchError::BeforeSnapshot { .. }
    ));
    let stale = snapshot(4, 2);
    assert!(matches!(
        refused(
            &mut store,
            PersistBatch {
                snapshot: Some(&stale),
                ..Default::default()
            }
        ),
        BatchError::StaleSnapshot { .. }
    ));
    // A refused batch is not a failure of the store: it goes on working.
    append(&mut store, &entries(11..=12, 2, 8));
    drop(store);
    let state = reopen(dir.path());
    assert_eq!(state.hard_state, hard_state(2, None, 3));
    assert_eq!(state.entries, entries(6..=12, 2, 8));
}

#[test]
fn a_second_store_on_the_same_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = open_small(dir.path());
    match FileStorage::open(dir.path(), FileStorageConfig::default()) {
        Err(StorageError::Locked { path }) => assert_eq!(path, dir.path().join("LOCK")),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    assert!(FileStorage::open(dir.path(), FileStorageConfig::default()).is_ok());
}

#[test]
fn empty_and_large_entries_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStorage::open(dir.path(), FileStorageConfig::default()).unwrap();
    let written = vec![
        Entry {
            index: 1,
            term: 1,
            payload: EntryPayload::Noop,
        },
        entry(2, 1, 0),
        entry(3, 1, 5 << 20),
        entry(4, 1, 0),
        entry(5, 1, 4 << 20),
    ];
    append(&mut store, &written[..3]);
    append(&mut store, &written[3..]);
    drop(store);
    let state = FileStorage::open(dir.path(), FileStorageConfig::default())
        .unwrap()
        .initial_state()
        .clone();
    assert_eq!(state.entries, written);
}

#[test]
fn the_relaxed_profile_recovers_everything_after_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let relaxed = Durability::Relaxed {
        fsync_interval: Duration::from_millis(5),
    };
    let mut store = FileStorage::open(dir.path(), config(relaxed, SMALL_SEGMENT_BYTES)).unwrap();
    assert_eq!(store.durability(), relaxed);
    for index in 1..=100 {
        store
            .persist(&PersistBatch {
                hard_state: Some(hard_state(1, Some(1), index)),
                snapshot: None,
                entries: &[entry(index, 1, 30)],
            })
            .unwrap();
    }
    let compaction = snapshot(60, 1);
    store
        .persist(&PersistBatch {
            snapshot: Some(&compaction),
            ..Default::default()
        })
        .unwrap();
    drop(store);
    let state = reopen(dir.path());
    assert_eq!(state.entries, entries(61..=100, 1, 30));
    assert_eq!(state.hard_state, hard_state(1, Some(1), 100));
}

#[test]
fn memory_storage_applies_the_same_rules_as_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = open_small(dir.path());
    let mut memory = MemoryStorage::new();
    let installed = snapshot(40, 3);
    let batches: Vec<(
        Option<baton::raft::HardState>,
        Option<&baton::raft::Snapshot>,
        Vec<Entry>,
    )> = vec![
        (
            Some(hard_state(1, Some(1), 0)),
            None,
            entries(1..=30, 1, 20),
        ),
        (Some(hard_state(2, None, 10)), None, entries(25..=35, 2, 20)),
        (None, Some(&installed), entries(41..=45, 3, 20)),
        (
            Some(hard_state(3, Some(2), 44)),
            None,
            entries(44..=50, 3, 20),
        ),
    ];
    for (hs, snap, items) in &batches {
        let batch = PersistBatch {
            hard_state: *hs,
            snapshot: *snap,
            entries: items,
        };
        file.persist(&batch).unwrap();
        memory.persist(&batch).unwrap();
    }
    let gap = entries(60..=60, 3, 1);
    assert!(memory
        .persist(&PersistBatch {
            entries: &gap,
            ..Default::default()
        })
        .is_err());
    drop(file);
    assert_eq!(&reopen(dir.path()), memory.state());
    assert_eq!(memory.initial_state(), &PersistedState::default());
    assert_eq!(memory.durability(), Durability::Memory);
    let restarted = MemoryStorage::with_state(memory.state().clone());
    assert_eq!(restarted.initial_state(), memory.state());
}

#[test]
fn open_storage_picks_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let memory = open_storage(None, Durability::Memory).unwrap();
    assert_eq!(memory.durability(), Durability::Memory);
    assert!(matches!(
        open_storage(None, Durability::Durable),
        Err(StorageError::InvalidConfig(_))
    ));
    let durable = open_storage(Some(dir.path()), Durability::Durable).unwrap();
    assert_eq!(durable.durability(), Durability::Durable);
    assert!(matches!(
        FileStorage::open(dir.path(), config(Durability::Memory, SMALL_SEGMENT_BYTES)),
        Err(StorageError::InvalidConfig(_))
    ));
}

#[test]
fn a_snapshot_file_whose_batch_never_completed_is_ignored_and_removed() {
    // Simulates a crash after the snapshot's rename but before its batch reached the log:
    // the batch was never acknowledged, so the store recovers the state before it, whole.
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_small(dir.path());
    append(&mut store, &entries(1..=50, 1, 30));
    let compaction = snapshot(20, 1);
    store
        .persist(&PersistBatch {
            snapshot: Some(&compaction),
            ..Default::default()
        })
        .unwrap();
    drop(store);
    let orphan = write_snapshot(dir.path(), &snapshot(30, 1)).unwrap();
    let state = reopen(dir.path());
    assert_eq!(state.snapshot, Some(compaction));
    assert_eq!(state.entries, entries(21..=50, 1, 30));
    assert!(!orphan.exists());
    assert_eq!(snapshot_files(dir.path()).len(), 1);
}

#[test]
fn a_segment_whose_first_batch_never_completed_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_small(dir.path());
    append(&mut store, &entries(1..=40, 1, 30));
    drop(store);
    let files = segment_files(dir.path());
    let last = files
        .last()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let seq: u64 = last["wal-".len()..last.len() - ".log".len()]
        .parse()
        .unwrap();
    let next = dir
        .path()
        .join(baton::storage::file::segment_file_name(seq + 1));
    std::fs::write(&next, b"BATON").unwrap();
    let state = reopen(dir.path());
    assert_eq!(state.entries, entries(1..=40, 1, 30));
    assert!(!next.exists());
}
