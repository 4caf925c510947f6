//! What one seed runs: the session's shape, the game's pace and the fault mix, all drawn
//! from the seed ("swarm testing": each seed stresses its own mix).

use baton::session::{SessionConfig, TickMode};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// The fault kinds the scheduler picks from, each with a per-seed weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A player's node stops (the host more often than not); it restarts later.
    Crash,
    /// A player leaves gracefully (the host hands over first).
    Leave,
    /// The host's game score drops to 0, so a fitter voter should take over.
    Unfit,
    /// A new player joins, or a departed one comes back with the same identity.
    Join,
    /// A member forwards a forged tick record crediting another player's input.
    Forge,
    /// The network's loss, delay, duplication and ordering change.
    Weather,
    /// A random split, or the host cut off.
    Partition,
    /// Every link delivers again.
    HealPartitions,
    /// An old player message arrives again, seconds late (a duplicate held back, say
    /// from a player's earlier incarnation).
    Replay,
}

pub const FAULTS: [Fault; 9] = [
    Fault::Crash,
    Fault::Leave,
    Fault::Unfit,
    Fault::Join,
    Fault::Forge,
    Fault::Weather,
    Fault::Partition,
    Fault::HealPartitions,
    Fault::Replay,
];

#[derive(Clone, Debug)]
pub struct Profile {
    /// Founding voters.
    pub founders: usize,
    /// Player slots in all (founders plus those who may join).
    pub players: usize,
    pub tick_mode: TickMode,
    pub lockstep: bool,
    pub max_voters: usize,
    pub snapshot_interval_ticks: u64,
    /// A node compacts its log after this many applied entries.
    pub compact_every_entries: u64,
    /// Longest a game takes to answer a request (RunTick, MakeSnapshot), in ms.
    pub game_delay_ms_max: u64,
    /// Mean pause between two inputs of one player, in ms.
    pub input_pause_ms_mean: u64,
    pub input_retry_ms: u64,
    pub handoff_hold_ms: u64,
    /// Mean pause between two fault actions, in ms.
    pub chaos_pause_ms_mean: u64,
    pub weights: Vec<(Fault, u32)>,
    /// Nodes down at once, at most.
    pub down_max: usize,
    /// The Raft clock of each node ticks every this many ms, give or take one.
    pub raft_tick_ms: u64,
}

impl Profile {
    pub fn draw(rng: &mut ChaCha8Rng) -> Profile {
        let founders = rng.random_range(3..=5);
        let players = founders + rng.random_range(0..=3);
        let tick_mode = if rng.random_ratio(4, 5) {
            TickMode::FixedRate {
                hz: [20, 30, 60][rng.random_range(0..3)],
            }
        } else {
            TickMode::TurnBased {
                turn_timeout: Duration::from_millis(rng.random_range(30..=200)),
            }
        };
        let weights = FAULTS
            .iter()
            .map(|fault| {
                let weight = if rng.random_ratio(1, 5) {
                    0
                } else {
                    rng.random_range(1..=10)
                };
                (*fault, weight)
            })
            .collect();
        Profile {
            founders,
            players,
            tick_mode,
            lockstep: rng.random_ratio(1, 3),
            max_voters: rng.random_range(3..=5),
            snapshot_interval_ticks: [2, 8, 32, 128][rng.random_range(0..4)],
            compact_every_entries: [8, 32, 128, 512][rng.random_range(0..4)],
            game_delay_ms_max: [0, 3, 20, 60][rng.random_range(0..4)],
            input_pause_ms_mean: rng.random_range(10..=300),
            input_retry_ms: rng.random_range(50..=250),
            handoff_hold_ms: rng.random_range(200..=1_000),
            chaos_pause_ms_mean: rng.random_range(100..=1_500),
            weights,
            down_max: rng.random_range(1..=2),
            raft_tick_ms: rng.random_range(5..=10),
        }
    }

    /// The session settings every player of this seed runs with.
    pub fn session_config(&self, incarnation: u64) -> SessionConfig {
        SessionConfig {
            tick_mode: self.tick_mode,
            lockstep: self.lockstep,
            max_voters: self.max_voters,
            handoff_hold: Duration::from_millis(self.handoff_hold_ms),
            policy_interval: Duration::from_millis(100),
            voter_absence_limit: Duration::from_millis(1_500),
            input_retry_interval: Duration::from_millis(self.input_retry_ms),
            inputs_in_flight_max: 32,
            snapshot_interval_ticks: self.snapshot_interval_ticks,
            incarnation: Some(incarnation),
            ..SessionConfig::default()
        }
    }
}
