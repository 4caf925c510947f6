//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use baton::raft::{
    Entry, EntryPayload, HardState, Index, Membership, PersistedState, Snapshot, SnapshotMeta, Term,
};
use baton::storage::{Durability, FileStorage, FileStorageConfig, PersistBatch, Storage};
use std::path::{Path, PathBuf};

/// Small segments so that a few entries already rotate.
pub const SMALL_SEGMENT_BYTES: u64 = 1024;

/// Bytes that depend on (index, term), so a test can tell which version of an entry it got.
pub fn payload_bytes(index: Index, term: Term, len: usize) -> Vec<u8> {
    let seed = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ term.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    (0..len)
        .map(|at| (seed.rotate_left((at % 64) as u32) as u8) ^ (at as u8))
        .collect()
}

pub fn entry(index: Index, term: Term, len: usize) -> Entry {
    Entry {
        index,
        term,
        payload: EntryPayload::Command {
            tag: None,
            data: payload_bytes(index, term, len),
        },
    }
}

pub fn entries(range: std::ops::RangeInclusive<Index>, term: Term, len: usize) -> Vec<Entry> {
    range.map(|index| entry(index, term, len)).collect()
}

pub fn snapshot(last_index: Index, last_term: Term) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_index,
            last_term,
            membership: Membership {
                voters: [1, 2, 3].into(),
                learners: Default::default(),
            },
        },
        data: payload_bytes(last_index, last_term, 100),
    }
}

pub fn hard_state(term: Term, vote: Option<u64>, commit: Index) -> HardState {
    HardState { term, vote, commit }
}

pub fn config(durability: Durability, segment_bytes: u64) -> FileStorageConfig {
    FileStorageConfig {
        durability,
        segment_bytes,
    }
}

pub fn open_small(dir: &Path) -> FileStorage {
    FileStorage::open(dir, config(Durability::Durable, SMALL_SEGMENT_BYTES)).unwrap()
}

pub fn append(store: &mut dyn Storage, items: &[Entry]) {
    store
        .persist(&PersistBatch {
            hard_state: None,
            snapshot: None,
            entries: items,
        })
        .unwrap();
}

pub fn reopen(dir: &Path) -> PersistedState {
    open_small(dir).initial_state().clone()
}

pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("wal-")
        })
        .collect();
    files.sort();
    files
}

pub fn indexes(state: &PersistedState) -> Vec<(Index, Term)> {
    state
        .entries
        .iter()
        .map(|entry| (entry.index, entry.term))
        .collect()
}

pub fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("snapshot-")
        })
        .collect();
    files.sort();
    files
}
