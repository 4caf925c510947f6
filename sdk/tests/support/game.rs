//! A small game for session tests: it records every input it applies, in order, and keeps
//! a running hash of the whole history, so replicas can be compared with one number and
//! exactly-once can be checked input by input.

#![allow(dead_code)]

use baton::raft::NodeId;
use baton::session::{Game, GameError, PlayerInput, TickRecord};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub ticks: u64,
    pub applied: Vec<(NodeId, u64, Vec<u8>)>,
    pub hash: u64,
    /// Ticks whose authoritative payload differed from what the inputs give.
    pub payload_mismatches: u64,
    /// Hash after each tick (index = tick - 1), so replicas can be compared at one tick
    /// while the game keeps running.
    pub history: Vec<u64>,
}

fn mix(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

impl Ledger {
    fn next_hash(&self, tick: u64, inputs: &[PlayerInput]) -> u64 {
        let mut hash = mix(self.hash ^ 0xcbf2_9ce4_8422_2325, &tick.to_le_bytes());
        for input in inputs {
            hash = mix(hash, &input.player.to_le_bytes());
            hash = mix(hash, &input.sequence.to_le_bytes());
            hash = mix(hash, &input.data);
        }
        hash
    }
}

impl Game for Ledger {
    fn apply(&mut self, record: &TickRecord) {
        let recomputed = self.next_hash(record.tick, &record.inputs);
        // Authoritative style: the host's payload *is* the new state; lockstep style (empty
        // payload): every replica computes it. Both must agree, and the test checks they do.
        let new_hash = match <[u8; 8]>::try_from(record.payload.as_slice()) {
            Ok(bytes) => u64::from_le_bytes(bytes),
            Err(_) => recomputed,
        };
        if new_hash != recomputed {
            self.payload_mismatches += 1;
        }
        self.hash = new_hash;
        self.ticks = record.tick;
        self.history.push(new_hash);
        for input in &record.inputs {
            self.applied
                .push((input.player, input.sequence, input.data.clone()));
        }
    }

    fn tick(&self, tick: u64, inputs: &[PlayerInput]) -> Vec<u8> {
        self.next_hash(tick, inputs).to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, GameError> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|err| GameError(err.to_string()))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), GameError> {
        let (ledger, _) = bincode::serde::decode_from_slice(snapshot, bincode::config::standard())
            .map_err(|err| GameError(err.to_string()))?;
        *self = ledger;
        Ok(())
    }
}
