//! Territory: a turn-based game for Baton's demo. Every turn each player claims one cell of
//! a grid; the host gathers the claims into a tick record (lockstep: the record carries the
//! inputs) and every player resolves them the same way, in record order — first claim wins.
//!
//! The crate holds the game ([`Territory`]), a bot that plays it ([`Bot`]), and what the
//! `baton-demo` binary is made of:
//!
//! | module | what |
//! |---|---|
//! | [`player`] | one bot player as a process, driven by line commands (the scripted run's unit) |
//! | [`orchestrator`] | the scripted run: bot processes, SIGKILL of the host, the end numbers |
//! | [`tui`] | the terminal UI people play in (`baton-demo host`, `baton-demo join`) |
//! | [`lan`] | open sessions advertised and listed over mDNS (`--lan`) |
//! | [`view`] | drawing the board and the player list, shared by the live view and the UI |
#![warn(missing_docs)]

pub mod error;
pub mod lan;
pub mod orchestrator;
pub mod player;
pub mod tui;
pub mod view;

pub use error::DemoError;

use baton::raft::NodeId;
use baton::session::{Game, GameError, PlayerInput, TickRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Side of the square grid.
pub const GRID_SIDE: u8 = 16;

/// Most seats a Territory match has (one letter and colour each on screen).
pub const SEATS_MAX: usize = 8;

/// A claim on one cell, the only move of the game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Column.
    pub x: u8,
    /// Row.
    pub y: u8,
}

/// What a player sends each turn: a claim, plus what the player wants every screen to show
/// about it. The extras ride in the input so that every replica (not only the host, which
/// alone sees the Raft progress of others) can show every player's fitness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// The cell claimed.
    pub claim: Claim,
    /// The sender's fitness when it sent the order, in thousandths (`Fitness`'s scale).
    pub fitness: u16,
    /// Whether a person (rather than a bot) gave the order.
    pub human: bool,
}

/// Bytes of an encoded [`Order`]: x, y, fitness (big-endian u16), flags.
const ORDER_BYTES: usize = 5;
const ORDER_FLAG_HUMAN: u8 = 1;

impl Order {
    /// Encodes the order as input bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        let [high, low] = self.fitness.to_be_bytes();
        let flags = if self.human { ORDER_FLAG_HUMAN } else { 0 };
        vec![self.claim.x, self.claim.y, high, low, flags]
    }

    /// Decodes input bytes; `None` for anything that is not an order on the grid. Input
    /// bytes come from other players, so nothing here may panic on them.
    pub fn from_bytes(bytes: &[u8]) -> Option<Order> {
        if bytes.len() != ORDER_BYTES {
            return None;
        }
        let (x, y) = (bytes[0], bytes[1]);
        if x >= GRID_SIDE || y >= GRID_SIDE {
            return None;
        }
        Some(Order {
            claim: Claim { x, y },
            fitness: u16::from_be_bytes([bytes[2], bytes[3]]),
            human: bytes[4] & ORDER_FLAG_HUMAN != 0,
        })
    }
}

/// What every replica knows of one player, from the inputs the log carried for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerRecord {
    /// Seat number, in order of the first input applied (so every replica names players
    /// alike: seat 0 is `A`).
    pub seat: usize,
    /// Fitness the player reported with its last order.
    pub fitness: u16,
    /// A person gave at least one of its orders.
    pub human: bool,
    /// Inputs of this player applied, whatever their bytes, over all its incarnations.
    pub inputs_applied: u64,
    /// The incarnation of its last input (a player that starts again with the same
    /// identity numbers its inputs from 1 under a greater one).
    pub incarnation: u64,
    /// Inputs applied within that incarnation.
    pub incarnation_inputs_applied: u64,
    /// Highest input sequence number applied within that incarnation.
    pub last_sequence: u64,
    /// Inputs applied whose sequence was not the previous one plus one (a duplicate or a
    /// gap), or from an older incarnation. The session promises zero; the demo checks it
    /// instead of trusting it.
    pub inputs_out_of_order: u64,
    /// Turn of the player's last order.
    pub last_order_turn: u64,
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
    /// Every player that sent an input, by id.
    pub players: BTreeMap<NodeId, PlayerRecord>,
    /// Last turn that applied an order a person gave (bots leave once people are gone).
    pub last_human_turn: u64,
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

    /// The seat letter of `player` (`?` before its first input is applied).
    pub fn seat_letter(&self, player: NodeId) -> char {
        self.players
            .get(&player)
            .map(|record| seat_letter(record.seat))
            .unwrap_or('?')
    }

    /// Hash after `turn` (1-based), if this replica applied it.
    pub fn hash_at(&self, turn: u64) -> Option<u64> {
        let index = usize::try_from(turn.checked_sub(1)?).ok()?;
        self.history.get(index).copied()
    }

    /// Every player's inputs were applied once each, in sequence, with no gap.
    pub fn inputs_applied_once(&self) -> bool {
        self.players.values().all(|record| {
            record.inputs_out_of_order == 0
                && record.incarnation_inputs_applied == record.last_sequence
        })
    }

    /// Encodes the whole state (as a snapshot), for a process that reports it.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GameError> {
        self.snapshot()
    }

    /// Decodes a state made by [`Territory::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Territory, GameError> {
        let mut state = Territory::default();
        state.restore(bytes)?;
        Ok(state)
    }

    fn mix(&mut self, values: &[u64]) {
        for value in values {
            self.hash = (self.hash ^ value)
                .wrapping_mul(0x100_0000_01b3)
                .rotate_left(7);
        }
    }

    fn tally(&mut self, input: &PlayerInput) -> &mut PlayerRecord {
        let seats = self.players.len();
        let record = self.players.entry(input.player).or_insert(PlayerRecord {
            seat: seats,
            ..PlayerRecord::default()
        });
        if input.incarnation > record.incarnation {
            record.incarnation = input.incarnation;
            record.incarnation_inputs_applied = 0;
            record.last_sequence = 0;
        }
        if input.incarnation < record.incarnation || input.sequence != record.last_sequence + 1 {
            record.inputs_out_of_order += 1;
        }
        record.inputs_applied += 1;
        record.incarnation_inputs_applied += 1;
        record.last_sequence = record.last_sequence.max(input.sequence);
        record
    }
}

/// The letter shown for seat `seat`: `A`, `B`, … (`?` past `Z`).
pub fn seat_letter(seat: usize) -> char {
    u8::try_from(seat)
        .ok()
        .filter(|seat| *seat < 26)
        .map(|seat| char::from(b'A' + seat))
        .unwrap_or('?')
}

impl Game for Territory {
    fn apply(&mut self, record: &TickRecord) {
        for input in &record.inputs {
            let turn = record.tick;
            let player = self.tally(input);
            let Some(order) = Order::from_bytes(&input.data) else {
                continue;
            };
            player.fitness = order.fitness;
            player.human |= order.human;
            player.last_order_turn = turn;
            if order.human {
                self.last_human_turn = turn;
            }
            let claim = order.claim;
            self.claims_applied += 1;
            let won = !self.owners.contains_key(&(claim.x, claim.y));
            if won {
                self.owners.insert((claim.x, claim.y), input.player);
            }
            self.mix(&[
                input.player,
                input.incarnation,
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

/// A player that claims a free cell, from a seeded RNG.
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
        // Bounded tries: on a nearly full board a taken cell is as good as any.
        const FREE_CELL_TRIES_MAX: usize = 32;
        for _ in 0..FREE_CELL_TRIES_MAX {
            let claim = self.any_cell();
            if !state.owners.contains_key(&(claim.x, claim.y)) {
                return claim;
            }
        }
        self.any_cell()
    }

    fn any_cell(&mut self) -> Claim {
        Claim {
            x: self.rng.random_range(0..GRID_SIDE),
            y: self.rng.random_range(0..GRID_SIDE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tick: u64, inputs: Vec<(NodeId, u64, Vec<u8>)>) -> TickRecord {
        TickRecord {
            tick,
            inputs: inputs
                .into_iter()
                .map(|(player, sequence, data)| PlayerInput {
                    player,
                    incarnation: 1,
                    sequence,
                    data,
                })
                .collect(),
            payload: Vec::new(),
        }
    }

    fn order(x: u8, y: u8, human: bool) -> Vec<u8> {
        Order {
            claim: Claim { x, y },
            fitness: 900,
            human,
        }
        .to_bytes()
    }

    #[test]
    fn orders_round_trip_and_junk_is_refused() {
        let sent = Order {
            claim: Claim { x: 3, y: 15 },
            fitness: 777,
            human: true,
        };
        assert_eq!(Order::from_bytes(&sent.to_bytes()), Some(sent));
        assert_eq!(Order::from_bytes(&[16, 0, 0, 0, 0]), None);
        assert_eq!(Order::from_bytes(&[1, 2]), None);
        assert_eq!(Order::from_bytes(&[]), None);
    }

    #[test]
    fn first_claim_wins_and_seats_follow_first_input() {
        let mut state = Territory::default();
        state.apply(&record(
            1,
            vec![(7, 1, order(0, 0, false)), (9, 1, order(0, 0, true))],
        ));
        assert_eq!(state.owners.get(&(0, 0)), Some(&7));
        assert_eq!(state.seat_letter(7), 'A');
        assert_eq!(state.seat_letter(9), 'B');
        assert_eq!(state.last_human_turn, 1);
        assert!(state.inputs_applied_once());
        assert_eq!(state.hash_at(1), Some(state.hash));
        assert_eq!(state.hash_at(0), None);
    }

    #[test]
    fn a_repeated_or_skipped_sequence_is_counted() {
        let mut state = Territory::default();
        state.apply(&record(1, vec![(7, 1, order(0, 0, false))]));
        state.apply(&record(2, vec![(7, 1, order(1, 0, false))]));
        assert!(!state.inputs_applied_once());
        let mut gap = Territory::default();
        gap.apply(&record(1, vec![(7, 2, order(0, 0, false))]));
        assert!(!gap.inputs_applied_once());
    }

    #[test]
    fn a_new_incarnation_numbers_from_one_again() {
        let mut state = Territory::default();
        state.apply(&record(1, vec![(7, 1, order(0, 0, false))]));
        let mut restarted = record(2, vec![(7, 1, order(1, 0, false))]);
        restarted.inputs[0].incarnation = 2;
        state.apply(&restarted);
        assert!(state.inputs_applied_once());
        assert_eq!(state.players[&7].inputs_applied, 2);
        let mut stale = record(3, vec![(7, 2, order(2, 0, false))]);
        stale.inputs[0].incarnation = 1;
        state.apply(&stale);
        assert!(!state.inputs_applied_once());
    }

    #[test]
    fn state_bytes_round_trip() {
        let mut state = Territory::default();
        state.apply(&record(1, vec![(7, 1, order(4, 5, false))]));
        let bytes = state.to_bytes().expect("encodes");
        assert_eq!(Territory::from_bytes(&bytes).expect("decodes"), state);
        assert!(Territory::from_bytes(&[0xff; 3]).is_err());
    }
}
