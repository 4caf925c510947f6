//! Territory: a turn-based game for Baton's demo. Every turn each player claims one cell of
//! a grid; the host gathers the claims into a tick record (lockstep: the record carries the
//! inputs) and every player resolves them the same way, in record order — first claim wins.
//!
//! The crate holds the game ([`Territory`]), a bot that plays it ([`Bot`]), and the player
//! process and orchestrator behind the `baton-demo` binary ([`player`], [`orchestrator`]).
#![warn(missing_docs)]

pub mod orchestrator;
pub mod player;

use baton::raft::NodeId;
use baton::session::{Game, GameError, PlayerInput, TickRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Side of the square grid.
pub const GRID_SIDE: u8 = 16;

/// A claim on one cell, the only input of the game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Column.
    pub x: u8,
    /// Row.
    pub y: u8,
}

impl Claim {
    /// Encodes the claim as input bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        vec![self.x, self.y]
    }

    /// Decodes input bytes; `None` for anything that is not a claim on the grid.
    pub fn from_bytes(bytes: &[u8]) -> Option<Claim> {
        match bytes {
            [x, y] if *x < GRID_SIDE && *y < GRID_SIDE => Some(Claim { x: *x, y: *y }),
            _ => None,
        }
    }
}

/// The replicated game state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Territory {
    /// Owner of each claimed cell, by (x, y).
    pub owners: BTreeMap<(u8, u8), NodeId>,
    /// Last tick applied.
    pub turn: u64,
    /// Running hash of every resolved claim, to compare replicas with one number.
    pub hash: u64,
    /// Number of claims applied.
    pub claims_applied: u64,
    /// Hash after each turn (index = turn - 1), to compare replicas at one turn while the
    /// game goes on.
    pub history: Vec<u64>,
}

impl Territory {
    /// Cells owned per player.
    pub fn scores(&self) -> BTreeMap<NodeId, usize> {
        let mut scores = BTreeMap::new();
        for owner in self.owners.values() {
            *scores.entry(*owner).or_insert(0) += 1;
        }
        scores
    }

    fn mix(&mut self, values: &[u64]) {
        for value in values {
            self.hash = (self.hash ^ value)
                .wrapping_mul(0x100_0000_01b3)
                .rotate_left(7);
        }
    }
}

impl Game for Territory {
    fn apply(&mut self, record: &TickRecord) {
        for input in &record.inputs {
            let Some(claim) = Claim::from_bytes(&input.data) else {
                continue;
            };
            self.claims_applied += 1;
            let won = !self.owners.contains_key(&(claim.x, claim.y));
            if won {
                self.owners.insert((claim.x, claim.y), input.player);
            }
            self.mix(&[
                input.player,
                input.sequence,
                u64::from(claim.x),
                u64::from(claim.y),
                u64::from(won),
            ]);
        }
        self.turn = record.tick;
        self.mix(&[record.tick]);
        self.history.push(self.hash);
    }

    fn tick(&self, _tick: u64, _inputs: &[PlayerInput]) -> Vec<u8> {
        // Lockstep: the inputs are the record; every player resolves them itself.
        Vec::new()
    }

    fn snapshot(&self) -> Result<Vec<u8>, GameError> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|err| GameError(format!("encoding Territory: {err}")))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), GameError> {
        let (state, _) = bincode::serde::decode_from_slice(snapshot, bincode::config::standard())
            .map_err(|err| GameError(format!("not a Territory snapshot: {err}")))?;
        *self = state;
        Ok(())
    }
}

/// A player that claims a free cell near its previous one, from a seeded RNG.
pub struct Bot {
    rng: ChaCha8Rng,
}

impl Bot {
    /// A bot whose choices follow `seed`.
    pub fn new(seed: u64) -> Bot {
        Bot {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Picks a cell, preferring free ones.
    pub fn choose(&mut self, state: &Territory) -> Claim {
        for _ in 0..32 {
            let claim = Claim {
                x: self.rng.random_range(0..GRID_SIDE),
                y: self.rng.random_range(0..GRID_SIDE),
            };
            if !state.owners.contains_key(&(claim.x, claim.y)) {
                return claim;
            }
        }
        Claim {
            x: self.rng.random_range(0..GRID_SIDE),
            y: self.rng.random_range(0..GRID_SIDE),
        }
    }
}
