//! Durable storage of a node's Raft state: the log, the hard state and the snapshot.
//!
//! The runtime hands every [`Ready`](crate::raft) persistence to [`Storage::persist`] as one
//! [`PersistBatch`] and only then sends the Ready's persisted messages (votes, acks) and calls
//! `advance`. Three profiles exist (see [`Durability`] and `docs/storage.md`):
//!
//! - [`Durability::Durable`]: `persist` returns only after one `fsync` of the write-ahead log
//!   (group commit: one fsync per batch, however many entries), so nothing acknowledged is lost
//!   by a process crash, an OS crash or a power cut.
//! - [`Durability::Relaxed`]: `persist` returns after the `write`; a background flusher
//!   fsyncs every `fsync_interval`. A process crash (SIGKILL, panic) loses nothing; an OS crash
//!   or power cut loses what was acknowledged within the last interval.
//! - [`Durability::Memory`]: [`MemoryStorage`], nothing on disk: a whole-cluster power cut
//!   loses the session.
//!
//! Where to look: [`record`] is the on-disk record codec (length, kind, CRC32C); [`file`](mod@file) is
//! the segmented write-ahead log and its recovery; [`snapshot_file`] writes and reads the
//! snapshot file atomically; [`log_index`] validates batches and mirrors the log's shape;
//! [`memory`] is the in-memory profile.

use baton_core::{Entry, HardState, Index, PersistedState, Snapshot, Term};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod file;
pub mod log_index;
pub mod memory;
pub mod record;
pub mod snapshot_file;

pub use file::{FileStorage, FileStorageConfig, SEGMENT_BYTES_DEFAULT};
pub use memory::MemoryStorage;

/// Where a node keeps what the Raft core asks to persist.
///
/// Implementations are used from one task at a time (`&mut self`), and may be moved to a
/// blocking thread, hence `Send + 'static`.
pub trait Storage: Send + 'static {
    /// What was durable when the store was opened (the core is rebuilt from it).
    fn initial_state(&self) -> &PersistedState;

    /// Makes one Ready's persistence durable as the profile promises, as ONE group commit
    /// (one fsync of the write-ahead log in the durable profile, however many entries).
    ///
    /// Order inside: the snapshot first (if `Some`: entries `<= snapshot.meta.last_index` are
    /// dropped once the snapshot is durable; if the stored log has no entry at `last_index`
    /// with `last_term`, the whole log is dropped), then the entries (if `entries[0].index` is
    /// `<=` the last stored index, the stored suffix from there is truncated, then the entries
    /// are appended; they must be contiguous and follow the log or the snapshot, otherwise
    /// [`StorageError::InvalidBatch`] is returned and nothing is written), then the hard state.
    ///
    /// After any other error (I/O) the store refuses every later call
    /// ([`StorageError::Poisoned`]): whether the batch reached the disk is unknown, and only a
    /// reopen (which recovers) can tell. The runtime should treat such an error as a crash of
    /// the node: stop, reopen, rebuild the core from [`Storage::initial_state`].
    fn persist(&mut self, batch: &PersistBatch<'_>) -> Result<(), StorageError>;

    /// The profile this store was opened with.
    fn durability(&self) -> Durability;
}

/// One Ready's worth of state to persist, borrowed from the Ready.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersistBatch<'a> {
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot to install (received from the leader) or a compaction (made locally).
    pub snapshot: Option<&'a Snapshot>,
    /// Entries to append, contiguous, in index order.
    pub entries: &'a [Entry],
}

/// The snapshot a Ready asks storage to keep. A Ready carries at most one in practice; if it
/// carried both a received snapshot and a local compaction, the newer supersedes the older
/// (it covers every index the older one does).
pub fn newest_snapshot(
    received: Option<Snapshot>,
    compaction: Option<Snapshot>,
) -> Option<Snapshot> {
    match (received, compaction) {
        (Some(a), Some(b)) => Some(if a.meta.last_index >= b.meta.last_index {
            a
        } else {
            b
        }),
        (a, b) => a.or(b),
    }
}

impl PersistBatch<'_> {
    /// True when the batch asks nothing to be persisted (such a batch costs no fsync).
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.snapshot.is_none() && self.entries.is_empty()
    }
}

/// How much a store promises about what survives a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every `persist` is fsynced before it returns: nothing acknowledged is ever lost.
    Durable,
    /// Writes reach the OS before `persist` returns and are fsynced every `fsync_interval`
    /// by a background thread: a process crash loses nothing, an OS crash or power cut loses
    /// at most what was persisted during the last `fsync_interval` (plus one fsync's duration).
    Relaxed {
        /// Longest time a write may stay in the OS page cache only.
        fsync_interval: Duration,
    },
    /// Nothing reaches a disk ([`MemoryStorage`]): the node's state lives as long as the process.
    Memory,
}

/// Why a batch was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Two entries of the batch do not have consecutive indexes.
    #[error("entries are not contiguous: index {next} follows index {previous}")]
    NotContiguous {
        /// Index of the earlier entry.
        previous: Index,
        /// Index of the entry that should have been `previous + 1`.
        next: Index,
    },
    /// The first entry would leave a hole after the stored log.
    #[error("entry {first} does not follow the stored log, which ends at {last_index}")]
    Gap {
        /// Index of the first entry of the batch.
        first: Index,
        /// Last index of the log (or snapshot) it should follow.
        last_index: Index,
    },
    /// The first entry lies inside the snapshot, which replaced those entries for good.
    #[error("entry {first} lies inside the snapshot, which ends at {snapshot_index}")]
    BeforeSnapshot {
        /// Index of the first entry of the batch.
        first: Index,
        /// Last index covered by the stored snapshot.
        snapshot_index: Index,
    },
    /// An entry has a lower term than the one before it; Raft logs never do (§5.3).
    #[error("entry {index} has term {term}, lower than the preceding term {previous_term}")]
    TermRegression {
        /// Index of the offending entry.
        index: Index,
        /// Its term.
        term: Term,
        /// Term of the entry (or snapshot) before it.
        previous_term: Term,
    },
    /// The snapshot is older than the one already stored.
    #[error("snapshot at {index} is older than the stored snapshot at {stored_index}")]
    StaleSnapshot {
        /// Last index of the offered snapshot.
        index: Index,
        /// Last index of the stored snapshot.
        stored_index: Index,
    },
    /// An entry is larger than one log record may be.
    #[error("entry {index} carries {bytes} bytes, more than the {max} a log record may hold")]
    EntryTooLarge {
        /// Index of the entry.
        index: Index,
        /// Bytes of application data it carries.
        bytes: u64,
        /// The largest accepted.
        max: u64,
    },
    /// A snapshot must cover at least one entry (index 0 means "no snapshot").
    #[error("a snapshot must end at an index above 0")]
    SnapshotAtIndexZero,
    /// The hard state's term is lower than the stored one; terms never go back (§5.1).
    #[error("hard state term {term} is lower than the stored term {stored_term}")]
    TermWentBack {
        /// Offered term.
        term: Term,
        /// Stored term.
        stored_term: Term,
    },
}

/// Everything that can go wrong in storage. Errors about files name the file (and the byte
/// offset, for records) so an operator can look at it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another store in this process) has the data directory open.
    #[error("data directory {path} is in use by another store (lock file held)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A record that later data proves was once durable fails its checks: the log is damaged
    /// in the middle and the store refuses to guess.
    #[error("corrupt record in {path} at byte {offset}: {reason}")]
    CorruptRecord {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record in the file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// Records decode but contradict each other (a batch out of sequence, a checkpoint that
    /// disagrees with the segments before it, an entry that does not follow the log).
    #[error("inconsistent log in {path} at byte {offset}: {reason}")]
    Inconsistent {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record in the file.
        offset: u64,
        /// What contradicts what.
        reason: String,
    },
    /// The segment sequence has a hole: a segment between two present ones is missing.
    #[error("segment {missing} is missing: {after} is followed by {next}")]
    MissingSegment {
        /// The file name that should exist.
        missing: PathBuf,
        /// The last present segment before the hole.
        after: PathBuf,
        /// The first present segment after the hole.
        next: PathBuf,
    },
    /// The oldest segments are gone and no snapshot covers the entries they held.
    #[error(
        "entries {first}..={last} are neither in the log (first segment {path}) nor in a snapshot"
    )]
    MissingEntries {
        /// First missing index.
        first: Index,
        /// Last missing index.
        last: Index,
        /// The oldest segment present.
        path: PathBuf,
    },
    /// The snapshot file fails its checks.
    #[error("corrupt snapshot {path} at byte {offset}: {reason}")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Byte offset where the check failed.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// The log refers to a snapshot that the snapshot file does not hold.
    #[error("the log refers to a snapshot at index {index} (term {term}) but {path} {found}")]
    MissingSnapshot {
        /// Snapshot index the log refers to.
        index: Index,
        /// Snapshot term the log refers to.
        term: Term,
        /// The snapshot file.
        path: PathBuf,
        /// What is there instead.
        found: String,
    },
    /// The batch breaks the rules of [`Storage::persist`]; nothing was written.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// An earlier I/O error left the store in an unknown state; reopen it to recover.
    #[error("storage is unusable after an earlier I/O error; reopen it to recover")]
    Poisoned,
    /// The configuration cannot work.
    #[error("invalid storage configuration: {0}")]
    InvalidConfig(String),
    /// A file is Baton's but in a storage format version this build does not read (written by
    /// a newer release, most likely). Refused whole, never read as damage and never truncated.
    #[error("{path} is in storage format {found}; this build of Baton reads {supported} (open it with the release that wrote it)")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format it is written in (its magic).
        found: String,
        /// The format this build reads.
        supported: String,
    },
}

/// Bytes of the magic that opens every segment and snapshot file: a 7-byte family name and
/// one version character.
const MAGIC_BYTES: usize = 8;

/// The magic `bytes` open with if it is of `magic`'s family but another version (a file
/// of another storage format version), else `None`. A file shorter than the magic, or not
/// of the family at all, is left to the caller's damage checks.
pub(crate) fn foreign_format_version(bytes: &[u8], magic: &[u8; MAGIC_BYTES]) -> Option<String> {
    let found = bytes.get(..MAGIC_BYTES)?;
    let same_family = found[..MAGIC_BYTES - 1] == magic[..MAGIC_BYTES - 1];
    (same_family && found[MAGIC_BYTES - 1] != magic[MAGIC_BYTES - 1])
        .then(|| String::from_utf8_lossy(found).into_owned())
}

impl StorageError {
    pub(crate) fn io(operation: &'static str, path: &Path, source: std::io::Error) -> Self {
        StorageError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Opens the store a node should use: [`MemoryStorage`] for [`Durability::Memory`] (the
/// directory is ignored), otherwise a [`FileStorage`] in `dir` with default segment size.
pub fn open_storage(
    dir: Option<&Path>,
    durability: Durability,
) -> Result<Box<dyn Storage>, StorageError> {
    match (durability, dir) {
        (Durability::Memory, _) => Ok(Box::new(MemoryStorage::new())),
        (_, None) => Err(StorageError::InvalidConfig(format!(
            "{durability:?} storage needs a data directory"
        ))),
        (_, Some(dir)) => {
            let config = FileStorageConfig {
                durability,
                ..FileStorageConfig::default()
            };
            Ok(Box::new(FileStorage::open(dir, config)?))
        }
    }
}
