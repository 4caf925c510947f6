//! Damaged data directories: each kind of damage gives its documented outcome (a torn tail
//! is cut back with a warning; anything else is refused with an error naming file and offset).

mod storage_common;

use baton::raft::PersistedState;
use baton::storage::record::{decode_record, WalRecord};
use baton::storage::{FileStorage, FileStorageConfig, PersistBatch, Storage, StorageError};
use std::path::{Path, PathBuf};
use storage_common::*;

const BATCHES: u64 = 60;
const ENTRIES_PER_BATCH: u64 = 3;

/// Writes `BATCHES` batches of 3 entries (+ hard state) and returns the state after each batch.
fn write_history(dir: &Path) -> Vec<PersistedState> {
    let mut store = open_small(dir);
    let mut states = vec![store.initial_state().clone()];
    let mut current = PersistedState::default();
    for batch in 0..BATCHES {
        let first = batch * ENTRIES_PER_BATCH + 1;
        let items = entries(first..=first + ENTRIES_PER_BATCH - 1, 1, 25);
        let hs = hard_state(1, Some(1), first);
        store
            .persist(&PersistBatch {
                hard_state: Some(hs),
                snapshot: None,
                entries: &items,
            })
            .unwrap();
        current.entries.extend(items);
        current.hard_state = hs;
        states.push(current.clone());
    }
    states
}

/// Byte offsets of the records of a segment, with whether each is a commit.
fn record_offsets(path: &Path) -> Vec<(usize, bool)> {
    let bytes = std::fs::read(path).unwrap();
    let mut offset = 8;
    let mut found = Vec::new();
    while offset < bytes.len() {
        let (record, used) = decode_record(&bytes[offset..]).unwrap();
        found.push((offset, matches!(record, WalRecord::Commit(_))));
        offset += used;
    }
    found
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x5A;
    std::fs::write(path, bytes).unwrap();
}

fn open_error(dir: &Path) -> StorageError {
    match FileStorage::open(
        dir,
        config(baton::storage::Durability::Durable, SMALL_SEGMENT_BYTES),
    ) {
        Err(error) => error,
        Ok(store) => panic!(
            "expected a refusal, recovered {:?}",
            store.initial_state().entries.len()
        ),
    }
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_files(dir).pop().unwrap()
}

#[test]
fn a_cut_anywhere_in_the_last_segment_recovers_a_whole_batch_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let states = write_history(dir.path());
    let last = last_segment(dir.path());
    let full = std::fs::read(&last).unwrap();
    let pristine: Vec<(PathBuf, Vec<u8>)> = segment_files(dir.path())
        .into_iter()
        .map(|path| (path.clone(), std::fs::read(path).unwrap()))
        .collect();
    for cut in (0..full.len()).rev().step_by(7) {
        for (path, bytes) in &pristine {
            std::fs::write(path, bytes).unwrap();
        }
        std::fs::write(&last, &full[..cut]).unwrap();
        let recovered = reopen(dir.path());
        assert!(
            states.contains(&recovered),
            "cut at {cut}: recovered {} entries, not the state after any batch",
            recovered.entries.len()
        );
        // Whatever was cut, the store accepts appends that follow what it recovered.
        let mut store = open_small(dir.path());
        let next = store.last_index() + 1;
        append(&mut store, &entries(next..=next, 1, 5));
    }
}

#[test]
fn garbage_after_the_last_batch_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let states = write_history(dir.path());
    let last = last_segment(dir.path());
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0u8; 300]);
    bytes.extend_from_slice(&[0xEE; 77]);
    std::fs::write(&last, bytes).unwrap();
    assert_eq!(&reopen(dir.path()), states.last().unwrap());
}

#[test]
fn damage_inside_the_last_unsynced_batch_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let states = write_history(dir.path());
    let last = last_segment(dir.path());
    let records = record_offsets(&last);
    // The second record of the last batch: the batch's own commit does not prove it durable.
    let commits: Vec<usize> = records
        .iter()
        .filter(|(_, commit)| *commit)
        .map(|(offset, _)| *offset)
        .collect();
    let previous_commit = commits[commits.len() - 2];
    let inside_last_batch = records
        .iter()
        .find(|(offset, _)| *offset > previous_commit)
        .unwrap()
        .0;
    flip_byte(&last, inside_last_batch + 20);
    assert_eq!(&reopen(dir.path()), &states[states.len() - 2]);
}

#[test]
fn damage_followed_by_a_later_batch_is_refused_as_a_damaged_middle() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    let last = last_segment(dir.path());
    let records = record_offsets(&last);
    assert!(
        records.iter().filter(|(_, commit)| *commit).count() >= 2,
        "the last segment needs two batches"
    );
    // A record of the first batch in the segment (after its checkpoint).
    let damaged = records[1].0;
    flip_byte(&last, damaged + 15);
    match open_error(dir.path()) {
        StorageError::CorruptRecord {
            path,
            offset,
            reason,
        } => {
            assert_eq!(path, last);
            assert_eq!(offset, damaged as u64);
            assert!(reason.contains("fsynced"), "{reason}");
        }
        other => panic!("expected CorruptRecord, got {other:?}"),
    }
}

#[test]
fn damage_in_a_closed_segment_is_refused_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    let segments = segment_files(dir.path());
    assert!(segments.len() >= 3);
    let closed = &segments[1];
    let records = record_offsets(closed);
    let damaged = records[records.len() - 1].0; // its final commit
    flip_byte(closed, damaged + 3);
    match open_error(dir.path()) {
        StorageError::CorruptRecord { path, offset, .. } => {
            assert_eq!(&path, closed);
            assert_eq!(offset, damaged as u64);
        }
        other => panic!("expected CorruptRecord, got {other:?}"),
    }
    // A closed segment cut short is damage too, never a torn tail.
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    let closed = segment_files(dir.path())[1].clone();
    let bytes = std::fs::read(&closed).unwrap();
    std::fs::write(&closed, &bytes[..bytes.len() - 10]).unwrap();
    assert!(
        matches!(open_error(dir.path()), StorageError::CorruptRecord { path, .. } if path == closed)
    );
}

#[test]
fn a_missing_segment_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    let segments = segment_files(dir.path());
    std::fs::remove_file(&segments[2]).unwrap();
    match open_error(dir.path()) {
        StorageError::MissingSegment {
            missing,
            after,
            next,
        } => {
            assert_eq!(missing, segments[2]);
            assert_eq!(after, segments[1]);
            assert_eq!(next, segments[3]);
        }
        other => panic!("expected MissingSegment, got {other:?}"),
    }
}

#[test]
fn a_missing_oldest_segment_is_refused_when_no_snapshot_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    let segments = segment_files(dir.path());
    std::fs::remove_file(&segments[0]).unwrap();
    match open_error(dir.path()) {
        StorageError::MissingEntries { first, path, .. } => {
            assert_eq!(first, 1);
            assert_eq!(path, segments[1]);
        }
        other => panic!("expected MissingEntries, got {other:?}"),
    }
}

fn with_snapshot(dir: &Path) {
    let mut store = open_small(dir);
    append(&mut store, &entries(1..=20, 1, 10));
    let compaction = snapshot(15, 1);
    store
        .persist(&PersistBatch {
            snapshot: Some(&compaction),
            ..Default::default()
        })
        .unwrap();
}

#[test]
fn a_corrupt_snapshot_is_refused_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    with_snapshot(dir.path());
    let path = snapshot_files(dir.path())[0].clone();
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    flip_byte(&path, size - 5);
    match open_error(dir.path()) {
        StorageError::CorruptSnapshot {
            path: reported,
            offset,
            reason,
        } => {
            assert_eq!(reported, path);
            assert_eq!(offset, 24);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected CorruptSnapshot, got {other:?}"),
    }
    // Cut short: the header no longer matches the size.
    let dir = tempfile::tempdir().unwrap();
    with_snapshot(dir.path());
    let path = snapshot_files(dir.path())[0].clone();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        open_error(dir.path()),
        StorageError::CorruptSnapshot { .. }
    ));
}

#[test]
fn a_deleted_snapshot_the_log_relies_on_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    with_snapshot(dir.path());
    std::fs::remove_file(snapshot_files(dir.path())[0].clone()).unwrap();
    match open_error(dir.path()) {
        StorageError::MissingSnapshot { index, term, .. } => assert_eq!((index, term), (15, 1)),
        other => panic!("expected MissingSnapshot, got {other:?}"),
    }
}

#[test]
fn a_leftover_temporary_snapshot_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    with_snapshot(dir.path());
    let temp = dir.path().join("snapshot.tmp");
    std::fs::write(&temp, b"half a snapshot").unwrap();
    let state = FileStorage::open(dir.path(), FileStorageConfig::default())
        .unwrap()
        .initial_state()
        .clone();
    assert_eq!(state.snapshot.unwrap().meta.last_index, 15);
    assert!(!temp.exists());
}

#[test]
fn a_foreign_file_where_a_segment_should_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    let segments = segment_files(dir.path());
    std::fs::write(&segments[0], vec![0x42; 2000]).unwrap();
    assert!(matches!(
        open_error(dir.path()),
        StorageError::CorruptRecord { offset: 0, .. }
    ));
}

#[test]
fn an_unfinished_first_open_starts_fresh_but_a_garbled_sole_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_small(dir.path()));
    let only = last_segment(dir.path());
    let bytes = std::fs::read(&only).unwrap();
    // A crash during the first open leaves a prefix of its bytes: that store never held anything.
    std::fs::write(&only, &bytes[..bytes.len() - 3]).unwrap();
    assert_eq!(reopen(dir.path()), PersistedState::default());
    // The same size of other bytes is damage to a store that may have held data.
    let size = std::fs::metadata(&only).unwrap().len() as usize;
    std::fs::write(&only, vec![0x17; size - 3]).unwrap();
    assert!(matches!(
        open_error(dir.path()),
        StorageError::CorruptRecord { offset: 0, .. }
    ));
}

/// Opening `dir` must refuse `file` as written in format `found`, and leave it as it was.
fn assert_refused_as_format(dir: &Path, file: &Path, found: &str, supported: &str, stamped: &[u8]) {
    match open_error(dir) {
        StorageError::UnsupportedFormat {
            path,
            found: found_here,
            supported: supported_here,
        } => {
            assert_eq!(path, file);
            assert_eq!(
                (found_here.as_str(), supported_here.as_str()),
                (found, supported)
            );
        }
        other => panic!("expected UnsupportedFormat, got {other}"),
    }
    assert_eq!(
        std::fs::read(file).unwrap(),
        stamped,
        "{} was changed",
        file.display()
    );
}

/// Sets the version character of a file's magic to `version`, as a release with another
/// storage format would have written it, and returns the bytes it then holds.
fn restamp_magic(path: &Path, version: u8) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[7] = version;
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn a_log_segment_of_another_format_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_history(dir.path());
    // The last segment: damage there would be cut back as a torn tail, so this is where a
    // misread would destroy a newer release's data.
    let last = last_segment(dir.path());
    let stamped = restamp_magic(&last, b'2');
    assert_refused_as_format(dir.path(), &last, "BATONWL2", "BATONWL1", &stamped);
}

#[test]
fn a_snapshot_file_of_another_format_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open_small(dir.path());
        append(&mut store, &entries(1..=10, 1, 20));
        store
            .persist(&PersistBatch {
                hard_state: None,
                snapshot: Some(&snapshot(8, 1)),
                entries: &[],
            })
            .unwrap();
    }
    let file = snapshot_files(dir.path()).pop().unwrap();
    let stamped = restamp_magic(&file, b'2');
    assert_refused_as_format(dir.path(), &file, "BATONSN2", "BATONSN1", &stamped);
}
