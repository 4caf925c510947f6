//! Node configuration and its validation.

use crate::types::{Fitness, NodeId};
use thiserror::Error;

/// Largest election timeout accepted, so that every tick counter fits comfortably.
pub const ELECTION_TIMEOUT_TICKS_LIMIT: u32 = 1_000_000;

/// Most deviations a detection timeout may ask for: beyond it the ceiling decides anyway.
pub const DETECTION_DEVIATIONS_MAX: u32 = 16;

/// Static settings of one node. Build with [`Config::new`] and adjust fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's identity.
    pub id: NodeId,
    /// Lower bound of the randomized election timeout, in ticks (default 10).
    pub election_timeout_ticks_min: u32,
    /// Exclusive upper bound of the randomized election timeout, in ticks (default 20).
    /// Fitness shifts a node's range within `[min, max + (max - min) / 2)`: the fittest
    /// draw from the lower half, the least fit wait longer (see `docs/raft-core.md`).
    pub election_timeout_ticks_max: u32,
    /// Longest interval between two heartbeat rounds of a leader, in ticks (default 2).
    /// With `adaptive_election_timeout` the leader heartbeats every half of the shortest
    /// detection timeout it measures on its voters' answers, within `[1, this]`.
    pub heartbeat_interval_ticks: u32,
    /// Judge the leader's silence against the measured arrival of its messages instead
    /// of the fixed range above (default true; see `detector` and `docs/raft-core.md`).
    /// A follower's election timeout is then its detection timeout plus the fitness shift
    /// and the random jitter, drawn as from `[detection, 2 × detection)`; the fixed range
    /// is used until `ARRIVAL_GAPS_MEASURED_MIN` gaps were measured, and for every
    /// election round (which waits for a vote's round trip, not for a heartbeat).
    pub adaptive_election_timeout: bool,
    /// Grant no vote while this node knows no configuration (default false, as in Raft,
    /// where a server with an empty log may vote). Set it on a node that starts from an
    /// empty store to join: its empty log and unrecorded vote say nothing, and if it is
    /// a member that lost its storage and came back under the same id, its grant can
    /// complete a majority for a candidate that lacks committed entries. A joiner is sent
    /// the log, and with it a configuration, before a caught-up promotion lets its vote
    /// count; a voter promoted before that is not counted on until it has the log.
    pub refuse_votes_without_configuration: bool,
    /// Shortest detection timeout, in ticks (default 4): how fast a crash can be noticed
    /// on a link without jitter, and what scheduling noise must stay under.
    pub detection_timeout_ticks_floor: u32,
    /// Longest detection timeout, in ticks (default 100): what a crash costs at most on a
    /// link so bad that its measured silences would ask for more.
    pub detection_timeout_ticks_ceiling: u32,
    /// Deviations above the smoothed gap that a silence must reach to be suspected
    /// (default 4, as TCP's retransmission timer). More: fewer false suspicions on a
    /// jittery link, slower detection on it.
    pub detection_deviations: u32,
    /// Pipelining window: AppendEntries (or snapshot chunks) in flight per follower (default 8).
    pub max_inflight_appends: usize,
    /// Batching: most entries in one AppendEntries (default 64).
    pub max_entries_per_append: usize,
    /// Batching: most payload bytes in one AppendEntries; one entry is always sent even if
    /// larger (default 1 MiB).
    pub max_append_bytes: usize,
    /// A learner is promoted once its log is within this many entries of the commit index
    /// (§4.2.1: a new voter must be nearly caught up, not exactly: on a link slower than
    /// the proposal rate, entries are always in flight and "exactly" is never reached).
    pub promotion_lag_entries_max: u64,
    /// Size of one InstallSnapshot chunk (default 64 KiB).
    pub snapshot_chunk_bytes: usize,
    /// Run a pre-vote round before a real election (§9.6), default true.
    pub pre_vote: bool,
    /// Leaders step down without a quorum of recent contact, and voters ignore vote
    /// requests while they hear from a leader (§6.2, §4.2.3), default true.
    pub check_quorum: bool,
    /// Serve reads from the leader lease without a heartbeat round (opt-in, default false).
    /// Requires `check_quorum`.
    pub lease_reads: bool,
    /// Seed of the node's only source of randomness (ChaCha8).
    pub rng_seed: u64,
    /// Initial fitness of this node.
    pub fitness: Fitness,
}

impl Config {
    /// A configuration with the documented defaults.
    pub fn new(id: NodeId, rng_seed: u64) -> Config {
        Config {
            id,
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_interval_ticks: 2,
            adaptive_election_timeout: true,
            refuse_votes_without_configuration: false,
            detection_timeout_ticks_floor: 4,
            detection_timeout_ticks_ceiling: 100,
            detection_deviations: 4,
            max_inflight_appends: 8,
            max_entries_per_append: 64,
            max_append_bytes: 1024 * 1024,
            promotion_lag_entries_max: 32,
            snapshot_chunk_bytes: 64 * 1024,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            rng_seed,
            fitness: Fitness::default(),
        }
    }

    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let min = self.election_timeout_ticks_min;
        let max = self.election_timeout_ticks_max;
        if min < 2 || max <= min || max > ELECTION_TIMEOUT_TICKS_LIMIT {
            return Err(ConfigError::ElectionTimeout { min, max });
        }
        if self.heartbeat_interval_ticks == 0 || self.heartbeat_interval_ticks >= min {
            return Err(ConfigError::HeartbeatInterval {
                heartbeat: self.heartbeat_interval_ticks,
                election_min: min,
            });
        }
        let floor = self.detection_timeout_ticks_floor;
        let ceiling = self.detection_timeout_ticks_ceiling;
        if floor < 2 || ceiling < floor || ceiling > ELECTION_TIMEOUT_TICKS_LIMIT {
            return Err(ConfigError::DetectionTimeout { floor, ceiling });
        }
        if !(1..=DETECTION_DEVIATIONS_MAX).contains(&self.detection_deviations) {
            return Err(ConfigError::DetectionDeviations(self.detection_deviations));
        }
        if self.max_inflight_appends == 0 {
            return Err(ConfigError::Zero("max_inflight_appends"));
        }
        if self.max_entries_per_append == 0 {
            return Err(ConfigError::Zero("max_entries_per_append"));
        }
        if self.max_append_bytes == 0 {
            return Err(ConfigError::Zero("max_append_bytes"));
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError::Zero("snapshot_chunk_bytes"));
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        if self.fitness > Fitness::MAX {
            return Err(ConfigError::Fitness(self.fitness.0));
        }
        Ok(())
    }
}

/// Why a configuration or a persisted state cannot start a node.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The election timeout range is empty, too short or too long.
    #[error(
        "election timeout range [{min}, {max}) ticks is invalid (need 2 <= min < max <= limit)"
    )]
    ElectionTimeout {
        /// Configured minimum.
        min: u32,
        /// Configured exclusive maximum.
        max: u32,
    },
    /// Heartbeats must be more frequent than the shortest election timeout.
    #[error("heartbeat interval {heartbeat} ticks must be in [1, {election_min})")]
    HeartbeatInterval {
        /// Configured heartbeat interval.
        heartbeat: u32,
        /// Configured minimum election timeout.
        election_min: u32,
    },
    /// The detection timeout's bounds are empty, too short or too long.
    #[error(
        "detection timeout bounds [{floor}, {ceiling}] ticks are invalid (need 2 <= floor <= ceiling <= limit)"
    )]
    DetectionTimeout {
        /// Configured floor.
        floor: u32,
        /// Configured ceiling.
        ceiling: u32,
    },
    /// The deviations a silence must reach are outside `[1, DETECTION_DEVIATIONS_MAX]`.
    #[error("detection_deviations {0} must be in [1, 16]")]
    DetectionDeviations(u32),
    /// A size or window limit is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// Lease reads are only safe when voters respect leader leases (check-quorum).
    #[error("lease_reads requires check_quorum")]
    LeaseWithoutCheckQuorum,
    /// Fitness above 1000.
    #[error("fitness {0} is above 1000")]
    Fitness(u16),
    /// The persisted state contradicts itself (gap in the log, commit beyond the log, ...).
    #[error("persisted state is inconsistent: {0}")]
    PersistedState(&'static str),
}
