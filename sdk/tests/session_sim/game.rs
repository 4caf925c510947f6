//! The model game: a hash-chain ledger. Every applied tick folds its record (each input's
//! player, incarnation, sequence and data, and the payload) into one running hash, so two
//! players with equal hashes at a tick applied the same records in the same order.

use super::log::Fnv;
use baton::session::TickRecord;

/// The hash of the state before tick 1, the same on every player.
pub const GENESIS_HASH: u64 = 0x005e_ed0f_ba70_u64;

/// One player's game state in one life of that player.
#[derive(Clone, Debug)]
pub struct Game {
    /// The last tick applied (or restored).
    pub tick: u64,
    /// The chain hash after `tick`.
    pub hash: u64,
}

impl Default for Game {
    fn default() -> Game {
        Game {
            tick: 0,
            hash: GENESIS_HASH,
        }
    }
}

impl Game {
    /// The state as bytes (what `MakeSnapshot` is answered with).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut bytes = self.tick.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.hash.to_le_bytes());
        bytes
    }

    /// Reads bytes made by [`Game::snapshot`].
    pub fn from_snapshot(bytes: &[u8]) -> Option<Game> {
        if bytes.len() != 16 {
            return None;
        }
        let tick = u64::from_le_bytes(bytes[..8].try_into().ok()?);
        let hash = u64::from_le_bytes(bytes[8..].try_into().ok()?);
        Some(Game { tick, hash })
    }

    /// The host's payload for `tick`: the state it was computed against. A record whose
    /// payload names another state than the applier's was computed on a stale state.
    pub fn payload_for(&self, tick: u64) -> Vec<u8> {
        let mut bytes = tick.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.tick.to_le_bytes());
        bytes.extend_from_slice(&self.hash.to_le_bytes());
        bytes
    }

    /// Checks a record's payload against the state it applies to (`None`: fine).
    pub fn payload_mismatch(&self, record: &TickRecord) -> Option<String> {
        if record.payload.is_empty() {
            return None; // lockstep: the record is the inputs alone
        }
        let expected = self.payload_for(record.tick);
        (record.payload != expected).then(|| {
            format!(
                "tick {} was computed against another state than tick {} hash {:016x}",
                record.tick, self.tick, self.hash
            )
        })
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &TickRecord) {
        let mut hasher = Fnv::new();
        hasher.write_u64(self.hash);
        hasher.write_u64(record_digest(record));
        self.tick = record.tick;
        self.hash = hasher.finish();
    }
}

/// A digest of a whole record.
pub fn record_digest(record: &TickRecord) -> u64 {
    let mut hasher = Fnv::new();
    hasher.write_u64(record.tick);
    hasher.write_u64(record.inputs.len() as u64);
    for input in &record.inputs {
        hasher.write_u64(input.player);
        hasher.write_u64(input.incarnation);
        hasher.write_u64(input.sequence);
        hasher.write_u64(input.data.len() as u64);
        hasher.write(&input.data);
    }
    hasher.write_u64(record.payload.len() as u64);
    hasher.write(&record.payload);
    hasher.finish()
}
