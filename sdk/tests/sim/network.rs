//! The simulated network: per-message latency, loss, duplication, reordering and
//! (a)symmetric partitions, all drawn from the network's own seeded generator.

use baton::raft::NodeId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Latency of a message on a healthy link, in simulated milliseconds.
pub const LATENCY_MS_MIN: u64 = 1;
/// Upper bound (inclusive) of a healthy link's latency.
pub const LATENCY_MS_MAX: u64 = 6;
/// Upper bound (inclusive) of the latency of a message that the delay fault holds back.
pub const LONG_DELAY_MS_MAX: u64 = 400;
/// Probabilities are in parts per million so the weather can be drawn as integers.
pub const PPM: u32 = 1_000_000;

/// How messages behave right now (the fault phase changes it; the heal phase resets it).
#[derive(Clone, Debug, Default)]
pub struct Weather {
    /// Chance that a message is lost.
    pub drop_ppm: u32,
    /// Chance that a message is delivered twice (each copy with its own latency).
    pub duplicate_ppm: u32,
    /// Chance that a message is held back for up to `LONG_DELAY_MS_MAX`.
    pub long_delay_ppm: u32,
    /// Whether a link may deliver out of send order; otherwise each link is FIFO, like
    /// one QUIC stream per peer pair.
    pub reorder: bool,
    /// Latency range of every link, inclusive (`None`: `LATENCY_MS_MIN..=LATENCY_MS_MAX`).
    pub latency_ms: Option<(u64, u64)>,
    /// A delay spike: messages sent on this directed link before the instant arrive no
    /// earlier than it (from, to, until ms).
    pub spike: Option<(NodeId, NodeId, u64)>,
}

/// Decides the fate of every message.
pub struct Network {
    pub weather: Weather,
    /// Directed links that deliver nothing: (from, to).
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    /// Latest delivery time per link, to keep FIFO links in order.
    last_delivery_ms: BTreeMap<(NodeId, NodeId), u64>,
    rng: ChaCha8Rng,
}

impl Network {
    pub fn new(rng: ChaCha8Rng) -> Network {
        Network {
            weather: Weather::default(),
            blocked: BTreeSet::new(),
            last_delivery_ms: BTreeMap::new(),
            rng,
        }
    }

    /// Whether `from` can currently reach `to`.
    pub fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// Delivery times of the copies of one message sent now (empty: lost).
    pub fn route(&mut self, from: NodeId, to: NodeId, now_ms: u64) -> Vec<u64> {
        if !self.link_up(from, to) || self.chance(self.weather.drop_ppm) {
            return Vec::new();
        }
        let copies = if self.chance(self.weather.duplicate_ppm) {
            2
        } else {
            1
        };
        let mut times = Vec::with_capacity(copies);
        for _ in 0..copies {
            let (low, high) = self
                .weather
                .latency_ms
                .unwrap_or((LATENCY_MS_MIN, LATENCY_MS_MAX));
            let mut latency = self.rng.random_range(low..=high);
            if self.chance(self.weather.long_delay_ppm) {
                latency = self.rng.random_range(LATENCY_MS_MIN..=LONG_DELAY_MS_MAX);
            }
            let mut at = now_ms + latency;
            if let Some((a, b, until)) = self.weather.spike {
                if (a, b) == (from, to) && now_ms < until {
                    at = at.max(until);
                }
            }
            if !self.weather.reorder {
                let last = self.last_delivery_ms.entry((from, to)).or_insert(0);
                at = at.max(*last);
                *last = at;
            }
            times.push(at);
        }
        times
    }

    /// Cuts the cluster in two: nothing crosses between `side` and the rest.
    pub fn partition(&mut self, side: &BTreeSet<NodeId>, all: &[NodeId]) {
        for a in all {
            for b in all {
                if side.contains(a) != side.contains(b) {
                    self.blocked.insert((*a, *b));
                }
            }
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.random_range(0..PPM) < ppm
    }
}
