//! The on-disk store: a segmented write-ahead log plus one snapshot file.
//!
//! # Data directory
//!
//! ```text
//! LOCK                          flock'ed while a store has the directory open
//! snapshot.bin                  latest durable snapshot (see snapshot_file)
//! wal-00000000000000000001.log  segments, numbered without gaps from the oldest kept one
//! wal-00000000000000000002.log
//! ```
//!
//! A segment is the magic `BATONWL1` followed by records (see [`record`](super::record)).
//! Its first record is a [`Checkpoint`]: the log's shape and the hard state when the segment
//! was started. Each [`Storage::persist`] appends one batch: an optional snapshot marker,
//! one record per entry, an optional hard state, and a [`Commit`]. A batch counts only once
//! its commit is read back, so a crash mid-write leaves the batch out whole.
//!
//! Entries are never rewritten in place: an entry record at index `i` truncates the log from
//! `i` during replay (Raft's "delete the conflicting suffix, then append"). A segment is
//! started when the active one has reached `segment_bytes`; segments are deleted, oldest
//! first, once a durable snapshot makes every entry in them unnecessary.
//!
//! # Recovery: torn tail or damaged middle
//!
//! A record that fails to decode ends the scan of its segment. In any segment but the last
//! that is damage to data that was once durable: the store refuses to open
//! ([`StorageError::CorruptRecord`], naming the file and byte offset). In the last segment it
//! may be a torn tail (a write cut by a crash). Every commit record carries `synced_through`,
//! the offset up to which this segment was known to be fsynced when that batch was written.
//! The bad record is a **damaged middle** if some intact commit record anywhere after it says
//! `synced_through` beyond the bad record's offset (the data was durable, and later data
//! proves it); otherwise it is a **torn tail**: the segment is truncated to the end of the
//! last complete batch before it, with a warning. Nothing after a torn record is trusted.
//! In the durable profile exactly one batch is ever not yet fsynced, so this test is exact
//! for it; the relaxed profile is covered by the same rule because its flusher's progress is
//! what `synced_through` records.

use super::log_index::LogIndex;
use super::record::RECORD_PAYLOAD_BYTES_MAX;
use super::record::{
    decode_record, encode_record, find_commit_after, Checkpoint, Commit, RecordRef, SnapshotMarker,
    WalRecord,
};
use super::snapshot_file::{
    list_snapshot_files, read_snapshot_file, snapshot_file_name, sync_dir, write_snapshot,
};
use super::{foreign_format_version, BatchError, Durability, PersistBatch, Storage, StorageError};
use baton_core::{Entry, EntryPayload, HardState, Index, PersistedState, Snapshot, Term};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Default size at which a segment is closed and the next one started.
pub const SEGMENT_BYTES_DEFAULT: u64 = 16 << 20;
/// Smallest accepted `segment_bytes` (tests use small segments to exercise rotation).
pub const SEGMENT_BYTES_MIN: u64 = 1024;
/// Write buffers above this capacity are released after use instead of kept for reuse.
const WRITE_BUFFER_RETAINED_BYTES_MAX: usize = 8 << 20;

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"BATONWL1";
const SEGMENT_MAGIC_BYTES: u64 = SEGMENT_MAGIC.len() as u64;
const LOCK_FILE: &str = "LOCK";

/// How a [`FileStorage`] is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStorageConfig {
    /// [`Durability::Durable`] or [`Durability::Relaxed`]; `Memory` is refused here.
    pub durability: Durability,
    /// Size at which a segment is closed and a new one started (default 16 MiB). A batch is
    /// never split, so a segment can exceed this by one batch.
    pub segment_bytes: u64,
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        FileStorageConfig {
            durability: Durability::Durable,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
        }
    }
}

impl FileStorageConfig {
    /// Default settings with the given profile.
    pub fn new(durability: Durability) -> FileStorageConfig {
        FileStorageConfig {
            durability,
            ..FileStorageConfig::default()
        }
    }
}

/// File name of segment `seq`.
pub fn segment_file_name(seq: u64) -> String {
    format!("wal-{seq:020}.log")
}

fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment being appended to.
#[derive(Debug)]
struct ActiveSegment {
    seq: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    /// Offset up to which the segment is known fsynced.
    synced_len: u64,
}

/// A write-ahead-log store in one data directory. See the module docs for the format.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    config: FileStorageConfig,
    /// Held for the lifetime of the store: the flock is released when it closes.
    _lock: File,
    initial: PersistedState,
    log: LogIndex,
    /// Segment holding each entry after the snapshot, in index order (parallel to `log`).
    entry_segments: VecDeque<u64>,
    hard_state: HardState,
    /// Sequence numbers of the segments on disk, oldest first, without gaps.
    segments: VecDeque<u64>,
    active: ActiveSegment,
    next_batch: u64,
    flusher: Option<Flusher>,
    poisoned: bool,
    write_buffer: Vec<u8>,
}

impl FileStorage {
    /// Opens (or creates) the store in `dir` and recovers what it holds.
    ///
    /// Refused when another store holds the directory ([`StorageError::Locked`]), and when
    /// recovery finds damage it must not guess about (see the module docs).
    pub fn open(dir: &Path, config: FileStorageConfig) -> Result<FileStorage, StorageError> {
        if let Durability::Relaxed { fsync_interval } = config.durability {
            if fsync_interval.is_zero() {
                return Err(StorageError::InvalidConfig(
                    "relaxed fsync_interval must be positive".into(),
                ));
            }
        }
        if config.durability == Durability::Memory {
            return Err(StorageError::InvalidConfig(
                "FileStorage cannot run the Memory profile; use MemoryStorage".into(),
            ));
        }
        if config.segment_bytes < SEGMENT_BYTES_MIN {
            return Err(StorageError::InvalidConfig(format!(
                "segment_bytes {} is below the minimum {SEGMENT_BYTES_MIN}",
                config.segment_bytes
            )));
        }
        fs::create_dir_all(dir)
            .map_err(|error| StorageError::io("create directory", dir, error))?;
        let lock = lock_directory(dir)?;
        let snapshot_files = list_snapshot_files(dir)?;
        let mut segments = list_segments(dir)?;
        let mut replay = Replay::default();
        let mut last_scan = None;
        for (position, &seq) in segments.iter().enumerate() {
            let is_last = position + 1 == segments.len();
            let scan =
                replay_segment(&dir.join(segment_file_name(seq)), seq, is_last, &mut replay)?;
            if is_last {
                last_scan = Some(scan);
            }
        }
        let active = match last_scan {
            Some(scan) => {
                repair_last_segment(dir, &mut segments, scan, !snapshot_files.is_empty())?
            }
            None => None,
        };
        if let Some(seq) = segments.front() {
            if !replay.started {
                return Err(StorageError::Inconsistent {
                    path: dir.join(segment_file_name(*seq)),
                    offset: 0,
                    reason: "no complete checkpoint in the oldest segment".into(),
                });
            }
        } else if let Some((_, _, path)) = snapshot_files.first() {
            return Err(StorageError::Inconsistent {
                path: path.clone(),
                offset: 0,
                reason: "a snapshot exists but no log segment does".into(),
            });
        }
        if replay.unknown_end > replay.snapshot_index {
            return Err(StorageError::MissingEntries {
                first: replay.snapshot_index + 1,
                last: replay.unknown_end,
                path: dir.join(segment_file_name(segments.front().copied().unwrap_or(1))),
            });
        }
        let snapshot = select_snapshot(dir, &replay, snapshot_files)?;

        let mut log = LogIndex::new(replay.snapshot_index, replay.snapshot_term);
        let mut entry_segments = VecDeque::with_capacity(replay.entries.len());
        let mut entries = Vec::with_capacity(replay.entries.len());
        for (entry, seq) in replay.entries.drain(..) {
            log.append(entry.index, entry.term);
            entry_segments.push_back(seq);
            entries.push(entry);
        }
        let initial = PersistedState {
            hard_state: replay.hard_state,
            snapshot,
            entries,
        };

        let (active, fresh) = match active {
            Some(active) => (active, false),
            None => (create_segment_file(dir, 1)?, true),
        };
        if fresh {
            segments.push_back(1);
        }
        let flusher = match config.durability {
            Durability::Relaxed { fsync_interval } => Some(Flusher::start(
                Arc::clone(&active.file),
                active.path.clone(),
                active.len,
                fsync_interval,
            )),
            _ => None,
        };
        let mut store = FileStorage {
            dir: dir.to_path_buf(),
            config,
            _lock: lock,
            initial,
            log,
            entry_segments,
            hard_state: replay.hard_state,
            segments,
            active,
            next_batch: replay.last_batch.map_or(1, |batch| batch + 1),
            flusher,
            poisoned: false,
            write_buffer: Vec::new(),
        };
        if fresh {
            // The first segment's checkpoint is made durable before anything can depend on it,
            // so an empty directory and a store that never persisted anything look alike.
            store.write_batch(Some(1), None, &[], None, true)?;
            sync_dir(dir)?;
        }
        tracing::debug!(
            dir = %dir.display(),
            segments = store.segments.len(),
            snapshot_index = store.log.snapshot_index(),
            last_index = store.log.last_index(),
            "storage opened"
        );
        Ok(store)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> FileStorageConfig {
        self.config
    }

    /// Index of the last stored entry (or of the snapshot when no entry follows it).
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    /// Last index covered by the stored snapshot (0: none).
    pub fn snapshot_index(&self) -> Index {
        self.log.snapshot_index()
    }

    /// Term of the stored entry at `index` (or of the snapshot at its last index).
    pub fn term_at(&self, index: Index) -> Option<Term> {
        self.log.term_at(index)
    }

    /// The hard state last persisted.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Number of segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segment being appended to and its length: everything before that length is as
    /// durable as the profile promises (in `Durable`: fsynced). For diagnostics and crash tests.
    pub fn active_segment(&self) -> (&Path, u64) {
        (&self.active.path, self.active.len)
    }

    fn poison<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Writes one batch (starting a new segment first if the active one is full) and makes it
    /// as durable as the profile says (`force_sync`: fsync whatever the profile).
    fn write_batch(
        &mut self,
        checkpoint_seq: Option<u64>,
        marker: Option<&SnapshotMarker>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        force_sync: bool,
    ) -> Result<(), StorageError> {
        let mut buffer = std::mem::take(&mut self.write_buffer);
        buffer.clear();
        let mut started_segment = false;
        if let Some(seq) = checkpoint_seq {
            // A fresh first segment: the magic was written when the file was created.
            encode_record(RecordRef::Checkpoint(&self.checkpoint(seq)), &mut buffer);
        } else if self.active.len >= self.config.segment_bytes {
            self.rotate()?;
            started_segment = true;
            buffer.extend_from_slice(SEGMENT_MAGIC);
            encode_record(
                RecordRef::Checkpoint(&self.checkpoint(self.active.seq)),
                &mut buffer,
            );
        }
        if let Some(marker) = marker {
            encode_record(RecordRef::SnapshotMarker(marker), &mut buffer);
        }
        for entry in entries {
            encode_record(RecordRef::Entry(entry), &mut buffer);
        }
        if let Some(hard_state) = hard_state {
            encode_record(RecordRef::HardState(hard_state), &mut buffer);
        }
        let synced_through = match &self.flusher {
            Some(flusher) => flusher
                .synced_len(&self.active.file)
                .max(self.active.synced_len),
            None => self.active.synced_len,
        };
        let commit = Commit {
            batch: self.next_batch,
            synced_through,
        };
        encode_record(RecordRef::Commit(&commit), &mut buffer);

        let path = self.active.path.clone();
        let written = (&*self.active.file)
            .write_all(&buffer)
            .map_err(|error| StorageError::io("append to", &path, error));
        self.poison(written)?;
        self.active.len += buffer.len() as u64;
        let sync = force_sync || self.config.durability == Durability::Durable;
        if sync {
            let synced = self
                .active
                .file
                .sync_data()
                .map_err(|error| StorageError::io("fsync", &path, error));
            self.poison(synced)?;
            self.active.synced_len = self.active.len;
        }
        if started_segment {
            let synced = sync_dir(&self.dir);
            self.poison(synced)?;
        }
        if let Some(flusher) = &self.flusher {
            flusher.written(self.active.len, sync);
        }
        self.next_batch += 1;
        if buffer.capacity() <= WRITE_BUFFER_RETAINED_BYTES_MAX {
            self.write_buffer = buffer;
        }
        if let Some(marker) = marker {
            let covered = if marker.log_kept {
                ((marker.last_index - self.log.snapshot_index()) as usize)
                    .min(self.entry_segments.len())
            } else {
                self.entry_segments.len()
            };
            self.entry_segments.drain(..covered);
            self.log
                .apply_snapshot(marker.last_index, marker.last_term, marker.log_kept);
        }
        for entry in entries {
            let keep = (entry.index - self.log.snapshot_index() - 1) as usize;
            self.entry_segments.truncate(keep);
            self.entry_segments.push_back(self.active.seq);
            self.log.append(entry.index, entry.term);
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = *hard_state;
        }
        Ok(())
    }

    fn checkpoint(&self, seq: u64) -> Checkpoint {
        Checkpoint {
            segment_seq: seq,
            next_index: self.log.last_index() + 1,
            snapshot_index: self.log.snapshot_index(),
            snapshot_term: self.log.snapshot_term(),
            hard_state: self.hard_state,
        }
    }

    /// Closes the active segment (fsynced: recovery treats any damage in a closed segment as
    /// corruption) and opens the next one.
    fn rotate(&mut self) -> Result<(), StorageError> {
        if self.active.synced_len < self.active.len {
            let path = self.active.path.clone();
            let synced = self
                .active
                .file
                .sync_data()
                .map_err(|error| StorageError::io("fsync", &path, error));
            self.poison(synced)?;
        }
        let seq = self.active.seq + 1;
        let path = self.dir.join(segment_file_name(seq));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|error| StorageError::io("create", &path, error));
        let file = Arc::new(self.poison(file)?);
        tracing::debug!(segment = %path.display(), "starting a new log segment");
        if let Some(flusher) = &self.flusher {
            flusher.switch_to(Arc::clone(&file), path.clone());
        }
        self.active = ActiveSegment {
            seq,
            path,
            file,
            len: 0,
            synced_len: 0,
        };
        self.segments.push_back(seq);
        Ok(())
    }

    /// Deletes the oldest segments while no entry after the snapshot lives in them.
    fn delete_obsolete_segments(&mut self) -> Result<(), StorageError> {
        let keep_from = self
            .entry_segments
            .front()
            .copied()
            .unwrap_or(self.active.seq)
            .min(self.active.seq);
        if !self
            .segments
            .front()
            .is_some_and(|&oldest| oldest < keep_from)
        {
            return Ok(());
        }
        if self.active.synced_len < self.active.len {
            // The marker that justifies the deletion must be durable before the deletion is.
            let path = self.active.path.clone();
            let synced = self
                .active
                .file
                .sync_data()
                .map_err(|error| StorageError::io("fsync", &path, error));
            self.poison(synced)?;
            self.active.synced_len = self.active.len;
        }
        while let Some(&oldest) = self.segments.front() {
            if oldest >= keep_from {
                break;
            }
            let path = self.dir.join(segment_file_name(oldest));
            if let Err(error) = fs::remove_file(&path) {
                // Harmless: the segment is replayed and dropped again; retried after the next snapshot.
                tracing::warn!(segment = %path.display(), %error, "could not delete an obsolete segment");
                return Ok(());
            }
            // One directory fsync per deletion, oldest first, so a crash can never leave a
            // hole in the sequence (which recovery would rightly refuse).
            let synced = sync_dir(&self.dir);
            self.poison(synced)?;
            self.segments.pop_front();
            tracing::debug!(segment = %path.display(), "deleted a segment covered by the snapshot");
        }
        Ok(())
    }
}

impl Storage for FileStorage {
    fn initial_state(&self) -> &PersistedState {
        &self.initial
    }

    fn persist(&mut self, batch: &PersistBatch<'_>) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if let Some(flusher) = &self.flusher {
            if let Some(error) = flusher.take_error() {
                self.poisoned = true;
                return Err(error);
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        check_entry_sizes(batch.entries)?;
        let plan = self.log.plan(&self.hard_state, batch)?;
        let marker = batch.snapshot.map(|snapshot| SnapshotMarker {
            last_index: snapshot.meta.last_index,
            last_term: snapshot.meta.last_term,
            log_kept: plan.snapshot_keeps_log,
        });
        let previous_snapshot = (self.log.snapshot_index(), self.log.snapshot_term());
        if let Some(snapshot) = batch.snapshot {
            // The snapshot is durable before the marker that drops the log it replaces.
            let written = write_snapshot(&self.dir, snapshot);
            self.poison(written)?;
        }
        self.write_batch(
            None,
            marker.as_ref(),
            batch.entries,
            batch.hard_state.as_ref(),
            false,
        )?;
        if let Some(marker) = &marker {
            // Only now is the old snapshot no longer what a reopen would need.
            if previous_snapshot.0 > 0 && previous_snapshot != (marker.last_index, marker.last_term)
            {
                let old = self
                    .dir
                    .join(snapshot_file_name(previous_snapshot.0, previous_snapshot.1));
                remove_snapshot_files(std::iter::once(&old));
            }
        }
        if marker.is_some() {
            self.delete_obsolete_segments()?;
        }
        Ok(())
    }

    fn durability(&self) -> Durability {
        self.config.durability
    }
}

impl Drop for FileStorage {
    fn drop(&mut self) {
        if let Some(mut flusher) = self.flusher.take() {
            flusher.stop();
            if !self.poisoned {
                if let Err(error) = self.active.file.sync_data() {
                    tracing::error!(segment = %self.active.path.display(), %error, "final fsync failed");
                }
            }
        }
    }
}

/// Room left in a record for the entry's own fields around its data.
const ENTRY_RECORD_OVERHEAD_BYTES_MAX: usize = 64;

fn check_entry_sizes(entries: &[Entry]) -> Result<(), BatchError> {
    let max = RECORD_PAYLOAD_BYTES_MAX - ENTRY_RECORD_OVERHEAD_BYTES_MAX;
    for entry in entries {
        if let EntryPayload::Command { data, .. } = &entry.payload {
            if data.len() > max {
                return Err(BatchError::EntryTooLarge {
                    index: entry.index,
                    bytes: data.len() as u64,
                    max: max as u64,
                });
            }
        }
    }
    Ok(())
}

fn lock_directory(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|error| StorageError::io("open", &path, error))?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(StorageError::Locked { path }),
        Err(fs4::TryLockError::Error(error)) => Err(StorageError::io("lock", &path, error)),
    }
}

fn list_segments(dir: &Path) -> Result<VecDeque<u64>, StorageError> {
    let reader = fs::read_dir(dir).map_err(|error| StorageError::io("list", dir, error))?;
    let mut seqs = Vec::new();
    for item in reader {
        let item = item.map_err(|error| StorageError::io("list", dir, error))?;
        if let Some(seq) = item.file_name().to_str().and_then(parse_segment_file_name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    for pair in seqs.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(StorageError::MissingSegment {
                missing: dir.join(segment_file_name(pair[0] + 1)),
                after: dir.join(segment_file_name(pair[0])),
                next: dir.join(segment_file_name(pair[1])),
            });
        }
    }
    Ok(seqs.into())
}

fn create_segment_file(dir: &Path, seq: u64) -> Result<ActiveSegment, StorageError> {
    let path = dir.join(segment_file_name(seq));
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|error| StorageError::io("create", &path, error))?;
    file.write_all(SEGMENT_MAGIC)
        .map_err(|error| StorageError::io("write", &path, error))?;
    Ok(ActiveSegment {
        seq,
        path,
        file: Arc::new(file),
        len: SEGMENT_MAGIC_BYTES,
        synced_len: 0,
    })
}

/// The log as replay reconstructs it. Entries `(snapshot_index, unknown_end]` existed when
/// the oldest surviving segment was started, but live in segments deleted since; a sound
/// store's later records always cover them again (rewrite or snapshot), so any left at the
/// end mean a segment is missing.
#[derive(Debug, Default)]
struct Replay {
    started: bool,
    snapshot_index: Index,
    snapshot_term: Term,
    unknown_end: Index,
    /// Entries `unknown_end + 1 ..`, with the segment holding each.
    entries: VecDeque<(Entry, u64)>,
    hard_state: HardState,
    last_batch: Option<u64>,
}

impl Replay {
    fn last_index(&self) -> Index {
        self.unknown_end + self.entries.len() as u64
    }

    fn apply(&mut self, record: WalRecord, seq: u64, first_in_segment: bool) -> Result<(), String> {
        if first_in_segment != matches!(record, WalRecord::Checkpoint(_)) {
            return Err("a segment must start with exactly one checkpoint".into());
        }
        match record {
            WalRecord::Checkpoint(checkpoint) => self.apply_checkpoint(&checkpoint, seq),
            WalRecord::Entry(entry) => self.apply_entry(entry, seq),
            WalRecord::HardState(hard_state) => {
                self.hard_state = hard_state;
                Ok(())
            }
            WalRecord::SnapshotMarker(marker) => self.apply_marker(&marker),
            WalRecord::Commit(_) => Err("commit inside a batch".into()),
        }
    }

    fn apply_checkpoint(&mut self, checkpoint: &Checkpoint, seq: u64) -> Result<(), String> {
        if checkpoint.segment_seq != seq {
            return Err(format!(
                "checkpoint names segment {}",
                checkpoint.segment_seq
            ));
        }
        if checkpoint.next_index <= checkpoint.snapshot_index {
            return Err(format!(
                "checkpoint's next index {} is inside its snapshot at {}",
                checkpoint.next_index, checkpoint.snapshot_index
            ));
        }
        if !self.started {
            self.started = true;
            self.snapshot_index = checkpoint.snapshot_index;
            self.snapshot_term = checkpoint.snapshot_term;
            self.unknown_end = checkpoint.next_index - 1;
            self.hard_state = checkpoint.hard_state;
            return Ok(());
        }
        if checkpoint.next_index != self.last_index() + 1
            || checkpoint.snapshot_index != self.snapshot_index
        {
            return Err(format!(
                "checkpoint (next index {}, snapshot {}) disagrees with the segments before it (next index {}, snapshot {})",
                checkpoint.next_index,
                checkpoint.snapshot_index,
                self.last_index() + 1,
                self.snapshot_index
            ));
        }
        Ok(())
    }

    fn apply_entry(&mut self, entry: Entry, seq: u64) -> Result<(), String> {
        if entry.index <= self.snapshot_index {
            return Err(format!(
                "entry {} lies inside the snapshot at {}",
                entry.index, self.snapshot_index
            ));
        }
        if entry.index > self.last_index() + 1 {
            return Err(format!(
                "entry {} leaves a hole after {}",
                entry.index,
                self.last_index()
            ));
        }
        if entry.index <= self.unknown_end {
            self.entries.clear();
            self.unknown_end = entry.index - 1;
        } else {
            self.entries
                .truncate((entry.index - self.unknown_end - 1) as usize);
        }
        self.entries.push_back((entry, seq));
        Ok(())
    }

    fn apply_marker(&mut self, marker: &SnapshotMarker) -> Result<(), String> {
        if marker.last_index < self.snapshot_index {
            return Err(format!(
                "snapshot marker at {} is older than the snapshot at {}",
                marker.last_index, self.snapshot_index
            ));
        }
        if marker.log_kept {
            if marker.last_index > self.last_index() {
                return Err(format!(
                    "snapshot marker at {} keeps a log that ends at {}",
                    marker.last_index,
                    self.last_index()
                ));
            }
            if marker.last_index > self.unknown_end {
                let covered = (marker.last_index - self.unknown_end) as usize;
                let last_covered_term = self.entries.get(covered - 1).map(|(entry, _)| entry.term);
                if last_covered_term != Some(marker.last_term) {
                    return Err(format!(
                        "snapshot marker at {} has term {} but the log has {:?} there",
                        marker.last_index, marker.last_term, last_covered_term
                    ));
                }
                self.entries.drain(..covered);
                self.unknown_end = marker.last_index;
            }
        } else {
            self.entries.clear();
            self.unknown_end = marker.last_index;
        }
        self.snapshot_index = marker.last_index;
        self.snapshot_term = marker.last_term;
        Ok(())
    }
}

/// What scanning a segment found.
#[derive(Debug)]
struct SegmentScan {
    seq: u64,
    path: PathBuf,
    file_len: u64,
    /// End of the last complete batch (0 when not even the magic is intact).
    valid_len: u64,
    /// Whether the segment holds at least one complete batch.
    has_commit: bool,
}

fn replay_segment(
    path: &Path,
    seq: u64,
    is_last: bool,
    replay: &mut Replay,
) -> Result<SegmentScan, StorageError> {
    let bytes = fs::read(path).map_err(|error| StorageError::io("read", path, error))?;
    let mut scan = SegmentScan {
        seq,
        path: path.to_path_buf(),
        file_len: bytes.len() as u64,
        valid_len: 0,
        has_commit: false,
    };
    let corrupt = |offset: usize, reason: String| StorageError::CorruptRecord {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let inconsistent = |offset: usize, reason: String| StorageError::Inconsistent {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if let Some(found) = foreign_format_version(&bytes, SEGMENT_MAGIC) {
        // Another format version is not a torn tail: truncating it would destroy a newer
        // release's log.
        return Err(StorageError::UnsupportedFormat {
            path: path.to_path_buf(),
            found,
            supported: String::from_utf8_lossy(SEGMENT_MAGIC).into_owned(),
        });
    }
    let mut failure: Option<(usize, String)> = None;
    if bytes.get(..SEGMENT_MAGIC.len()) != Some(SEGMENT_MAGIC.as_slice()) {
        failure = Some((0, "missing or damaged segment magic".to_string()));
    }
    let mut offset = SEGMENT_MAGIC.len();
    let mut pending: Vec<(WalRecord, usize)> = Vec::new();
    scan.valid_len = if failure.is_none() {
        SEGMENT_MAGIC_BYTES
    } else {
        0
    };
    while failure.is_none() && offset < bytes.len() {
        match decode_record(&bytes[offset..]) {
            Ok((WalRecord::Commit(commit), used)) => {
                if let Some(previous) = replay.last_batch {
                    if commit.batch != previous + 1 {
                        return Err(inconsistent(
                            offset,
                            format!("batch {} follows batch {previous}", commit.batch),
                        ));
                    }
                }
                for (record, record_offset) in pending.drain(..) {
                    let first_in_segment = !scan.has_commit && record_offset == SEGMENT_MAGIC.len();
                    replay
                        .apply(record, seq, first_in_segment)
                        .map_err(|reason| inconsistent(record_offset, reason))?;
                }
                if !scan.has_commit && !replay.started {
                    return Err(inconsistent(offset, "batch without a checkpoint".into()));
                }
                replay.last_batch = Some(commit.batch);
                scan.has_commit = true;
                offset += used;
                scan.valid_len = offset as u64;
            }
            Ok((record, used)) => {
                pending.push((record, offset));
                offset += used;
            }
            Err(error) => failure = Some((offset, error.to_string())),
        }
    }
    if failure.is_none() && !pending.is_empty() {
        failure = Some((pending[0].1, "batch has no commit record".to_string()));
    }
    let Some((bad_offset, reason)) = failure else {
        return Ok(scan);
    };
    if !is_last {
        return Err(corrupt(
            bad_offset,
            format!("{reason} (in a closed segment)"),
        ));
    }
    let mut search_from = bad_offset + 1;
    while let Some((commit_offset, commit)) = find_commit_after(&bytes, search_from) {
        if commit.synced_through > bad_offset as u64 {
            return Err(corrupt(
                bad_offset,
                format!(
                    "{reason}; the commit at byte {commit_offset} proves this data was fsynced (up to byte {})",
                    commit.synced_through
                ),
            ));
        }
        search_from = commit_offset + 1;
    }
    tracing::warn!(
        segment = %path.display(),
        offset = bad_offset,
        kept_bytes = scan.valid_len,
        dropped_bytes = scan.file_len - scan.valid_len,
        %reason,
        "torn tail in the last log segment: truncating to the last complete batch"
    );
    Ok(scan)
}

/// Truncates a torn tail, or removes a last segment that never got a complete batch;
/// returns the segment to append to, if one remains.
/// Whether `path` holds a prefix of what the first open of an empty directory writes.
fn is_torn_first_open(path: &Path) -> Result<bool, StorageError> {
    let bytes = fs::read(path).map_err(|error| StorageError::io("read", path, error))?;
    let mut expected = SEGMENT_MAGIC.to_vec();
    let checkpoint = Checkpoint {
        segment_seq: 1,
        next_index: 1,
        snapshot_index: 0,
        snapshot_term: 0,
        hard_state: HardState::default(),
    };
    encode_record(RecordRef::Checkpoint(&checkpoint), &mut expected);
    encode_record(
        RecordRef::Commit(&Commit {
            batch: 1,
            synced_through: 0,
        }),
        &mut expected,
    );
    Ok(expected.starts_with(&bytes))
}

fn repair_last_segment(
    dir: &Path,
    segments: &mut VecDeque<u64>,
    scan: SegmentScan,
    snapshot_exists: bool,
) -> Result<Option<ActiveSegment>, StorageError> {
    if !scan.has_commit {
        let only_segment = segments.len() == 1;
        if only_segment && (scan.seq != 1 || snapshot_exists || !is_torn_first_open(&scan.path)?) {
            // Only the very first open of an empty directory may leave an unfinished sole
            // segment, and it writes known bytes; anything else would be a silent reset.
            return Err(StorageError::CorruptRecord {
                path: scan.path,
                offset: 0,
                reason:
                    "the only segment holds no complete batch and is not an unfinished first open"
                        .into(),
            });
        }
        // A segment whose first batch never completed: started by a rotation (or by the
        // very first open) that a crash cut short. Nothing in it was ever acknowledged.
        tracing::warn!(segment = %scan.path.display(), "removing a log segment that holds no complete batch");
        fs::remove_file(&scan.path)
            .map_err(|error| StorageError::io("remove", &scan.path, error))?;
        sync_dir(dir)?;
        segments.pop_back();
        let Some(&previous) = segments.back() else {
            return Ok(None);
        };
        let path = dir.join(segment_file_name(previous));
        let len = fs::metadata(&path)
            .map_err(|error| StorageError::io("stat", &path, error))?
            .len();
        return open_for_append(previous, path, len).map(Some);
    }
    let file = open_for_append(scan.seq, scan.path.clone(), scan.file_len)?;
    if scan.valid_len < scan.file_len {
        file.file
            .set_len(scan.valid_len)
            .and_then(|()| file.file.sync_all())
            .map_err(|error| StorageError::io("truncate", &scan.path, error))?;
    }

    Ok(Some(ActiveSegment {
        len: scan.valid_len,
        synced_len: scan.valid_len,
        ..file
    }))
}

fn open_for_append(seq: u64, path: PathBuf, len: u64) -> Result<ActiveSegment, StorageError> {
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|error| StorageError::io("open", &path, error))?;
    // After a crash of the relaxed profile the tail may sit in the page cache only. The next
    // commit record will claim it synced, so make that true first.
    file.sync_all()
        .map_err(|error| StorageError::io("fsync", &path, error))?;
    Ok(ActiveSegment {
        seq,
        path,
        file: Arc::new(file),
        len,
        synced_len: len,
    })
}

/// Reads the snapshot the log refers to, and removes every other snapshot file: older ones
/// (their deletion after a newer marker was lost) and newer ones (written by a batch whose
/// log records never completed, so never promised).
fn select_snapshot(
    dir: &Path,
    replay: &Replay,
    files: Vec<(Index, Term, PathBuf)>,
) -> Result<Option<Snapshot>, StorageError> {
    let wanted =
        (replay.snapshot_index > 0).then_some((replay.snapshot_index, replay.snapshot_term));
    let Some((index, term)) = wanted else {
        remove_snapshot_files(files.iter().map(|(_, _, path)| path));
        return Ok(None);
    };
    let is_wanted = |file: &&(Index, Term, PathBuf)| (file.0, file.1) == (index, term);
    let Some((_, _, path)) = files.iter().find(is_wanted) else {
        let present: Vec<(Index, Term)> = files
            .iter()
            .map(|(file_index, file_term, _)| (*file_index, *file_term))
            .collect();
        return Err(StorageError::MissingSnapshot {
            index,
            term,
            path: dir.join(snapshot_file_name(index, term)),
            found: format!("does not exist (snapshots present: {present:?})"),
        });
    };
    let snapshot = read_snapshot_file(path, index, term)?;
    remove_snapshot_files(
        files
            .iter()
            .filter(|file| !is_wanted(file))
            .map(|(_, _, path)| path),
    );
    Ok(Some(snapshot))
}

fn remove_snapshot_files<'a>(paths: impl Iterator<Item = &'a PathBuf>) {
    for path in paths {
        // Not needed by the log; a failure only leaves a stale file for the next open.
        match fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a snapshot file the log does not refer to")
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not remove a stale snapshot file")
            }
        }
    }
}

/// The relaxed profile's background fsync.
#[derive(Debug)]
struct Flusher {
    shared: Arc<(Mutex<FlushState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct FlushState {
    file: Arc<File>,
    path: PathBuf,
    written_len: u64,
    synced_len: u64,
    error: Option<StorageError>,
    stop: bool,
}

fn lock_state(shared: &(Mutex<FlushState>, Condvar)) -> MutexGuard<'_, FlushState> {
    // A panic while holding this lock leaves plain numbers behind; they stay usable.
    shared
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Flusher {
    fn start(file: Arc<File>, path: PathBuf, len: u64, interval: Duration) -> Flusher {
        let shared = Arc::new((
            Mutex::new(FlushState {
                file,
                path,
                written_len: len,
                synced_len: len,
                error: None,
                stop: false,
            }),
            Condvar::new(),
        ));
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("baton-wal-flusher".into())
            .spawn(move || flush_loop(&for_thread, interval))
            .ok();
        if thread.is_none() {
            // Without the thread nothing would ever be fsynced: make the next persist fail loudly.
            lock_state(&shared).error = Some(StorageError::InvalidConfig(
                "could not start the flusher thread".into(),
            ));
        }
        Flusher { shared, thread }
    }

    fn synced_len(&self, file: &Arc<File>) -> u64 {
        let state = lock_state(&self.shared);
        if Arc::ptr_eq(&state.file, file) {
            state.synced_len
        } else {
            0
        }
    }

    fn written(&self, len: u64, synced: bool) {
        let mut state = lock_state(&self.shared);
        state.written_len = len;
        if synced {
            state.synced_len = len;
        }
    }

    fn switch_to(&self, file: Arc<File>, path: PathBuf) {
        let mut state = lock_state(&self.shared);
        state.file = file;
        state.path = path;
        state.written_len = 0;
        state.synced_len = 0;
    }

    fn take_error(&self) -> Option<StorageError> {
        lock_state(&self.shared).error.take()
    }

    fn stop(&mut self) {
        lock_state(&self.shared).stop = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the WAL flusher thread panicked");
            }
        }
    }
}

fn flush_loop(shared: &(Mutex<FlushState>, Condvar), interval: Duration) {
    let mut state = lock_state(shared);
    while !state.stop {
        state = shared
            .1
            .wait_timeout(state, interval)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
        if state.stop || state.written_len == state.synced_len || state.error.is_some() {
            continue;
        }
        let (file, path, target) = (
            Arc::clone(&state.file),
            state.path.clone(),
            state.written_len,
        );
        drop(state);
        let result = file.sync_data();
        state = lock_state(shared);
        match result {
            Ok(()) if Arc::ptr_eq(&state.file, &file) => {
                state.synced_len = state.synced_len.max(target)
            }
            Ok(()) => {}
            Err(error) => {
                tracing::error!(segment = %path.display(), %error, "background fsync failed");
                state.error = Some(StorageError::io("fsync", &path, error));
            }
        }
    }
}
