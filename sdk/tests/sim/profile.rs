//! Per-seed choice of cluster shape and fault mix ("swarm testing", as TigerBeetle's
//! VOPR does): each seed enables a random subset of fault kinds at random intensities,
//! so that rare interleavings of a few faults are not drowned in uniform noise.

use super::network::PPM;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Smallest cluster simulated (voters and learners together).
pub const NODES_MIN: usize = 3;
/// Largest cluster simulated.
pub const NODES_MAX: usize = 7;
/// Nominal interval between two ticks of a node, in simulated milliseconds.
pub const TICK_MS_NOMINAL: u64 = 10;
/// Fastest clock a drifting node may have (tick interval, ms).
pub const TICK_MS_MIN: u64 = 6;
/// Slowest clock a drifting node may have (tick interval, ms).
pub const TICK_MS_MAX: u64 = 20;
/// Longest persistence latency of one Ready, in simulated milliseconds.
pub const PERSIST_MS_MAX: u64 = 40;

/// The fault kinds the chaos scheduler draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Crash,
    PartitionSymmetric,
    PartitionAsymmetric,
    IsolateLeader,
    HealPartitions,
    Weather,
    Membership,
    Transfer,
    Compact,
    Fitness,
    Drift,
    Campaign,
}

/// Every fault kind, in a fixed order (the order matters for replay).
pub const FAULTS: [Fault; 12] = [
    Fault::Crash,
    Fault::PartitionSymmetric,
    Fault::PartitionAsymmetric,
    Fault::IsolateLeader,
    Fault::HealPartitions,
    Fault::Weather,
    Fault::Membership,
    Fault::Transfer,
    Fault::Compact,
    Fault::Fitness,
    Fault::Drift,
    Fault::Campaign,
];

/// What one seed simulates.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Size of the universe of nodes (ids 1..=nodes).
    pub nodes: usize,
    /// Founding voters (ids 1..=voters).
    pub voters: usize,
    /// Founding learners (the next ids); the remaining nodes start empty, outside.
    pub learners: usize,
    /// Relative weight of each fault kind (0: never), indexed like `FAULTS`.
    pub weights: [u32; FAULTS.len()],
    /// Mean pause between two chaos actions (ms).
    pub chaos_interval_ms: u64,
    /// Ceilings the weather is drawn under.
    pub drop_ppm_max: u32,
    pub duplicate_ppm_max: u32,
    pub long_delay_ppm_max: u32,
    pub reorder: bool,
    /// Persistence latency ceiling (ms): 0 means persistence completes in the same instant.
    pub persist_ms_max: u64,
    /// Tick interval range of the drifting clocks (ms).
    pub tick_ms_min: u64,
    pub tick_ms_max: u64,
    /// Chance (per mille) that a new leader is crashed right after its election.
    pub doomed_leader_per_mille: u32,
    /// Chance (per mille) that a node is crashed right after granting a vote.
    pub doomed_voter_per_mille: u32,
    /// A node compacts once this many applied entries sit in its log.
    pub compact_threshold_entries: u64,
    /// Most nodes down at once.
    pub crashed_max: usize,
    /// Clients issuing commands during the fault phase.
    pub clients: usize,
    /// Commands per client.
    pub commands_per_client: u32,
    /// Core knobs that change the shape of replication traffic.
    pub snapshot_chunk_bytes: usize,
    pub max_entries_per_append: usize,
    pub max_inflight_appends: usize,
}

/// The link the detector scenario simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// 1–6 ms.
    Lan,
    /// 40–120 ms, each link in order (queueing jitter): 80 ± 40 ms.
    Internet,
}

impl Link {
    /// Latency range, inclusive, in ms.
    pub fn latency_ms(self) -> (u64, u64) {
        match self {
            Link::Lan => (
                super::network::LATENCY_MS_MIN,
                super::network::LATENCY_MS_MAX,
            ),
            Link::Internet => (40, 120),
        }
    }
}

impl Profile {
    /// The detector scenario's cluster: 3–5 voters, no learners, no random faults (the
    /// script injects them), clocks drifting within `TICK_MS_MIN..=TICK_MS_MAX`.
    pub fn detector(rng: &mut ChaCha8Rng) -> (Profile, Link) {
        let voters = rng.random_range(NODES_MIN..=5);
        let link = if rng.random_bool(0.5) {
            Link::Lan
        } else {
            Link::Internet
        };
        let profile = Profile {
            nodes: voters,
            voters,
            learners: 0,
            weights: [0; FAULTS.len()],
            chaos_interval_ms: 1_000,
            drop_ppm_max: 0,
            duplicate_ppm_max: 0,
            long_delay_ppm_max: 0,
            reorder: false,
            persist_ms_max: [0, 2, 10][rng.random_range(0..3)],
            tick_ms_min: TICK_MS_MIN,
            tick_ms_max: TICK_MS_MAX,
            doomed_leader_per_mille: 0,
            doomed_voter_per_mille: 0,
            compact_threshold_entries: 256,
            crashed_max: 1,
            clients: rng.random_range(1..=2),
            commands_per_client: rng.random_range(150..=600),
            snapshot_chunk_bytes: 64 * 1024,
            max_entries_per_append: 64,
            max_inflight_appends: 8,
        };
        (profile, link)
    }

    pub fn draw(rng: &mut ChaCha8Rng) -> Profile {
        let nodes = rng.random_range(NODES_MIN..=NODES_MAX);
        // Three voters often: the smallest quorum makes the dangerous interleavings (a
        // leader plus one follower committing) most likely.
        let voters = if rng.random_bool(0.4) {
            NODES_MIN.min(nodes)
        } else {
            rng.random_range(NODES_MIN.min(nodes)..=nodes)
        };
        let learners = rng.random_range(0..=nodes - voters);
        let mut weights = [0u32; FAULTS.len()];
        for (weight, fault) in weights.iter_mut().zip(FAULTS) {
            let enabled_per_mille = match fault {
                Fault::HealPartitions | Fault::Weather => 1000,
                _ => 700,
            };
            if rng.random_range(0..1000) < enabled_per_mille {
                *weight = rng.random_range(1..=10);
            }
        }
        let lossy = rng.random_bool(0.6);
        let (tick_ms_min, tick_ms_max) = if rng.random_bool(0.5) {
            (TICK_MS_NOMINAL - 1, TICK_MS_NOMINAL + 1)
        } else {
            (TICK_MS_MIN, TICK_MS_MAX)
        };
        Profile {
            nodes,
            voters,
            learners,
            weights,
            chaos_interval_ms: rng.random_range(30..=300),
            drop_ppm_max: if lossy {
                rng.random_range(0..=PPM / 3)
            } else {
                0
            },
            duplicate_ppm_max: if rng.random_bool(0.5) {
                rng.random_range(0..=PPM / 5)
            } else {
                0
            },
            long_delay_ppm_max: if rng.random_bool(0.5) {
                rng.random_range(0..=PPM / 5)
            } else {
                0
            },
            reorder: rng.random_bool(0.5),
            persist_ms_max: [0, 2, 10, PERSIST_MS_MAX][rng.random_range(0..4)],
            tick_ms_min,
            tick_ms_max,
            doomed_voter_per_mille: if rng.random_bool(0.5) {
                rng.random_range(0..=300)
            } else {
                0
            },
            compact_threshold_entries: [16, 64, 256][rng.random_range(0..3)],
            crashed_max: rng.random_range(1..=nodes.div_ceil(2)),
            doomed_leader_per_mille: if rng.random_bool(0.5) {
                rng.random_range(0..=500)
            } else {
                0
            },
            clients: rng.random_range(1..=4),
            commands_per_client: rng.random_range(150..=1200),
            snapshot_chunk_bytes: [64, 256, 1024, 64 * 1024][rng.random_range(0..4)],
            max_entries_per_append: [1, 1, 4, 64][rng.random_range(0..4)],
            max_inflight_appends: [1, 2, 8][rng.random_range(0..3)],
        }
    }

    /// Draws the next fault kind by weight (None when every kind is off).
    pub fn pick_fault(&self, rng: &mut ChaCha8Rng) -> Option<Fault> {
        let total: u32 = self.weights.iter().sum();
        if total == 0 {
            return None;
        }
        let mut point = rng.random_range(0..total);
        for (weight, fault) in self.weights.iter().zip(FAULTS) {
            if point < *weight {
                return Some(fault);
            }
            point -= weight;
        }
        None
    }
}
